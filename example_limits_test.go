package connmgr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// A listener turns breaker state changes into alerts. It runs outside
// every lock, in order, and may call the Manager.
func ExampleWithStateListener() {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer upstream.Close()

	m, _ := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 2},
	}}, connmgr.WithStateListener(func(c connmgr.StateChange) {
		fmt.Printf("breaker %s -> %s after: %v\n", c.From, c.To, c.Err)
	}))
	defer m.Close()

	for i := 0; i < 3; i++ {
		resp, err := m.Get(context.Background(), upstream.URL)
		if err != nil {
			fmt.Println("error:", errors.Is(err, connmgr.ErrCircuitOpen))
			continue
		}
		_ = resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println("requests sent:", upstream.Count())
	// Output:
	// 503
	// breaker closed -> open after: upstream answered Service Unavailable (503)
	// 503
	// error: true
	// requests sent: 2
}

// An open breaker fails calls at once; the typed error says when the
// next probe goes through.
func ExampleCircuitOpenError() {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusBadGateway})
	defer upstream.Close()

	m, _ := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Minute},
	}})
	defer m.Close()

	resp, _ := m.Get(context.Background(), upstream.URL)
	_ = resp.Body.Close()
	_, err := m.Get(context.Background(), upstream.URL)
	var open *connmgr.CircuitOpenError
	if errors.As(err, &open) {
		fmt.Println("state:", open.State)
		fmt.Println("next probe within a minute:", open.RetryIn > 59*time.Second && open.RetryIn <= time.Minute)
		fmt.Println("opened by:", open.LastErr)
	}
	fmt.Println("breaker in Stats:", m.Stats().Endpoints["default"].Breaker.State)
	// Output:
	// state: open
	// next probe within a minute: true
	// opened by: upstream answered Bad Gateway (502)
	// breaker in Stats: open
}

// One bucket per user: each X-User-ID gets its own limit, and requests
// without the header share the endpoint's bucket.
func ExampleRateLimitConfig_perUser() {
	upstream := connmgrtest.NewServer()
	defer upstream.Close()

	m, _ := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		upstream.Addr(): {RateLimit: connmgr.RateLimitConfig{Rate: 2, Per: time.Minute, Burst: 2, Key: "header:X-User-ID"}},
	}})
	defer m.Close()

	for _, user := range []string{"alice", "alice", "alice", "bob"} {
		req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
		req.Header.Set("X-User-ID", user)
		resp, err := m.Do(req)
		if errors.Is(err, connmgr.ErrRateLimited) {
			fmt.Println(user, "rate limited")
			continue
		}
		_ = resp.Body.Close()
		fmt.Println(user, resp.StatusCode)
	}
	// Output:
	// alice 200
	// alice 200
	// alice rate limited
	// bob 200
}

// When the primary's breaker is open, calls go to the fallback endpoint,
// with its own policies, and the primary is not touched.
func ExampleEndpointConfig_fallback() {
	primary := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusInternalServerError})
	defer primary.Close()
	secondary := connmgrtest.NewServer(connmgrtest.Step{Body: "from the fallback"})
	defer secondary.Close()

	m, _ := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		primary.Addr(): {
			Retry:          connmgr.RetryConfig{MaxAttempts: 1},
			CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 1},
			Fallback:       secondary.Addr(),
		},
		secondary.Addr(): {},
	}})
	defer m.Close()

	for i := 0; i < 2; i++ {
		resp, err := m.Get(context.Background(), primary.URL+"/v1/price")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Printf("%d %q\n", resp.StatusCode, body)
	}
	fmt.Println("fallbacks:", m.Stats().Endpoints[primary.Addr()].Fallbacks)
	// Output:
	// 500 ""
	// 200 "from the fallback"
	// fallbacks: 1
}
