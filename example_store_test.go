package connmgr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/connmgr/connmgr"
)

// Two Managers share one rate limit through a store: `scope: fleet`.
// The in-memory store shares it inside one process; redisstore shares it
// between processes.
func ExampleNewMemoryRateLimitStore() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	store := connmgr.NewMemoryRateLimitStore()
	cfg := connmgr.Config{Default: connmgr.EndpointConfig{
		RateLimit: connmgr.RateLimitConfig{Rate: 2, Per: time.Hour, Burst: 2, Scope: "fleet"},
	}}
	a, _ := connmgr.New(cfg, connmgr.WithRateLimitStore(store))
	defer a.Close()
	b, _ := connmgr.New(cfg, connmgr.WithRateLimitStore(store))
	defer b.Close()
	for _, m := range []*connmgr.Manager{a, b, a} {
		resp, err := m.Get(context.Background(), srv.URL)
		if errors.Is(err, connmgr.ErrRateLimited) {
			fmt.Println("rate limited: the fleet's two tokens are spent")
			continue
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	// Output:
	// 200
	// 200
	// rate limited: the fleet's two tokens are spent
}
