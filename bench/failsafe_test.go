package bench

import (
	"net/http"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
)

// newFailsafe is failsafe-go's failsafehttp RoundTripper with its HTTP
// retry policy (2 retries) around a circuit breaker that, like
// connmgr's default, opens after 5 consecutive failures (transport errors
// or 5xx) and probes again after 30s.
func newFailsafe(_ testing.TB, rt http.RoundTripper) *client {
	retry := failsafehttp.NewRetryPolicyBuilder().
		WithMaxRetries(2).
		Build()
	breaker := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(resp *http.Response, err error) bool {
			return err != nil || resp.StatusCode >= http.StatusInternalServerError
		}).
		WithFailureThreshold(5).
		WithDelay(30 * time.Second).
		Build()
	hc := &http.Client{Transport: failsafehttp.NewRoundTripper(rt, retry, breaker)}
	return &client{
		fetch: func(url string) error { return get(hc, url) },
		// failsafehttp's RoundTripper does not forward
		// CloseIdleConnections, so close the base transport's directly.
		close: func() { closeIdle(rt) },
	}
}

// closeIdle closes rt's idle connections if it keeps any.
func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
