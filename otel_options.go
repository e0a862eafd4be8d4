package connmgr

import (
	"context"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName is the OpenTelemetry instrumentation scope of
// connmgr's tracer and meter.
const instrumentationName = "github.com/connmgr/connmgr"

// telemetryOptions are the OpenTelemetry options. A nil provider means
// "follow the global one" (otel.GetTracerProvider, otel.GetMeterProvider)
// when one was installed before New: it is read at each call, so a
// provider that replaces it later is used from then on. When none was
// installed before New, that signal is off and costs nothing per call.
type telemetryOptions struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator

	// Set up by New (setupTelemetry).
	observer *otelObserver // the tracing observer; nil when tracing is off
	meters   *meterSource  // what the pipeline records metrics into (otel_pipeline.go); nil when metrics are off
	monitor  *monitor      // nil unless the logger takes Warn
	started  time.Time     // when New ran
}

// setupTelemetry sets up the refusal log (when the logger takes Warn),
// puts the OpenTelemetry tracing observer (when a tracer provider exists)
// ahead of the observers given with WithObserver, sets up the
// metrics the pipeline records directly (when a meter provider exists:
// no observer for them), counts breaker transitions, and notes the start
// time. With none of these, no observer is added: a call pays nothing for
// observability beyond the last-minute counters of Stats.
func (m *Manager) setupTelemetry() {
	t := &m.opts.telemetry
	t.started = m.now()
	var own []Observer
	if m.opts.logger != nil && m.opts.logger.Enabled(context.Background(), slog.LevelWarn) {
		t.monitor = &monitor{m: m} // told of refusals by the pipeline (refusalSeen): no observer
	}
	if ms := newMeterSource(m, t.meterProvider); ms.global || ms.fixed != nil {
		t.meters = ms
		m.opts.stateListeners = append(m.opts.stateListeners, func(c StateChange) {
			if om := ms.metrics(); om != nil {
				om.breakerTransition(c)
			}
		})
	}
	if o := newOTelObserver(m, *t); o.tracers.global || o.tracers.fixed != nil {
		t.observer = o
		own = append(own, o)
	}
	m.opts.observers = append(own, m.opts.observers...)
	m.observers = m.opts.observers
}

// close unregisters the metric callbacks.
func (t *telemetryOptions) close() {
	if t.meters != nil {
		t.meters.close()
	}
}

// WithTracerProvider has the Manager trace through tp: one span per call
// and one client span per attempt (see docs/observability.md). Without
// it, the global provider (otel.SetTracerProvider) is used if one was
// installed before New (and then followed if replaced). A no-op
// provider (go.opentelemetry.io/otel/trace/noop) turns tracing off at no
// cost per call.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) { o.telemetry.tracerProvider = tp })
}

// WithMeterProvider has the Manager record its metrics through mp: the
// HTTP client instruments of the OpenTelemetry semantic conventions and
// connmgr's own (see docs/observability.md). Without it, the global
// provider (otel.SetMeterProvider) is used if one was installed before
// New (and then followed if replaced). A no-op provider
// (go.opentelemetry.io/otel/metric/noop) turns metrics off at no cost
// per call.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(o *options) { o.telemetry.meterProvider = mp })
}

// WithPropagator sets how trace context is written into each attempt's
// own request headers (never into the caller's request). Without it, the
// global propagator (otel.SetTextMapPropagator) is used, which writes
// nothing until one is set; propagation.TraceContext{} writes W3C
// traceparent and tracestate.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(o *options) { o.telemetry.propagator = p })
}

// clockNow reads the Manager's clock (a method value for the stats).
func (m *Manager) clockNow() time.Time { return m.now() }

// isGlobalDelegate reports whether v is one of the OpenTelemetry global
// package's placeholder providers, which stand in until a real provider
// is installed and record nothing meanwhile.
func isGlobalDelegate(v any) bool {
	t := reflect.TypeOf(v)
	if t == nil {
		return false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// tracerSource hands out the tracer to use for a call: the configured
// provider's, or the global provider's as it is now, or nil when tracing
// is off (a no-op provider, or no global provider installed yet).
type tracerSource struct {
	fixed  trace.Tracer // set when WithTracerProvider gave a real provider
	global bool         // follow otel.GetTracerProvider
	cache  atomicPair[trace.TracerProvider, trace.Tracer]
}

func newTracerSource(tp trace.TracerProvider) *tracerSource {
	switch tp.(type) {
	case nil:
		if isGlobalDelegate(otel.GetTracerProvider()) {
			return &tracerSource{} // no global provider installed before New
		}
		return &tracerSource{global: true}
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
		return &tracerSource{}
	}
	return &tracerSource{fixed: tp.Tracer(instrumentationName)}
}

func (s *tracerSource) tracer() trace.Tracer {
	if !s.global {
		return s.fixed
	}
	tp := otel.GetTracerProvider()
	if tr, ok := s.cache.get(tp); ok {
		return tr
	}
	var tr trace.Tracer
	switch tp.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
	default:
		if !isGlobalDelegate(tp) {
			tr = tp.Tracer(instrumentationName)
		}
	}
	s.cache.store(tp, tr)
	return tr
}

// propagator returns the propagator to inject with.
func (o *telemetryOptions) propagatorOrGlobal() propagation.TextMapPropagator {
	if o.propagator != nil {
		return o.propagator
	}
	return otel.GetTextMapPropagator()
}

// meterSource hands out the instruments of the configured meter provider,
// or of the global one as it is now, or nil when metrics are off.
type meterSource struct {
	m      *Manager
	fixed  *otelMetrics
	global bool
	cache  atomicPair[metric.MeterProvider, *otelMetrics]
}

func newMeterSource(m *Manager, mp metric.MeterProvider) *meterSource {
	switch mp.(type) {
	case nil:
		if isGlobalDelegate(otel.GetMeterProvider()) {
			return &meterSource{m: m} // no global provider installed before New
		}
		return &meterSource{m: m, global: true}
	case metricnoop.MeterProvider, *metricnoop.MeterProvider:
		return &meterSource{m: m}
	}
	return &meterSource{m: m, fixed: newOTelMetrics(m, mp)}
}

func (s *meterSource) metrics() *otelMetrics {
	if !s.global {
		return s.fixed // inlined: the pipeline asks at every call
	}
	return s.globalMetrics()
}

// globalMetrics returns the instruments of the global meter provider as
// it is now.
func (s *meterSource) globalMetrics() *otelMetrics {
	mp := otel.GetMeterProvider()
	if om, ok := s.cache.get(mp); ok {
		return om
	}
	var om *otelMetrics
	switch mp.(type) {
	case metricnoop.MeterProvider, *metricnoop.MeterProvider:
	default:
		if !isGlobalDelegate(mp) {
			om = newOTelMetrics(s.m, mp)
		}
	}
	// Two calls may race here and build instruments twice; the SDK
	// returns the same instruments for the same names, so that is
	// harmless, and observable callbacks are registered by each.
	if cached, ok := s.cache.get(mp); ok {
		if om != nil {
			om.unregister()
		}
		return cached
	}
	if p := s.cache.load(); p != nil && p.v != nil {
		p.v.unregister() // the global provider was replaced
	}
	s.cache.store(mp, om)
	return om
}

func (s *meterSource) close() {
	if s.fixed != nil {
		s.fixed.unregister()
	}
	if p := s.cache.load(); p != nil && p.v != nil {
		p.v.unregister()
	}
}

// atomicPair is a pair of values swapped together atomically: a cache
// keyed by the provider it was built from.
type atomicPair[K comparable, V any] struct {
	p atomic.Pointer[pair[K, V]]
}

type pair[K comparable, V any] struct {
	k K
	v V
	// comparable is false when k's dynamic type cannot be compared with
	// ==, which would panic: such a provider is looked up at every call.
	comparable bool
}

// get returns the value cached for k.
func (a *atomicPair[K, V]) get(k K) (V, bool) {
	if p := a.p.Load(); p != nil && p.comparable && p.k == k {
		return p.v, true
	}
	var zero V
	return zero, false
}

func (a *atomicPair[K, V]) load() *pair[K, V] { return a.p.Load() }

func (a *atomicPair[K, V]) store(k K, v V) {
	t := reflect.TypeOf(k)
	a.p.Store(&pair[K, V]{k: k, v: v, comparable: t != nil && t.Comparable()})
}
