package connmgr

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// panickyObserver panics in every method while armed.
type panickyObserver struct{ armed *atomic.Bool }

func (o panickyObserver) boom() {
	if o.armed.Load() {
		panic(errors.New("observer"))
	}
}
func (o panickyObserver) StartCall(*CallEvent) CallObserver { o.boom(); return panickyCall(o) }

type panickyCall panickyObserver
type panickyAttempt panickyObserver

func (o panickyCall) Refused(RefusalEvent) { panickyObserver(o).boom() }
func (o panickyCall) AttemptStart(*AttemptEvent) AttemptObserver {
	panickyObserver(o).boom()
	return panickyAttempt(o)
}
func (o panickyCall) Retry(RetryEvent)        { panickyObserver(o).boom() }
func (o panickyCall) End(CallEndEvent)        { panickyObserver(o).boom() }
func (o panickyAttempt) Headers(HeadersEvent) { panickyObserver(o).boom() }
func (o panickyAttempt) End(AttemptEndEvent)  { panickyObserver(o).boom() }

// TestHalfOpenProbeNeverSticks opens a breaker, lets it go half-open with
// one probe, sends the probe through a path where user code misbehaves
// (a panic in each kind of callback, a cancel while waiting), then checks
// that the breaker still admits a clean call that closes it, and that the
// call's slots are free.
func TestHalfOpenProbeNeverSticks(t *testing.T) {
	type env struct {
		armed  *atomic.Bool
		status *atomic.Int32 // the transport's answer; 0: an error
	}
	cases := []struct {
		name   string
		status int32 // what the transport answers to the probe
		opts   func(e env) []Option
		setup  func(e env, m *Manager)
		probe  func(t *testing.T, m *Manager)
	}{
		{name: "response hook panics", status: 200, setup: func(e env, m *Manager) {
			m.OnResponse(func(*ResponseContext) error {
				if e.armed.Load() {
					panic("response hook")
				}
				return nil
			})
		}},
		{name: "error hook panics", status: 503, setup: func(e env, m *Manager) {
			m.OnError(func(*ErrorContext) error {
				if e.armed.Load() {
					panic("error hook")
				}
				return nil
			})
		}},
		{name: "request hook panics", status: 200, setup: func(e env, m *Manager) {
			m.OnRequest(func(*RequestContext) error {
				if e.armed.Load() {
					panic("request hook")
				}
				return nil
			})
		}},
		{name: "observer panics everywhere", status: 503, opts: func(e env) []Option {
			return []Option{WithObserver(panickyObserver{armed: e.armed})}
		}},
		{name: "retry policy panics", status: 503, opts: func(e env) []Option {
			return []Option{WithRetryPolicy(func(context.Context, *http.Response, error) (bool, error) {
				if e.armed.Load() {
					panic("policy")
				}
				return true, nil
			})}
		}},
		{name: "backoff panics", status: 503, opts: func(e env) []Option {
			return []Option{WithBackoff(func(_, _ time.Duration, _ int, _ *http.Response) time.Duration {
				if e.armed.Load() {
					panic("backoff")
				}
				return 0
			})}
		}},
		{name: "middleware panics after the call", status: 200, opts: func(e env) []Option {
			return []Option{WithMiddleware(func(next http.RoundTripper) http.RoundTripper {
				return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
					resp, err := next.RoundTrip(r)
					if e.armed.Load() {
						if err == nil {
							_ = resp.Body.Close()
						}
						panic("middleware")
					}
					return resp, err
				})
			})}
		}},
		{name: "listener panics", status: 200, opts: func(e env) []Option {
			return []Option{WithStateListener(func(StateChange) {
				if e.armed.Load() {
					panic("listener")
				}
			})}
		}},
		{name: "caller cancels during the body read", status: 200, probe: func(t *testing.T, m *Manager) {
			ctx, cancel := context.WithCancel(context.Background())
			resp, err := m.Get(ctx, "http://x.test/")
			require.NoError(t, err)
			cancel()
			_ = resp.Body.Close()
		}},
		{name: "caller cancels during the backoff", status: 503, opts: func(e env) []Option {
			return []Option{WithBackoff(func(time.Duration, time.Duration, int, *http.Response) time.Duration {
				if e.armed.Load() {
					return time.Hour
				}
				return 0
			})}
		}, probe: func(t *testing.T, m *Manager) {
			ctx, cancel := context.WithCancel(context.Background())
			m.OnError(func(ec *ErrorContext) error {
				if ec.Retry {
					cancel()
				}
				return nil
			})
			_, err := m.Get(ctx, "http://x.test/")
			require.ErrorIs(t, err, context.Canceled)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := env{armed: new(atomic.Bool), status: new(atomic.Int32)}
			clock := newStepClock()
			cfg := fastRetries(2)
			cfg.TotalTimeout = -1
			cfg.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Minute, HalfOpenRequests: 1, SuccessThreshold: 1}
			ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) {
				if s := e.status.Load(); s != 0 {
					return cannedResponse(r, int(s), "body"), nil
				}
				return nil, errors.New("down")
			}}
			opts := []Option{WithTransport(ft), withClock(clock.Now)}
			if tc.opts != nil {
				opts = append(opts, tc.opts(e)...)
			}
			m := newTestManager(t, Config{Default: cfg}, opts...)
			if tc.setup != nil {
				tc.setup(e, m)
			}
			_, err := get(t, m, "http://x.test/")
			require.Error(t, err)
			require.Equal(t, BreakerOpen, m.Stats().Endpoints["default"].Breaker.State)

			clock.Advance(2 * time.Minute)
			e.status.Store(tc.status)
			e.armed.Store(true)
			if tc.probe != nil {
				tc.probe(t, m)
			} else {
				var resp *http.Response
				require.NotPanics(t, func() { resp, err = get(t, m, "http://x.test/") })
				if err == nil {
					readAll(t, resp)
				}
			}
			assert.Zero(t, m.Stats().InFlight, "the probe's call is released")

			e.armed.Store(false)
			e.status.Store(200)
			clock.Advance(2 * time.Minute) // a failed probe reopened it
			resp, err := get(t, m, "http://x.test/")
			require.NoError(t, err, "the breaker admits a probe again")
			readAll(t, resp)
			st := m.Stats().Endpoints["default"]
			assert.Equal(t, BreakerClosed, st.Breaker.State)
			assert.Zero(t, m.Stats().InFlight)
			assert.Equal(t, st.Requests, st.Successes+st.Failures+st.Fallbacks+uint64(st.InFlight), "stats add up: %+v", st)
		})
	}
}

// TestGoexitInUserCodeReleasesTheCall: runtime.Goexit (t.FailNow in a
// hook) unwinds the caller's goroutine through the attempt. Its permits
// and slots are settled, the call is counted as a failure (before the
// fix Requests stayed above Successes+Failures for good), and a request
// body never sent is closed.
func TestGoexitInUserCodeReleasesTheCall(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(m *Manager)
		goexitRT bool
		sent     bool
	}{
		{name: "request hook", setup: func(m *Manager) {
			m.OnRequest(func(*RequestContext) error { runtime.Goexit(); return nil })
		}},
		{name: "response hook", sent: true, setup: func(m *Manager) {
			m.OnResponse(func(*ResponseContext) error { runtime.Goexit(); return nil })
		}},
		{name: "error hook", sent: true, setup: func(m *Manager) {
			m.OnError(func(*ErrorContext) error { runtime.Goexit(); return nil })
		}},
		{name: "transport", sent: true, goexitRT: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastRetries(1)
			cfg.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 5}
			status := 200
			if tc.name == "error hook" {
				status = 503
			}
			respBody := newTrackedBody("x")
			ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				if tc.goexitRT {
					runtime.Goexit()
				}
				_ = r.Body.Close()
				resp := cannedResponse(r, status, "")
				resp.Body = respBody
				return resp, nil
			})
			m := newTestManager(t, Config{Default: cfg}, WithTransport(ft))
			if tc.setup != nil {
				tc.setup(m)
			}
			body := newTrackedBody("payload")
			done := make(chan struct{})
			go func() {
				defer close(done)
				req, _ := http.NewRequest("PUT", "http://x.test/", body)
				_, _ = m.RoundTrip(req)
			}()
			<-done
			st := m.Stats().Endpoints["default"]
			assert.Zero(t, m.Stats().InFlight)
			assert.EqualValues(t, 1, st.Requests)
			assert.EqualValues(t, 1, st.Failures, "the call is counted as failed")
			assert.Equal(t, st.Requests, st.Successes+st.Failures+st.Fallbacks+uint64(st.InFlight), "%+v", st)
			if !tc.sent {
				assert.GreaterOrEqual(t, body.closed.Load(), int32(1), "the body never sent is closed")
			}
			if tc.sent && !tc.goexitRT {
				assert.EqualValues(t, 1, respBody.closed.Load(), "the response the hook was shown is closed")
			}
		})
	}
}

// TestStatsAddUpUnderMixedTraffic: successes, 503s, transport errors,
// slow answers cut by the caller's deadline, bodies closed after a
// cancel, the cap's queue, the limiter and refusal fallbacks, all at
// once: every call is counted once, nothing stays in flight, the cap has
// every slot back.
func TestStatsAddUpUnderMixedTraffic(t *testing.T) {
	cfg := fastRetries(3)
	cfg.MaxConcurrent, cfg.MaxQueue, cfg.MaxQueueWait = 3, 2, 5*time.Millisecond
	cfg.RateLimit = RateLimitConfig{Rate: 2000, Per: time.Second, Burst: 5, MaxWait: 2 * time.Millisecond}
	cfg.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 4, RecoveryTimeout: 5 * time.Millisecond}
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		switch n % 5 {
		case 0:
			return nil, errors.New("boom")
		case 1:
			return cannedResponse(r, 503, "x"), nil
		case 2:
			select {
			case <-r.Context().Done():
				return nil, r.Context().Err()
			case <-time.After(time.Millisecond):
			}
		}
		return cannedResponse(r, 200, "ok"), nil
	}}
	m := newTestManager(t, Config{Default: cfg, Endpoints: map[string]EndpointConfig{"fb.test": {}}}, WithTransport(ft))
	m.OnError(func(ec *ErrorContext) error {
		if ec.Attempt == 2 && errors.Is(ec.Err, ErrRateLimited) {
			ec.Fallback = cannedResponse(ec.Request, 299, "fb")
		}
		return nil
	})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i%4)*time.Millisecond)
				resp, err := m.Get(ctx, "http://x.test/")
				if err == nil {
					if i%3 == 0 {
						cancel()
					}
					_ = resp.Body.Close()
				}
				cancel()
			}
		}(g)
	}
	wg.Wait()
	st := m.Stats()
	assert.Zero(t, st.InFlight)
	e := st.Endpoints["default"]
	assert.Equal(t, e.Requests, e.Successes+e.Failures+e.Fallbacks+uint64(e.InFlight), "%+v", e)
	assert.Zero(t, e.Concurrency.InUse)
}
