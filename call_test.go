package connmgr

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURLWithoutSchemeOrHostFailsAtOnce(t *testing.T) {
	ft := &fakeTransport{fn: func(int, *http.Request) (*http.Response, error) { return nil, errors.New("never") }}
	m := newTestManager(t, Config{Default: fastRetries(3)}, WithTransport(ft))
	for _, raw := range []string{"/relative", "htp//x", "http:opaque"} {
		t.Run(raw, func(t *testing.T) {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			_, err = m.RoundTrip(&http.Request{Method: "GET", URL: u, Header: http.Header{}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), raw, "the URL is shown, not REDACTED")
			assert.NotContains(t, err.Error(), "REDACTED")
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Zero(t, e.Attempts, "not sent, not retried")
		})
	}
	assert.Zero(t, ft.count())
	_, hasEmpty := m.Stats().Endpoints["default"].Breakers[""]
	assert.False(t, hasEmpty, "no breaker keyed by an empty host")
}

func TestUnparseableURLShownWithoutSecrets(t *testing.T) {
	m := newTestManager(t, Config{})
	_, err := m.Get(context.Background(), "http://a b/x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "http://a b/x", "a typo is shown as typed")
	_, err = m.Get(context.Background(), "http://user:hunter2@a b/x?token=s3cret")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, err.Error(), "s3cret")
}

// countingBreaker is a custom Breaker that counts admissions and outcomes.
type countingBreaker struct {
	mu       sync.Mutex
	allows   int
	outcomes []Outcome
	refuse   error
}

func (b *countingBreaker) Allow() (func(Outcome), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refuse != nil {
		return nil, b.refuse
	}
	b.allows++
	return func(o Outcome) {
		b.mu.Lock()
		b.outcomes = append(b.outcomes, o)
		b.mu.Unlock()
	}, nil
}

func (b *countingBreaker) counts() (int, []Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.allows, append([]Outcome(nil), b.outcomes...)
}

// TestPermitsSettledOnEveryPath checks that every admission (breaker
// permit, pick) is settled exactly once: success, transport error,
// transport panic, caller cancel, a failing response hook.
func TestPermitsSettledOnEveryPath(t *testing.T) {
	paths := []struct {
		name    string
		fn      func(ctx context.Context, cancel func(), r *http.Request) (*http.Response, error)
		hookErr bool
		ignored bool
	}{
		{name: "success", fn: func(_ context.Context, _ func(), r *http.Request) (*http.Response, error) {
			return cannedResponse(r, 200, "ok"), nil
		}},
		{name: "error", fn: func(context.Context, func(), *http.Request) (*http.Response, error) {
			return nil, errors.New("boom")
		}},
		{name: "panic", fn: func(context.Context, func(), *http.Request) (*http.Response, error) { panic("transport") }},
		{name: "caller cancel", ignored: true, fn: func(_ context.Context, cancel func(), r *http.Request) (*http.Response, error) {
			cancel()
			<-r.Context().Done()
			return nil, r.Context().Err()
		}},
		{name: "response hook fails", hookErr: true, fn: func(_ context.Context, _ func(), r *http.Request) (*http.Response, error) {
			return cannedResponse(r, 200, "ok"), nil
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			br := &countingBreaker{}
			var picks, dones atomic.Int32
			tr := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return p.fn(ctx, cancel, r) })
			def := fastRetries(1)
			m := newTestManager(t, Config{Default: def}, WithTransport(tr),
				WithBreakerFactory(func(string, string) Breaker { return br }))
			up := m.table.Load().def.breakers.upstream("default", "x.test", m.now)
			m.table.Load().def.picker.Store(&pickerSlot{picker: PickerFunc(func(PickInfo) (PickResult, error) {
				picks.Add(1)
				return PickResult{Upstream: up, Done: func(Outcome) { dones.Add(1) }}, nil
			})})
			if p.hookErr {
				m.OnResponse(func(*ResponseContext) error { return errors.New("no") })
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://x.test/", nil)
			resp, err := m.RoundTrip(req)
			if err == nil {
				readAll(t, resp)
			}
			allows, outs := br.counts()
			assert.Equal(t, 1, allows)
			require.Len(t, outs, 1, "one outcome per permit")
			assert.Equal(t, p.ignored, outs[0].Ignored)
			assert.EqualValues(t, 1, picks.Load())
			assert.EqualValues(t, 1, dones.Load(), "one Done per pick")
			assert.Zero(t, m.Stats().InFlight, "the call's slots are released")
		})
	}
}

func TestOwnCancelIsNotAFailure(t *testing.T) {
	cfg := fastRetries(1)
	cfg.CircuitBreaker.ConsecutiveFailures = 1
	m := newTestManager(t, Config{Default: cfg}, WithTransport(&fakeTransport{}))
	ep := m.table.Load().def
	req, _ := http.NewRequest("GET", "http://x.test/", nil)
	c := &call{}
	m.initCall(c, ep, req, 0)
	a := &attempt{c: c, n: 1}
	a.up = ep.breakers.upstream(ep.key, "x.test", m.now)
	require.NoError(t, a.allowBreaker(&a.up.guard))
	a.abandon()
	a.settle(nil, context.Canceled)
	a.settle(nil, errors.New("a second settle is a no-op"))
	bs := a.up.guard.b.snapshot(ep.key, m.now())
	assert.Equal(t, BreakerClosed, bs.State, "an attempt we cancelled is not a failure")
	assert.Zero(t, bs.Requests, "nor a sample")
}

func TestPickerSlotGetsTriedAndOutcomes(t *testing.T) {
	bad := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer bad.Close()
	good := connmgrtest.NewServer(connmgrtest.Step{Status: 200, Body: "good"})
	defer good.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	ep := m.table.Load().def
	ups := []*Upstream{
		ep.breakers.upstream(ep.key, bad.Addr(), m.now),
		ep.breakers.upstream(ep.key, good.Addr(), m.now),
	}
	var mu sync.Mutex
	var tried [][]*Upstream
	var outcomes []Outcome
	ep.picker.Store(&pickerSlot{picker: PickerFunc(func(info PickInfo) (PickResult, error) {
		mu.Lock()
		tried = append(tried, append([]*Upstream(nil), info.Tried...))
		mu.Unlock()
		up := ups[len(info.Tried)%len(ups)]
		return PickResult{Upstream: up, Done: func(o Outcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }}, nil
	})})
	for _, u := range ups {
		u.URL.Scheme = "http"
	}
	resp, err := get(t, m, "http://payments/v1")
	require.NoError(t, err)
	assert.Equal(t, "good", readAll(t, resp))
	assert.EqualValues(t, 1, bad.Count())
	assert.EqualValues(t, 1, good.Count())
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, tried, 2)
	assert.Empty(t, tried[0])
	assert.Equal(t, []*Upstream{ups[0]}, tried[1], "the retry knows what was tried")
	require.Len(t, outcomes, 2)
	var se *StatusError
	assert.ErrorAs(t, outcomes[0].Err, &se)
	assert.Equal(t, 503, outcomes[0].StatusCode)
	assert.NoError(t, outcomes[1].Err)
}

func TestBreakerFactoryReplacesBuiltIn(t *testing.T) {
	no := errors.New("custom says no")
	br := &countingBreaker{refuse: no}
	ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil }}
	var made atomic.Int32
	m := newTestManager(t, Config{}, WithTransport(ft), WithBreakerFactory(func(ep, up string) Breaker {
		made.Add(1)
		assert.Equal(t, "default", ep)
		assert.Equal(t, "x.test", up)
		return br
	}))
	_, err := get(t, m, "http://x.test/")
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.ErrorIs(t, err, no, "the breaker's own error is the cause")
	_, err = get(t, m, "http://x.test/")
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.EqualValues(t, 1, made.Load(), "one breaker per upstream")
	assert.Zero(t, ft.count())
	assert.Empty(t, m.Stats().Endpoints["default"].Breakers, "no built-in breaker was made")
}

func TestRetryPolicyAndBackoffOptions(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 404}, connmgrtest.Step{Status: 404}, connmgrtest.Step{Status: 200})
	defer srv.Close()
	var waits []int
	policy := func(_ context.Context, resp *http.Response, err error) (bool, error) {
		return err != nil || resp.StatusCode == 404, nil
	}
	backoff := func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		waits = append(waits, attempt)
		return time.Millisecond
	}
	m := newTestManager(t, Config{Default: fastRetries(3)}, WithRetryPolicy(policy), WithBackoff(backoff))
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
	assert.EqualValues(t, 3, srv.Count(), "the policy made 404 retryable")
	assert.Equal(t, []int{1, 2}, waits)

	// The policy cannot make a POST safe to retry.
	srv.Reset()
	srv.Script(connmgrtest.Step{Status: 404}, connmgrtest.Step{Status: 200})
	resp, err = m.Post(context.Background(), srv.URL, "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 404, resp.StatusCode)
	assert.EqualValues(t, 1, srv.Count())

	// A policy error ends the call with it.
	m2 := newTestManager(t, Config{Default: fastRetries(3)}, WithRetryPolicy(func(context.Context, *http.Response, error) (bool, error) {
		return false, errors.New("policy refuses")
	}, "DEFAULT"))
	_, err = get(t, m2, srv.URL)
	assert.ErrorContains(t, err, "policy refuses")

	_, err = New(Config{}, WithRetryPolicy(policy, "nope.test"))
	assert.ErrorContains(t, err, `WithRetryPolicy("nope.test"): no such endpoint`)
}

func TestCallOptionsFromContext(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer srv.Close()
	def := fastRetries(3)
	def.CircuitBreaker.Disabled = Bool(true)
	m := newTestManager(t, Config{Default: def})
	do := func(o CallOptions, method string) *http.Response {
		ctx := WithCallOptions(context.Background(), o)
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL, nil)
		resp, err := m.Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		return resp
	}
	tests := []struct {
		name   string
		o      CallOptions
		method string
		want   int64
	}{
		{"endpoint default", CallOptions{}, "GET", 3},
		{"no retry", CallOptions{NoRetry: true}, "GET", 1},
		{"max attempts", CallOptions{MaxAttempts: 2}, "GET", 2},
		{"POST is not retried", CallOptions{}, "POST", 1},
		{"idempotent POST is", CallOptions{Idempotent: true}, "POST", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			srv.Script(connmgrtest.Step{Status: 503})
			do(tc.o, tc.method)
			assert.Equal(t, tc.want, srv.Count())
		})
	}
	t.Run("per-try timeout", func(t *testing.T) {
		srv.Reset()
		srv.Script(connmgrtest.Step{Delay: 2 * time.Second})
		ctx := WithCallOptions(context.Background(), CallOptions{Timeout: 50 * time.Millisecond, NoRetry: true})
		start := time.Now()
		_, err := m.Get(ctx, srv.URL)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second)
	})
}

func TestMiddlewareWrapsTheCallOutsideRetries(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{Status: 200})
	defer srv.Close()
	var mu sync.Mutex
	var order []string
	mw := func(name string) Middleware {
		return func(next http.RoundTripper) http.RoundTripper {
			return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return next.RoundTrip(r)
			})
		}
	}
	key := strings.TrimPrefix(srv.URL, "http://")
	cfg := Config{Default: fastRetries(3), Endpoints: map[string]EndpointConfig{key: {}}}
	m := newTestManager(t, cfg, WithMiddleware(mw("a"), mw("b")), WithEndpointMiddleware(strings.ToUpper(key), mw("c")),
		WithPlugins(&wrapPlugin{name: "d", wrap: mw("d")}))
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.EqualValues(t, 2, srv.Count())
	assert.Equal(t, []string{"a", "b", "c", "d"}, order, "once per call, outermost first")

	_, err = New(cfg, WithEndpointMiddleware("other.test", mw("x")))
	assert.ErrorContains(t, err, "no such endpoint")
}

type wrapPlugin struct {
	name string
	wrap Middleware
}

func (p *wrapPlugin) Name() string                                      { return p.name }
func (p *wrapPlugin) WrapCall(next http.RoundTripper) http.RoundTripper { return p.wrap(next) }

func TestErrorHooksAnswerLocalRefusals(t *testing.T) {
	ok := func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "net"), nil }
	cases := []struct {
		name string
		cfg  func(*EndpointConfig)
		opts []Option
		want error
	}{
		{name: "breaker", want: ErrCircuitOpen,
			opts: []Option{WithBreakerFactory(func(string, string) Breaker { return &countingBreaker{refuse: errors.New("open")} })}},
		{name: "limiter", want: ErrRateLimited, cfg: func(c *EndpointConfig) { c.RateLimit = RateLimitConfig{Rate: 0.001, Burst: 1} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			def := fastRetries(2)
			if tc.cfg != nil {
				tc.cfg(&def)
			}
			m := newTestManager(t, Config{Default: def}, append(tc.opts, WithTransport(&fakeTransport{fn: ok}))...)
			if tc.name == "limiter" {
				resp, err := get(t, m, "http://x.test/")
				require.NoError(t, err)
				readAll(t, resp) // spends the only token
			}
			var seen []error
			m.OnError(func(c *ErrorContext) error {
				seen = append(seen, c.Err)
				assert.False(t, c.Retry, "a refusal is final")
				c.Retry = true // and stays so
				c.Fallback = cannedResponse(c.Request, 200, "stale")
				return nil
			})
			resp, err := get(t, m, "http://x.test/")
			require.NoError(t, err)
			assert.Equal(t, "stale", readAll(t, resp))
			require.Len(t, seen, 1)
			assert.ErrorIs(t, seen[0], tc.want)
			assert.Zero(t, m.Stats().InFlight)
		})
	}
	t.Run("concurrency cap", func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		tr := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			close(started)
			<-release
			return cannedResponse(r, 200, "net"), nil
		})
		def := fastRetries(1)
		def.MaxConcurrent = 1
		m := newTestManager(t, Config{Default: def}, WithTransport(tr))
		m.OnError(func(c *ErrorContext) error {
			if errors.Is(c.Err, ErrConcurrencyLimit) {
				c.Fallback = cannedResponse(c.Request, 200, "stale")
			}
			return nil
		})
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := get(t, m, "http://x.test/")
			if assert.NoError(t, err) {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
		<-started
		resp, err := get(t, m, "http://x.test/")
		require.NoError(t, err)
		assert.Equal(t, "stale", readAll(t, resp))
		close(release)
		<-done
		assert.Zero(t, m.Stats().InFlight)
	})
}

// TestPickDoneWithoutUpstreamIsSettled: a Picker that returns a Done but
// no upstream refuses the attempt (ErrNoHealthyUpstream); its Done is
// still called once, as Ignored, so a balancer counting picks in flight
// does not drift (it was never called).
func TestPickDoneWithoutUpstreamIsSettled(t *testing.T) {
	ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
	m := newTestManager(t, Config{Default: fastRetries(1)}, WithTransport(ft))
	var mu sync.Mutex
	var outs []Outcome
	m.table.Load().def.picker.Store(&pickerSlot{picker: PickerFunc(func(PickInfo) (PickResult, error) {
		return PickResult{Done: func(o Outcome) { mu.Lock(); outs = append(outs, o); mu.Unlock() }}, nil
	})})
	_, err := get(t, m, "http://x.test/")
	require.ErrorIs(t, err, ErrNoHealthyUpstream)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, outs, 1, "one Done per pick")
	assert.True(t, outs[0].Ignored)
	assert.Zero(t, ft.count())
	assert.Zero(t, m.Stats().InFlight)
}

// readerOnly hides a body's WriteTo.
type readerOnly struct{ io.Reader }

func (readerOnly) Close() error { return nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestResponseBodyWriteTo: copying the response body with io.Copy goes
// through the body's own WriteTo when it has one, through Read when it
// does not, and either way ends the call at the end of the body; a copy
// that fails leaves the call to Close.
func TestResponseBodyWriteTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		body func() io.ReadCloser
	}{
		{"body with WriteTo", func() io.ReadCloser { return io.NopCloser(strings.NewReader("hello")) }},
		{"body without WriteTo", func() io.ReadCloser { return readerOnly{strings.NewReader("hello")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				resp := cannedResponse(r, 200, "")
				resp.Body = tc.body()
				return resp, nil
			})
			m := newTestManager(t, Config{}, WithTransport(ft))
			req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)

			resp, err := m.RoundTrip(req)
			require.NoError(t, err)
			_, isWriterTo := resp.Body.(io.WriterTo)
			_, hadWriterTo := tc.body().(io.WriterTo)
			require.Equal(t, hadWriterTo, isWriterTo, "the response body is an io.WriterTo when the transport's is")
			var buf strings.Builder
			n, err := io.Copy(&buf, resp.Body)
			require.NoError(t, err)
			assert.EqualValues(t, 5, n)
			assert.Equal(t, "hello", buf.String())
			assert.EqualValues(t, 0, m.Stats().InFlight, "the copy to the end ended the call")
			require.NoError(t, resp.Body.Close())

			resp, err = m.RoundTrip(req)
			require.NoError(t, err)
			_, err = io.Copy(failingWriter{}, resp.Body)
			require.Error(t, err)
			assert.EqualValues(t, 1, m.Stats().InFlight, "a failed copy leaves the call to Close")
			require.NoError(t, resp.Body.Close())
			assert.EqualValues(t, 0, m.Stats().InFlight)
		})
	}
}

// rwBody is an upgraded connection's body: read and written.
type rwBody struct {
	strings.Builder
	r io.Reader
}

func (b *rwBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *rwBody) Close() error               { return nil }

// TestSwitchingProtocolsKeepsTheWritableBody: a 101 response's body
// stays writable through the Manager (an upgraded connection, as
// net/http returns it), and closing it ends the call.
func TestSwitchingProtocolsKeepsTheWritableBody(t *testing.T) {
	conn := &rwBody{r: strings.NewReader("from server")}
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		resp := cannedResponse(r, http.StatusSwitchingProtocols, "")
		resp.Body = conn
		return resp, nil
	})
	m := newTestManager(t, Config{}, WithTransport(ft))
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/ws", nil)
	resp, err := m.RoundTrip(req)
	require.NoError(t, err)
	w, ok := resp.Body.(io.Writer)
	require.True(t, ok, "the upgraded body is still an io.Writer")
	_, err = w.Write([]byte("from client"))
	require.NoError(t, err)
	assert.Equal(t, "from client", conn.String())
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "from server", string(got))
	require.NoError(t, resp.Body.Close())
	assert.EqualValues(t, 0, m.Stats().InFlight)
}
