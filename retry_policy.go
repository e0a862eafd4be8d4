package connmgr

import (
	"context"
	"net/http"
	"time"
)

// RetryPolicy decides whether an attempt that got resp or err failed in a
// way worth another try. It has the shape of go-retryablehttp's
// CheckRetry, so a retryablehttp policy converts directly. It decides only
// what is retryable: whether a retry is safe (idempotent method or
// Idempotency-Key, a replayable body), the attempts left, the retry budget
// and the deadline are still the Manager's, so a policy cannot make it
// retry a POST. A non-nil error ends the call with it.
type RetryPolicy func(ctx context.Context, resp *http.Response, err error) (bool, error)

// BackoffFunc returns the wait before the attempt after attempt (1 for
// the first retry... see WithBackoff), given the endpoint's initial and
// maximum backoff and the failing response (nil for an error). It has the
// shape of go-retryablehttp's Backoff. A Retry-After longer than its
// answer still wins, up to max_retry_after.
type BackoffFunc func(min, max time.Duration, attempt int, resp *http.Response) time.Duration

// WithRetryPolicy replaces the classification of failures worth a retry,
// for every endpoint, or only for the endpoints named (keys as in the
// config; New fails when one names no configured endpoint).
func WithRetryPolicy(p RetryPolicy, endpoints ...string) Option {
	return optionFunc(func(o *options) {
		if len(endpoints) == 0 {
			o.retryPolicy = p
			return
		}
		if o.endpointRetryPolicy == nil {
			o.endpointRetryPolicy = map[string]RetryPolicy{}
		}
		for _, e := range endpoints {
			o.endpointRetryPolicy[e] = p
		}
	})
}

// WithBackoff replaces full-jitter exponential backoff, for every
// endpoint, or only for the endpoints named (keys as in the config; New
// fails when one names no configured endpoint).
func WithBackoff(b BackoffFunc, endpoints ...string) Option {
	return optionFunc(func(o *options) {
		if len(endpoints) == 0 {
			o.backoff = b
			return
		}
		if o.endpointBackoff == nil {
			o.endpointBackoff = map[string]BackoffFunc{}
		}
		for _, e := range endpoints {
			o.endpointBackoff[e] = b
		}
	})
}
