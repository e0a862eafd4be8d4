package connmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCloseRejectsNewCalls(t *testing.T) {
	srv := connmgrtest.NewServer()
	defer srv.Close()
	m := newTestManager(t, Config{})
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "idempotent")
	_, err := get(t, m, srv.URL)
	assert.ErrorIs(t, err, ErrClosed)
	assert.Zero(t, srv.Count())
	assert.ErrorIs(t, m.Reload(Config{}), ErrClosed)
}

func TestShutdownDrainsInFlight(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "slow", Delay: 300 * time.Millisecond})
	defer srv.Close()
	var reports []int64
	var mu sync.Mutex
	m := newTestManager(t, Config{}, WithDrainProgress(50*time.Millisecond, func(n int64) {
		mu.Lock()
		reports = append(reports, n)
		mu.Unlock()
	}))
	done := make(chan string)
	go func() {
		resp, err := get(t, m, srv.URL)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- readAll(t, resp)
	}()
	require.Eventually(t, func() bool { return m.Stats().InFlight == 1 }, time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.NoError(t, m.Shutdown(ctx))
	assert.Equal(t, "slow", <-done, "the in-flight call finished")
	_, err := get(t, m, srv.URL)
	assert.ErrorIs(t, err, ErrClosed)
	require.NoError(t, m.Shutdown(ctx), "idempotent")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, reports)
	assert.EqualValues(t, 1, reports[0], "progress reports the calls still in flight")
}

func TestShutdownDeadlineReportsRemaining(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Hang: true})
	defer srv.Close()
	m := newTestManager(t, Config{})
	callCtx, stopCall := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Get(callCtx, srv.URL)
		errc <- err
	}()
	require.Eventually(t, func() bool { return m.Stats().InFlight == 1 }, time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := m.Shutdown(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "1 call still in flight")
	stopCall()
	assert.ErrorIs(t, <-errc, context.Canceled)
}

func TestBodyReadToEOFFinishesTheCall(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "abc"})
	defer srv.Close()
	m := newTestManager(t, Config{})
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.EqualValues(t, 1, m.Stats().InFlight)
	_, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.EqualValues(t, 0, m.Stats().InFlight, "EOF ends the call even before Close")
	require.NoError(t, resp.Body.Close())
	require.NoError(t, resp.Body.Close(), "closing twice is harmless")
	assert.EqualValues(t, 0, m.Stats().InFlight)
}

func TestDoAllKeepsOrderAndBound(t *testing.T) {
	var cur, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		cur.Add(-1)
		_, _ = io.WriteString(w, r.URL.Query().Get("i"))
	}))
	defer srv.Close()
	m := newTestManager(t, Config{})
	reqs := make([]*http.Request, 20)
	for i := range reqs {
		reqs[i], _ = http.NewRequest(http.MethodGet, fmt.Sprintf("%s/?i=%d", srv.URL, i), nil)
	}
	reqs[7] = nil
	results := m.DoAll(context.Background(), reqs, 3)
	require.Len(t, results, 20)
	for i, r := range results {
		if i == 7 {
			assert.ErrorContains(t, r.Err, "reqs[7] is nil")
			continue
		}
		require.NoError(t, r.Err, "request %d", i)
		assert.Equal(t, fmt.Sprint(i), readAll(t, r.Response))
	}
	assert.LessOrEqual(t, peak.Load(), int64(3), "concurrency never exceeded")
	assert.Equal(t, int64(3), peak.Load(), "and used")

	bad := m.DoAll(context.Background(), []*http.Request{reqs[0]}, 0)
	assert.ErrorContains(t, bad[0].Err, "concurrency must be >= 1")
}

func TestDoAllStopsWhenContextEnds(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Hang: true})
	defer srv.Close()
	m := newTestManager(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	own, cancelOwn := context.WithCancel(context.Background())
	defer cancelOwn()
	reqs := make([]*http.Request, 5)
	for i := range reqs {
		reqs[i], _ = http.NewRequestWithContext(own, http.MethodGet, srv.URL, nil)
	}
	start := time.Now()
	results := m.DoAll(ctx, reqs, 2)
	assert.Less(t, time.Since(start), 2*time.Second)
	for _, r := range results {
		assert.Error(t, r.Err)
	}
}

func TestClientFollowsRedirectsHopByHop(t *testing.T) {
	final := connmgrtest.NewServer(connmgrtest.Step{Body: "landed"})
	defer final.Close()
	first := connmgrtest.NewServer(connmgrtest.Step{Status: 302, Header: http.Header{"Location": {final.URL + "/there"}}})
	defer first.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		first.Addr(): {Auth: AuthConfig{BearerToken: "first-token"}},
		final.Addr(): {Headers: map[string]string{"X-Hop": "final"}},
	}})
	resp, err := m.Client().Get(first.URL)
	require.NoError(t, err)
	assert.Equal(t, "landed", readAll(t, resp))
	assert.Equal(t, "Bearer first-token", first.Requests()[0].Header.Get("Authorization"))
	got := final.Requests()[0]
	assert.Empty(t, got.Header.Get("Authorization"), "the first endpoint's credentials do not follow the redirect")
	assert.Equal(t, "final", got.Header.Get("X-Hop"), "the second hop ran under its own endpoint")
	st := m.Stats().Endpoints
	assert.EqualValues(t, 1, st[first.Addr()].Requests)
	assert.EqualValues(t, 1, st[final.Addr()].Requests)
}

func TestAuthAndDefaultHeaders(t *testing.T) {
	srv := connmgrtest.NewServer()
	defer srv.Close()
	tests := []struct {
		name   string
		auth   AuthConfig
		header string
		want   string
	}{
		{"bearer", AuthConfig{BearerToken: "tok"}, "Authorization", "Bearer tok"},
		{"api key default header", AuthConfig{APIKey: "k1"}, "X-Api-Key", "k1"},
		{"api key custom header", AuthConfig{APIKey: "k2", APIKeyHeader: "X-Token"}, "X-Token", "k2"},
		{"basic", AuthConfig{Username: "u", Password: "p"}, "Authorization", "Basic dTpw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			m := newTestManager(t, Config{Default: EndpointConfig{Auth: tt.auth, Headers: map[string]string{"User-Agent": "svc/1"}}})
			resp, err := get(t, m, srv.URL)
			require.NoError(t, err)
			readAll(t, resp)
			got := srv.Requests()[0].Header
			assert.Equal(t, tt.want, got.Get(tt.header))
			assert.Equal(t, "svc/1", got.Get("User-Agent"))

			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set(tt.header, "caller-wins")
			resp, err = m.Do(req)
			require.NoError(t, err)
			readAll(t, resp)
			assert.Equal(t, "caller-wins", srv.Requests()[1].Header.Get(tt.header))
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	addr := refusedAddr(t)
	var logs strings.Builder
	m := newTestManager(t, Config{
		Default: fastRetries(2),
		Redact:  RedactConfig{QueryKeys: []string{"session"}},
	}, WithLogger(newTestLogger(&logs)))
	req, _ := http.NewRequest(http.MethodGet, "http://alice:hunter2@"+addr+"/p?api_key=SECRET1&session=SECRET2&page=3#frag", nil)
	req.Header.Set("Authorization", "Bearer SECRET3")
	_, err := m.Do(req)
	require.Error(t, err)
	msg := err.Error()
	for _, secret := range []string{"hunter2", "alice", "SECRET1", "SECRET2", "SECRET3"} {
		assert.NotContains(t, msg, secret)
		assert.NotContains(t, logs.String(), secret)
	}
	assert.Contains(t, msg, "page=3", "what is not secret stays, for debugging")
	assert.Contains(t, logs.String(), "retrying", "the retry was logged")
}

func TestStatsJSON(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 201}, connmgrtest.Step{Status: 404}, connmgrtest.Step{Status: 200, Delay: 20 * time.Millisecond})
	defer srv.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{srv.Addr(): {}}})
	for i := 0; i < 3; i++ {
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
	}
	st := m.Stats()
	ep := st.Endpoints[srv.Addr()]
	assert.EqualValues(t, 3, ep.Requests)
	assert.EqualValues(t, 3, ep.Successes, "4xx is the caller's problem, not the upstream's")
	assert.Equal(t, map[int]uint64{200: 1, 201: 1, 404: 1}, ep.StatusCodes)
	assert.Greater(t, ep.P99, 15*time.Millisecond)
	assert.LessOrEqual(t, ep.P50, ep.P95)
	assert.LessOrEqual(t, ep.P95, ep.P99)
	b, err := json.Marshal(st)
	require.NoError(t, err)
	for _, key := range []string{`"in_flight"`, `"endpoints"`, `"status_codes"`, `"p99_ns"`, `"retries"`} {
		assert.Contains(t, string(b), key)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.observe(time.Duration(i) * time.Millisecond)
	}
	p50, p95, p99 := h.quantiles(0.5, 0.95, 0.99)
	within := func(got, want time.Duration) {
		t.Helper()
		assert.InEpsilon(t, float64(want), float64(got), 0.13, "got %v want %v", got, want)
	}
	within(p50, 500*time.Millisecond)
	within(p95, 950*time.Millisecond)
	within(p99, 990*time.Millisecond)
	for _, d := range []time.Duration{0, time.Microsecond, 7 * time.Microsecond, time.Hour * 24 * 365} {
		i := histIndex(d)
		assert.True(t, i >= 0 && i < histBuckets)
		if d < 100*time.Hour {
			assert.GreaterOrEqual(t, histUpper(i), d)
		}
	}
	allocs := testing.AllocsPerRun(100, func() { h.observe(time.Millisecond) })
	assert.Zero(t, allocs)
}

func TestReloadKeepsUnchangedEndpoints(t *testing.T) {
	cfg := Config{Endpoints: map[string]EndpointConfig{
		"a.test": {Timeout: time.Second},
		"b.test": {Timeout: time.Second},
	}}
	m := newTestManager(t, cfg)
	before := m.table.Load()
	cfg2 := Config{Endpoints: map[string]EndpointConfig{
		"a.test": {Timeout: time.Second},
		"b.test": {Timeout: 2 * time.Second},
		"c.test": {},
	}}
	require.NoError(t, m.Reload(cfg2))
	after := m.table.Load()
	assert.Same(t, before.byKey["a.test"], after.byKey["a.test"], "unchanged: same state")
	assert.NotSame(t, before.byKey["b.test"], after.byKey["b.test"], "changed: rebuilt")
	assert.Same(t, before.byKey["b.test"].stats, after.byKey["b.test"].stats, "counters survive")
	assert.Equal(t, 2*time.Second, after.byKey["b.test"].timeout)

	bad := Config{Endpoints: map[string]EndpointConfig{"a.test": {Retry: RetryConfig{MaxAttempts: -3}}}}
	err := m.Reload(bad)
	var ce *ConfigError
	require.True(t, errors.As(err, &ce))
	assert.Same(t, after, m.table.Load(), "a bad config changes nothing")
}

func TestNilAndBadRequests(t *testing.T) {
	m := newTestManager(t, Config{})
	_, err := m.RoundTrip(nil)
	assert.Error(t, err)
	_, err = m.RoundTrip(&http.Request{Method: "GET"})
	assert.ErrorContains(t, err, "no URL")
	_, err = m.Get(context.Background(), "://bad")
	assert.Error(t, err)
	_, err = m.Get(context.Background(), "http://127.0.0.1:1/?token=SECRET4%zz")
	if err != nil {
		assert.NotContains(t, err.Error(), "SECRET4")
	}
}

func TestTransportFromConfig(t *testing.T) {
	tr := newHTTPTransport(builtinDefaults().Transport, nil)
	assert.Equal(t, 64, tr.MaxIdleConnsPerHost)
	assert.Equal(t, 90*time.Second, tr.IdleConnTimeout)
	assert.Equal(t, 10*time.Second, tr.TLSHandshakeTimeout)
	assert.True(t, tr.ForceAttemptHTTP2, "HTTP/2 on by default")
	assert.EqualValues(t, 0x0303, tr.TLSClientConfig.MinVersion, "TLS 1.2 minimum")

	off := builtinDefaults().Transport
	off.DisableHTTP2 = Bool(true)
	off.MaxConnsPerHost = 7
	tr2 := newHTTPTransport(off, nil)
	assert.False(t, tr2.ForceAttemptHTTP2)
	assert.NotNil(t, tr2.TLSNextProto, "a non-nil empty map turns HTTP/2 off")
	assert.Empty(t, tr2.TLSNextProto)
	assert.Equal(t, 7, tr2.MaxConnsPerHost)
}

func TestEndpointsDoNotShareTransports(t *testing.T) {
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"a.test": {}, "b.test": {}}})
	tbl := m.table.Load()
	// Pools are built on an endpoint's first call (issue 8: idle
	// endpoints stay small); roundTripper builds them.
	for _, ep := range []*endpoint{tbl.byKey["a.test"], tbl.byKey["b.test"], tbl.def} {
		require.Nil(t, ep.pool(), "no pool before the first call")
		ep.roundTripper()
	}
	assert.NotSame(t, tbl.byKey["a.test"].pool(), tbl.byKey["b.test"].pool())
	assert.NotSame(t, tbl.byKey["a.test"].pool(), tbl.def.pool())
}

func TestStatsRecordDoesNotAllocate(t *testing.T) {
	var s endpointStats
	allocs := testing.AllocsPerRun(1000, func() { s.record(200, false, time.Millisecond) })
	assert.Zero(t, allocs)
}

func TestLocallyRefusedCallsStayOutOfLatency(t *testing.T) {
	m := newTestManager(t, Config{})
	m.OnRequest(func(*RequestContext) error { return errors.New("refused before sending") })
	for i := 0; i < 5; i++ {
		_, err := get(t, m, "http://127.0.0.1:1/")
		require.Error(t, err)
	}
	st := m.Stats().Endpoints["default"]
	assert.EqualValues(t, 5, st.Failures)
	assert.Zero(t, st.P50, "no network time to measure")
}

func TestRetiredPoolsAreForgottenAfterTheirGrace(t *testing.T) {
	m := newTestManager(t, Config{})
	var clock atomic.Int64
	base := time.Now()
	m.now = func() time.Time { return base.Add(time.Duration(clock.Load())) }
	m.realClock = false
	for i := 0; i < 50; i++ {
		m.table.Load().def.roundTripper() // a pool exists once the endpoint was used (built lazily)
		require.NoError(t, m.Reload(Config{Default: EndpointConfig{Timeout: time.Duration(i+1) * time.Second}}))
	}
	m.reloadMu.Lock()
	assert.Len(t, m.retired, 50, "within the grace every replaced pool is kept")
	m.reloadMu.Unlock()

	clock.Store(int64(3 * time.Hour))
	m.table.Load().def.roundTripper()
	require.NoError(t, m.Reload(Config{}))
	m.reloadMu.Lock()
	assert.Len(t, m.retired, 1, "past the grace only the pool just replaced is left")
	m.reloadMu.Unlock()
}
