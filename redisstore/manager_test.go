package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// upstream counts the requests each Manager sent (by X-Manager) and
// answers with status, which the test may change.
type upstream struct {
	srv    *httptest.Server
	status atomic.Int64
	mu     sync.Mutex
	hits   map[string]int // by X-Manager
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{hits: map[string]int{}}
	u.status.Store(http.StatusOK)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits[r.Header.Get("X-Manager")]++
		u.mu.Unlock()
		w.WriteHeader(int(u.status.Load()))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[name]
}

func (u *upstream) total() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.hits {
		n += c
	}
	return n
}

func (u *upstream) host() string {
	p, _ := url.Parse(u.srv.URL)
	return p.Host
}

// newManager returns a Manager with a redis block on srv, opened through
// a connector that keeps the *Store for the test to inspect.
func newManager(t *testing.T, srv *redistest.Server, ep connmgr.EndpointConfig, host string, mopts ...connmgr.Option) (*connmgr.Manager, *Store) {
	t.Helper()
	var store *Store
	connect := func(d connmgr.FleetDial) (connmgr.FleetStore, error) {
		s, err := Open(d.Redis, WithLogger(d.Logger), WithHeartbeat(100*time.Millisecond))
		store = s
		return s, err
	}
	cfg := connmgr.Config{
		Endpoints: map[string]connmgr.EndpointConfig{host: ep},
		// A long deadline: these tests measure sharing, and a loaded
		// machine running -race can miss 50 ms (the outage tests use the
		// default).
		Redis: connmgr.RedisConfig{URL: srv.URL(), Prefix: "mtest:", Timeout: loadTimeout},
	}
	m, err := connmgr.New(cfg, append([]connmgr.Option{connmgr.WithFleetConnector(connect)}, mopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, store
}

// call makes one GET as the Manager named name and returns its error
// (the body is drained and closed).
func call(ctx context.Context, m *connmgr.Manager, name, target string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	req.Header.Set("X-Manager", name)
	resp, err := m.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestManagersShareOneFleetLimit: 4 Managers, 2,000 calls/s between them
// for 5 s, against a 500/s fleet limit. The Managers send to an
// in-process transport that stamps each admitted attempt: the test
// measures the limiter, and leaves the machine's CPU to it.
func TestManagersShareOneFleetLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s load test")
	}
	srv := redistest.Start(t)
	measureFleet(t, func(tag string) run {
		ms, stamps := fleetManagers(t, srv.URL(), tag, 4)
		return managerDemand(ms, stamps, time.Now().Add(100*time.Millisecond))
	})
}

// TestManagersShareOneFleetLimitAcrossProcesses: the same with two
// Managers here and two in a child process, so nothing is shared in
// memory.
func TestManagersShareOneFleetLimitAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s load test")
	}
	srv := redistest.Start(t)
	measureFleet(t, func(tag string) run {
		ms, stamps := fleetManagers(t, srv.URL(), tag, 2)
		start := time.Now().Add(time.Second)
		theirs := runChildProcess(t, "managers", srv.URL(), tag, start, 2)
		return managerDemand(ms, stamps, start).add(theirs())
	})
}

// fleetManagers returns n Managers sharing fleetLimit on Redis at url,
// each sending to its own stamping transport; closed at the test's end.
func fleetManagers(t *testing.T, url, tag string, n int) ([]*connmgr.Manager, []*stampTransport) {
	t.Helper()
	ms, stamps, err := newFleetManagers(url, tag, n)
	for _, m := range ms {
		t.Cleanup(func() { _ = m.Close() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return ms, stamps
}

// TestBreakerOpensForTheFleet: A's breaker opens; B fails fast within
// 200 ms without calling the upstream; after recovery the fleet sends at
// most half_open_requests probes in the probe window.
func TestBreakerOpensForTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	const probes = 2
	ep := connmgr.EndpointConfig{
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 3, RecoveryTimeout: time.Second, HalfOpenRequests: probes},
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
	}
	a, _ := newManager(t, srv, ep, up.host())
	b, _ := newManager(t, srv, ep, up.host())
	c, _ := newManager(t, srv, ep, up.host())
	ctx := context.Background()
	// Every Manager has called once, so each has its breaker for the
	// upstream (and its subscription is up).
	for name, m := range map[string]*connmgr.Manager{"a": a, "b": b, "c": c} {
		if _, err := call(ctx, m, name, up.srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	up.status.Store(http.StatusServiceUnavailable)
	for range 3 {
		_, _ = call(ctx, a, "a", up.srv.URL)
	}
	opened := time.Now()
	var bErr error
	waitFor(t, 200*time.Millisecond, "B to fail fast on A's open breaker", func() bool {
		before := up.count("b")
		_, bErr = call(ctx, b, "b", up.srv.URL)
		if !errors.Is(bErr, connmgr.ErrCircuitOpen) {
			// Not yet: this call reached the upstream; it must not count
			// as B's own failures opening its breaker either.
			return false
		}
		return up.count("b") == before
	})
	t.Logf("B failed fast %v after A's breaker opened", time.Since(opened))
	hitsB := up.count("b")
	for range 5 {
		if _, err := call(ctx, b, "b", up.srv.URL); !errors.Is(err, connmgr.ErrCircuitOpen) {
			t.Fatalf("B while the fleet's breaker is open: %v; want ErrCircuitOpen", err)
		}
	}
	if up.count("b") != hitsB {
		t.Error("B called the upstream while the fleet's breaker was open")
	}

	// Recovery: every Manager tries at once when the breaker lets probes
	// through; the fleet sends at most `probes` of them.
	up.status.Store(http.StatusOK)
	before := up.total()
	time.Sleep(time.Until(opened.Add(time.Second + 50*time.Millisecond)))
	var wg sync.WaitGroup
	for name, m := range map[string]*connmgr.Manager{"a": a, "b": b, "c": c} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = call(ctx, m, name, up.srv.URL)
			}()
		}
	}
	wg.Wait()
	if sent := up.total() - before; sent < 1 || sent > probes {
		t.Errorf("the fleet sent %d probes in the probe window; want 1..%d", sent, probes)
	}
}

// TestManagersThroughARedisOutage: Redis killed mid-run and restarted: no
// call outlives its deadline, the configured policy decides while Redis
// is down, and the limiter is back in fleet mode after the restart.
func TestManagersThroughARedisOutage(t *testing.T) {
	for _, policy := range []string{"local", "allow", "deny"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.Start(t)
			up := newUpstream(t)
			ep := connmgr.EndpointConfig{
				// 1/s: no refill worth counting while the test calls.
				RateLimit: connmgr.RateLimitConfig{Rate: 1, Per: time.Second, Burst: 10, Scope: "fleet"},
				Retry:     connmgr.RetryConfig{MaxAttempts: 1},
			}
			var store *Store
			connect := func(d connmgr.FleetDial) (connmgr.FleetStore, error) {
				s, err := Open(d.Redis, WithLogger(d.Logger), WithHeartbeat(100*time.Millisecond))
				store = s
				return s, err
			}
			m, err := connmgr.New(connmgr.Config{
				Endpoints: map[string]connmgr.EndpointConfig{up.host(): ep},
				Redis:     connmgr.RedisConfig{URL: srv.URL(), Prefix: "otest:", OnError: policy},
			}, connmgr.WithFleetConnector(connect))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			run := func(n int) (ok, limited int) {
				for range n {
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					began := time.Now()
					_, err := call(ctx, m, "m", up.srv.URL)
					cancel()
					if took := time.Since(began); took > 400*time.Millisecond {
						t.Fatalf("a call took %v; its deadline was 300ms", took)
					}
					switch {
					case err == nil:
						ok++
					case errors.Is(err, connmgr.ErrRateLimited):
						limited++
					default:
						t.Fatalf("call: %v", err)
					}
				}
				return ok, limited
			}
			if ok, _ := run(5); ok != 5 {
				t.Fatalf("before the outage: %d of 5 admitted", ok)
			}
			srv.Kill()
			ok, limited := run(30)
			switch policy {
			case "local": // the local bucket (burst 10, one live Manager) was full
				if ok < 9 || ok > 12 || limited == 0 {
					t.Errorf("local: %d admitted, %d limited in a burst of 30; want about the burst (10), then limited", ok, limited)
				}
			case "allow":
				if ok != 30 {
					t.Errorf("allow: %d of 30 admitted", ok)
				}
			case "deny":
				if ok != 0 {
					t.Errorf("deny: %d of 30 admitted", ok)
				}
			}
			if st := store.Stats(); st.Healthy || st.Outages != 1 {
				t.Errorf("during the outage: %+v; want unhealthy, one outage", st)
			}
			if f := m.Stats().Fleet; f == nil || f.Healthy || f.Outages != 1 || f.OnError != policy {
				t.Errorf("Manager.Stats().Fleet during the outage: %+v; want unhealthy, one outage, on_error %s", f, policy)
			}
			srv.Restart()
			waitFor(t, 3*time.Second, "the store to see Redis again", func() bool { return store.Stats().Healthy })
			fallbacks := store.Stats().Fallbacks
			run(5) // Redis restarted empty: a full bucket
			if st := store.Stats(); st.Fallbacks != fallbacks {
				t.Errorf("after the restart %d more fallbacks; want the limiter back on Redis", st.Fallbacks-fallbacks)
			}
		})
	}
}

// TestFleetScopeNeedsRedis: `scope: fleet` with no redis block and no
// store is a ConfigError naming the field.
func TestFleetScopeNeedsRedis(t *testing.T) {
	_, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"api.example.com": {RateLimit: connmgr.RateLimitConfig{Rate: 10, Scope: "fleet"}},
	}}, connmgr.WithFleetConnector(Connect))
	var ce *connmgr.ConfigError
	if !errors.As(err, &ce) || ce.Problems[0].Path != `endpoints["api.example.com"].rate_limit.scope` {
		t.Fatalf("New: %v; want a ConfigError at the rate limit's scope", err)
	}
}

// TestAdaptiveDecreaseIsShared: a 429 that halves A's adaptive rate
// halves B's too, through the store.
func TestAdaptiveDecreaseIsShared(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	ep := connmgr.EndpointConfig{
		RateLimit: connmgr.RateLimitConfig{Rate: 10, Per: time.Second, Burst: 1, Scope: "fleet",
			Adaptive: connmgr.AdaptiveConfig{Enabled: connmgr.Bool(true), DecreaseFactor: 0.5, Interval: time.Millisecond}},
		Retry: connmgr.RetryConfig{MaxAttempts: 1},
	}
	a, _ := newManager(t, srv, ep, up.host())
	b, _ := newManager(t, srv, ep, up.host())
	ctx := context.Background()
	retryIn := func(m *connmgr.Manager, name string) time.Duration {
		t.Helper()
		time.Sleep(150 * time.Millisecond) // the bucket (burst 1) is full again
		if _, err := call(ctx, m, name, up.srv.URL); err != nil {
			t.Fatal(err)
		}
		_, err := call(ctx, m, name, up.srv.URL)
		var rle *connmgr.RateLimitError
		if !errors.As(err, &rle) {
			t.Fatalf("second call at once: %v; want a RateLimitError", err)
		}
		return rle.RetryIn
	}
	if d := retryIn(b, "b"); d > 110*time.Millisecond {
		t.Fatalf("B before any push-back: next token in %v; want ~100ms (10/s)", d)
	}
	up.status.Store(http.StatusTooManyRequests)
	time.Sleep(150 * time.Millisecond)
	if _, err := call(ctx, a, "a", up.srv.URL); err != nil {
		t.Fatal(err)
	}
	up.status.Store(http.StatusOK)
	if d := retryIn(b, "b"); d < 140*time.Millisecond || d > 210*time.Millisecond {
		t.Fatalf("B after A's 429: next token in %v; want ~200ms (the shared 5/s)", d)
	}
}

// TestBreakerWorksLocallyWhileRedisIsDown: with Redis gone, a breaker
// still opens on its own failures, probes after its recovery timeout and
// closes again.
func TestBreakerWorksLocallyWhileRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	ep := connmgr.EndpointConfig{
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: 200 * time.Millisecond, HalfOpenRequests: 1},
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
	}
	m, store := newManager(t, srv, ep, up.host())
	ctx := context.Background()
	if _, err := call(ctx, m, "m", up.srv.URL); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	up.status.Store(http.StatusServiceUnavailable)
	for range 2 {
		_, _ = call(ctx, m, "m", up.srv.URL)
	}
	if _, err := call(ctx, m, "m", up.srv.URL); !errors.Is(err, connmgr.ErrCircuitOpen) {
		t.Fatalf("after 2 failures with Redis down: %v; want ErrCircuitOpen", err)
	}
	up.status.Store(http.StatusOK)
	time.Sleep(250 * time.Millisecond)
	for i := range 3 {
		if status, err := call(ctx, m, "m", up.srv.URL); err != nil || status != http.StatusOK {
			t.Fatalf("call %d after the recovery timeout: %d, %v; want the probe and then calls to go through", i, status, err)
		}
	}
	if store.Stats().Healthy {
		t.Error("the store says Redis is healthy; the test meant it to be down")
	}
}

// TestPasswordNeverInStatsOrLogs: a URL with a password the server
// refuses: the errors reach Stats and the log, the password does not.
func TestPasswordNeverInStatsOrLogs(t *testing.T) {
	srv := redistest.Start(t)
	const secret = "s3cretpw"
	h := &countingHandler{}
	m, err := connmgr.New(connmgr.Config{
		Redis: connmgr.RedisConfig{URL: "redis://app:" + secret + "@" + srv.Addr + "/0"},
	}, connmgr.WithFleetConnector(Connect), connmgr.WithLogger(slog.New(h)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFor(t, 2*time.Second, "the store to report the refused login", func() bool {
		f := m.Stats().Fleet
		return f != nil && !f.Healthy && f.LastError != ""
	})
	out, _ := json.Marshal(m.Stats())
	red, _ := connmgr.MarshalConfig(connmgr.Config{Redis: connmgr.RedisConfig{URL: "redis://app:" + secret + "@" + srv.Addr + "/0"}}.Redacted(), "yaml")
	h.mu.Lock()
	logs := strings.Join(h.lines, "\n")
	h.mu.Unlock()
	for what, text := range map[string]string{"Stats": string(out), "the log": logs, "Redacted": string(red)} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds the password: %s", what, text)
		}
	}
	if !strings.Contains(logs, "redis unavailable") {
		t.Errorf("log: %q; want the outage line", logs)
	}
}

// TestRetryAfterPausesTheFleet: a 429 with Retry-After on A pauses B too.
func TestRetryAfterPausesTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	var tooMany atomic.Bool
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tooMany.Load() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer origin.Close()
	host := strings.TrimPrefix(origin.URL, "http://")
	ep := connmgr.EndpointConfig{
		RateLimit: connmgr.RateLimitConfig{Rate: 100, Per: time.Second, Burst: 10, Scope: "fleet"},
		Retry:     connmgr.RetryConfig{MaxAttempts: 1},
	}
	a, _ := newManager(t, srv, ep, host)
	b, _ := newManager(t, srv, ep, host)
	ctx := context.Background()
	tooMany.Store(true)
	if status, err := call(ctx, a, "a", origin.URL); err != nil || status != http.StatusTooManyRequests {
		t.Fatalf("A: %d, %v; want the 429", status, err)
	}
	tooMany.Store(false)
	_, err := call(ctx, b, "b", origin.URL)
	var rle *connmgr.RateLimitError
	if !errors.As(err, &rle) || rle.RetryIn < 800*time.Millisecond || rle.RetryIn > time.Second+50*time.Millisecond {
		t.Fatalf("B after A's 429 with Retry-After: 1: %v; want a RateLimitError with RetryIn ~1s", err)
	}
}

// TestPerKeyFleetLimit: per-user limits are fleet-wide per user: Alice's
// quota is shared by both Managers, Bob's is his own.
func TestPerKeyFleetLimit(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	ep := connmgr.EndpointConfig{
		RateLimit: connmgr.RateLimitConfig{Rate: 2, Per: time.Minute, Burst: 2, Key: "header:X-User-ID", Scope: "fleet"},
		Retry:     connmgr.RetryConfig{MaxAttempts: 1},
	}
	a, _ := newManager(t, srv, ep, up.host())
	b, _ := newManager(t, srv, ep, up.host())
	as := func(m *connmgr.Manager, user string) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, up.srv.URL, nil)
		req.Header.Set("X-User-ID", user)
		resp, err := m.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for i, step := range []struct {
		m       *connmgr.Manager
		user    string
		limited bool
	}{
		{a, "alice", false}, {b, "alice", false}, {a, "alice", true}, {b, "alice", true},
		{b, "bob", false}, {a, "bob", false}, {b, "bob", true},
	} {
		err := as(step.m, step.user)
		if got := errors.Is(err, connmgr.ErrRateLimited); got != step.limited {
			t.Errorf("step %d (%s): error %v; want limited=%v", i, step.user, err, step.limited)
		}
	}
}
