package statuspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/statuspage"
)

// Mount the page on an admin mux; ask for JSON with ?format=json.
func ExampleHandler() {
	up := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer up.Close()
	m, _ := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		up.Addr(): {Retry: connmgr.RetryConfig{MaxAttempts: 1},
			CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: time.Minute}},
	}})
	defer m.Close()
	for range 2 {
		if resp, err := m.Get(context.Background(), up.URL); err == nil {
			_ = resp.Body.Close()
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/connmgr/", http.StripPrefix("/connmgr", statuspage.Handler(m)))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/connmgr/?format=json", nil))

	var page statuspage.Page
	_ = json.Unmarshal(rec.Body.Bytes(), &page)
	es := page.Stats.Endpoints[up.Addr()]
	fmt.Println(rec.Header().Get("Content-Type"))
	fmt.Println("breaker:", es.Breaker.State, "calls in the last minute:", es.Window.Requests, "failed:", es.Window.Failures)
	// Output:
	// application/json
	// breaker: open calls in the last minute: 2 failed: 2
}

// For an endpoint with upstreams, the page has Manager.Health: the
// overall status and each upstream's, with its last check and error.
func ExampleHandler_health() {
	ok := connmgrtest.NewServer()
	defer ok.Close()
	sick := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer sick.Close()
	m, _ := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"payments": {
			Upstreams:   []connmgr.UpstreamConfig{{URL: ok.URL}, {URL: sick.URL}},
			HealthCheck: connmgr.HealthCheckConfig{Path: "/health", Interval: time.Second, UnhealthyThreshold: 1},
		},
	}})
	defer m.Close()
	// The first round of checks runs as the Manager starts.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if h := m.Health().Endpoints["payments"]; h.Usable == 1 && h.Upstreams[0].Status == connmgr.HealthHealthy {
			break
		}
	}

	rec := httptest.NewRecorder()
	statuspage.Handler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?format=json", nil))
	var page statuspage.Page
	_ = json.Unmarshal(rec.Body.Bytes(), &page)
	eh := page.Health.Endpoints["payments"]
	fmt.Println("overall:", page.Health.Overall, "payments:", eh.Status, eh.Usable, "of", eh.Total, "usable")
	for i, u := range eh.Upstreams {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("upstream %d: %s %s", i+1, u.Status, u.LastError)))
	}
	// Output:
	// overall: degraded payments: degraded 1 of 2 usable
	// upstream 1: healthy
	// upstream 2: unhealthy status 503
}
