package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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

// runChild runs the demand child when the test binary was started as one,
// printing the counts as JSON, and reports whether it did.
func runChild() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	f := strings.Fields(spec)
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	n, _ := strconv.Atoi(f[2])
	var stores []*Store
	for range n {
		s, err := Open(connmgr.RedisConfig{URL: f[0], Prefix: "test:", Timeout: loadTimeout})
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		stores = append(stores, s)
	}
	got := demandAll(stores, "fleet", time.Unix(0, ns))
	for _, s := range stores {
		if st := s.Stats(); st.Outages != 0 {
			fmt.Fprintf(os.Stderr, "child store lost Redis during the run: %+v\n", st)
			got = nil // the parent fails on the missing counts
		}
		_ = s.Close()
	}
	_ = json.NewEncoder(os.Stdout).Encode(got)
	return true
}

// startChild starts the test binary as a demand child with n stores.
func startChild(t *testing.T, url string, start time.Time, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", childEnv, url, start.UnixNano(), n))
	cmd.Stderr = os.Stderr
	return cmd
}
