package statuspage_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/statuspage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a live Manager with a failing upstream whose breaker is
// open and a healthy one, and secrets in its config and its URLs.
type fixture struct {
	m         *connmgr.Manager
	bad, good *connmgrtest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		bad:  connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "down"}),
		good: connmgrtest.NewServer(),
	}
	t.Cleanup(f.bad.Close)
	t.Cleanup(f.good.Close)
	one := connmgr.RetryConfig{MaxAttempts: 1}
	cfg := connmgr.Config{
		Endpoints: map[string]connmgr.EndpointConfig{
			f.bad.Addr(): {Retry: one, CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: time.Minute},
				Auth: connmgr.AuthConfig{BearerToken: "tok-secret-456"}},
			f.good.Addr(): {Retry: one, Headers: map[string]string{"X-Internal-Secret": "hdr-secret-789"}},
		},
		Redact: connmgr.RedactConfig{Headers: []string{"X-Internal-Secret"}, QueryKeys: []string{"token"}},
	}
	m, err := connmgr.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	f.m = m
	call := func(u string) {
		resp, err := m.Get(context.Background(), u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	for range 3 {
		call("http://user:pw-secret-123@" + f.bad.Addr() + "/v1?token=q-secret-000")
	}
	for range 5 {
		call(f.good.URL + "/v1/ok")
	}
	require.Equal(t, connmgr.BreakerOpen, m.Stats().Endpoints[f.bad.Addr()].Breaker.State, "the fixture's breaker is open")
	return f
}

var secrets = []string{"tok-secret-456", "hdr-secret-789", "pw-secret-123", "q-secret-000"}

func get(t *testing.T, h http.Handler, target string, accept string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result(), rec.Body.String()
}

func TestHTMLShowsTheOpenBreakerAndTheDownUpstream(t *testing.T) {
	f := newFixture(t)
	resp, body := get(t, statuspage.Handler(f.m), "/", "text/html")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Regexp(t, `^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]{43}='; `, csp)
	assert.NotContains(t, csp, "unsafe")
	assert.NotContains(t, body, "<script", "no script at all")
	assert.NotRegexp(t, `(src|href)="(https?:)?//`, body, "no external asset")
	assert.Contains(t, body, `<meta http-equiv="refresh" content="5">`)

	assert.Contains(t, body, "Endpoint "+f.bad.Addr()+` <span class="badge state-open" title="circuit breaker">breaker open</span>`)
	assert.Regexp(t, `(?s)data-upstream="`+regexp.QuoteMeta(f.bad.Addr())+`">.*?status-down">down<.*?state-open">open<.*?in (\d+m)?\d+s<.*?Service Unavailable`, body)
	assert.Contains(t, body, "Endpoint "+f.good.Addr()+` <span class="badge state-closed"`)
	assert.Contains(t, body, "200×5")
	assert.Regexp(t, `(?s)Endpoint `+regexp.QuoteMeta(f.good.Addr())+`.*?requests/s \(last \d+s\)</span> [1-9][\d.]*<.*?error rate \(last \d+s\)</span> <span class="">0\.0%<.*?p99 \(last minute\)</span> \d`, body)
	assert.Contains(t, body, "503×2")
	assert.Contains(t, body, "bearer_token: REDACTED")
	for _, s := range secrets {
		assert.NotContains(t, body, s)
	}
}

func TestJSONByAcceptOrQuery(t *testing.T) {
	f := newFixture(t)
	h := statuspage.Handler(f.m)
	for _, tc := range []struct{ target, accept string }{
		{"/?format=json", ""},
		{"/", "application/json"},
		{"/", "text/html;q=0.5, application/json"},
	} {
		resp, body := get(t, h, tc.target, tc.accept)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %q", tc.target, tc.accept)
		var p struct {
			Uptime int64         `json:"uptime_ns"`
			Stats  connmgr.Stats `json:"stats"`
			Config struct {
				Endpoints map[string]map[string]any `json:"endpoints"`
			} `json:"config"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &p), body)
		es := p.Stats.Endpoints[f.bad.Addr()]
		require.NotNil(t, es.Breaker)
		assert.Equal(t, connmgr.BreakerOpen, es.Breaker.State)
		good := p.Stats.Endpoints[f.good.Addr()]
		assert.Equal(t, uint64(5), good.StatusCodes[200])
		require.NotNil(t, good.Window, "the last minute")
		assert.Equal(t, uint64(5), good.Window.Requests)
		assert.Greater(t, good.Window.P50, time.Duration(0))
		assert.Contains(t, p.Config.Endpoints, f.bad.Addr())
		assert.Greater(t, p.Uptime, int64(0))
		for _, s := range secrets {
			assert.NotContains(t, body, s)
		}
	}
	_, body := get(t, h, "/?format=html", "application/json")
	assert.True(t, strings.HasPrefix(body, "<!DOCTYPE html>"), "?format wins over Accept")
}

func TestReadOnly(t *testing.T) {
	m, err := connmgr.New(connmgr.Config{})
	require.NoError(t, err)
	defer m.Close()
	rec := httptest.NewRecorder()
	statuspage.Handler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}
