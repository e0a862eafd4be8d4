package connmgr

import (
	"context"
	"net/http"
	"time"
)

// This file records the OpenTelemetry metrics from the pipeline itself,
// without an observer: the observer dispatch (events, clock reads,
// recovery per event) cost several times the measurement. The pipeline
// calls these few functions where it already stands (the attempt's send,
// the call's end, a refusal, a retry), each behind a nil check of
// telemetryOptions.meters, so a Manager without metrics pays one load
// and one comparison per hook point.
//
// What counts are kept in atomics (attempts waiting for their headers,
// calls by outcome) is reported by the observable instruments
// (otelMetrics.observeCounts); only http.client.request.duration is
// measured per attempt. Retries, refusals and limiter waits are rare, and
// are recorded where they happen.

// metricsStart counts the attempt as active and records its limiter
// wait. It returns the attempt's instruments, or nil when metrics are off
// for now (a global provider not installed yet).
func (a *attempt) metricsStart(src *meterSource) *attemptInstruments {
	om := src.metrics()
	if om == nil {
		return nil
	}
	c := a.c
	ei := om.endpoint(c.ep.key)
	var up string
	if a.up != nil {
		up = a.up.guard.key
	} else {
		up = a.req.URL.Host
	}
	method, _ := spanMethod(a.req.Method)
	ai := ei.lastAttempt.Load()
	if ai == nil || ai.upstream != up || ai.method != method {
		ai = om.attemptAttrs(attemptKey{endpoint: ei.key, upstream: up, method: method})
		ei.lastAttempt.Store(ai)
	}
	ai.active.Add(1)
	if a.waited > 0 {
		om.limiterWaited(c.m, ei, a.waited)
	}
	return ai
}

// metricsHeaders records the attempt's http.client.request.duration when
// its transport returned (the response headers, or the error), as
// otelhttp's Transport measures it, and ends its active count. An
// attempt connmgr itself canceled before it got a response (a losing
// hedge) is not a latency sample.
func (a *attempt) metricsHeaders(ai *attemptInstruments, resp *http.Response, err error) {
	c := a.c
	d := c.m.since(a.sent)
	ai.active.Add(-1)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	} else if a.ownCancel.Load() {
		return
	}
	et := errorType(err, status)
	if et == "" && status != 0 && c.ep.retry.retryOn.has(status) {
		et = "_OTHER" // a status the endpoint retries is a failure
	}
	ai.record(c.m, a.req.Context(), d, status, et)
}

// metricsEnd counts the call by outcome. The counts are reported by an
// observable instrument.
func (c *call) metricsEnd(src *meterSource, resp *http.Response, err error, fallback bool) {
	om := src.metrics()
	if om == nil {
		return
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	om.endpoint(c.ep.key).outcomes[pipelineOutcome(status, err, fallback)].Add(1)
}

// pipelineOutcome is callOutcome for the pipeline, which knows a local
// refusal by the kind of the call's error.
func pipelineOutcome(status int, err error, fallback bool) callOutcomeKind {
	switch {
	case fallback:
		return callFallback
	case err != nil:
		if e, ok := err.(*Error); ok && isRefusalKind(e.Kind) {
			return callRefused
		}
		return callErrored
	case isServerError(status) || status == http.StatusTooManyRequests:
		return callFailure
	}
	return callSuccess
}

// isRefusalKind reports whether kind (an *Error's Kind) says the call was
// refused locally.
func isRefusalKind(kind error) bool {
	switch kind {
	case ErrCircuitOpen, ErrRateLimited, ErrConcurrencyLimit, ErrNoHealthyUpstream, ErrRetryBudgetExhausted, ErrClosed:
		return true
	}
	return false
}

// refused counts a local refusal on the endpoint.
func (s *meterSource) refused(m *Manager, endpoint string, r Refusal) {
	if om := s.metrics(); om != nil {
		defer m.recovered("meter provider", "Add", nil)
		om.refused(om.endpoint(endpoint), r)
	}
}

// retried counts a retry on the endpoint.
func (s *meterSource) retried(m *Manager, endpoint, reason string) {
	if om := s.metrics(); om != nil {
		defer m.recovered("meter provider", "Add", nil)
		om.retried(om.endpoint(endpoint), reason)
	}
}

// limiterWaited records an attempt's wait for a rate-limit token.
func (om *otelMetrics) limiterWaited(m *Manager, ei *endpointInstruments, d time.Duration) {
	defer m.recovered("meter provider", "Record", nil)
	om.limiterWait.Record(context.Background(), d.Seconds(), ei.base...)
}

// record measures one attempt's duration with the cached attribute set
// of its status and error type. The instrument is the meter provider's:
// a provider other than the SDK's is user code, so the measurement runs
// under the recovery helper (an open-coded defer: a few instructions).
func (ai *attemptInstruments) record(m *Manager, ctx context.Context, d time.Duration, status int, errType string) {
	opts := ai.durationOpts(status, errType)
	if opts == nil {
		full := ai.om.attemptAttrs(attemptKey{endpoint: ai.endpoint, upstream: ai.upstream, method: ai.method, status: status, errType: errType})
		opts = full.duration
		ai.last.Store(&durationSet{status: status, errType: errType, opts: opts})
	}
	defer m.recovered("meter provider", "Record", nil)
	ai.om.requestDuration.Record(ctx, d.Seconds(), opts...)
}
