package connmgr

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/connmgr/connmgr/connmgrtest"
)

// e2eGet sends a GET carrying every kind of secret through m and reads
// the body to the end.
func e2eGet(t *testing.T, ctx context.Context, m *Manager, rawURL string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer abc.def")
	req.Header.Set("Cookie", "session=cookie-789")
	req.Header.Set("X-Api-Key", "X-Api-Key-Value-000")
	resp, err := m.Do(req)
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	assert.Empty(t, req.Header.Get("traceparent"), "the caller's request is never written to")
	return resp, string(b), nil
}

// secretPath is what e2e calls append to an upstream's address: user
// info, an api_key and a configured secret query key.
func secretURLFor(s *connmgrtest.Server, path string) string {
	return "http://alice:hunter2@" + s.Addr() + path + "?api_key=sk_live_123&token=tok-456&page=2"
}

func spansByParent(spans tracetest.SpanStubs) map[trace.SpanID][]tracetest.SpanStub {
	out := map[trace.SpanID][]tracetest.SpanStub{}
	for _, s := range spans {
		out[s.Parent.SpanID()] = append(out[s.Parent.SpanID()], s)
	}
	return out
}

func TestE2ESpanTreeOfACallWithTwoRetries(t *testing.T) {
	up := connmgrtest.NewServer(
		connmgrtest.Step{Status: 503, Body: "busy"},
		connmgrtest.Step{Status: 503, Body: "busy"},
		connmgrtest.Step{Body: "ok"},
	)
	defer up.Close()
	h := newOTelHarness(t, Config{Default: fastRetries(3)})
	parentTP := sdktrace.NewTracerProvider()
	defer func() { _ = parentTP.Shutdown(context.Background()) }()
	ctx, parent := parentTP.Tracer("caller").Start(context.Background(), "caller")

	resp, body, err := e2eGet(t, ctx, h.m, secretURLFor(up, "/v1/orders"))
	parent.End()
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "ok", body)

	spans := h.spans.GetSpans()
	require.Len(t, spans, 4, "a call span and three attempt spans")
	tree := spansByParent(spans)
	calls := tree[parent.SpanContext().SpanID()]
	require.Len(t, calls, 1, "one call span under the caller's span")
	call := calls[0]
	assert.Equal(t, "connmgr GET", call.Name)
	attempts := tree[call.SpanContext.SpanID()]
	require.Len(t, attempts, 3, "three attempt spans under the call span")
	got := up.Requests()
	require.Len(t, got, 3)
	for i, a := range attempts {
		attrs := attrMap(a.Attributes)
		assert.Equal(t, trace.SpanKindClient, a.SpanKind)
		assert.Equal(t, int64(i+1), attrs["connmgr.attempt"].AsInt64())
		if i > 0 {
			assert.Equal(t, int64(i), attrs["http.request.resend_count"].AsInt64())
		}
		assert.Equal(t, "127.0.0.1", attrs["server.address"].AsString())
		assert.Equal(t, up.Addr(), attrs["connmgr.upstream"].AsString())
		assert.Equal(t, "http://REDACTED@"+up.Addr()+"/v1/orders?api_key=REDACTED&token=REDACTED&page=2", attrs["url.full"].AsString())
		assert.Equal(t, fmt.Sprintf("00-%s-%s-01", a.SpanContext.TraceID(), a.SpanContext.SpanID()), got[i].Header.Get("Traceparent"),
			"attempt %d carries its own span as the parent", i+1)
		assert.NotEmpty(t, attrs["network.peer.address"].AsString(), "the peer address is known")
		if i < 2 {
			assert.Equal(t, "503", attrs["error.type"].AsString())
			assert.Equal(t, codes.Error, a.Status.Code)
		} else {
			assert.Equal(t, int64(200), attrs["http.response.status_code"].AsInt64())
		}
	}
	c := attrMap(call.Attributes)
	assert.Equal(t, int64(3), c["connmgr.attempts"].AsInt64())
	assert.Equal(t, "success", c["connmgr.outcome"].AsString())
	var backoffs int
	for _, ev := range call.Events {
		if ev.Name == "connmgr.backoff" {
			backoffs++
			assert.Equal(t, "status", attrMap(ev.Attributes)["connmgr.retry.reason"].AsString())
		}
	}
	assert.Equal(t, 2, backoffs)
	assert.False(t, call.EndTime.Before(attempts[2].EndTime), "the call span ends when the last body is closed")
	assertNoSecrets(t, h)
}

func TestE2ERefusedCallLeavesASpanWithTheReason(t *testing.T) {
	up := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer up.Close()
	cfg := Config{Default: fastRetries(1)}
	cfg.Default.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Minute}
	h := newOTelHarness(t, cfg)
	resp, _, err := e2eGet(t, context.Background(), h.m, secretURLFor(up, "/a"))
	require.NoError(t, err)
	require.Equal(t, 503, resp.StatusCode)
	h.spans.Reset()

	_, _, err = e2eGet(t, context.Background(), h.m, secretURLFor(up, "/b"))
	require.ErrorIs(t, err, ErrCircuitOpen)
	spans := h.spans.GetSpans()
	require.Len(t, spans, 1, "a refused call has a call span and no attempt span")
	s := spans[0]
	assert.Equal(t, codes.Error, s.Status.Code)
	a := attrMap(s.Attributes)
	assert.Equal(t, "circuit_open", a["error.type"].AsString())
	assert.Equal(t, "refused", a["connmgr.outcome"].AsString())
	require.NotEmpty(t, s.Events)
	assert.Equal(t, "connmgr.refused", s.Events[0].Name)
	assert.Equal(t, "circuit_open", attrMap(s.Events[0].Attributes)["connmgr.refusal.reason"].AsString())
	assert.Contains(t, h.logs.String(), "connmgr: call refused")
	rm := h.metrics(t)
	assert.Equal(t, int64(1), sumInt(t, rm, "connmgr.client.refusals", map[string]string{"connmgr.refusal.reason": "circuit_open", "connmgr.endpoint": "default"}))
	assert.Equal(t, int64(1), sumInt(t, rm, "connmgr.client.calls", map[string]string{"connmgr.outcome": "refused"}))
	assert.Equal(t, int64(1), sumInt(t, rm, "connmgr.client.calls", map[string]string{"connmgr.outcome": "failure"}), "the 503 that opened the breaker")
	assertNoSecrets(t, h)
}

func TestE2EFallbackEndpoint(t *testing.T) {
	primary := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer primary.Close()
	fallback := connmgrtest.NewServer(connmgrtest.Step{Body: "from the fallback"})
	defer fallback.Close()
	pc := fastRetries(1)
	pc.CircuitBreaker = BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Minute}
	pc.Fallback = fallback.Addr()
	h := newOTelHarness(t, Config{Default: fastRetries(1), Endpoints: map[string]EndpointConfig{primary.Addr(): pc, fallback.Addr(): {}}})
	_, _, err := e2eGet(t, context.Background(), h.m, secretURLFor(primary, "/a")) // opens the breaker
	require.NoError(t, err)
	h.spans.Reset()

	resp, body, err := e2eGet(t, context.Background(), h.m, secretURLFor(primary, "/b"))
	require.NoError(t, err)
	assert.Equal(t, "from the fallback", body)
	assert.Equal(t, 200, resp.StatusCode)
	// The open breaker refuses the primary's call before any attempt: its
	// span ends with the refusal and the fallback outcome; the fallback
	// endpoint's call is traced as a call of its own, with its attempt.
	spans := h.spans.GetSpans()
	require.Len(t, spans, 3)
	tree := spansByParent(spans)
	calls := tree[trace.SpanID{}]
	require.Len(t, calls, 2)
	byEndpoint := map[string]tracetest.SpanStub{}
	for _, c := range calls {
		byEndpoint[attrMap(c.Attributes)["connmgr.endpoint"].AsString()] = c
	}
	pcs, ok := byEndpoint[primary.Addr()]
	require.True(t, ok, "the primary's call span")
	assert.Equal(t, "fallback", attrMap(pcs.Attributes)["connmgr.outcome"].AsString())
	require.NotEmpty(t, pcs.Events)
	assert.Equal(t, "circuit_open", attrMap(pcs.Events[0].Attributes)["connmgr.refusal.reason"].AsString())
	assert.Empty(t, tree[pcs.SpanContext.SpanID()], "the refused call sent no attempt")
	fcs, ok := byEndpoint[fallback.Addr()]
	require.True(t, ok, "the fallback's call span")
	assert.Equal(t, "success", attrMap(fcs.Attributes)["connmgr.outcome"].AsString())
	attempts := tree[fcs.SpanContext.SpanID()]
	require.Len(t, attempts, 1, "the fallback call's attempt")
	assert.Equal(t, fallback.Addr(), attrMap(attempts[0].Attributes)["connmgr.upstream"].AsString())
	assert.Equal(t, int64(1), fallback.Count())
	assertNoSecrets(t, h)
}

func TestE2EMetricPointsAfterAScriptedRun(t *testing.T) {
	up := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if strings.HasSuffix(r.URL.Path, "/flaky") && n%2 == 1 {
			return connmgrtest.Step{Status: 503}
		}
		return connmgrtest.Step{Body: "ok"}
	})
	defer up.Close()
	h := newOTelHarness(t, Config{Default: fastRetries(3)})
	for range 4 {
		_, _, err := e2eGet(t, context.Background(), h.m, secretURLFor(up, "/ok"))
		require.NoError(t, err)
	}
	up.Reset()
	_, _, err := e2eGet(t, context.Background(), h.m, secretURLFor(up, "/flaky")) // 503, then 200
	require.NoError(t, err)

	rm := h.metrics(t)
	hd := findMetric(t, rm, "http.client.request.duration").Data.(metricdata.Histogram[float64])
	var attempts, failed uint64
	for _, dp := range hd.DataPoints {
		attempts += dp.Count
		if et, ok := dp.Attributes.Value("error.type"); ok && et.AsString() == "503" {
			failed += dp.Count
		}
		addr, _ := dp.Attributes.Value("server.address")
		assert.Equal(t, "127.0.0.1", addr.AsString())
	}
	assert.Equal(t, uint64(6), attempts, "4 calls of one attempt and one of two")
	assert.Equal(t, uint64(1), failed)
	assert.Equal(t, int64(5), sumInt(t, rm, "connmgr.client.calls", map[string]string{"connmgr.outcome": "success", "connmgr.endpoint": "default"}))
	assert.Equal(t, int64(1), sumInt(t, rm, "connmgr.client.retries", map[string]string{"connmgr.retry.reason": "status"}))
	assert.Equal(t, int64(0), sumInt(t, rm, "http.client.active_requests", nil), "every body was closed")
	w := h.m.Stats().Endpoints["default"].Window
	require.NotNil(t, w)
	assert.Equal(t, uint64(5), w.Requests)
	assertNoSecrets(t, h)
}

func TestE2ESecretSweepWithTransportErrors(t *testing.T) {
	up := connmgrtest.NewServer(connmgrtest.Step{Reset: true}, connmgrtest.Step{Status: 502}, connmgrtest.Step{Body: "ok"})
	defer up.Close()
	cfg := Config{Default: fastRetries(3)}
	cfg.Default.Auth = AuthConfig{BearerToken: "tok-456"}
	h := newOTelHarness(t, cfg)
	_, body, err := e2eGet(t, context.Background(), h.m, secretURLFor(up, "/v1/orders"))
	require.NoError(t, err)
	assert.Equal(t, "ok", body)
	assert.Contains(t, h.logs.String(), "connmgr: retrying", "the debug log saw the retries")
	types := map[string]bool{}
	for _, s := range h.spans.GetSpans() {
		if et, ok := attrMap(s.Attributes)["error.type"]; ok {
			types[et.AsString()] = true
		}
	}
	assert.True(t, types["502"], "error types %v", types)
	assert.Len(t, types, 2, "the reset and the 502: %v", types)
	// A refused call and a bad URL, for the log and the spans too.
	h.m.Close()
	_, _, err = e2eGet(t, context.Background(), h.m, secretURLFor(up, "/closed"))
	require.ErrorIs(t, err, ErrClosed)
	assertNoSecrets(t, h)
}
