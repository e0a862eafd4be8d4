package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
)

// childEnv, when set, makes the test binary a demand child (see
// runChild): "URL START_UNIX_NANO STORES".
const childEnv = "REDISSTORE_TEST_CHILD"

// fleetLimit is the limit every demand test shares: 500/s for the fleet.
var fleetLimit = connmgr.Limit{Rate: 500, Burst: 5}

const (
	demandPerStore = 500 // attempts per second per store
	demandFor      = 5 * time.Second
	// demandWait lets an attempt wait for its slot, as callers with
	// max_wait do (the partner-API example of the SPEC waits up to 1s), so
	// that a scheduling stall on a busy machine does not leave the fleet's
	// slots unused: the waiters hold the next second of slots. Only
	// admissions due before the end of the run are counted.
	demandWait = time.Second
)

// demand makes attempts at perSecond through s, each willing to wait
// demandWait, from start until start+d, and returns how many were
// admitted to go before start+d.
func demand(s *Store, key string, perSecond int, start time.Time, d time.Duration) int {
	end := start.Add(d)
	interval := time.Second / time.Duration(perSecond)
	admitted := 0
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		if !time.Now().Before(end) {
			return admitted
		}
		r, err := s.Reserve(context.Background(), key, fleetLimit, demandWait)
		if err == nil && r.OK && time.Now().Add(r.Delay).Before(end) {
			admitted++
		}
	}
}

// demandAll runs demand on every store at once and returns each one's count.
func demandAll(stores []*Store, key string, start time.Time) []int {
	got := make([]int, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = demand(s, key, demandPerStore, start, demandFor)
		}()
	}
	wg.Wait()
	return got
}

// runChild runs the demand child when the test binary was started as
// one, printing its run as JSON, and reports whether it did. Its spec is
// "KIND URL TAG START_UNIX_NANO N": N stores or N Managers, on the key
// (or key prefix) TAG.
func runChild() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	f := strings.Fields(spec)
	kind, url, tag := f[0], f[1], f[2]
	ns, _ := strconv.ParseInt(f[3], 10, 64)
	n, _ := strconv.Atoi(f[4])
	start := time.Unix(0, ns)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var r run
	switch kind {
	case "stores":
		var stores []*Store
		for range n {
			s, err := Open(connmgr.RedisConfig{URL: url, Prefix: "test:", Timeout: loadTimeout})
			if err != nil {
				fail(err)
			}
			stores = append(stores, s)
		}
		r = run{Counts: demandAll(stores, tag, start), Outages: storeOutages(stores)}
		for _, s := range stores {
			_ = s.Close()
		}
	case "managers":
		ms, stamps, err := newFleetManagers(url, tag, n)
		if err != nil {
			fail(err)
		}
		r = managerDemand(ms, stamps, start)
		for _, m := range ms {
			_ = m.Close()
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	return true
}

// runChildProcess starts the test binary as a demand child of kind
// ("stores" or "managers") with n of them on tag, starting at start, and
// returns a function that waits for it and returns its run (failing the
// test if the child failed).
func runChildProcess(t *testing.T, kind, url, tag string, start time.Time, n int) (wait func() run) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s %d %d", childEnv, kind, url, tag, start.UnixNano(), n))
	cmd.Stderr = os.Stderr
	var out []byte
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, err = cmd.Output()
	}()
	t.Cleanup(func() { <-done })
	return func() run {
		t.Helper()
		<-done
		var r run
		if err == nil {
			err = json.Unmarshal(out, &r)
		}
		if err != nil || len(r.Counts) != n {
			t.Errorf("child: %v (output %q)", err, out)
			return run{Counts: make([]int, n)}
		}
		return r
	}
}

// fleetTarget is the endpoint the demand Managers call; their transport
// answers in-process.
const fleetTarget = "http://partner.example/v1/quote"

// newFleetManagers returns n Managers sharing fleetLimit (waiting up to
// demandWait) through the redis block at url, under a key prefix made of
// tag, each with its own stamping transport.
func newFleetManagers(url, tag string, n int) ([]*connmgr.Manager, []*stampTransport, error) {
	ep := connmgr.EndpointConfig{
		RateLimit: connmgr.RateLimitConfig{Rate: fleetLimit.Rate, Per: time.Second, Burst: fleetLimit.Burst, MaxWait: demandWait, Scope: "fleet"},
		Retry:     connmgr.RetryConfig{MaxAttempts: 1},
	}
	cfg := connmgr.Config{
		Endpoints: map[string]connmgr.EndpointConfig{"partner.example": ep},
		Redis:     connmgr.RedisConfig{URL: url, Prefix: "mtest:" + tag + ":", Timeout: loadTimeout},
	}
	var ms []*connmgr.Manager
	var stamps []*stampTransport
	for range n {
		st := &stampTransport{}
		m, err := connmgr.New(cfg, connmgr.WithFleetConnector(Connect), connmgr.WithTransport(st))
		if err != nil {
			return ms, stamps, err
		}
		ms, stamps = append(ms, m), append(stamps, st)
	}
	return ms, stamps, nil
}

// managerDemand makes calls at demandPerStore per second through each
// Manager, one goroutine per call, from start for demandFor, and returns
// the run: how many attempts each Manager sent within it, the outages
// their stores saw, and how many calls failed with something other than
// ErrRateLimited.
func managerDemand(ms []*connmgr.Manager, stamps []*stampTransport, start time.Time) run {
	end := start.Add(demandFor)
	var other atomic.Int64
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, 1024) // calls in flight (most waiting) per Manager
			var calls sync.WaitGroup
			interval := time.Second / demandPerStore
			for j := 0; ; j++ {
				time.Sleep(time.Until(start.Add(time.Duration(j) * interval)))
				if !time.Now().Before(end) {
					break
				}
				sem <- struct{}{}
				calls.Add(1)
				go func() {
					defer func() { <-sem; calls.Done() }()
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					defer cancel()
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fleetTarget, nil)
					resp, err := m.Do(req)
					if err == nil {
						resp.Body.Close()
					} else if !errors.Is(err, connmgr.ErrRateLimited) {
						other.Add(1)
					}
				}()
			}
			calls.Wait()
		}()
	}
	wg.Wait()
	// Admissions are counted when they left the Manager, within the run
	// (waiters admitted near the end leave after it).
	r := run{Counts: make([]int, len(ms)), Other: other.Load()}
	for i, st := range stamps {
		r.Counts[i] = st.between(start, end)
	}
	for _, m := range ms {
		if f := m.Stats().Fleet; f != nil {
			r.Outages += f.Outages
		}
	}
	return r
}

// stampTransport answers every request at once, recording when each
// admitted attempt left the Manager (after any wait for its token).
type stampTransport struct {
	mu   sync.Mutex
	sent []time.Time
}

func (s *stampTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.sent = append(s.sent, time.Now())
	s.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// between counts the attempts sent in [from, to).
func (s *stampTransport) between(from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.sent {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}
