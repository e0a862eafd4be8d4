package retryablehttpadapter_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

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
