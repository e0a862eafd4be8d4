package retryablehttpadapter_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/retryablehttpadapter"
	"github.com/hashicorp/go-retryablehttp"
)

// A retryablehttp policy, converted, decides what is worth another try;
// whether a retry is safe stays the Manager's. Use it with
// connmgr.WithRetryPolicy.
func ExampleRetryPolicy() {
	policy := retryablehttpadapter.RetryPolicy(retryablehttp.DefaultRetryPolicy)
	// m, err := connmgr.New(cfg, connmgr.WithRetryPolicy(policy))
	for _, code := range []int{200, 408, 429, 501, 503, 505} {
		retry, err := policy(context.Background(), &http.Response{StatusCode: code, Header: http.Header{}}, nil)
		fmt.Println(code, retry, err)
	}
	// Output:
	// 200 false <nil>
	// 408 false <nil>
	// 429 true <nil>
	// 501 false <nil>
	// 503 true <nil>
	// 505 true <nil>
}

// A retryablehttp backoff, converted: connmgr's first retry is
// retryablehttp's attempt 0, and a Retry-After is left to the Manager,
// which caps it with max_retry_after. Use it with connmgr.WithBackoff.
func ExampleBackoff() {
	backoff := retryablehttpadapter.Backoff(retryablehttp.DefaultBackoff)
	// m, err := connmgr.New(cfg, connmgr.WithBackoff(backoff))
	busy := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"3600"}}}
	fmt.Println("retryablehttp:", retryablehttp.DefaultBackoff(100*time.Millisecond, 5*time.Second, 0, busy))
	for attempt := 1; attempt <= 3; attempt++ {
		fmt.Println("connmgr retry", attempt, backoff(100*time.Millisecond, 5*time.Second, attempt, busy))
	}
	// Output:
	// retryablehttp: 1h0m0s
	// connmgr retry 1 100ms
	// connmgr retry 2 200ms
	// connmgr retry 3 400ms
}

// A Manager with retryablehttp's DefaultRetryPolicy and
// LinearJitterBackoff: a GET that got a 505 (which retryablehttp retries
// and connmgr's default does not) is retried; a POST that got a 503 is
// still sent once, as it carries no Idempotency-Key.
func Example() {
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if n == 1 {
			return connmgrtest.Step{Status: http.StatusHTTPVersionNotSupported}
		}
		if r.Method == http.MethodPost {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable}
		}
		return connmgrtest.Step{Body: "ok"}
	})
	defer srv.Close()
	m, err := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
	}},
		connmgr.WithRetryPolicy(retryablehttpadapter.RetryPolicy(retryablehttp.DefaultRetryPolicy)),
		connmgr.WithBackoff(retryablehttpadapter.Backoff(retryablehttp.LinearJitterBackoff)),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	resp, err := m.Get(context.Background(), srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()
	fmt.Println("GET:", resp.StatusCode, "after", srv.Count(), "attempts")

	resp, err = m.Post(context.Background(), srv.URL, "application/json", strings.NewReader(`{"amount":100}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()
	fmt.Println("POST:", resp.StatusCode, "sent", srv.Count()-2, "time")
	// Output:
	// GET: 200 after 2 attempts
	// POST: 503 sent 1 time
}
