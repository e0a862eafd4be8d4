package bench

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// newGobreakerRate is what a careful engineer assembles by hand instead of
// a library: breakerLimiterTransport with an unlimited limiter and a
// breaker set like connmgr's default.
func newGobreakerRate(_ testing.TB, rt http.RoundTripper) *client {
	tr := &breakerLimiterTransport{
		next:    rt,
		limiter: rate.NewLimiter(rate.Inf, 0),
		breaker: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:    "bench",
			Timeout: 30 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= 5
			},
		}),
	}
	hc := &http.Client{Transport: tr}
	return &client{
		fetch: func(url string) error { return get(hc, url) },
		close: hc.CloseIdleConnections,
	}
}

// breakerLimiterTransport waits for the rate limiter, asks the breaker for
// a permit, and reports each attempt's outcome (a transport error or a
// 5xx is a failure) exactly once, even if next panics. It adds no
// allocation of its own: no request clone and no body wrapper, because
// the outcome is known when RoundTrip returns. gobreaker's Allow
// allocates the done closure it returns.
type breakerLimiterTransport struct {
	next    http.RoundTripper
	limiter *rate.Limiter
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
}

var _ http.RoundTripper = (*breakerLimiterTransport)(nil)

var (
	errUpstreamStatus = errors.New("bench: upstream answered 5xx")
	errAborted        = errors.New("bench: round trip aborted")
)

func (t *breakerLimiterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.limiter.Wait(req.Context()); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	done, err := t.breaker.Allow()
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	outcome := errAborted
	defer func() { done(outcome) }()
	resp, err := t.next.RoundTrip(req)
	switch {
	case err != nil:
		outcome = err
	case resp.StatusCode >= http.StatusInternalServerError:
		outcome = errUpstreamStatus
	default:
		outcome = nil
	}
	return resp, err
}

// CloseIdleConnections forwards to the base transport.
func (t *breakerLimiterTransport) CloseIdleConnections() { closeIdle(t.next) }

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
