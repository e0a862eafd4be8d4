package connmgr

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nastyErr is an error whose Error method panics.
type nastyErr struct{}

func (nastyErr) Error() string { panic("Error panicked") }

type nastyStringer struct{}

func (nastyStringer) String() string { panic("String panicked") }

func TestSafeStringNeverPanics(t *testing.T) {
	var typedNil *StatusError
	tests := []struct {
		v    any
		want string
	}{
		{"plain", "plain"},
		{errors.New("e"), "e"},
		{typedNil, "(*connmgr.StatusError)(nil)"},
		{nastyErr{}, "connmgr.nastyErr value whose Error or String method panicked"},
		{nastyStringer{}, "connmgr.nastyStringer value whose Error or String method panicked"},
		{42, "42"},
		{nil, "nil"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, safeString(tc.v))
	}
}

func TestHookPanicsWithNastyValuesAreErrors(t *testing.T) {
	var typedNil *StatusError
	for name, v := range map[string]any{"typed nil": typedNil, "Error panics": nastyErr{}, "String panics": nastyStringer{}} {
		t.Run(name, func(t *testing.T) {
			ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil }}
			m := newTestManager(t, Config{}, WithTransport(ft))
			m.OnRequest(func(*RequestContext) error { panic(v) })
			_, err := get(t, m, "http://x.test/")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "panicked")
			var he *HookError
			assert.ErrorAs(t, err, &he)
		})
	}
	t.Run("hook returns a typed-nil error", func(t *testing.T) {
		ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil }}
		m := newTestManager(t, Config{}, WithTransport(ft))
		m.OnRequest(func(*RequestContext) error { return typedNil })
		_, err := get(t, m, "http://x.test/")
		require.Error(t, err)
		assert.NotPanics(t, func() { _ = err.Error() })
	})
}

func TestListenerPanicNeverStopsDelivery(t *testing.T) {
	var delivered atomic.Int32
	var typedNil *StatusError
	cfg := fastRetries(1)
	cfg.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Millisecond, HalfOpenRequests: 1}
	ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 503, ""), nil }}
	m := newTestManager(t, Config{Default: cfg}, WithTransport(ft),
		WithStateListener(func(StateChange) { delivered.Add(1); panic(typedNil) }),
		WithStateListener(func(StateChange) { panic(nastyErr{}) }))
	for i := 0; i < 3; i++ {
		resp, err := get(t, m, "http://x.test/")
		if err == nil {
			readAll(t, resp)
		}
		time.Sleep(5 * time.Millisecond)
	}
	assert.GreaterOrEqual(t, delivered.Load(), int32(3), "open, half-open, open again: each delivered")
}

func TestKeyFuncPanicGivesTheProbeBack(t *testing.T) {
	clock := newStepClock()
	cfg := fastRetries(1)
	cfg.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Second, HalfOpenRequests: 1}
	cfg.RateLimit = RateLimitConfig{Rate: 1000, Key: "header:X-User"}
	status := atomic.Int32{}
	status.Store(503)
	ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) {
		return cannedResponse(r, int(status.Load()), ""), nil
	}}
	var panics atomic.Bool
	m := newTestManager(t, Config{Default: cfg}, WithTransport(ft), withClock(clock.Now),
		WithRateLimitKey("default", func(r *http.Request) string {
			if panics.Load() {
				panic("key function")
			}
			return r.Header.Get("X-User")
		}))
	resp, err := get(t, m, "http://x.test/")
	require.NoError(t, err)
	readAll(t, resp) // 503: the breaker opens
	clock.Advance(2 * time.Second)
	panics.Store(true)
	_, err = get(t, m, "http://x.test/")
	require.Error(t, err, "the key function panicked during half-open")
	assert.Contains(t, err.Error(), "panicked")
	panics.Store(false)
	status.Store(200)
	resp, err = get(t, m, "http://x.test/")
	require.NoError(t, err, "the probe slot was given back")
	readAll(t, resp)
	assert.Equal(t, BreakerClosed, m.Stats().Endpoints["default"].Breaker.State)
}

type panickyCloser struct {
	name   string
	closed *[]string
}

func (p *panickyCloser) Name() string                    { return p.name }
func (p *panickyCloser) OnRequest(*RequestContext) error { return nil }
func (p *panickyCloser) Close() error {
	*p.closed = append(*p.closed, p.name)
	if strings.HasPrefix(p.name, "panic") {
		panic(nastyErr{})
	}
	return nil
}

func TestCloseCompletesWhenAPluginClosePanics(t *testing.T) {
	var closed []string
	m, err := New(Config{}, WithPlugins(&panickyCloser{"panic-1", &closed}, &panickyCloser{"ok-2", &closed}))
	require.NoError(t, err)
	assert.NotPanics(t, func() { _ = m.Close() })
	assert.Equal(t, []string{"panic-1", "ok-2"}, closed, "every plugin is closed")
	assert.NotPanics(t, func() { _ = m.Close() }, "Close is idempotent")
	assert.Equal(t, []string{"panic-1", "ok-2"}, closed)
	_, err = get(t, m, "http://x.test/")
	assert.ErrorIs(t, err, ErrClosed)
}
