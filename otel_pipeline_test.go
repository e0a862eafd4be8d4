package connmgr

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// The cost targets of docs/observability.md ("Cost"), pinned: metrics
// add no allocation to a call; a sampled-out trace adds the SDK's span
// start (2) and the attempt's own header map (2: the map and its group),
// and nothing else: the call's side struct is allocated with the call
// (newCall).
func TestTelemetryAllocationsPerCall(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() {
		_ = never.Shutdown(context.Background())
		_ = meters.Shutdown(context.Background())
	}()
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil })
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/x", nil)
	perCall := func(tp trace.TracerProvider, mp metric.MeterProvider) float64 {
		m := newTestManager(t, Config{}, WithTransport(ft), WithTracerProvider(tp), WithMeterProvider(mp), WithPropagator(propagation.TraceContext{}))
		return testing.AllocsPerRun(500, func() {
			resp, err := m.RoundTrip(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	off := perCall(tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider())
	assert.Equal(t, 0.0, perCall(tracenoop.NewTracerProvider(), meters)-off, "metrics")
	assert.Equal(t, 4.0, perCall(never, metricnoop.NewMeterProvider())-off, "a sampled-out trace")
	assert.Equal(t, 4.0, perCall(never, meters)-off, "a sampled-out trace and metrics")
	assert.Empty(t, req.Header, "the caller's header was written to")
}

// Each attempt carries its own trace context in its own headers; the
// caller's request is never written to, and a header handed to the
// transport keeps its value after the call (its storage is not reused).
func TestTraceContextGoesIntoEachAttemptsOwnHeaders(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		t.Run(map[bool]string{true: "sampled", false: "sampled-out"}[sampled], func(t *testing.T) {
			sampler := sdktrace.NeverSample()
			if sampled {
				sampler = sdktrace.AlwaysSample()
			}
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSyncer(spans))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			var mu sync.Mutex
			var seen []http.Header // the attempts' headers, as the transport got them
			n := 0
			ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, r.Header)
				n++
				if n%2 == 1 {
					return cannedResponse(r, 503, ""), nil
				}
				return cannedResponse(r, 200, "ok"), nil
			})
			cfg := Config{Default: fastRetries(2)}
			cfg.Default.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1000, MinRequests: 1000}
			m := newTestManager(t, cfg, WithTransport(ft), WithTracerProvider(tp),
				WithMeterProvider(metricnoop.NewMeterProvider()), WithPropagator(propagation.TraceContext{}))
			const calls = 20
			for range calls {
				req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/x", nil)
				req.Header.Set("X-Mine", "1")
				before := req.Header.Clone()
				resp, err := m.RoundTrip(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				require.NoError(t, resp.Body.Close())
				assert.Equal(t, before, req.Header, "the caller's request is never written to")
			}
			require.Len(t, seen, 2*calls)
			want := map[string]bool{}
			for _, s := range spans.GetSpans() {
				if s.SpanKind == trace.SpanKindClient || !sampled {
					want[traceparentOf(s.SpanContext)] = true
				}
			}
			got := map[string]int{}
			for i, h := range seen {
				assert.Equal(t, "1", h.Get("X-Mine"))
				tp := h.Get("Traceparent")
				require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, tp, "attempt %d", i)
				assert.Equal(t, sampled, strings.HasSuffix(tp, "-01"))
				got[tp]++
			}
			if sampled {
				// One client span per attempt, each propagated by its own attempt.
				assert.Len(t, got, 2*calls, "every attempt its own traceparent, kept after its call")
				for tp := range got {
					assert.True(t, want[tp], "%s is an attempt span's", tp)
				}
			} else {
				// No attempt spans: both attempts propagate the call's context.
				assert.Len(t, got, calls, "one traceparent per call, kept after its call")
				for _, c := range got {
					assert.Equal(t, 2, c)
				}
			}
		})
	}
}

func traceparentOf(sc trace.SpanContext) string {
	flags := "00"
	if sc.IsSampled() {
		flags = "01"
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + flags
}

// attemptCarrier's TraceContext fast path writes what
// propagation.TraceContext writes, and other propagators go through it
// as through propagation.HeaderCarrier.
func TestAttemptCarrierWritesWhatThePropagatorWould(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=abc,other=x")
	require.NoError(t, err)
	member, err := baggage.NewMember("user", "42")
	require.NoError(t, err)
	bag, err := baggage.New(member)
	require.NoError(t, err)
	base := trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff}, SpanID: trace.SpanID{0xa, 0xb, 0xc, 0xd, 1, 2, 3, 4}}
	for _, tc := range []struct {
		name string
		cfg  func(trace.SpanContextConfig) trace.SpanContextConfig
		prop propagation.TextMapPropagator
	}{
		{"sampled", func(c trace.SpanContextConfig) trace.SpanContextConfig { c.TraceFlags = trace.FlagsSampled; return c }, propagation.TraceContext{}},
		{"sampled-out", func(c trace.SpanContextConfig) trace.SpanContextConfig { return c }, propagation.TraceContext{}},
		{"other flags dropped", func(c trace.SpanContextConfig) trace.SpanContextConfig { c.TraceFlags = 0xff; return c }, propagation.TraceContext{}},
		{"tracestate", func(c trace.SpanContextConfig) trace.SpanContextConfig { c.TraceState = ts; return c }, propagation.TraceContext{}},
		{"invalid", func(trace.SpanContextConfig) trace.SpanContextConfig { return trace.SpanContextConfig{} }, propagation.TraceContext{}},
		{"composite with baggage", func(c trace.SpanContextConfig) trace.SpanContextConfig { c.TraceState = ts; return c },
			propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := trace.ContextWithSpanContext(baggage.ContextWithBaggage(context.Background(), bag), trace.NewSpanContext(tc.cfg(base)))
			want := http.Header{"X-Mine": {"1"}}
			tc.prop.Inject(ctx, propagation.HeaderCarrier(want))
			got := http.Header{"X-Mine": {"1"}}
			var ev AttemptEvent
			ev.carrier.inject(tc.prop, ctx, got)
			assert.Equal(t, want, got)
			for k, v := range got {
				got[k] = append(v, "added") // an Add to the attempt's header never writes into the carrier's slots
			}
			for _, v := range ev.carrier.vals {
				assert.NotEqual(t, "added", v)
			}
		})
	}
	t.Run("more values than slots", func(t *testing.T) {
		var c attemptCarrier
		c.header = http.Header{}
		for _, k := range []string{"a", "b", "c"} {
			c.Set(k, "v-"+k)
		}
		assert.Equal(t, http.Header{"A": {"v-a"}, "B": {"v-b"}, "C": {"v-c"}}, c.header)
	})
	t.Run("a second injection never rewrites the first traceparent", func(t *testing.T) {
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(base))
		var ev AttemptEvent
		first := http.Header{}
		ev.carrier.inject(propagation.TraceContext{}, ctx, first)
		tp := first.Get("Traceparent")
		other := base
		other.SpanID = trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}
		second := http.Header{}
		ev.carrier.inject(propagation.TraceContext{}, trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(other)), second)
		assert.Equal(t, tp, first.Get("Traceparent"))
		assert.Equal(t, traceparentOf(trace.NewSpanContext(other)), second.Get("Traceparent"))
	})
}

// http.client.request.duration is measured until the response headers,
// as otelhttp's Transport measures it: the sample and the end of the
// active count are there before the caller reads the body.
func TestRequestDurationIsMeasuredUntilTheHeaders(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil })
	m := newTestManager(t, Config{}, WithTransport(ft), WithMeterProvider(mp), WithTracerProvider(tracenoop.NewTracerProvider()))
	req, _ := http.NewRequest(http.MethodPost, "http://api.test:8443/v1/x", nil)
	resp, err := m.RoundTrip(req)
	require.NoError(t, err)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	hd := findMetric(t, rm, "http.client.request.duration").Data.(metricdata.Histogram[float64])
	require.Len(t, hd.DataPoints, 1, "recorded before the body is closed")
	dp := hd.DataPoints[0]
	assert.Equal(t, uint64(1), dp.Count)
	for k, v := range map[string]string{"http.request.method": "POST", "server.address": "api.test", "connmgr.endpoint": "default"} {
		got, _ := dp.Attributes.Value(attribute.Key(k))
		assert.Equal(t, v, got.AsString(), k)
	}
	port, _ := dp.Attributes.Value("server.port")
	assert.Equal(t, int64(8443), port.AsInt64())
	status, _ := dp.Attributes.Value("http.response.status_code")
	assert.Equal(t, int64(200), status.AsInt64())
	_, hasErr := dp.Attributes.Value("error.type")
	assert.False(t, hasErr)
	assert.Equal(t, int64(0), sumInt(t, rm, "http.client.active_requests", nil))
	assert.Equal(t, int64(1), sumInt(t, rm, "connmgr.client.calls.active", nil), "the call holds its slot until the body is closed")
	require.NoError(t, resp.Body.Close())
	require.NoError(t, reader.Collect(context.Background(), &rm))
	assert.Equal(t, int64(1), sumInt(t, rm, "connmgr.client.calls", map[string]string{"connmgr.outcome": "success"}))
}

// A meter provider is user code: one whose instruments panic is logged,
// and the calls go on.
func TestPanickingMeterProviderDoesNotFailCalls(t *testing.T) {
	var logs bytes.Buffer
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 503, ""), nil })
	m := newTestManager(t, Config{Default: fastRetries(2)}, WithTransport(ft), WithMeterProvider(panickingMeterProvider{}),
		WithTracerProvider(tracenoop.NewTracerProvider()), WithLogger(newTestLogger(&logs)))
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/x", nil)
	resp, err := m.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, 503, resp.StatusCode)
	require.NoError(t, resp.Body.Close())
	assert.Contains(t, logs.String(), "connmgr: meter provider panicked")
	assert.Contains(t, logs.String(), "histogram boom")
	assert.Contains(t, logs.String(), "counter boom")
}

type panickingMeterProvider struct{ metricnoop.MeterProvider }
type panickingMeter struct{ metricnoop.Meter }
type panickingHistogram struct{ metricnoop.Float64Histogram }
type panickingCounter struct{ metricnoop.Int64Counter }

func (panickingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return panickingMeter{}
}
func (panickingMeter) Float64Histogram(string, ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return panickingHistogram{}, nil
}
func (panickingMeter) Int64Counter(string, ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return panickingCounter{}, nil
}
func (panickingHistogram) Record(context.Context, float64, ...metric.RecordOption) {
	panic("histogram boom")
}
func (panickingCounter) Add(context.Context, int64, ...metric.AddOption) { panic("counter boom") }

// A global meter provider installed before New is followed by the
// pipeline's own metrics, with no observer registered for them.
func TestGlobalMeterProviderRecordsWithoutAnObserver(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	defer otel.SetMeterProvider(prev)
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil })
	m := newTestManager(t, Config{}, WithTransport(ft), WithTracerProvider(tracenoop.NewTracerProvider()))
	assert.Empty(t, m.observers, "metrics alone register no observer")
	assert.False(t, m.Observed())
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/x", nil)
	for range 3 {
		resp, err := m.RoundTrip(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	hd := findMetric(t, rm, "http.client.request.duration").Data.(metricdata.Histogram[float64])
	require.Len(t, hd.DataPoints, 1)
	assert.Equal(t, uint64(3), hd.DataPoints[0].Count)
	assert.Equal(t, int64(3), sumInt(t, rm, "connmgr.client.calls", map[string]string{"connmgr.outcome": "success"}))
}
