// Command retry_on_429 shows how connmgr deals with "429 Too Many
// Requests" and Retry-After, and an error hook that decides about
// retrying.
//
// It is the seed's retry_on_rate_limit_hook ("Creating Custom Plugins" in
// requests-connection-manager's advanced guide), done properly. The seed's
// hook slept inside the hook, blocking its thread with no way to cancel,
// then set error_context.handled = True, which retried nothing. Here:
//
//   - Retry-After is honoured out of the box, in both of its forms
//     (seconds or an HTTP-date), capped by retry.max_retry_after and by
//     the call's deadline; the Manager waits, and the wait ends if the
//     context does;
//   - an error hook reads ErrorContext.RetryAfter and sets
//     ErrorContext.Retry, and the Manager really makes another attempt
//     (still bounded by max_attempts, the deadline and the retry budget).
//     The hook here retries a POST after a 429, which the default policy
//     does not (a POST is not idempotent), because a 429 says the server
//     did not act on the request; and it gives up when the server asks
//     for a longer wait than the caller can afford.
//
// Run it with
//
//	go run ./examples/retry_on_429
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// maxWait is the longest Retry-After the hook lets a POST wait for.
const maxWait = 3 * time.Second

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{
			Retry: connmgr.RetryConfig{
				MaxAttempts:    3,
				InitialBackoff: 10 * time.Millisecond,
				MaxRetryAfter:  10 * time.Second, // a longer Retry-After is returned to the caller as is
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// 1. Out of the box: a GET that gets 429 Retry-After: 1 waits a
	// second and tries again. No hook involved.
	fmt.Println("1. GET, no hook:")
	limited := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusTooManyRequests, RetryAfter: time.Second},
		connmgrtest.Step{Body: `{"items":[1,2,3]}`},
	)
	defer limited.Close()
	start := time.Now()
	resp, err := m.Get(ctx, limited.URL+"/v1/items")
	if err != nil {
		log.Fatal(err)
	}
	body := readAll(resp)
	fmt.Printf("   %s %s after %d attempts in %.1fs: connmgr waited out Retry-After: 1 by itself\n",
		resp.Status, body, limited.Count(), time.Since(start).Seconds())

	// 2. An error hook that retries a POST on 429, honouring Retry-After.
	m.OnError(func(c *connmgr.ErrorContext) error {
		if c.Response == nil || c.Response.StatusCode != http.StatusTooManyRequests {
			return nil // not ours: leave the policy's decision alone
		}
		fmt.Printf("   hook: attempt %d of %s %s got 429, Retry-After %v; policy says retry=%v\n",
			c.Attempt, c.Request.Method, c.Request.URL.Path, c.RetryAfter, c.Retry)
		if c.RetryAfter > maxWait {
			c.Retry = false
			fmt.Printf("   hook: %v is longer than we can wait: give up, the caller gets the 429\n", c.RetryAfter)
			return nil
		}
		// The server did not act on a request it answered 429, so sending
		// it again is safe, POST or not.
		c.Retry = true
		if c.RetryAfter == 0 {
			c.RetryAfter = 500 * time.Millisecond // no hint: wait a little anyway
		}
		fmt.Printf("   hook: 429 means the order was not taken: retry after %v\n", c.RetryAfter)
		return nil
	})

	fmt.Println("2. POST with the hook, the server asks for 1s:")
	orders := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusTooManyRequests, RetryAfter: time.Second},
		connmgrtest.Step{Status: http.StatusCreated, Body: `{"order":42}`},
	)
	defer orders.Close()
	start = time.Now()
	resp, err = m.Post(ctx, orders.URL+"/v1/orders", "application/json", strings.NewReader(`{"sku":"A-1"}`))
	if err != nil {
		log.Fatal(err)
	}
	body = readAll(resp)
	got := orders.Requests()
	fmt.Printf("   %s %s after %d attempts in %.1fs; the upstream got the same body both times: %v\n",
		resp.Status, body, len(got), time.Since(start).Seconds(), len(got) == 2 && string(got[0].Body) == string(got[1].Body))

	fmt.Println("3. POST with the hook, the server asks for 60s:")
	busy := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusTooManyRequests, RetryAfter: time.Minute})
	defer busy.Close()
	resp, err = m.Post(ctx, busy.URL+"/v1/orders", "application/json", strings.NewReader(`{"sku":"A-1"}`))
	if err != nil {
		log.Fatal(err)
	}
	readAll(resp)
	fmt.Printf("   %s after %d attempt, at once: a final 429 is a response, as in net/http (Retry-After: %s)\n",
		resp.Status, busy.Count(), resp.Header.Get("Retry-After"))
}

// readAll reads and closes resp's body.
func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	return string(b)
}
