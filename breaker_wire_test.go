package connmgr

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noRetries is an endpoint config for breaker wire tests: one attempt per
// call, so each call is one breaker outcome. No timeouts: tests that step
// a fake clock would see them expire at once (contexts use real time).
func noRetries(cb BreakerConfig) EndpointConfig {
	return EndpointConfig{
		Timeout:        -1,
		TotalTimeout:   -1,
		Retry:          RetryConfig{MaxAttempts: 1},
		CircuitBreaker: cb,
	}
}

// status sends a GET and returns its status, or 0 and the error.
func status(t *testing.T, m *Manager, url string) (int, error) {
	t.Helper()
	resp, err := m.Get(context.Background(), url)
	if err != nil {
		return 0, err
	}
	readAll(t, resp)
	return resp.StatusCode, nil
}

func TestBreakerOpensOn5xxAndRecoversOverTheWire(t *testing.T) {
	srv := connmgrtest.NewServer(
		connmgrtest.Step{Status: 503}, connmgrtest.Step{Status: 500}, connmgrtest.Step{Status: 502},
		connmgrtest.Step{Status: 200},
	)
	defer srv.Close()
	clock := newStepClock()
	var changes []StateChange
	var mu sync.Mutex
	m := newTestManager(t, Config{Default: noRetries(BreakerConfig{ConsecutiveFailures: 3, RecoveryTimeout: 30 * time.Second, HalfOpenRequests: 1})},
		withClock(clock.Now), WithStateListener(func(c StateChange) {
			mu.Lock()
			changes = append(changes, c)
			mu.Unlock()
		}))

	for _, want := range []int{503, 500, 502} {
		got, err := status(t, m, srv.URL)
		require.NoError(t, err, "a final 5xx is a response")
		assert.Equal(t, want, got)
	}
	_, err := status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrCircuitOpen)
	var open *CircuitOpenError
	require.ErrorAs(t, err, &open)
	assert.Equal(t, 30*time.Second, open.RetryIn)
	assert.Equal(t, srv.Addr(), open.Upstream)
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, ErrCircuitOpen, cerr.Kind)
	assert.EqualValues(t, 3, srv.Count(), "an open breaker does not touch the network")

	st := m.Stats().Endpoints["default"]
	require.NotNil(t, st.Breaker)
	assert.Equal(t, BreakerOpen, st.Breaker.State)
	assert.Equal(t, BreakerOpen, st.Breakers[srv.Addr()].State)
	assert.Equal(t, "upstream answered Bad Gateway (502)", st.Breaker.LastError)
	assert.EqualValues(t, 1, st.Breaker.Rejected)

	clock.Advance(30 * time.Second)
	got, err := status(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, 200, got)
	assert.Equal(t, BreakerClosed, m.Stats().Endpoints["default"].Breaker.State)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, changes, 3)
	assert.Equal(t, BreakerClosed, changes[0].From)
	assert.Equal(t, BreakerOpen, changes[0].To)
	assert.Equal(t, "default", changes[0].Endpoint)
	assert.Equal(t, srv.Addr(), changes[0].Upstream)
	var se *StatusError
	require.ErrorAs(t, changes[0].Err, &se)
	assert.Equal(t, 502, se.StatusCode)
	assert.Equal(t, clock.Now().Add(-30*time.Second), changes[0].At)
	assert.Equal(t, []BreakerState{BreakerHalfOpen, BreakerClosed}, []BreakerState{changes[1].To, changes[2].To})
}

func TestBreakerIgnores4xxAndCallerCancellation(t *testing.T) {
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/hang" {
			return connmgrtest.Step{Hang: true}
		}
		return connmgrtest.Step{Status: 404}
	})
	defer srv.Close()
	m := newTestManager(t, Config{Default: noRetries(BreakerConfig{ConsecutiveFailures: 2})})
	for i := 0; i < 5; i++ {
		got, err := status(t, m, srv.URL)
		require.NoError(t, err)
		assert.Equal(t, 404, got)
	}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := m.Get(ctx, srv.URL+"/hang")
		require.ErrorIs(t, err, context.Canceled)
		cancel()
	}
	st := m.Stats().Endpoints["default"].Breaker
	assert.Equal(t, BreakerClosed, st.State)
	assert.Zero(t, st.Failures)
	assert.EqualValues(t, 5, st.Requests, "cancelled calls are not counted")
}

func TestBreakerCountsTimeoutsAndTransportErrors(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Hang: true})
	defer srv.Close()
	cfg := noRetries(BreakerConfig{ConsecutiveFailures: 2})
	cfg.Timeout = 20 * time.Millisecond
	m := newTestManager(t, Config{Default: cfg})
	for i := 0; i < 2; i++ {
		_, err := status(t, m, srv.URL)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	_, err := status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrCircuitOpen, "per-try timeouts are failures")

	closed := connmgrtest.NewServer()
	url := closed.URL
	closed.Close()
	for i := 0; i < 2; i++ {
		_, err := status(t, m, url)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrCircuitOpen)
	}
	_, err = status(t, m, url)
	require.ErrorIs(t, err, ErrCircuitOpen, "connection errors are failures, on that upstream's own breaker")
}

func TestBreakerSlowCallAndFailureStatuses(t *testing.T) {
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		switch r.URL.Path {
		case "/slow":
			return connmgrtest.Step{Delay: 30 * time.Millisecond}
		case "/501":
			return connmgrtest.Step{Status: 501}
		}
		return connmgrtest.Step{Status: 429}
	})
	defer srv.Close()
	m := newTestManager(t, Config{Default: noRetries(BreakerConfig{
		ConsecutiveFailures: 2, SlowCall: 10 * time.Millisecond, FailureStatuses: []int{429, 503},
	})})
	_, _ = status(t, m, srv.URL+"/501") // not in the list: a success
	_, _ = status(t, m, srv.URL+"/slow")
	assert.Equal(t, BreakerClosed, m.Stats().Endpoints["default"].Breaker.State)
	_, _ = status(t, m, srv.URL+"/429")
	st := m.Stats().Endpoints["default"].Breaker
	assert.Equal(t, BreakerOpen, st.State)
	assert.Contains(t, st.LastError, "429")
}

func TestBreakersArePerEndpointUnlessGrouped(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer srv.Close()
	addr := srv.Addr()
	host := "127.0.0.1"
	cb := BreakerConfig{ConsecutiveFailures: 1}
	// The exact host:port endpoint, and a host-only endpoint reached
	// through a hook that rewrites the port: same upstream, two endpoints.
	cfg := Config{Default: noRetries(cb), Endpoints: map[string]EndpointConfig{
		addr: {},
		host: {},
	}}
	m := newTestManager(t, cfg)
	_, _ = status(t, m, srv.URL)
	_, err := status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrCircuitOpen)
	st := m.Stats()
	assert.Equal(t, BreakerOpen, st.Endpoints[addr].Breaker.State)
	_, has := st.Endpoints[host].Breakers[addr]
	assert.False(t, has, "the other endpoint has not seen the upstream")

	// Grouped: both endpoints share one breaker per upstream.
	cb.Group = "shared"
	cfg = Config{Default: noRetries(cb), Endpoints: map[string]EndpointConfig{addr: {}, "other.test": {}}}
	m2 := newTestManager(t, cfg)
	_, _ = status(t, m2, srv.URL)
	st = m2.Stats()
	assert.Equal(t, BreakerOpen, st.Endpoints["other.test"].Breakers[addr].State, "grouped endpoints see the same breaker")
	assert.Same(t, m2.table.Load().byKey[addr].breakers, m2.table.Load().byKey["other.test"].breakers)
}

func TestHalfOpenProbeReleasedWhenCallerCancels(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if n == 1 {
			return connmgrtest.Step{Status: 500}
		}
		if hang.Load() {
			return connmgrtest.Step{Hang: true}
		}
		return connmgrtest.Step{}
	})
	defer srv.Close()
	clock := newStepClock()
	m := newTestManager(t, Config{Default: noRetries(BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Second, HalfOpenRequests: 2, SuccessThreshold: 1})},
		withClock(clock.Now))
	_, _ = status(t, m, srv.URL)
	clock.Advance(time.Second)

	// Many callers race for the two probe slots and cancel while their
	// probes hang. Every slot must come back.
	var wg sync.WaitGroup
	var admitted, refused atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := m.Get(ctx, srv.URL)
			switch {
			case errors.Is(err, ErrCircuitOpen):
				refused.Add(1)
			case errors.Is(err, context.DeadlineExceeded):
				admitted.Add(1)
			default:
				t.Errorf("unexpected result %v", err)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 2, admitted.Load(), "exactly half_open_requests probes at once")
	assert.EqualValues(t, 18, refused.Load())
	assert.Equal(t, BreakerHalfOpen, m.Stats().Endpoints["default"].Breaker.State, "a cancelled probe is not a failure")

	hang.Store(false)
	got, err := status(t, m, srv.URL)
	require.NoError(t, err, "the probe slots came back")
	assert.Equal(t, 200, got)
	assert.Equal(t, BreakerClosed, m.Stats().Endpoints["default"].Breaker.State)
}

// panicTransport panics on the paths it is told to.
type panicTransport struct {
	next  http.RoundTripper
	panic atomic.Bool
}

func (p *panicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.panic.Load() {
		panic("transport bug")
	}
	return p.next.RoundTrip(r)
}

func TestBreakerHearsOfTransportPanicsAndUnreadBodies(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 500}, connmgrtest.Step{Body: "fine"})
	defer srv.Close()
	clock := newStepClock()
	tr := &panicTransport{next: http.DefaultTransport}
	m := newTestManager(t, Config{Default: noRetries(BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Second, HalfOpenRequests: 1})},
		withClock(clock.Now), WithTransport(tr))
	_, _ = status(t, m, srv.URL)
	clock.Advance(time.Second)

	tr.panic.Store(true)
	_, err := m.Get(context.Background(), srv.URL)
	require.Error(t, err, "the panic is an error for the caller, never a crash")
	assert.Contains(t, err.Error(), "transport panicked: transport bug")
	assert.EqualValues(t, 0, m.Stats().InFlight, "the call was released")
	st := m.Stats().Endpoints["default"].Breaker
	assert.Equal(t, BreakerOpen, st.State, "a panicking probe is a failure, not a lost slot")

	tr.panic.Store(false)
	clock.Advance(time.Second)
	resp, err := m.Get(context.Background(), srv.URL)
	require.NoError(t, err)
	// The body is never read: the outcome was reported with the headers.
	assert.Equal(t, BreakerClosed, m.Stats().Endpoints["default"].Breaker.State)
	require.NoError(t, resp.Body.Close())
}

func TestStateListenerMayCallStatsAndPluginsListenToo(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer srv.Close()
	var seen []string
	plugin := &listenerPlugin{}
	var m *Manager
	m = newTestManager(t, Config{Default: noRetries(BreakerConfig{ConsecutiveFailures: 1})},
		WithPlugins(plugin),
		WithStateListener(func(c StateChange) {
			// Calling back into the Manager from a listener must not deadlock.
			st := m.Stats().Endpoints["default"]
			seen = append(seen, c.To.String()+" stats="+st.Breaker.State.String())
		}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = m.Get(context.Background(), srv.URL)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: listener calling Stats")
	}
	assert.Equal(t, []string{"open stats=open"}, seen)
	assert.Equal(t, []BreakerState{BreakerOpen}, plugin.states(), "the plugin listener runs after the option listener")
}

// listenerPlugin is a plugin that also listens to breaker changes, as an
// alerting plugin would.
type listenerPlugin struct {
	mu  sync.Mutex // guards got
	got []BreakerState
}

func (p *listenerPlugin) Name() string                      { return "alerts" }
func (p *listenerPlugin) OnResponse(*ResponseContext) error { return nil }
func (p *listenerPlugin) OnStateChange(c StateChange) {
	p.mu.Lock()
	p.got = append(p.got, c.To)
	p.mu.Unlock()
}

func (p *listenerPlugin) states() []BreakerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]BreakerState(nil), p.got...)
}

func TestReloadKeepsBreakerAndLimiterState(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer srv.Close()
	ep := noRetries(BreakerConfig{ConsecutiveFailures: 1})
	ep.RateLimit = RateLimitConfig{Rate: 1, Per: time.Hour, Burst: 5}
	cfg := Config{Endpoints: map[string]EndpointConfig{srv.Addr(): ep}}
	m := newTestManager(t, cfg)
	_, _ = status(t, m, srv.URL)
	_, err := status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrCircuitOpen)

	// Unchanged config: the endpoint itself is kept.
	require.NoError(t, m.Reload(cfg))
	_, err = status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrCircuitOpen, "breaker state survived an unchanged reload")

	// Another setting changed: the breaker and limiter carry over.
	ep.Timeout = 3 * time.Second
	cfg2 := Config{Endpoints: map[string]EndpointConfig{srv.Addr(): ep}}
	require.NoError(t, m.Reload(cfg2))
	_, err = status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrCircuitOpen, "breaker state survived a reload that left circuit_breaker alone")
	assert.EqualValues(t, 1, m.Stats().Endpoints[srv.Addr()].RateLimit.Allowed, "limiter kept its bucket and counters")

	// The breaker's own settings changed: a fresh breaker.
	ep.CircuitBreaker.ConsecutiveFailures = 2
	require.NoError(t, m.Reload(Config{Endpoints: map[string]EndpointConfig{srv.Addr(): ep}}))
	got, err := status(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, 503, got)
}
