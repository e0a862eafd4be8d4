package connmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// otelHarness is a Manager with in-memory OpenTelemetry exporters.
type otelHarness struct {
	m      *Manager
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	logs   *bytes.Buffer
}

// secretURL carries every kind of secret the sweep looks for.
const secretURL = "http://alice:hunter2@api.test:8080/v1/orders?api_key=sk_live_123&token=tok-456&page=2"

var secrets = []string{"hunter2", "alice", "sk_live_123", "tok-456", "Bearer abc.def", "session=cookie-789", "X-Api-Key-Value-000"}

func newOTelHarness(t *testing.T, cfg Config, opts ...Option) *otelHarness {
	t.Helper()
	h := &otelHarness{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader(), logs: &bytes.Buffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	if cfg.Redact.QueryKeys == nil {
		cfg.Redact.QueryKeys = []string{"token"}
	}
	opts = append([]Option{WithTracerProvider(tp), WithMeterProvider(mp), WithPropagator(propagation.TraceContext{}),
		WithLogger(newTestLogger(&lockedWriter{w: h.logs}))}, opts...)
	h.m = newTestManager(t, cfg, opts...)
	return h
}

func (h *otelHarness) observer(t *testing.T) *otelObserver {
	t.Helper()
	o := h.m.opts.telemetry.observer
	require.NotNil(t, o)
	return o
}

func (h *otelHarness) metrics(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	return rm
}

func secretRequest(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, secretURL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer abc.def")
	req.Header.Set("Cookie", "session=cookie-789")
	req.Header.Set("X-Api-Key", "X-Api-Key-Value-000")
	return req
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	out := map[string]attribute.Value{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

// scriptedCall drives one call through the observer as the pipeline
// would: a 503, a refused connection, then a 200 whose body is closed
// after the call returned.
func scriptedCall(t *testing.T, o Observer, req *http.Request) (attempts []*http.Request) {
	t.Helper()
	start := time.Now()
	co := o.StartCall(&CallEvent{Context: req.Context(), Request: req, Endpoint: "api.test", Start: start})
	require.NotNil(t, co)
	attempt := func(n int) (*http.Request, AttemptObserver) {
		areq := req.Clone(req.Context())
		ev := &AttemptEvent{Context: areq.Context(), Request: areq, Endpoint: "api.test", Upstream: "api.test:8080",
			Attempt: n, Start: time.Now(), LimiterWait: time.Duration(n) * time.Millisecond}
		ao := co.AttemptStart(ev)
		require.NotNil(t, ao)
		attempts = append(attempts, areq.WithContext(ev.Context))
		return areq, ao
	}
	_, a1 := attempt(1)
	a1.Headers(HeadersEvent{Response: &http.Response{StatusCode: 503, Header: http.Header{}}, PeerAddress: "10.0.0.7:8080", At: time.Now()})
	a1.End(AttemptEndEvent{StatusCode: 503, Failed: true, At: time.Now()})
	co.Retry(RetryEvent{Attempt: 1, Reason: "status", StatusCode: 503, Wait: 20 * time.Millisecond})

	_, a2 := attempt(2)
	dialErr := fmt.Errorf("dial tcp 10.0.0.8:8080: %w", syscall.ECONNREFUSED)
	a2.Headers(HeadersEvent{Err: dialErr, At: time.Now()})
	a2.End(AttemptEndEvent{Err: dialErr, Failed: true, At: time.Now()})
	co.Retry(RetryEvent{Attempt: 2, Reason: "connect", Err: dialErr, Wait: 40 * time.Millisecond})

	_, a3 := attempt(3)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Set-Cookie": {"session=cookie-789"}}}
	a3.Headers(HeadersEvent{Response: resp, PeerAddress: "10.0.0.9:8080", At: time.Now()})
	co.End(CallEndEvent{Response: resp, Attempts: 3, Duration: time.Since(start)})
	time.Sleep(2 * time.Millisecond) // the body is read after the call returned
	a3.End(AttemptEndEvent{StatusCode: 200, At: time.Now()})
	return attempts
}

func TestOTelSpanTreeOfACallWithTwoRetries(t *testing.T) {
	h := newOTelHarness(t, Config{})
	parentTP := sdktrace.NewTracerProvider()
	defer func() { _ = parentTP.Shutdown(context.Background()) }()
	ctx, parent := parentTP.Tracer("caller").Start(context.Background(), "caller")
	defer parent.End()
	req := secretRequest(t, ctx)

	attempts := scriptedCall(t, h.observer(t), req)

	spans := h.spans.GetSpans()
	require.Len(t, spans, 4, "one call span and three attempt spans")
	call := spans[len(spans)-1]
	assert.Equal(t, "connmgr GET", call.Name)
	assert.Equal(t, trace.SpanKindInternal, call.SpanKind)
	assert.Equal(t, parent.SpanContext().SpanID(), call.Parent.SpanID(), "the call span is a child of the caller's span")
	for i, s := range spans[:3] {
		assert.Equal(t, "GET", s.Name)
		assert.Equal(t, trace.SpanKindClient, s.SpanKind)
		assert.Equal(t, call.SpanContext.SpanID(), s.Parent.SpanID(), "attempt %d is a child of the call span", i+1)
		a := attrMap(s.Attributes)
		assert.Equal(t, int64(i+1), a["connmgr.attempt"].AsInt64())
		assert.Equal(t, "api.test", a["server.address"].AsString())
		assert.Equal(t, int64(8080), a["server.port"].AsInt64())
		assert.Equal(t, "api.test:8080", a["connmgr.upstream"].AsString())
		assert.Equal(t, "http://REDACTED@api.test:8080/v1/orders?api_key=REDACTED&token=REDACTED&page=2",
			a["url.full"].AsString())
		if i == 0 {
			_, ok := a["http.request.resend_count"]
			assert.False(t, ok, "the first attempt is not a resend")
		} else {
			assert.Equal(t, int64(i), a["http.request.resend_count"].AsInt64())
		}
		// The attempt's own headers carry its own span as the parent.
		tp := attempts[i].Header.Get("traceparent")
		assert.Equal(t, fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID()), tp)
	}
	assert.Empty(t, req.Header.Get("traceparent"), "the caller's request is never written to")

	a1, a2, a3 := attrMap(spans[0].Attributes), attrMap(spans[1].Attributes), attrMap(spans[2].Attributes)
	assert.Equal(t, "503", a1["error.type"].AsString())
	assert.Equal(t, codes.Error, spans[0].Status.Code)
	assert.Equal(t, "10.0.0.7", a1["network.peer.address"].AsString())
	assert.Equal(t, "connection_refused", a2["error.type"].AsString())
	assert.Contains(t, spans[1].Status.Description, "connection refused")
	assert.Equal(t, int64(200), a3["http.response.status_code"].AsInt64())
	assert.NotEqual(t, codes.Error, spans[2].Status.Code)
	assert.InDelta(t, 0.003, a3["connmgr.limiter.wait"].AsFloat64(), 1e-9)

	c := attrMap(call.Attributes)
	assert.Equal(t, int64(3), c["connmgr.attempts"].AsInt64())
	assert.Equal(t, "success", c["connmgr.outcome"].AsString())
	assert.InDelta(t, 0.06, c["connmgr.retry.backoff_total"].AsFloat64(), 1e-9)
	require.Len(t, call.Events, 2)
	for i, ev := range call.Events {
		assert.Equal(t, "connmgr.backoff", ev.Name)
		e := attrMap(ev.Attributes)
		assert.Equal(t, []string{"status", "connect"}[i], e["connmgr.retry.reason"].AsString())
		assert.InDelta(t, []float64{0.02, 0.04}[i], e["connmgr.retry.backoff"].AsFloat64(), 1e-9)
	}
	assert.False(t, call.EndTime.Before(spans[2].EndTime), "the call span ends with its last attempt's body")
	assertNoSecrets(t, h)
}

func TestOTelRefusedCallLeavesASpanWithItsReason(t *testing.T) {
	h := newOTelHarness(t, Config{})
	o := fanout(h.m.opts.observers)
	req := secretRequest(t, context.Background())
	co := o.StartCall(&CallEvent{Context: req.Context(), Request: req, Endpoint: "api.test", Start: time.Now()})
	err := fmt.Errorf("connmgr: GET %s: %w", "http://api.test:8080/v1/orders", ErrCircuitOpen)
	ev := RefusalEvent{Endpoint: "api.test", Upstream: "api.test:8080", Reason: RefusedCircuitOpen, Attempt: 1, Err: err, At: time.Now()}
	co.Refused(ev)
	h.m.opts.telemetry.monitor.refused(ev) // the refusal log, told by the pipeline (call.refusalSeen)
	co.End(CallEndEvent{Err: err, Duration: time.Microsecond})

	spans := h.spans.GetSpans()
	require.Len(t, spans, 1)
	s := spans[0]
	assert.Equal(t, codes.Error, s.Status.Code)
	a := attrMap(s.Attributes)
	assert.Equal(t, "circuit_open", a["error.type"].AsString())
	assert.Equal(t, "circuit_open", a["connmgr.refusal.reason"].AsString())
	assert.Equal(t, "refused", a["connmgr.outcome"].AsString())
	require.Len(t, s.Events, 1)
	assert.Equal(t, "connmgr.refused", s.Events[0].Name)
	assert.Equal(t, "circuit_open", attrMap(s.Events[0].Attributes)["connmgr.refusal.reason"].AsString())

	// The metrics are the pipeline's (otel_pipeline.go), not the
	// observer's: TestE2ERefusedCallLeavesASpanWithTheReason counts them.
	assert.Contains(t, h.logs.String(), `msg="connmgr: call refused" endpoint=api.test reason=circuit_open`)
	assertNoSecrets(t, h)
}

// scriptedTransport answers each call as scriptedCall does: a 503, a
// refused connection, then a 200 with a body.
func scriptedTransport() http.RoundTripper {
	var n atomic.Int64
	return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		switch n.Add(1) % 3 {
		case 1:
			return cannedResponse(r, 503, "busy"), nil
		case 2:
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		return cannedResponse(r, 200, "ok"), nil
	})
}

// The metrics are recorded by the pipeline itself, with or without the
// tracing observer: the same points either way.
func TestOTelMetricPointsAfterAScriptedRun(t *testing.T) {
	for _, tracing := range []bool{true, false} {
		t.Run(fmt.Sprintf("tracing=%v", tracing), func(t *testing.T) {
			cfg := Config{Default: fastRetries(3)}
			cfg.Default.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 5}
			cfg.Default.RateLimit = RateLimitConfig{Rate: 1000, Burst: 1, MaxWait: time.Second} // every attempt after the first waits
			opts := []Option{WithTransport(scriptedTransport())}
			if !tracing {
				opts = append(opts, WithTracerProvider(tracenoop.NewTracerProvider()))
			}
			h := newOTelHarness(t, cfg, opts...)
			if !tracing {
				require.Nil(t, h.m.opts.telemetry.observer, "metrics alone register no observer")
			}
			for range 2 {
				resp, err := h.m.RoundTrip(secretRequest(t, context.Background()))
				require.NoError(t, err)
				assert.Equal(t, 200, resp.StatusCode)
				b, _ := io.ReadAll(resp.Body)
				require.NoError(t, resp.Body.Close())
				assert.Equal(t, "ok", string(b))
			}
			rm := h.metrics(t)

			hist := findMetric(t, rm, "http.client.request.duration")
			assert.Equal(t, "s", hist.Unit)
			hd := hist.Data.(metricdata.Histogram[float64])
			counts := map[string]uint64{}
			statuses := map[int64]uint64{}
			for _, dp := range hd.DataPoints {
				et, _ := dp.Attributes.Value("error.type")
				counts[et.AsString()] += dp.Count
				st, _ := dp.Attributes.Value("http.response.status_code")
				statuses[st.AsInt64()] += dp.Count
				assert.Equal(t, durationBuckets, dp.Bounds)
				m, _ := dp.Attributes.Value("http.request.method")
				assert.Equal(t, "GET", m.AsString())
				addr, _ := dp.Attributes.Value("server.address")
				assert.Equal(t, "api.test", addr.AsString())
				port, _ := dp.Attributes.Value("server.port")
				assert.Equal(t, int64(8080), port.AsInt64())
				ep, _ := dp.Attributes.Value("connmgr.endpoint")
				assert.Equal(t, "default", ep.AsString())
				assert.Greater(t, dp.Sum, 0.0)
			}
			assert.Equal(t, map[string]uint64{"503": 2, "connection_refused": 2, "": 2}, counts)
			assert.Equal(t, map[int64]uint64{503: 2, 0: 2, 200: 2}, statuses)

			assert.Equal(t, int64(0), sumInt(t, rm, "http.client.active_requests", nil), "every attempt ended")
			assert.Equal(t, int64(2), sumInt(t, rm, "connmgr.client.calls", map[string]string{"connmgr.outcome": "success", "connmgr.endpoint": "default"}))
			assert.Equal(t, int64(2), sumInt(t, rm, "connmgr.client.retries", map[string]string{"connmgr.retry.reason": "status"}))
			assert.Equal(t, int64(2), sumInt(t, rm, "connmgr.client.retries", map[string]string{"connmgr.retry.reason": "connect"}))
			lw := findMetric(t, rm, "connmgr.client.limiter.wait").Data.(metricdata.Histogram[float64])
			require.Len(t, lw.DataPoints, 1)
			assert.GreaterOrEqual(t, lw.DataPoints[0].Count, uint64(5), "the attempts that waited for a token")
			assert.LessOrEqual(t, lw.DataPoints[0].Count, uint64(6))
			// The breaker state gauge reads Stats: the default endpoint's breaker exists.
			findMetric(t, rm, "connmgr.client.calls.active")
			findMetric(t, rm, "connmgr.client.config.reloads")
			assertNoSecrets(t, h)
		})
	}
}

func TestOTelNoProviderNoWork(t *testing.T) {
	t.Run("global providers not installed", func(t *testing.T) {
		m := newTestManager(t, Config{})
		assert.Nil(t, m.opts.telemetry.observer, "no observer: no work and no header")
		assert.Empty(t, m.observers)
	})
	t.Run("global providers installed before New", func(t *testing.T) {
		spans := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(propagation.TraceContext{})
		defer func() {
			otel.SetTracerProvider(prevTP)
			otel.SetTextMapPropagator(prevProp)
		}()
		m := newTestManager(t, Config{})
		o := m.opts.telemetry.observer
		require.NotNil(t, o, "the global tracer provider is followed")
		req := secretRequest(t, context.Background())
		co := o.StartCall(&CallEvent{Context: req.Context(), Request: req, Endpoint: "default", Start: time.Now()})
		require.NotNil(t, co)
		areq := req.Clone(req.Context())
		ao := co.AttemptStart(&AttemptEvent{Context: areq.Context(), Request: areq, Endpoint: "default", Upstream: "api.test:8080", Attempt: 1})
		assert.NotEmpty(t, areq.Header.Get("traceparent"), "the global propagator writes the attempt's headers")
		ao.End(AttemptEndEvent{StatusCode: 200})
		co.End(CallEndEvent{Attempts: 1})
		assert.Len(t, spans.GetSpans(), 2)
	})
	t.Run("no-op providers", func(t *testing.T) {
		m := newTestManager(t, Config{}, WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()))
		assert.Nil(t, m.opts.telemetry.observer, "no observer registered at all")
	})
	t.Run("tracing only injects, the caller's headers untouched", func(t *testing.T) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		m := newTestManager(t, Config{}, WithTracerProvider(tp), WithMeterProvider(metricnoop.NewMeterProvider()), WithPropagator(propagation.TraceContext{}))
		req := secretRequest(t, context.Background())
		co := m.opts.telemetry.observer.StartCall(&CallEvent{Context: req.Context(), Request: req, Endpoint: "default", Start: time.Now()})
		require.NotNil(t, co)
		areq := req.Clone(req.Context())
		ao := co.AttemptStart(&AttemptEvent{Context: areq.Context(), Request: areq, Endpoint: "default", Upstream: "api.test:8080", Attempt: 1})
		assert.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`, areq.Header.Get("traceparent"), "a sampled-out trace still propagates")
		assert.Empty(t, req.Header.Get("traceparent"))
		ao.End(AttemptEndEvent{StatusCode: 200})
		co.End(CallEndEvent{Attempts: 1})
	})
}

func TestWindowStatsOfTheLastMinute(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := newTestManager(t, Config{}, withClock(func() time.Time { return now }))
	stats := m.table.Load().def.stats
	assert.Nil(t, m.Stats().Endpoints["default"].Window, "nil before the first call")
	now = now.Add(time.Second)
	for i := range 30 {
		status := 200
		if i%3 == 0 {
			status = 503
		}
		stats.record(status, status == 503, time.Duration(i+1)*time.Millisecond)
		now = now.Add(time.Second)
	}
	s := m.Stats()
	assert.Equal(t, time.Unix(1_700_000_000, 0), s.Started)
	w := s.Endpoints["default"].Window
	require.NotNil(t, w)
	assert.Equal(t, 31, w.Seconds)
	assert.Equal(t, uint64(30), w.Requests)
	assert.Equal(t, uint64(10), w.Failures)
	assert.InDelta(t, 30.0/31, w.RequestRate, 1e-9)
	assert.InDelta(t, 1.0/3, w.ErrorRate, 1e-9)
	assert.InDelta(t, float64(15*time.Millisecond), float64(w.P50), float64(2*time.Millisecond))
	assert.InDelta(t, float64(30*time.Millisecond), float64(w.P99), float64(4*time.Millisecond))

	now = now.Add(45 * time.Second) // seconds 17 to 30 are still in the window: 14 calls
	w = m.Stats().Endpoints["default"].Window
	assert.Equal(t, 60, w.Seconds)
	assert.Equal(t, uint64(14), w.Requests)
	assert.Equal(t, uint64(4), w.Failures)
	now = now.Add(2 * time.Minute)
	w = m.Stats().Endpoints["default"].Window
	assert.Equal(t, uint64(0), w.Requests)
	assert.Equal(t, time.Duration(0), w.P99)
	es := m.Stats().Endpoints["default"]
	assert.Equal(t, uint64(30), es.Successes+es.Failures, "the totals are kept")
}

func TestLoggingObserverOnlyWithALogger(t *testing.T) {
	m := newTestManager(t, Config{}, WithLogger(nil))
	assert.Nil(t, m.opts.telemetry.monitor)
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	m = newTestManager(t, Config{}, WithLogger(quiet))
	assert.Nil(t, m.opts.telemetry.monitor, "a logger that drops Warn gets no refusal log")
}

func TestRefusalLogsAreRateLimited(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var buf bytes.Buffer
	m := newTestManager(t, Config{}, withClock(func() time.Time { return now }), WithLogger(newTestLogger(&lockedWriter{w: &buf})))
	w := m.opts.telemetry.monitor.endpoint("default")
	for range 5 {
		w.Refused(RefusalEvent{Endpoint: "default", Reason: RefusedRateLimited, Attempt: 1})
	}
	now = now.Add(11 * time.Second)
	w.Refused(RefusalEvent{Endpoint: "default", Reason: RefusedRateLimited, Attempt: 1})
	lines := strings.Count(buf.String(), "connmgr: call refused")
	assert.Equal(t, 2, lines, buf.String())
	assert.Contains(t, buf.String(), "suppressed=4")
}

// assertNoSecrets sweeps every span attribute, event, status, metric
// attribute and log line for the secrets of secretRequest.
func assertNoSecrets(t *testing.T, h *otelHarness) {
	t.Helper()
	var all strings.Builder
	for _, s := range h.spans.GetSpans() {
		fmt.Fprintln(&all, s.Name, s.Status.Description)
		for _, kv := range s.Attributes {
			fmt.Fprintln(&all, kv.Key, kv.Value.Emit())
		}
		for _, ev := range s.Events {
			fmt.Fprintln(&all, ev.Name)
			for _, kv := range ev.Attributes {
				fmt.Fprintln(&all, kv.Key, kv.Value.Emit())
			}
		}
	}
	rm := h.metrics(t)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range metricAttrSets(m) {
				for _, kv := range set.ToSlice() {
					fmt.Fprintln(&all, kv.Key, kv.Value.Emit())
				}
			}
		}
	}
	all.WriteString(h.logs.String())
	for _, s := range secrets {
		assert.NotContains(t, all.String(), s, "a secret reached a span, a metric or a log")
	}
}

func metricAttrSets(m metricdata.Metrics) []attribute.Set {
	var out []attribute.Set
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Sum[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	}
	return out
}

func findMetric(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %q", name)
	return metricdata.Metrics{}
}

// sumInt adds up an int64 sum's points whose attributes include want.
func sumInt(t *testing.T, rm metricdata.ResourceMetrics, name string, want map[string]string) int64 {
	t.Helper()
	d, ok := findMetric(t, rm, name).Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is an int64 sum", name)
	var n int64
	for _, dp := range d.DataPoints {
		match := true
		for k, v := range want {
			if got, ok := dp.Attributes.Value(attribute.Key(k)); !ok || got.AsString() != v {
				match = false
			}
		}
		if match {
			n += dp.Value
		}
	}
	return n
}

var _ = errors.New

// fanout calls several observers as the pipeline does, for tests that
// drive observers with synthetic events.
type fanout []Observer

func (f fanout) StartCall(ev *CallEvent) CallObserver {
	var cs fanoutCall
	for _, o := range f {
		if c := o.StartCall(ev); c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}

type fanoutCall []CallObserver

func (f fanoutCall) Refused(ev RefusalEvent) {
	for _, c := range f {
		c.Refused(ev)
	}
}

func (f fanoutCall) AttemptStart(ev *AttemptEvent) AttemptObserver {
	var as fanoutAttempt
	for _, c := range f {
		if a := c.AttemptStart(ev); a != nil {
			as = append(as, a)
		}
	}
	return as
}

func (f fanoutCall) Retry(ev RetryEvent) {
	for _, c := range f {
		c.Retry(ev)
	}
}

func (f fanoutCall) End(ev CallEndEvent) {
	for _, c := range f {
		c.End(ev)
	}
}

type fanoutAttempt []AttemptObserver

func (f fanoutAttempt) Headers(ev HeadersEvent) {
	for _, a := range f {
		a.Headers(ev)
	}
}

func (f fanoutAttempt) End(ev AttemptEndEvent) {
	for _, a := range f {
		a.End(ev)
	}
}

func TestRunningConfigIsRedacted(t *testing.T) {
	cfg := Config{
		Default: EndpointConfig{Headers: map[string]string{"X-Internal-Secret": "s3cr3t-header", "User-Agent": "billing/1"}},
		Endpoints: map[string]EndpointConfig{
			"API.test": {Auth: AuthConfig{BearerToken: "tok-456"}, Timeout: 3 * time.Second},
		},
		Redact: RedactConfig{Headers: []string{"X-Internal-Secret"}},
	}
	m := newTestManager(t, cfg)
	rc := m.RunningConfig()
	b, err := MarshalConfig(rc, "yaml")
	require.NoError(t, err)
	out := string(b)
	assert.NotContains(t, out, "s3cr3t-header")
	assert.NotContains(t, out, "tok-456")
	assert.Contains(t, out, "billing/1")
	assert.Equal(t, 3*time.Second, rc.Endpoints["api.test"].Timeout)
	assert.Equal(t, "REDACTED", rc.Endpoints["api.test"].Auth.BearerToken)
}

func TestRefusalLogIsNotAnObserver(t *testing.T) {
	var buf bytes.Buffer
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil })
	m := newTestManager(t, Config{Default: EndpointConfig{RateLimit: RateLimitConfig{Rate: 1, Per: time.Hour, Burst: 1}}},
		WithTransport(ft), WithLogger(newTestLogger(&lockedWriter{w: &buf})))
	require.NotNil(t, m.opts.telemetry.monitor)
	assert.Empty(t, m.observers, "a logger costs a call nothing until it is refused")
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
	resp, err := m.RoundTrip(req)
	require.NoError(t, err)
	readAll(t, resp)
	_, err = m.RoundTrip(req)
	require.ErrorIs(t, err, ErrRateLimited)
	assert.Contains(t, buf.String(), `msg="connmgr: call refused" endpoint=default reason=rate_limited`)
}
