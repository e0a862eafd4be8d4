package connmgrtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a client with its own transport, so that each test
// starts on fresh connections, closed when the test ends.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// newServer starts a scripted server closed when the test ends.
func newServer(t *testing.T, steps ...Step) *Server {
	t.Helper()
	s := NewServer(steps...)
	t.Cleanup(s.Close)
	return s
}

// get does a GET of url and returns the response with its body read.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestStepAnswer(t *testing.T) {
	date := time.Date(2030, time.January, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name       string
		steps      []Step
		wantStatus int
		wantBody   string
		wantHeader http.Header
	}{
		{name: "no steps answers 200 ok", wantStatus: 200, wantBody: "ok"},
		{name: "zero step answers 200 empty", steps: []Step{{}}, wantStatus: 200, wantBody: ""},
		{name: "status", steps: []Step{{Status: 503}}, wantStatus: 503},
		{name: "body", steps: []Step{{Body: "hello"}}, wantStatus: 200, wantBody: "hello"},
		{
			name:       "header",
			steps:      []Step{{Status: 201, Header: http.Header{"X-Test": {"a", "b"}, "Content-Type": {"application/json"}}, Body: "{}"}},
			wantStatus: 201,
			wantBody:   "{}",
			wantHeader: http.Header{"X-Test": {"a", "b"}, "Content-Type": {"application/json"}},
		},
		{
			name:       "retry after whole seconds",
			steps:      []Step{{Status: 429, RetryAfter: 3 * time.Second}},
			wantStatus: 429,
			wantHeader: http.Header{"Retry-After": {"3"}},
		},
		{
			name:       "retry after rounded up",
			steps:      []Step{{Status: 503, RetryAfter: 1500 * time.Millisecond}},
			wantStatus: 503,
			wantHeader: http.Header{"Retry-After": {"2"}},
		},
		{
			name:       "retry after below a second",
			steps:      []Step{{Status: 503, RetryAfter: time.Millisecond}},
			wantStatus: 503,
			wantHeader: http.Header{"Retry-After": {"1"}},
		},
		{
			name:       "retry after date in UTC",
			steps:      []Step{{Status: 503, RetryAfterDate: date}},
			wantStatus: 503,
			wantHeader: http.Header{"Retry-After": {"Wed, 02 Jan 2030 02:04:05 GMT"}},
		},
		{
			name:       "retry after date wins over seconds",
			steps:      []Step{{Status: 503, RetryAfter: time.Second, RetryAfterDate: date}},
			wantStatus: 503,
			wantHeader: http.Header{"Retry-After": {"Wed, 02 Jan 2030 02:04:05 GMT"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.steps...)
			resp, body := get(t, newClient(t), srv.URL)
			assert.Equal(t, tt.wantStatus, resp.StatusCode, "status")
			assert.Equal(t, tt.wantBody, body, "body")
			for k, want := range tt.wantHeader {
				assert.Equal(t, want, resp.Header.Values(k), "header %s", k)
			}
			if tt.wantHeader.Get("Retry-After") == "" {
				assert.Empty(t, resp.Header.Get("Retry-After"), "Retry-After set without asking")
			}
		})
	}
}

func TestRetryAfterDateParses(t *testing.T) {
	t.Parallel()
	when := time.Now().Add(time.Hour).Truncate(time.Second)
	srv := newServer(t, Step{Status: 503, RetryAfterDate: when})
	resp, _ := get(t, newClient(t), srv.URL)
	got, err := http.ParseTime(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.True(t, got.Equal(when), "got %v, want %v", got, when)
}

func TestDelay(t *testing.T) {
	t.Parallel()
	const delay = 150 * time.Millisecond
	srv := newServer(t, Step{Delay: delay, Body: "late"})
	start := time.Now()
	_, body := get(t, newClient(t), srv.URL)
	elapsed := time.Since(start)
	assert.Equal(t, "late", body)
	assert.GreaterOrEqual(t, elapsed, delay, "answered before the delay")
}

func TestDelayEndsWhenClientGoesAway(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Step{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	start := time.Now()
	resp, err := newClient(t).Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	assertClosesQuickly(t, srv)
}

func TestReset(t *testing.T) {
	t.Parallel()
	step := Step{Reset: true, Status: 200, Body: "never sent"}
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[useTLS], func(t *testing.T) {
			t.Parallel()
			var srv *Server
			var client *http.Client
			if useTLS {
				srv = NewTLSServer(step)
				client = srv.Client()
			} else {
				srv = NewServer(step)
				client = newClient(t)
			}
			t.Cleanup(srv.Close)
			resp, err := client.Get(srv.URL)
			if resp != nil {
				resp.Body.Close()
			}
			require.Error(t, err, "a reset connection must not give a response")
			assert.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF),
				"got %v, want a connection reset or EOF", err)
			assert.Equal(t, int64(1), srv.Count())
		})
	}
}

func TestResetMidBody(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("0123456789", 100)
	tests := []struct {
		name     string
		step     Step
		wantLen  int
		wantRead int
	}{
		{name: "body", step: Step{ResetMidBody: true, Status: 200, Body: body}, wantLen: len(body), wantRead: len(body) / 2},
		{name: "status kept", step: Step{ResetMidBody: true, Status: 500, Body: body}, wantLen: len(body), wantRead: len(body) / 2},
		{name: "empty body gets filler", step: Step{ResetMidBody: true}, wantLen: 64, wantRead: 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.step)
			resp, err := newClient(t).Get(srv.URL)
			require.NoError(t, err, "the headers must arrive")
			defer resp.Body.Close()
			wantStatus := tt.step.Status
			if wantStatus == 0 {
				wantStatus = 200
			}
			assert.Equal(t, wantStatus, resp.StatusCode)
			assert.Equal(t, int64(tt.wantLen), resp.ContentLength)
			got, err := io.ReadAll(resp.Body)
			require.Error(t, err, "reading a body cut short must fail")
			assert.True(t, errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET),
				"got %v, want unexpected EOF or connection reset", err)
			assert.Len(t, got, tt.wantRead, "bytes read before the reset")
		})
	}
}

func TestChunkDelay(t *testing.T) {
	t.Parallel()
	const chunkDelay = 60 * time.Millisecond
	tests := []struct {
		name       string
		chunks     int
		body       string
		wantPieces int
	}{
		{name: "default four chunks", chunks: 0, body: "aaaabbbbccccdddd", wantPieces: 4},
		{name: "two chunks", chunks: 2, body: "aaaabbbb", wantPieces: 2},
		{name: "body shorter than chunks", chunks: 5, body: "abc", wantPieces: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, Step{ChunkDelay: chunkDelay, Chunks: tt.chunks, Body: tt.body})
			resp, err := newClient(t).Get(srv.URL)
			require.NoError(t, err)
			defer resp.Body.Close()
			headersAt := time.Now()

			var got []byte
			var arrivals []time.Time // when each Read returned bytes
			buf := make([]byte, 1024)
			for {
				n, err := resp.Body.Read(buf)
				if n > 0 {
					got = append(got, buf[:n]...)
					arrivals = append(arrivals, time.Now())
				}
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
			}
			assert.Equal(t, tt.body, string(got))
			require.Len(t, arrivals, tt.wantPieces, "body pieces that arrived separately")
			// Piece i is written after i+1 waits; allow for the headers
			// having been written a little before the client saw them.
			const slack = 15 * time.Millisecond
			for i, at := range arrivals {
				got, want := at.Sub(headersAt), time.Duration(i+1)*chunkDelay-slack
				assert.GreaterOrEqual(t, got, want, "piece %d came %v after the headers", i, got)
			}
		})
	}
}

func TestHangEndsWhenClientCancels(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Step{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	go func() {
		waitCount(t, srv, 1)
		cancel()
	}()
	resp, err := newClient(t).Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, context.Canceled)
	assertClosesQuickly(t, srv)
}

func TestCloseWithHangingRequest(t *testing.T) {
	t.Parallel()
	for _, step := range []Step{{Hang: true}, {Delay: time.Minute}, {ChunkDelay: time.Minute, Body: "slow"}} {
		srv := NewServer(step)
		client := newClient(t)
		errc := make(chan error, 1)
		go func() {
			resp, err := client.Get(srv.URL)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
		waitCount(t, srv, 1)
		assertClosesQuickly(t, srv)
		select {
		case err := <-errc:
			assert.Error(t, err, "step %+v: the client must see the connection drop", step)
		case <-time.After(2 * time.Second):
			t.Fatalf("step %+v: client still waiting after Close", step)
		}
		srv.Close() // idempotent
	}
}

func TestCloseUnblocksStalledRequestBody(t *testing.T) {
	t.Parallel()
	srv := NewServer()
	conn, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	// Promise 100 bytes of body, send 5, then stall.
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond) // let the handler start reading the body
	assertClosesQuickly(t, srv)
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	srv := NewServer()
	srv.Close()
	srv.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Close()
		}()
	}
	wg.Wait()
	_, err := newClient(t).Get(srv.URL)
	assert.Error(t, err, "a closed server must refuse connections")
	assert.Equal(t, int64(0), srv.Count())
	assert.Empty(t, srv.Requests())
}

func TestScript(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Step{Status: 503}, Step{Status: 502}, Step{Body: "up"})
	client := newClient(t)
	status := func() int {
		resp, _ := get(t, client, srv.URL)
		return resp.StatusCode
	}
	assert.Equal(t, []int{503, 502, 200, 200, 200}, []int{status(), status(), status(), status(), status()},
		"the last step repeats")
	assert.Equal(t, int64(5), srv.Count())

	srv.Script(Step{Status: 429}, Step{Status: 201})
	assert.Equal(t, []int{429, 201, 201}, []int{status(), status(), status()}, "Script restarts from its first step")
	assert.Equal(t, int64(8), srv.Count(), "Script keeps the count")
	assert.Len(t, srv.Requests(), 8, "Script keeps the requests")

	srv.Reset()
	assert.Equal(t, int64(0), srv.Count(), "Reset clears the count")
	assert.Empty(t, srv.Requests(), "Reset forgets the requests")
	assert.Equal(t, []int{429, 201}, []int{status(), status()}, "Reset restarts the script")

	srv.Script()
	_, body := get(t, client, srv.URL)
	assert.Equal(t, "ok", body, "an empty script answers 200 ok")
}

func TestScriptReplacesFunc(t *testing.T) {
	t.Parallel()
	srv := NewServerFunc(func(int64, *http.Request) Step { return Step{Status: 500} })
	t.Cleanup(srv.Close)
	client := newClient(t)
	resp, _ := get(t, client, srv.URL)
	assert.Equal(t, 500, resp.StatusCode)
	srv.Script(Step{Status: 204})
	resp, _ = get(t, client, srv.URL)
	assert.Equal(t, 204, resp.StatusCode)
}

func TestRequestsRecorded(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	client := newClient(t)
	before := time.Now()

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/charge?amount=10&currency=eur", strings.NewReader(`{"id":1}`))
	require.NoError(t, err)
	req.Header.Set("Idempotency-Key", "k-1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	get(t, client, srv.URL+"/health")

	got := srv.Requests()
	require.Len(t, got, 2)
	assert.Equal(t, int64(2), srv.Count())

	first := got[0]
	assert.Equal(t, http.MethodPost, first.Method)
	assert.Equal(t, "/v1/charge", first.Path)
	assert.Equal(t, "amount=10&currency=eur", first.RawQuery)
	assert.Equal(t, srv.Addr(), first.Host)
	assert.Equal(t, "k-1", first.Header.Get("Idempotency-Key"))
	assert.Equal(t, "application/json", first.Header.Get("Content-Type"))
	assert.Equal(t, `{"id":1}`, string(first.Body))
	assert.Equal(t, "HTTP/1.1", first.Proto)
	assert.False(t, first.At.Before(before), "At %v is before the request was sent (%v)", first.At, before)

	second := got[1]
	assert.Equal(t, http.MethodGet, second.Method)
	assert.Equal(t, "/health", second.Path)
	assert.Empty(t, second.Body)
	assert.False(t, second.At.Before(first.At), "arrival order")

	// Requests returns copies.
	got[0].Header.Set("Idempotency-Key", "changed")
	got[0].Body[0] = 'X'
	again := srv.Requests()
	assert.Equal(t, "k-1", again[0].Header.Get("Idempotency-Key"))
	assert.Equal(t, `{"id":1}`, string(again[0].Body))
}

func TestRequestBodyBounded(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	big := strings.Repeat("a", maxRecordedBody+1000)
	resp, err := newClient(t).Post(srv.URL, "text/plain", strings.NewReader(big))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "a body over the bound is still answered")
	got := srv.Requests()
	require.Len(t, got, 1)
	assert.Len(t, got[0].Body, maxRecordedBody)
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	srv := NewServerFunc(func(n int64, _ *http.Request) Step {
		return Step{Status: 200 + int(n%2)}
	})
	t.Cleanup(srv.Close)
	client := newClient(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := client.Get(srv.URL)
				if assert.NoError(t, err) {
					resp.Body.Close()
				}
				_ = srv.Count()
				_ = srv.Requests()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(workers*each), srv.Count())
	assert.Len(t, srv.Requests(), workers*each)
}

func TestNewServerFunc(t *testing.T) {
	t.Parallel()
	type call struct {
		n    int64
		path string
	}
	var mu sync.Mutex
	var calls []call
	srv := NewServerFunc(func(n int64, r *http.Request) Step {
		mu.Lock()
		calls = append(calls, call{n, r.URL.Path})
		mu.Unlock()
		if r.URL.Path == "/down" {
			return Step{Status: 503}
		}
		return Step{Body: r.URL.Path}
	})
	t.Cleanup(srv.Close)
	client := newClient(t)
	resp, body := get(t, client, srv.URL+"/a")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "/a", body)
	resp, _ = get(t, client, srv.URL+"/down")
	assert.Equal(t, 503, resp.StatusCode)
	srv.Reset()
	get(t, client, srv.URL+"/b")

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []call{{1, "/a"}, {2, "/down"}, {1, "/b"}}, calls, "n counts from 1 and restarts after Reset")
}

func TestFlaky(t *testing.T) {
	t.Parallel()
	failure := Step{Status: 503}
	outcomes := func(f func(int64, *http.Request) Step, count int) []bool {
		out := make([]bool, count)
		for i := range out {
			out[i] = f(int64(i+1), nil).Status == 503
		}
		return out
	}
	t.Run("deterministic for a seed", func(t *testing.T) {
		a := outcomes(Flaky(42, 0.5, failure), 200)
		b := outcomes(Flaky(42, 0.5, failure), 200)
		c := outcomes(Flaky(43, 0.5, failure), 200)
		assert.Equal(t, a, b, "same seed")
		assert.NotEqual(t, a, c, "different seed")
	})
	t.Run("depends on n only", func(t *testing.T) {
		f := Flaky(7, 0.5, failure)
		g := Flaky(7, 0.5, failure)
		for n := int64(100); n >= 1; n-- { // asked in another order
			assert.Equal(t, f(n, nil), g(n, nil), "n=%d", n)
		}
	})
	t.Run("roughly the failure rate", func(t *testing.T) {
		for _, rate := range []float64{0.1, 0.3, 0.5, 0.9} {
			failed := 0
			for _, f := range outcomes(Flaky(1, rate, failure), 10000) {
				if f {
					failed++
				}
			}
			assert.InDelta(t, rate, float64(failed)/10000, 0.03, "rate %v", rate)
		}
	})
	t.Run("edges", func(t *testing.T) {
		for _, f := range outcomes(Flaky(1, 0, failure), 1000) {
			require.False(t, f, "rate 0 must never fail")
		}
		for _, f := range outcomes(Flaky(1, 1, failure), 1000) {
			require.True(t, f, "rate 1 must always fail")
		}
	})
	t.Run("success is the zero step", func(t *testing.T) {
		assert.Equal(t, Step{}, Flaky(1, 0, failure)(1, nil))
		assert.Equal(t, failure, Flaky(1, 1, failure)(1, nil))
	})
	t.Run("through a server", func(t *testing.T) {
		want := outcomes(Flaky(9, 0.4, failure), 20)
		srv := NewServerFunc(Flaky(9, 0.4, failure))
		t.Cleanup(srv.Close)
		client := newClient(t)
		for i, wantFail := range want {
			resp, _ := get(t, client, srv.URL)
			assert.Equal(t, wantFail, resp.StatusCode == 503, "request %d", i+1)
		}
	})
}

func TestTLSServer(t *testing.T) {
	t.Parallel()
	srv := NewTLSServer(Step{Body: "secure"})
	t.Cleanup(srv.Close)
	assert.True(t, strings.HasPrefix(srv.URL, "https://127.0.0.1:"), "URL %s", srv.URL)
	require.NotNil(t, srv.Certificate())

	_, body := get(t, srv.Client(), srv.URL)
	assert.Equal(t, "secure", body)

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	_, body = get(t, &http.Client{Transport: tr}, srv.URL)
	assert.Equal(t, "secure", body)

	_, err := newClient(t).Get(srv.URL)
	assert.Error(t, err, "a client that does not trust the certificate must fail")
	assert.Equal(t, int64(2), srv.Count())
}

func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	host, port, err := net.SplitHostPort(srv.Addr())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	assert.Equal(t, "http://127.0.0.1:"+port, srv.URL)
	assert.Nil(t, srv.Certificate(), "a plain server has no certificate")
}

// waitCount waits until srv has received want requests.
func waitCount(t *testing.T, srv *Server, want int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for srv.Count() < want {
		if time.Now().After(deadline) {
			t.Errorf("got %d requests, want %d", srv.Count(), want)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// assertClosesQuickly closes srv and fails if that takes a second or more.
func assertClosesQuickly(t *testing.T, srv *Server) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Close()
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close still blocked after 1s")
	}
}
