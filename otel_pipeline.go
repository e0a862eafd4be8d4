package connmgr

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// This file records the OpenTelemetry metrics from the pipeline itself,
// without an observer: the observer dispatch (events, clock reads,
// recovery per event) cost several times the measurement. The pipeline
// calls these few functions where it already stands (the attempt's send,
// its answer or failure, the call's end, a refusal, a retry), each
// behind a nil check (telemetryOptions.meters, attempt.met), so a
// Manager without metrics pays one load and one comparison per hook
// point.
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
	var up string
	if a.up != nil {
		up = a.up.guard.key
	} else {
		up = a.req.URL.Host
	}
	ai := om.lastAttempt.Load()
	// A known method is its own semantic conventions name: the common
	// case compares the request's as it is.
	if ai == nil || ai.upstream != up || ai.method != a.req.Method || ai.endpoint != c.ep.key {
		ai = a.attemptInstruments(om, up)
	}
	ai.active.Add(1)
	if a.waited > 0 {
		om.limiterWaited(c.m, om.endpoint(c.ep.key), a.waited)
	}
	return ai
}

// attemptInstruments looks up the attempt's instruments past the last
// used ones.
func (a *attempt) attemptInstruments(om *otelMetrics, up string) *attemptInstruments {
	method, _ := spanMethod(a.req.Method)
	ai := om.lastAttempt.Load()
	if ai == nil || ai.upstream != up || ai.method != method || ai.endpoint != a.c.ep.key {
		ai = om.attemptAttrs(attemptKey{endpoint: a.c.ep.key, upstream: up, method: method})
		om.lastAttempt.Store(ai)
	}
	return ai
}

// metricsAnswered records the duration of the attempt whose response the
// call returns, elapsed after the call's start (no clock read of its
// own). The common case, a status that is no failure measured with the
// SDK's instrument, is spelled out here.
func (a *attempt) metricsAnswered(status int, elapsed time.Duration) {
	c := a.c
	if a.sent != c.start { // a retry, or a wait before the first send
		elapsed -= a.sent.Sub(c.start)
	}
	ai := a.met
	if status < 400 && !c.ep.retry.retryOn.has(status) && ai.om.sdk && a.obs == nil && a.hooked == nil {
		if opts := ai.durationOpts(status, ""); opts != nil {
			a.met = nil
			ai.active.Add(-1)
			ai.om.requestDuration.Record(c.req.Context(), elapsed.Seconds(), opts...)
			return
		}
	}
	a.metricsDone(status, nil, false, elapsed)
}

// metricsDone records the attempt's http.client.request.duration, d,
// and ends its active count, once. d runs until the transport returned
// (the response headers, or the error), as otelhttp's Transport measures
// it: answer passes the elapsed time it read anyway (metricsAnswered),
// the failure paths read the clock before they drain the body. An
// attempt connmgr itself canceled before it got a response (a losing
// hedge) is not a latency sample.
func (a *attempt) metricsDone(status int, err error, canceled bool, d time.Duration) {
	ai := a.met
	a.met = nil
	ai.active.Add(-1)
	if canceled && status == 0 {
		return
	}
	c := a.c
	et := ""
	if err != nil || status >= 400 {
		et = errorType(err, status)
	} else if status != 0 && c.ep.retry.retryOn.has(status) {
		et = "_OTHER" // a status the endpoint retries is a failure
	}
	// The exemplar filter looks for a span in the context: without an
	// observer or a hook, the attempt's context holds the caller's span,
	// and the caller's context is the shorter walk to it.
	ctx := c.req.Context()
	if a.obs != nil || a.hooked != nil {
		ctx = a.req.Context()
	}
	ai.record(c.m, ctx, d, status, et)
}

// metricsEnd counts the call by outcome. The counts are reported by an
// observable instrument.
func (c *call) metricsEnd(src *meterSource, resp *http.Response, err error, fallback bool) {
	om := src.metrics()
	if om == nil {
		return
	}
	k := callSuccess
	if resp == nil || err != nil || fallback || resp.StatusCode >= http.StatusTooManyRequests {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		k = pipelineOutcome(status, err, fallback)
	}
	om.endpoint(c.ep.key).outcomes[k].Add(1)
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
// the OpenTelemetry SDK's is called directly; any other provider's is
// user code, and runs under the recovery helper.
func (ai *attemptInstruments) record(m *Manager, ctx context.Context, d time.Duration, status int, errType string) {
	opts := ai.durationOpts(status, errType)
	if opts == nil {
		full := ai.om.attemptAttrs(attemptKey{endpoint: ai.endpoint, upstream: ai.upstream, method: ai.method, status: status, errType: errType})
		opts = full.duration
		ai.last.Store(&durationSet{status: status, errType: errType, opts: opts})
	}
	if ai.om.sdk {
		ai.om.requestDuration.Record(ctx, d.Seconds(), opts...)
		return
	}
	recordGuarded(m, ai.om.requestDuration, ctx, d.Seconds(), opts)
}

func recordGuarded(m *Manager, h metric.Float64Histogram, ctx context.Context, v float64, opts []metric.RecordOption) {
	defer m.recovered("meter provider", "Record", nil)
	h.Record(ctx, v, opts...)
}

// isSDKInstrument reports whether v is an instrument of the OpenTelemetry
// SDK (go.opentelemetry.io/otel/sdk/metric), not user code.
func isSDKInstrument(v any) bool {
	t := reflect.TypeOf(v)
	if t == nil {
		return false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	p := t.PkgPath()
	return p == "go.opentelemetry.io/otel/sdk/metric" || strings.HasPrefix(p, "go.opentelemetry.io/otel/sdk/metric/")
}
