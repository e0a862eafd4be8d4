package connmgr

// Regression tests for review findings on the request path: each would
// fail without its fix.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBufferingAStreamedBodyHonoursTheCallersDeadline(t *testing.T) {
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
	m := newTestManager(t, Config{}, WithTransport(ft))
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("first chunk")) }() // the rest never comes
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://api.test/upload", pr)
	start := time.Now()
	_, err := m.RoundTrip(req)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	assert.Zero(t, ft.count(), "nothing was sent")
	assert.EqualValues(t, 0, m.Stats().InFlight)
}

// signalTransport tells when it is called, then reads the body.
type signalTransport struct{ called chan struct{} }

func (s signalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	close(s.called)
	b, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	return cannedResponse(r, 200, string(b)), nil
}

func TestBodyLongerThanTheBufferIsNotReadAhead(t *testing.T) {
	tr := signalTransport{called: make(chan struct{})}
	def := fastRetries(3)
	def.Retry.MaxBufferedBody = 10
	m := newTestManager(t, Config{Default: def}, WithTransport(tr))
	pr, pw := io.Pipe()
	go func() {
		<-tr.called // the body is produced only once the request is on its way
		_, _ = pw.Write([]byte(strings.Repeat("x", 100)))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, "http://api.test/", pr)
	req.ContentLength = 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := m.RoundTrip(req.WithContext(ctx))
	require.NoError(t, err, "a known-too-long body is streamed, not buffered first")
	assert.Len(t, readAll(t, resp), 100)
}

func TestHooksNeverWriteToTheCallersRequest(t *testing.T) {
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		if n == 1 {
			return cannedResponse(r, 503, ""), nil
		}
		return cannedResponse(r, 200, "ok"), nil
	}}
	for _, withAuth := range []bool{false, true} {
		def := fastRetries(2)
		if withAuth {
			def.Auth = AuthConfig{BearerToken: "tok"}
		}
		m := newTestManager(t, Config{Default: def}, WithTransport(ft))
		m.OnError(func(ec *ErrorContext) error {
			ec.Request.Header.Set("X-From-Error-Hook", "1")
			ec.Request.URL.Path = "/changed"
			return nil
		})
		m.OnResponse(func(rc *ResponseContext) error { rc.Request.Header.Set("X-From-Response-Hook", "1"); return nil })
		req, _ := http.NewRequest(http.MethodGet, "http://api.test/x", nil)
		req.Header.Set("X-Caller", "1")
		resp, err := m.RoundTrip(req)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, http.Header{"X-Caller": {"1"}}, req.Header, "auth %v: the caller's headers are untouched", withAuth)
		assert.Equal(t, "/x", req.URL.Path)
		ft.mu.Lock()
		ft.reqs = nil
		ft.mu.Unlock()
	}
}

func TestEndpointHeaderValuesAreNotSharedWithHooks(t *testing.T) {
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		return cannedResponse(r, 200, r.Header.Get("Authorization")), nil
	}}
	m := newTestManager(t, Config{Default: EndpointConfig{Auth: AuthConfig{BearerToken: "tok"}}}, WithTransport(ft))
	m.OnResponse(func(rc *ResponseContext) error {
		rc.Request.Header["Authorization"][0] = "tampered" // writes in place
		return nil
	})
	for i := 0; i < 2; i++ {
		resp, err := get(t, m, "http://api.test/")
		require.NoError(t, err)
		assert.Equal(t, "Bearer tok", readAll(t, resp), "call %d: the endpoint's value is intact", i)
	}
}

func TestShutdownWaitsForACallHandedToItsFallback(t *testing.T) {
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		if r.URL.Host == "primary.test" {
			return cannedResponse(r, 503, ""), nil
		}
		return cannedResponse(r, 200, "fallback"), nil
	}}
	primary := fastRetries(2)
	primary.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1}
	primary.Fallback = "fallback.test"
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"primary.test": primary, "fallback.test": {},
	}}, WithTransport(ft))
	shut := make(chan error, 1)
	var once atomic.Bool
	m.OnError(func(ec *ErrorContext) error {
		if once.CompareAndSwap(false, true) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				shut <- m.Shutdown(ctx)
			}()
			for !m.closed.Load() {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	})
	resp, err := m.Get(context.Background(), "http://primary.test/x")
	require.NoError(t, err, "a call admitted before Shutdown finishes, through its fallback")
	select {
	case <-shut:
		t.Fatal("Shutdown returned while the call was still in flight")
	case <-time.After(50 * time.Millisecond):
	}
	assert.Equal(t, "fallback", readAll(t, resp))
	require.NoError(t, <-shut)
}

type panicRT struct{}

func (panicRT) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

type nilNilRT struct{}

func (nilNilRT) RoundTrip(*http.Request) (*http.Response, error) { return nil, nil }

func TestBrokenTransportsAreErrorsNotCrashes(t *testing.T) {
	for name, rt := range map[string]http.RoundTripper{"panics": panicRT{}, "returns nil, nil": nilNilRT{}} {
		t.Run(name, func(t *testing.T) {
			m := newTestManager(t, Config{Default: fastRetries(3)}, WithTransport(rt))
			_, err := get(t, m, "http://api.test/")
			require.Error(t, err)
			assert.Zero(t, m.Stats().InFlight, "the call was released")
			assert.EqualValues(t, 0, m.Stats().Endpoints["default"].Retries, "a broken transport is not retried")
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			assert.NoError(t, m.Shutdown(ctx))
		})
	}
}

func TestFullHalfOpenBreakerRefusesBeforeTheRateLimiter(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) {
		switch n.Add(1) {
		case 1:
			return cannedResponse(r, 503, ""), nil
		case 2:
			<-release // the probe hangs
		}
		return cannedResponse(r, 200, "ok"), nil
	}}
	ep := noRetries(BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: 20 * time.Millisecond, HalfOpenRequests: 1})
	ep.RateLimit = RateLimitConfig{Rate: 1, Per: time.Second, Burst: 2, MaxWait: 3 * time.Second}
	m := newTestManager(t, Config{Default: ep}, WithTransport(ft))
	resp, err := get(t, m, "http://api.test/")
	require.NoError(t, err)
	readAll(t, resp)
	time.Sleep(30 * time.Millisecond)
	probe := make(chan struct{})
	go func() {
		defer close(probe)
		if resp, err := m.Get(context.Background(), "http://api.test/"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}()
	for n.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err = get(t, m, "http://api.test/")
	took := time.Since(start)
	close(release)
	<-probe
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.Less(t, took, 100*time.Millisecond, "refused at once, without waiting for a token")
}

func TestFallbackGetsTheWholeBodyAfterAHookReadIt(t *testing.T) {
	var got atomic.Value
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		if r.URL.Host == "primary.test" {
			return cannedResponse(r, 503, ""), nil
		}
		return cannedResponse(r, 200, "fb"), nil
	}}
	primary := noRetries(BreakerConfig{ConsecutiveFailures: 1})
	primary.Fallback = "fallback.test"
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"primary.test": primary, "fallback.test": {}}}, WithTransport(ft))
	m.OnRequest(func(rc *RequestContext) error { // a signing hook reads the body and puts a copy back
		if rc.Request.Body == nil || rc.Request.Body == http.NoBody {
			return nil
		}
		b, _ := io.ReadAll(rc.Request.Body)
		if rc.Request.URL.Host == "fallback.test" {
			got.Store(string(b))
		}
		rc.Request.Body = io.NopCloser(strings.NewReader(string(b)))
		return nil
	})
	for i := 0; i < 2; i++ { // the first opens the breaker, the second goes to the fallback
		req, _ := http.NewRequest(http.MethodPut, "http://primary.test/x", strings.NewReader("payload"))
		resp, err := m.RoundTrip(req)
		require.NoError(t, err)
		readAll(t, resp)
	}
	assert.Equal(t, "payload", got.Load())
}

func TestReplacedRequestStillEndsWithTheCallersContext(t *testing.T) {
	blocked := make(chan struct{})
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		close(blocked)
		<-r.Context().Done()
		return nil, r.Context().Err()
	}}
	ep := fastRetries(1)
	ep.Timeout = 5 * time.Second
	m := newTestManager(t, Config{Default: ep}, WithTransport(ft))
	m.OnRequest(func(rc *RequestContext) error {
		nr, err := http.NewRequest(rc.Request.Method, rc.Request.URL.String(), nil) // a fresh context
		if err != nil {
			return err
		}
		nr.Header = rc.Request.Header
		rc.Request = nr
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.test/", nil)
	go func() { <-blocked; cancel() }()
	start := time.Now()
	_, err := m.RoundTrip(req)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled))
	assert.Less(t, time.Since(start), time.Second, "the caller's cancel reached the attempt")
}

func TestCallerDeadlineServesAsThePerTryTimeout(t *testing.T) {
	var sawDeadline time.Time
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		sawDeadline, _ = r.Context().Deadline()
		return cannedResponse(r, 200, "ok"), nil
	}}
	m := newTestManager(t, Config{Default: EndpointConfig{Timeout: 10 * time.Second}}, WithTransport(ft))
	allocsUnder := func(callerTimeout time.Duration) (float64, time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), callerTimeout)
		defer cancel()
		want, _ := ctx.Deadline()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.test/", nil)
		return testing.AllocsPerRun(50, func() {
			resp, err := m.RoundTrip(req)
			require.NoError(t, err)
			readAll(t, resp)
		}), want
	}
	shorter, want := allocsUnder(time.Second)
	assert.Equal(t, want, sawDeadline, "the attempt ran under the caller's deadline")
	longer, _ := allocsUnder(time.Minute)
	assert.LessOrEqual(t, shorter+1, longer, "no context of our own under a shorter caller deadline")
	assert.EqualValues(t, 0, m.Stats().InFlight, "the call still ends when its body is closed")
}
