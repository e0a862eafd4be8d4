package connmgr

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetryOnStatusThenSuccess(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{Status: 502}, connmgrtest.Step{Body: "done"})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})

	resp, err := get(t, m, srv.URL+"/x")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "done", readAll(t, resp))
	assert.EqualValues(t, 3, srv.Count())
	st := m.Stats().Endpoints["default"]
	assert.EqualValues(t, 1, st.Requests)
	assert.EqualValues(t, 2, st.Retries)
	assert.EqualValues(t, 1, st.Successes)
	assert.EqualValues(t, 0, st.InFlight)
}

func TestFinalRetryableStatusIsAResponse(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503, Body: "busy"})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})

	resp, err := get(t, m, srv.URL)
	require.NoError(t, err, "statuses are not errors, as in net/http")
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "busy", readAll(t, resp), "the last response's body is intact")
	assert.EqualValues(t, 3, srv.Count())
	st := m.Stats().Endpoints["default"]
	assert.EqualValues(t, 1, st.Failures)
	assert.Equal(t, map[int]uint64{503: 1}, st.StatusCodes)
}

func TestNonRetryableStatusNotRetried(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 404}, connmgrtest.Step{})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 404, resp.StatusCode)
	assert.EqualValues(t, 1, srv.Count())
}

func TestRetrySafety(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		header      map[string]string
		optIn       bool
		wantAttempt int64
	}{
		{"GET is idempotent", http.MethodGet, nil, false, 3},
		{"PUT is idempotent", http.MethodPut, nil, false, 3},
		{"DELETE is idempotent", http.MethodDelete, nil, false, 3},
		{"POST is not", http.MethodPost, nil, false, 1},
		{"PATCH is not", http.MethodPatch, nil, false, 1},
		{"POST with Idempotency-Key", http.MethodPost, map[string]string{"Idempotency-Key": "abc"}, false, 3},
		{"POST opted in", http.MethodPost, nil, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
			defer srv.Close()
			def := fastRetries(3)
			def.Retry.NonIdempotent = Bool(tt.optIn)
			m := newTestManager(t, Config{Default: def})
			req, err := http.NewRequest(tt.method, srv.URL, strings.NewReader("payload"))
			require.NoError(t, err)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := m.Do(req)
			require.NoError(t, err)
			readAll(t, resp)
			assert.Equal(t, tt.wantAttempt, srv.Count())
			for _, r := range srv.Requests() {
				assert.Equal(t, "payload", string(r.Body), "every attempt carries the whole body")
			}
		})
	}
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestDialErrorRetriedEvenForPOST(t *testing.T) {
	addr := refusedAddr(t)
	m := newTestManager(t, Config{Default: fastRetries(3)})
	resp, err := m.Post(context.Background(), "http://"+addr+"/charge", "text/plain", strings.NewReader("x"))
	require.Error(t, err)
	assert.Nil(t, resp)
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED, "unwraps to the last cause")
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 3, e.Attempts)
	assert.Equal(t, "POST", e.Method)
	assert.Equal(t, "default", e.Endpoint)
	assert.EqualValues(t, 2, m.Stats().Endpoints["default"].Retries)
}

func TestSingleAttemptErrorIsNotExhausted(t *testing.T) {
	addr := refusedAddr(t)
	m := newTestManager(t, Config{Default: fastRetries(1)})
	_, err := get(t, m, "http://"+addr)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrRetriesExhausted)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
}

func TestConnectionResetRetriedForGET(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Reset: true}, connmgrtest.Step{Body: "ok"})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.EqualValues(t, 2, srv.Count())
}

func TestConnectionResetNotRetriedForPOST(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Reset: true}, connmgrtest.Step{Body: "ok"})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	_, err := m.Post(context.Background(), srv.URL, "text/plain", strings.NewReader("x"))
	require.Error(t, err, "the server may have acted on it: not safe to send again")
	assert.EqualValues(t, 1, srv.Count())
}

// onceReader is a body without GetBody.
type onceReader struct{ io.Reader }

func (onceReader) Close() error { return nil }

func TestBodyWithoutGetBodyIsBuffered(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	payload := strings.Repeat("a", 1000)
	req, err := http.NewRequest(http.MethodPut, srv.URL, nil)
	require.NoError(t, err)
	req.Body = onceReader{iotest.HalfReader(strings.NewReader(payload))}
	req.ContentLength = int64(len(payload))
	resp, err := m.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	require.EqualValues(t, 2, srv.Count())
	for _, r := range srv.Requests() {
		assert.Equal(t, payload, string(r.Body))
	}
}

func TestBodyOverBufferLimitIsSentWholeOnce(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{})
	defer srv.Close()
	def := fastRetries(3)
	def.Retry.MaxBufferedBody = 100
	m := newTestManager(t, Config{Default: def})
	payload := strings.Repeat("b", 1000)
	req, err := http.NewRequest(http.MethodPut, srv.URL, nil)
	require.NoError(t, err)
	req.Body = onceReader{strings.NewReader(payload)}
	req.ContentLength = int64(len(payload))
	resp, err := m.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 503, resp.StatusCode, "not retried: the body cannot be replayed")
	require.EqualValues(t, 1, srv.Count())
	assert.Equal(t, payload, string(srv.Requests()[0].Body), "never truncated")
}

// closeTracker records whether Close was called.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestRequestBodyClosedOnEveryPath(t *testing.T) {
	t.Run("closed manager", func(t *testing.T) {
		m := newTestManager(t, Config{})
		require.NoError(t, m.Close())
		body := &closeTracker{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1", body)
		_, err := m.RoundTrip(req)
		assert.ErrorIs(t, err, ErrClosed)
		assert.True(t, body.closed)
	})
	t.Run("request hook error", func(t *testing.T) {
		m := newTestManager(t, Config{})
		m.OnRequest(func(*RequestContext) error { return errors.New("no") })
		body := &closeTracker{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1", body)
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
		_, err := m.RoundTrip(req)
		assert.Error(t, err)
		assert.True(t, body.closed)
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name string
		step func() connmgrtest.Step
	}{
		{"seconds", func() connmgrtest.Step { return connmgrtest.Step{Status: 429, RetryAfter: time.Second} }},
		{"http-date", func() connmgrtest.Step {
			return connmgrtest.Step{Status: 503, RetryAfterDate: time.Now().Add(2 * time.Second)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := connmgrtest.NewServer(tt.step(), connmgrtest.Step{})
			defer srv.Close()
			m := newTestManager(t, Config{Default: fastRetries(3)})
			resp, err := get(t, m, srv.URL)
			require.NoError(t, err)
			readAll(t, resp)
			require.EqualValues(t, 2, srv.Count())
			reqs := srv.Requests()
			gap := reqs[1].At.Sub(reqs[0].At)
			// HTTP-dates have one-second resolution.
			assert.GreaterOrEqual(t, gap, 900*time.Millisecond, "waited for Retry-After, not the 2ms backoff")
		})
	}
}

func TestRetryAfterBeyondCapOrDeadlineStopsNow(t *testing.T) {
	t.Run("over max_retry_after", func(t *testing.T) {
		srv := connmgrtest.NewServer(connmgrtest.Step{Status: 429, RetryAfter: time.Hour}, connmgrtest.Step{})
		defer srv.Close()
		m := newTestManager(t, Config{Default: fastRetries(3)})
		start := time.Now()
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, 429, resp.StatusCode)
		assert.EqualValues(t, 1, srv.Count())
		assert.Less(t, time.Since(start), time.Second)
	})
	t.Run("past the deadline", func(t *testing.T) {
		srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503, RetryAfter: 5 * time.Second}, connmgrtest.Step{})
		defer srv.Close()
		def := fastRetries(3)
		def.TotalTimeout = 2 * time.Second
		m := newTestManager(t, Config{Default: def})
		start := time.Now()
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, 503, resp.StatusCode)
		assert.Less(t, time.Since(start), time.Second, "fails now, not at the deadline")
	})
}

func TestNoRetryAfterCallerCancels(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Delay: 5 * time.Second})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(5)})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := m.Get(ctx, srv.URL)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, ErrRetriesExhausted)
	assert.EqualValues(t, 1, srv.Count())
}

func TestPerTryTimeoutRetries(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Delay: 2 * time.Second}, connmgrtest.Step{Body: "fast"})
	defer srv.Close()
	def := fastRetries(3)
	def.Timeout = 150 * time.Millisecond
	m := newTestManager(t, Config{Default: def})
	start := time.Now()
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "fast", readAll(t, resp))
	assert.Less(t, time.Since(start), time.Second)
}

func TestPerTryTimeoutCoversBodyUntilClosed(t *testing.T) {
	// Headers come at once; the body takes ~400ms in 4 chunks.
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "0123456789abcdef", ChunkDelay: 100 * time.Millisecond, Chunks: 4})
	defer srv.Close()

	t.Run("a body read within the limit is not cut", func(t *testing.T) {
		def := fastRetries(1)
		def.Timeout = 2 * time.Second
		m := newTestManager(t, Config{Default: def})
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		assert.Equal(t, "0123456789abcdef", readAll(t, resp))
	})
	t.Run("a body slower than the limit is cut", func(t *testing.T) {
		def := fastRetries(1)
		def.Timeout = 250 * time.Millisecond
		m := newTestManager(t, Config{Default: def})
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		require.NoError(t, resp.Body.Close())
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestTotalTimeoutBoundsAllAttempts(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Delay: 5 * time.Second})
	defer srv.Close()
	def := fastRetries(10)
	def.Timeout = 200 * time.Millisecond
	def.TotalTimeout = 500 * time.Millisecond
	m := newTestManager(t, Config{Default: def})
	start := time.Now()
	_, err := get(t, m, srv.URL)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 900*time.Millisecond)
	assert.LessOrEqual(t, srv.Count(), int64(3))
}

func TestResetMidBodyReportedToReader(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: strings.Repeat("z", 4096), ResetMidBody: true})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	assert.Error(t, err, "a truncated body is an error for the reader, never silent")
	require.NoError(t, resp.Body.Close())
	assert.EqualValues(t, 0, m.Stats().InFlight)
}

func TestDiscardedBodiesLetConnectionsBeReused(t *testing.T) {
	var conns atomic.Int64
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(503)
			_, _ = w.Write([]byte(strings.Repeat("retry me ", 100)))
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(3)})
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.EqualValues(t, 3, n.Load())
	assert.EqualValues(t, 1, conns.Load(), "one connection carried all three attempts: retried bodies were drained and closed")
}

func TestRetryBudgetBoundsAmplification(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer srv.Close()
	def := fastRetries(3)
	def.Retry.Budget = RetryBudgetConfig{Ratio: 0.2, MinPerSecond: 1, Disabled: Bool(false)}
	def.CircuitBreaker.Disabled = Bool(true) // it would open after 5 failures; this test is about the budget
	m := newTestManager(t, Config{Default: def})
	const calls = 300
	for i := 0; i < calls; i++ {
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
	}
	sent := srv.Count()
	// Without a budget this would be 900. With it: 300 calls, 20% of
	// them retried, plus the 1/s floor (burst 1 plus ~1 per second).
	assert.LessOrEqual(t, sent, int64(calls*1.2+5), "upstream load bounded to ~1.2x")
	assert.Greater(t, sent, int64(calls), "some retries still happen")
	assert.Positive(t, m.Stats().Endpoints["default"].RetryBudgetExhausted)
}

func TestRetryBudgetErrorForTransportFailures(t *testing.T) {
	addr := refusedAddr(t)
	def := fastRetries(3)
	def.Retry.Budget = RetryBudgetConfig{Ratio: 0.0001, MinPerSecond: 0.0001, Disabled: Bool(false)}
	m := newTestManager(t, Config{Default: def})
	var budgetErrs int
	for i := 0; i < 5; i++ {
		_, err := get(t, m, "http://"+addr)
		require.Error(t, err)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		if errors.Is(err, ErrRetryBudgetExhausted) {
			budgetErrs++
		}
	}
	assert.GreaterOrEqual(t, budgetErrs, 4)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{"120", 120 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"99999999999999999999999", maxDuration, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"Sun, 22 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 22-Nov-26 12:01:00 GMT", time.Minute, true},
		{"Sun Nov 22 12:00:05 2026", 5 * time.Second, true},
		{"Sun, 22 Nov 2026 11:00:00 GMT", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "Sun, 22 Nov 2026 12:00:30 GMT", "-1", "1e9", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, negative", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false: want 0", s, d)
		}
	})
}

func TestBackoffFullJitterBounds(t *testing.T) {
	p := newRetryPolicy(RetryConfig{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 40: time.Second} {
		var maxSeen time.Duration
		for i := 0; i < 2000; i++ {
			d := p.backoff(n)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, ceiling, "retry %d", n)
			if d > maxSeen {
				maxSeen = d
			}
		}
		assert.Greater(t, maxSeen, ceiling/2, "retry %d: draws spread up to the ceiling", n)
	}
}

func TestStatusSet(t *testing.T) {
	var s statusSet
	for _, c := range []int{408, 429, 503, 0, 639, 640, -1} {
		s.add(c)
	}
	for _, c := range []int{408, 429, 503, 0, 639} {
		assert.True(t, s.has(c), "%d", c)
	}
	for _, c := range []int{200, 500, 640, -1, 10000} {
		assert.False(t, s.has(c), "%d", c)
	}
}

func TestGetBodyUsedForReplay(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 500}, connmgrtest.Step{})
	defer srv.Close()
	m := newTestManager(t, Config{Default: fastRetries(2)})
	req, err := http.NewRequest(http.MethodPut, srv.URL, bytes.NewReader([]byte("from-getbody")))
	require.NoError(t, err)
	calls := 0
	orig := req.GetBody
	req.GetBody = func() (io.ReadCloser, error) { calls++; return orig() }
	resp, err := m.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 1, calls, "the retry's body came from GetBody")
	for _, r := range srv.Requests() {
		assert.Equal(t, "from-getbody", string(r.Body))
	}
}

func TestStalledDiscardedBodyIsCutOff(t *testing.T) {
	srv := connmgrtest.NewServer(
		connmgrtest.Step{Status: 503, Body: strings.Repeat("x", 100), ChunkDelay: 3 * time.Second, Chunks: 2},
		connmgrtest.Step{Status: 200, Body: "ok"})
	defer srv.Close()
	def := fastRetries(2)
	def.Timeout = 10 * time.Second
	m := newTestManager(t, Config{Default: def})
	start := time.Now()
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Less(t, time.Since(start), 2*time.Second, "the drain is bounded in time, not only in bytes")
}

func TestRetryAmplificationUnderTotalOutage(t *testing.T) {
	var sent atomic.Int64
	tr := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return cannedResponse(r, 503, "down"), nil
	})
	def := EndpointConfig{Retry: RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}}
	def.CircuitBreaker.Disabled = Bool(true) // this test is about the budget alone
	m := newTestManager(t, Config{Default: def}, WithTransport(tr))
	const calls, concurrency = 400, 20
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for g := 0; g < concurrency; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= calls {
				resp, err := m.Get(context.Background(), "http://x.test/")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	ratio := float64(sent.Load()) / calls
	t.Logf("amplification %.3f (%d attempts for %d calls)", ratio, sent.Load(), calls)
	assert.LessOrEqual(t, ratio, 1.2, "the retry budget holds a total outage to 1+ratio")
	assert.Greater(t, ratio, 1.0, "retries still happen")
}

// TestInvalidRequestNeitherRetriedNorABreakerFailure: a request net/http
// refuses to send (a header value with a newline, a method that is not a
// token) was retried and counted as a failure of the upstream, so a few
// such calls opened the breaker of a healthy host and every good call
// after them failed with ErrCircuitOpen.
func TestInvalidRequestNeitherRetriedNorABreakerFailure(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 200, Body: "ok"})
	defer srv.Close()
	cfg := fastRetries(3)
	cfg.CircuitBreaker.ConsecutiveFailures = 2
	m := newTestManager(t, Config{Default: cfg}, WithRetryPolicy(func(_ context.Context, _ *http.Response, err error) (bool, error) {
		return err != nil, nil // a policy that retries every error still does not retry these
	}))
	bad := []func(*http.Request){
		func(r *http.Request) { r.Header.Set("X-Bad", "a\nb") },
		func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} },
		func(r *http.Request) { r.Method = "BAD METHOD" },
		func(r *http.Request) { r.URL.Scheme = "ftp" },
	}
	for i := 0; i < 2; i++ {
		for _, mutate := range bad {
			req, err := http.NewRequest("GET", srv.URL, nil)
			require.NoError(t, err)
			mutate(req)
			_, err = m.RoundTrip(req)
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrCircuitOpen)
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, 1, ce.Attempts, "not retried: %v", err)
		}
	}
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err, "the breaker of a healthy host stays closed")
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Equal(t, BreakerClosed, m.Stats().Endpoints["default"].Breaker.State)
	assert.EqualValues(t, 1, srv.Count())
}

func TestValidRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*http.Request)
		want   bool
	}{
		{"plain", func(*http.Request) {}, true},
		{"tab and obs-text in a value", func(r *http.Request) { r.Header.Set("X-A", "a\tb é") }, true},
		{"empty method", func(r *http.Request) { r.Method = "" }, true},
		{"newline in a value", func(r *http.Request) { r.Header.Set("X-A", "a\r\nb") }, false},
		{"DEL in a value", func(r *http.Request) { r.Header.Set("X-A", "a\x7f") }, false},
		{"space in a name", func(r *http.Request) { r.Header["X A"] = []string{"v"} }, false},
		{"colon in a name", func(r *http.Request) { r.Header["X:A"] = []string{"v"} }, false},
		{"space in the method", func(r *http.Request) { r.Method = "G ET" }, false},
		{"HTTPS scheme", func(r *http.Request) { r.URL.Scheme = "HTTPS" }, true},
		{"ftp scheme", func(r *http.Request) { r.URL.Scheme = "ftp" }, false},
	} {
		req, _ := http.NewRequest("GET", "http://x.test/", nil)
		tc.mutate(req)
		assert.Equal(t, tc.want, validRequest(req), tc.name)
	}
}

// TestStalledDiscardedBodyIsCutOffUnderTheCallersDeadline: when the
// caller's deadline is the per-try timeout, the attempt runs under the
// caller's context (even wrapped, as for a discovered upstream), and the
// stalled drain is still cut off after maxDrainTime by closing the body.
func TestStalledDiscardedBodyIsCutOffUnderTheCallersDeadline(t *testing.T) {
	srv := connmgrtest.NewServer(
		connmgrtest.Step{Status: 503, Body: strings.Repeat("x", 100), ChunkDelay: 3 * time.Second, Chunks: 2},
		connmgrtest.Step{Status: 200, Body: "ok"})
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	for _, tc := range []struct {
		name     string
		upstream string
	}{
		{"direct", ""},
		{"discovered upstream", "dns:///svc.internal:" + port},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			def := fastRetries(2)
			def.Timeout = 30 * time.Second
			cfg := Config{Default: def}
			target := srv.URL
			if tc.upstream != "" {
				cfg.Endpoints = map[string]EndpointConfig{"svc.internal": {Upstreams: []UpstreamConfig{{URL: tc.upstream}}}}
				target = "http://svc.internal:" + port
			}
			m := newTestManager(t, cfg, WithResolver(staticResolver{"svc.internal": {"127.0.0.1"}}))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // the per-try timeout
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			start := time.Now()
			resp, err := m.Do(req)
			require.NoError(t, err)
			assert.Equal(t, "ok", readAll(t, resp))
			assert.Less(t, time.Since(start), 2*time.Second, "the drain is bounded in time under the caller's deadline")
		})
	}
}
