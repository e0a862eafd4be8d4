// Command primary_fallback shows EndpointConfig.Fallback, the Go version
// of the seed's create_fallback_manager / fetch_with_fallback: no
// try/except around every call, the Manager itself sends a call to the
// fallback endpoint when the primary cannot take it.
//
// The primary fails; after three failures its breaker opens, and from
// then on calls go to the fallback endpoint (same path and query, the
// fallback's own timeouts, retries, headers and breaker) without touching
// the primary. A concurrency cap that is full diverts the same way. Both
// are counted in Stats (EndpointStats.Fallbacks).
//
// Run it with
//
//	go run ./examples/primary_fallback
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "primary_fallback:", err)
		os.Exit(1)
	}
}

func run() error {
	primary := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusInternalServerError, Body: "primary is down"})
	defer primary.Close()
	fallback := connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		return connmgrtest.Step{Body: "fallback answered " + r.URL.RequestURI() + " (tenant " + r.Header.Get("X-Tenant") + ")"}
	})
	defer fallback.Close()

	// In production these keys would be "api.primary.com" and
	// "api.fallback.com"; here they are the two loopback servers.
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		primary.Addr(): {
			Timeout:        10 * time.Second,
			Retry:          connmgr.RetryConfig{MaxAttempts: 1},
			CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 3, RecoveryTimeout: 30 * time.Second},
			Fallback:       fallback.Addr(),
		},
		fallback.Addr(): {
			Timeout:        20 * time.Second,
			Headers:        map[string]string{"X-Tenant": "acme"},
			CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 10, RecoveryTimeout: time.Minute}, // more tolerant
		},
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	for i := 1; i <= 5; i++ {
		resp, err := m.Get(context.Background(), fmt.Sprintf("%s/v1/resource/%d", primary.URL, i))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Printf("call %d: %d %s\n", i, resp.StatusCode, body)
	}
	st := m.Stats()
	fmt.Printf("primary: %d requests reached it, breaker %s, %d calls sent to the fallback\n",
		primary.Count(), st.Endpoints[primary.Addr()].Breaker.State, st.Endpoints[primary.Addr()].Fallbacks)
	fmt.Printf("fallback: %d calls, %d successes\n",
		st.Endpoints[fallback.Addr()].Requests, st.Endpoints[fallback.Addr()].Successes)
	return nil
}
