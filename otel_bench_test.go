package connmgr

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// driveOneCall runs one call with one attempt through o, as the pipeline
// does: the attempt's headers are reset each time, as a fresh clone's
// would be.
func driveOneCall(o Observer, req, areq *http.Request, resp *http.Response) {
	co := o.StartCall(&CallEvent{Context: req.Context(), Request: req, Endpoint: "api.test", Start: time.Now()})
	if co == nil {
		return
	}
	clear(areq.Header)
	ev := &AttemptEvent{Context: areq.Context(), Request: areq, Endpoint: "api.test", Upstream: "api.test:8080", Attempt: 1, Start: time.Now()}
	ao := co.AttemptStart(ev)
	if ao != nil {
		ao.Headers(HeadersEvent{Response: resp})
	}
	co.End(CallEndEvent{Response: resp, Attempts: 1, Duration: time.Millisecond})
	if ao != nil {
		ao.End(AttemptEndEvent{StatusCode: 200})
	}
}

// BenchmarkObserver measures the per-call cost of the Manager's own
// tracing observer, driven directly (see BenchmarkPipelineTelemetry for the
// whole pipeline).
func BenchmarkObserver(b *testing.B) {
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	always := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())) // records, exports nowhere
	defer func() {
		_ = never.Shutdown(context.Background())
		_ = always.Shutdown(context.Background())
	}()
	for _, bc := range []struct {
		name   string
		tp     trace.TracerProvider
		mp     metric.MeterProvider
		global bool
	}{
		{name: "global-unset", global: true},
		{name: "noop", tp: tracenoop.NewTracerProvider(), mp: metricnoop.NewMeterProvider()},
		{name: "trace-never-sample", tp: never, mp: metricnoop.NewMeterProvider()},
		{name: "trace-always-sample", tp: always, mp: metricnoop.NewMeterProvider()},
		// Metrics have no observer: the pipeline records them
		// (BenchmarkPipelineTelemetry, BenchmarkSDKHistogramRecord).
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := []Option{WithPropagator(propagation.TraceContext{})}
			if !bc.global && bc.tp != nil {
				opts = append(opts, WithTracerProvider(bc.tp), WithMeterProvider(bc.mp))
			}
			m := newTestManager(b, Config{}, opts...)
			var o Observer
			if m.opts.telemetry.observer == nil {
				b.Skip("no OpenTelemetry observer registered: nothing to measure")
			}
			o = m.opts.telemetry.observer
			req, _ := http.NewRequest(http.MethodGet, "http://api.test:8080/v1/x", nil)
			areq := req.Clone(context.Background())
			resp := &http.Response{StatusCode: 200, Header: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				driveOneCall(o, req, areq, resp)
			}
		})
	}
}

// BenchmarkPipelineTelemetry is the cost of tracing and metrics per call
// through the whole pipeline, against a transport that answers at once.
// Compare each case with "off".
func BenchmarkPipelineTelemetry(b *testing.B) {
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	always := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() {
		_ = never.Shutdown(context.Background())
		_ = always.Shutdown(context.Background())
		_ = meters.Shutdown(context.Background())
	}()
	off := tracenoop.NewTracerProvider()
	offM := metricnoop.NewMeterProvider()
	for _, bc := range []struct {
		name string
		tp   trace.TracerProvider
		mp   metric.MeterProvider
	}{
		{"off", off, offM},
		{"observer-dispatch-only", off, offM}, // a do-nothing observer: the pipeline's share
		{"trace-never-sample", never, offM},
		{"trace-always-sample", always, offM},
		{"metrics", off, meters},
		{"trace-never-sample+metrics", never, meters},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil })
			opts := []Option{WithTransport(ft), WithTracerProvider(bc.tp), WithMeterProvider(bc.mp), WithPropagator(propagation.TraceContext{})}
			if bc.name == "observer-dispatch-only" {
				opts = append(opts, WithObserver(nopObserver{}))
			}
			m := newTestManager(b, Config{}, opts...)
			req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/x", nil)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				resp, err := m.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
			}
		})
	}
}

// nopObserver observes every call and attempt and does nothing.
type nopObserver struct{}
type nopCall struct{}
type nopAttempt struct{}

func (nopObserver) StartCall(*CallEvent) CallObserver      { return nopCall{} }
func (nopCall) Refused(RefusalEvent)                       {}
func (nopCall) AttemptStart(*AttemptEvent) AttemptObserver { return nopAttempt{} }
func (nopCall) Retry(RetryEvent)                           {}
func (nopCall) End(CallEndEvent)                           {}
func (nopAttempt) Headers(HeadersEvent)                    {}
func (nopAttempt) End(AttemptEndEvent)                     {}

// BenchmarkSDKNeverSampleSpanStart is the floor of a sampled-out trace:
// the SDK's own tracer.Start with NeverSample, which allocates the
// non-recording span and the context that carries it (2 allocations).
// connmgr's call span costs exactly this; the rest of the
// trace-never-sample case of BenchmarkPipelineTelemetry is the call's
// side struct and the attempt's own header map (docs/observability.md).
func BenchmarkSDKNeverSampleSpanStart(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tp.Tracer(instrumentationName)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, span := tr.Start(ctx, "connmgr GET", callSpanOpts...)
		span.End()
	}
}

// BenchmarkSDKHistogramRecord is the floor of the metrics case: one
// measurement of the SDK's histogram with a cached attribute set, as the
// pipeline records http.client.request.duration per attempt.
func BenchmarkSDKHistogramRecord(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	h, err := mp.Meter(instrumentationName).Float64Histogram("http.client.request.duration",
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		b.Fatal(err)
	}
	opts := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
		attrMethod.String("GET"), attrServerAddress.String("api.test"), attrEndpoint.String("api.test"), attrStatus.Int(200)))}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.Record(ctx, 0.001, opts...)
	}
}
