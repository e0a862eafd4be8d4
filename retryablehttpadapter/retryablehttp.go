// Package retryablehttpadapter lets a team moving from
// github.com/hashicorp/go-retryablehttp keep its retry policies: a
// retryablehttp.CheckRetry becomes a connmgr.RetryPolicy and a
// retryablehttp.Backoff a connmgr.BackoffFunc, for connmgr.WithRetryPolicy
// and connmgr.WithBackoff. See docs/migrating-from-retryablehttp.md.
//
// # The model
//
// A CheckRetry decides what is worth another try; in connmgr it decides
// nothing more. Whether a retry is safe (an idempotent method, an
// Idempotency-Key, a replayable body), the attempts left, the retry
// budget, the deadline and Retry-After stay the Manager's. So a
// retryablehttp policy that would retry a POST does not make connmgr
// retry it, and a Retry-After of an hour is still capped by the
// endpoint's max_retry_after.
//
// The conversions keep retryablehttp's meaning where connmgr's differs:
//
//   - RetryPolicy: retryablehttp ignores the error a CheckRetry returns
//     when it says to retry (ErrorPropagatedRetryPolicy returns one for
//     every 5xx), and ends the call with it otherwise; connmgr ends the
//     call on any error. The policy converted retries with no error, and
//     passes the error on only when it does not retry.
//   - Backoff: retryablehttp counts retries from 0, connmgr from 1; the
//     number is shifted. retryablehttp's DefaultBackoff and
//     RateLimitLinearJitterBackoff return the Retry-After of a 429 or 503
//     unbounded; the converted backoff sees the response without its
//     Retry-After, so the Manager alone honours it, capped.
package retryablehttpadapter

import (
	"context"
	"net/http"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/hashicorp/go-retryablehttp"
)

// RetryPolicy converts a retryablehttp CheckRetry (such as
// retryablehttp.DefaultRetryPolicy) to a connmgr.RetryPolicy. A nil
// check gives nil (connmgr's own classification).
func RetryPolicy(check retryablehttp.CheckRetry) connmgr.RetryPolicy {
	if check == nil {
		return nil
	}
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		retry, checkErr := check(ctx, resp, err)
		if retry {
			return true, nil
		}
		return false, checkErr
	}
}

// Backoff converts a retryablehttp Backoff (such as
// retryablehttp.LinearJitterBackoff) to a connmgr.BackoffFunc. min and
// max are the endpoint's initial_backoff and max_backoff (retryablehttp's
// RetryWaitMin and RetryWaitMax). A nil b gives nil (connmgr's full-jitter
// exponential backoff).
func Backoff(b retryablehttp.Backoff) connmgr.BackoffFunc {
	if b == nil {
		return nil
	}
	return func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
		return b(lo, hi, max(attempt-1, 0), withoutRetryAfter(resp))
	}
}

// withoutRetryAfter returns resp, or a shallow copy of it without a
// Retry-After header: the Manager honours Retry-After itself, capped by
// max_retry_after, which a backoff that returns it raw would bypass.
func withoutRetryAfter(resp *http.Response) *http.Response {
	if resp == nil || resp.Header.Get("Retry-After") == "" {
		return resp
	}
	cp := *resp
	cp.Header = resp.Header.Clone()
	cp.Header.Del("Retry-After")
	return &cp
}
