package connmgr

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScopeValidation(t *testing.T) {
	fleetRL := EndpointConfig{RateLimit: RateLimitConfig{Rate: 10, Scope: "fleet"}}
	fleetCB := EndpointConfig{CircuitBreaker: BreakerConfig{Scope: "fleet"}}
	tests := []struct {
		name string
		cfg  Config
		opts []Option
		want string
	}{
		{"unknown rate-limit scope", Config{Endpoints: map[string]EndpointConfig{"a.test": {RateLimit: RateLimitConfig{Rate: 1, Scope: "galaxy"}}}}, nil,
			`endpoints["a.test"].rate_limit.scope: must be "local" or "fleet"`},
		{"unknown breaker scope", Config{Default: EndpointConfig{CircuitBreaker: BreakerConfig{Scope: "x"}}}, nil,
			`default.circuit_breaker.scope: must be "local" or "fleet"`},
		{"fleet limit without a store", Config{Endpoints: map[string]EndpointConfig{"a.test": fleetRL}}, nil,
			`endpoints["a.test"].rate_limit.scope: "fleet" needs a rate-limit store`},
		{"fleet breaker without a store", Config{Endpoints: map[string]EndpointConfig{"a.test": fleetCB}}, nil,
			`endpoints["a.test"].circuit_breaker.scope: "fleet" needs a breaker store`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, tc.opts...)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"a.test": fleetRL}}, WithRateLimitStore(NewMemoryRateLimitStore()))
	assert.NotNil(t, m.table.Load().byKey["a.test"].limiter.fleet)
}

func TestReloadRunsTheChecksNewRuns(t *testing.T) {
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"a.test": {}}},
		WithRateLimitKey("a.test", func(*http.Request) string { return "" }))
	err := m.Reload(Config{})
	assert.ErrorContains(t, err, `WithRateLimitKey("a.test"): no such endpoint`)
	err = m.Reload(Config{Endpoints: map[string]EndpointConfig{"a.test": {RateLimit: RateLimitConfig{Rate: 1, Scope: "fleet"}}}})
	assert.ErrorContains(t, err, "needs a rate-limit store")
	require.NoError(t, m.Reload(Config{Endpoints: map[string]EndpointConfig{"a.test": {Timeout: time.Second}}}))
}

func TestFleetRateLimitIsShared(t *testing.T) {
	store := NewMemoryRateLimitStore()
	cfg := Config{Default: EndpointConfig{RateLimit: RateLimitConfig{Rate: 2, Per: time.Hour, Burst: 2, Scope: "fleet"}}}
	ok := func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil }
	m1 := newTestManager(t, cfg, WithRateLimitStore(store), WithTransport(&fakeTransport{fn: ok}))
	m2 := newTestManager(t, cfg, WithRateLimitStore(store), WithTransport(&fakeTransport{fn: ok}))
	for _, m := range []*Manager{m1, m2} {
		resp, err := get(t, m, "http://x.test/")
		require.NoError(t, err)
		readAll(t, resp)
	}
	_, err := get(t, m1, "http://x.test/")
	assert.ErrorIs(t, err, ErrRateLimited, "the fleet's two tokens are spent")
	_, err = get(t, m2, "http://x.test/")
	assert.ErrorIs(t, err, ErrRateLimited)
}

// busStore is a BreakerStore shared by Managers in one process.
type busStore struct {
	mu        sync.Mutex
	subs      map[int]func(BreakerSignal)
	next      int
	published []BreakerSignal
	probes    int
}

func (b *busStore) Publish(_ context.Context, s BreakerSignal) error {
	b.mu.Lock()
	b.published = append(b.published, s)
	subs := make([]func(BreakerSignal), 0, len(b.subs))
	for _, f := range b.subs {
		subs = append(subs, f)
	}
	b.mu.Unlock()
	for _, f := range subs {
		f(s)
	}
	return nil
}

func (b *busStore) Subscribe(fn func(BreakerSignal)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[int]func(BreakerSignal){}
	}
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() { b.mu.Lock(); delete(b.subs, id); b.mu.Unlock() }
}

func (b *busStore) AcquireProbe(context.Context, string, string, time.Duration, int) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probes++
	return b.probes == 1, nil
}

func (b *busStore) snapshot() ([]BreakerSignal, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]BreakerSignal(nil), b.published...), b.probes
}

func TestBreakerStoreSharesOpenSignals(t *testing.T) {
	bus := &busStore{}
	cfg := fastRetries(1)
	cfg.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: 200 * time.Millisecond, HalfOpenRequests: 1}
	fail := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 503, ""), nil }}
	ok := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil }}
	var changes2 []StateChange
	var mu sync.Mutex
	m1 := newTestManager(t, Config{Default: cfg}, WithBreakerStore(bus), WithTransport(fail))
	m2 := newTestManager(t, Config{Default: cfg}, WithBreakerStore(bus), WithTransport(ok),
		WithStateListener(func(c StateChange) { mu.Lock(); changes2 = append(changes2, c); mu.Unlock() }))

	resp, err := get(t, m2, "http://x.test/")
	require.NoError(t, err)
	readAll(t, resp)
	_, probes := bus.snapshot()
	assert.Zero(t, probes, "a closed breaker never calls the store")

	for i := 0; i < 2; i++ {
		resp, err := get(t, m1, "http://x.test/")
		require.NoError(t, err)
		readAll(t, resp)
	}
	require.Eventually(t, func() bool {
		_, err := get(t, m2, "http://x.test/")
		return err != nil
	}, time.Second, 5*time.Millisecond, "m1's open signal opens m2's breaker")
	sent := ok.count()
	_, err = get(t, m2, "http://x.test/")
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, sent, ok.count(), "refused without touching the network")
	mu.Lock()
	require.NotEmpty(t, changes2)
	assert.Equal(t, BreakerOpen, changes2[0].To, "m2's listeners hear of it")
	mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	published, _ := bus.snapshot()
	require.Len(t, published, 1, "a received signal is never published again")
	assert.Equal(t, m1.id, published[0].Origin)

	// Half-open: probes are taken from the fleet's shared slots.
	time.Sleep(250 * time.Millisecond)
	resp, err = get(t, m2, "http://x.test/")
	require.NoError(t, err)
	readAll(t, resp)
	_, probes = bus.snapshot()
	assert.Equal(t, 1, probes)
}

func TestMemoryRateLimitStore(t *testing.T) {
	s := NewMemoryRateLimitStore()
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	lim := Limit{Rate: 1, Burst: 1}
	r, err := s.Reserve(ctx, "k", lim, 0)
	require.NoError(t, err)
	assert.True(t, r.OK)
	r, _ = s.Reserve(ctx, "k", lim, 0)
	assert.False(t, r.OK)
	assert.Equal(t, time.Second, r.RetryIn)
	r, _ = s.Reserve(ctx, "k", lim, 2*time.Second)
	assert.True(t, r.OK)
	assert.Equal(t, time.Second, r.Delay)
	require.NoError(t, s.Cancel(ctx, "k", lim, r))
	now = now.Add(time.Second)
	require.NoError(t, s.Pause(ctx, "k", now.Add(time.Minute)))
	r, _ = s.Reserve(ctx, "k", lim, time.Second)
	assert.False(t, r.OK, "paused")
	assert.Equal(t, time.Minute, r.RetryIn)
}
