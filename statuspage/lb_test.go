package statuspage_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/statuspage"
)

// lbFixture is a live Manager whose endpoint "payments" balances over a
// good upstream, a sick one (it fails its health checks: unhealthy) and
// a flaky one (it passes them but answers 503: ejected).
type lbFixture struct {
	m                  *connmgr.Manager
	good, sick, flaky  *connmgrtest.Server
	goodU, sickU, flkU string
}

func newLBFixture(t *testing.T) *lbFixture {
	t.Helper()
	f := &lbFixture{
		good: connmgrtest.NewServer(),
		sick: connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable}),
		flaky: connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
			if r.URL.Path == "/health" {
				return connmgrtest.Step{}
			}
			return connmgrtest.Step{Status: http.StatusServiceUnavailable}
		}),
	}
	for _, s := range []*connmgrtest.Server{f.good, f.sick, f.flaky} {
		t.Cleanup(s.Close)
	}
	f.goodU, f.sickU, f.flkU = f.good.URL, f.sick.URL, f.flaky.URL
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"payments": {
			Upstreams:        []connmgr.UpstreamConfig{{URL: f.good.URL}, {URL: f.sick.URL}, {URL: f.flaky.URL}},
			Retry:            connmgr.RetryConfig{MaxAttempts: 1},
			Auth:             connmgr.AuthConfig{BearerToken: "tok-secret-456"},
			HealthCheck:      connmgr.HealthCheckConfig{Path: "/health", Interval: time.Second, UnhealthyThreshold: 1},
			OutlierDetection: connmgr.OutlierConfig{Consecutive5xx: 2, ConsecutiveGatewayFailure: 2, MaxEjectionPercent: 50},
			PanicThreshold:   -1,
		},
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	f.m = m
	usable := func(want int) connmgr.EndpointHealth {
		var eh connmgr.EndpointHealth
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			eh = m.Health().Endpoints["payments"]
			if eh.Usable == want && eh.Upstreams[0].Status == connmgr.HealthHealthy && eh.Upstreams[2].Status == connmgr.HealthHealthy {
				break
			}
		}
		return eh
	}
	require.Equal(t, connmgr.HealthUnhealthy, usable(2).Upstreams[1].Status, "the sick upstream failed its first check")
	for i := 0; i < 50 && !m.Health().Endpoints["payments"].Upstreams[2].Ejected; i++ {
		resp, err := m.Get(context.Background(), "http://payments/v1/charge")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	require.True(t, m.Health().Endpoints["payments"].Upstreams[2].Ejected, "the flaky upstream is ejected")
	return f
}

// row returns the HTML of the upstream table row of up.
func row(t *testing.T, body, up string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<tr class="upstream" data-upstream="` + regexp.QuoteMeta(up) + `">.*?</tr>`)
	r := re.FindString(body)
	require.NotEmpty(t, r, "a row for %s", up)
	return r
}

func TestHTMLShowsUpstreamHealthAndEjections(t *testing.T) {
	f := newLBFixture(t)
	resp, body := get(t, statuspage.Handler(f.m), "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	assert.Contains(t, body, `<p id="health-overall">overall <span class="badge health-degraded">degraded</span></p>`)
	assert.Regexp(t, `(?s)<tr data-endpoint="payments">.*?health-degraded">degraded<.*?1 of 3<`, body)
	assert.Contains(t, body, `Endpoint payments <span class="badge state-closed" title="circuit breaker">breaker closed</span> <span class="badge health-degraded" title="health of its upstreams">health degraded</span>`)

	good := row(t, body, f.goodU)
	assert.Contains(t, good, `status-up">up<`)
	assert.Contains(t, good, `health-healthy">healthy<`)
	assert.Regexp(t, `<td>\d[\d.]*[µm]?s ago</td>`, good, "last check")
	assert.Regexp(t, `<td class="num">\d[\d.]*[µm]?s</td>`, good, "EWMA latency")
	assert.Regexp(t, `<td class="">no</td>\s*<td class="num">0</td>\s*<td class="num">0</td>`, good, "not ejected, never ejected, nothing in flight")

	sick := row(t, body, f.sickU)
	assert.Contains(t, sick, `status-down">down<`, "an unhealthy upstream is down")
	assert.Contains(t, sick, `health-unhealthy">unhealthy<`)
	assert.Contains(t, sick, `<td class="err">status 503</td>`, "the failed check's reason")

	flaky := row(t, body, f.flkU)
	assert.Contains(t, flaky, `status-down">down<`, "an ejected upstream is down")
	assert.Contains(t, flaky, `health-healthy">healthy<`, "its checks pass")
	assert.Regexp(t, `<td class="err">yes, for (2\d|30)s</td>\s*<td class="num">1</td>`, flaky, "ejected now, once so far")
	for _, s := range secrets {
		assert.NotContains(t, body, s)
	}
}

func TestJSONHasUpstreamHealthAndEjections(t *testing.T) {
	f := newLBFixture(t)
	_, body := get(t, statuspage.Handler(f.m), "/?format=json", "")
	var p struct {
		Health connmgr.HealthReport `json:"health"`
		Stats  struct {
			Endpoints map[string]struct {
				Upstreams []struct {
					Upstream  string `json:"upstream"`
					Health    string `json:"health"`
					Ejected   bool   `json:"ejected"`
					Ejections uint64 `json:"ejections"`
					InFlight  *int64 `json:"in_flight"`
					Latency   int64  `json:"latency_ewma_ns"`
				} `json:"upstreams"`
			} `json:"endpoints"`
		} `json:"stats"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p), body)
	assert.Equal(t, connmgr.HealthDegraded, p.Health.Overall)
	ups := p.Health.Endpoints["payments"].Upstreams
	require.Len(t, ups, 3)
	assert.Equal(t, f.sickU, ups[1].Upstream)
	assert.Equal(t, connmgr.HealthUnhealthy, ups[1].Status)
	assert.Equal(t, "status 503", ups[1].LastError)
	assert.False(t, ups[1].LastCheck.IsZero())
	assert.True(t, ups[2].Ejected)
	assert.True(t, ups[2].EjectedUntil.After(time.Now()))
	st := p.Stats.Endpoints["payments"].Upstreams
	require.Len(t, st, 3)
	assert.Equal(t, "unhealthy", st[1].Health)
	assert.True(t, st[2].Ejected)
	assert.EqualValues(t, 1, st[2].Ejections)
	require.NotNil(t, st[0].InFlight)
	assert.Positive(t, st[0].Latency)
	assert.Contains(t, body, `"health": "healthy"`, "statuses are names in JSON")
	for _, s := range secrets {
		assert.NotContains(t, body, s)
	}
}
