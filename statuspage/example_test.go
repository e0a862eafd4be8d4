package statuspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
