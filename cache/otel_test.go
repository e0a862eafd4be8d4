package cache

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// otelSetup is a Manager with OpenTelemetry (an in-memory span exporter
// and a manual metric reader) and the cache joined to it.
type otelSetup struct {
	m      *connmgr.Manager
	c      *Cache
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
}

func newOTelSetup(t *testing.T, opts ...connmgr.Option) *otelSetup {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	m, err := connmgr.New(connmgr.Config{}, append([]connmgr.Option{connmgr.WithTracerProvider(tp), connmgr.WithMeterProvider(mp)}, opts...)...)
	require.NoError(t, err)
	c, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, m.Use(c))
	t.Cleanup(func() { m.Close() })
	return &otelSetup{m: m, c: c, spans: spans, reader: reader}
}

func (s *otelSetup) get(t *testing.T, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := s.m.RoundTrip(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp
}

func attrs(kvs []attribute.KeyValue) map[string]attribute.Value {
	out := map[string]attribute.Value{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

// sumOf adds up the int64 points of the named metric whose attributes
// include want.
func sumOf(t *testing.T, rm metricdata.ResourceMetrics, name string, want map[string]string) (int64, bool) {
	t.Helper()
	var total int64
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			found = true
			s, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is an int64 sum, got %T", name, m.Data)
		points:
			for _, dp := range s.DataPoints {
				for k, v := range want {
					if got, ok := dp.Attributes.Value(attribute.Key(k)); !ok || got.Emit() != v {
						continue points
					}
				}
				total += dp.Value
			}
		}
	}
	return total, found
}

// TestOTelCacheHitLeavesASpanAndMissesAreMarked: through a real Manager
// with tracing, a miss's call span (the pipeline's) carries
// connmgr.cache.status=miss and fwd=uri-miss, and a hit, which never
// enters the pipeline, still leaves a call span, marked hit, with no
// attempt under it.
func TestOTelCacheHitLeavesASpanAndMissesAreMarked(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "cached", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer srv.Close()
	s := newOTelSetup(t)
	url := srv.URL + "/a"
	require.Contains(t, s.get(t, url).Header.Get("Cache-Status"), "fwd=uri-miss")
	require.Contains(t, s.get(t, url).Header.Get("Cache-Status"), "hit")
	require.Equal(t, int64(1), srv.Count(), "the second call was a hit")

	var calls, attempts []tracetest.SpanStub
	for _, sp := range s.spans.GetSpans() {
		if sp.Name == "connmgr GET" {
			calls = append(calls, sp)
		} else {
			attempts = append(attempts, sp)
		}
	}
	require.Len(t, calls, 2, "a call span for the miss and one for the hit")
	require.Len(t, attempts, 1, "one attempt: the miss's")
	miss, hit := attrs(calls[0].Attributes), attrs(calls[1].Attributes)
	assert.Equal(t, "miss", miss["connmgr.cache.status"].AsString())
	assert.Equal(t, "uri-miss", miss["connmgr.cache.fwd"].AsString())
	assert.Equal(t, calls[0].SpanContext.SpanID(), attempts[0].Parent.SpanID())
	assert.Equal(t, "hit", hit["connmgr.cache.status"].AsString())
	assert.Equal(t, int64(200), hit["http.response.status_code"].AsInt64())
	assert.Equal(t, int64(0), hit["connmgr.attempts"].AsInt64())
	assert.Equal(t, "success", hit["connmgr.outcome"].AsString())
	_, hasFwd := hit["connmgr.cache.fwd"]
	assert.False(t, hasFwd)
}

// TestOTelCacheMetrics: the cache's numbers are connmgr instruments, read
// from the cache's Stats when the reader collects, and the hits are not
// counted as calls of the pipeline.
func TestOTelCacheMetrics(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "cached", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer srv.Close()
	s := newOTelSetup(t)
	for range 3 {
		s.get(t, srv.URL+"/a")
	}
	s.get(t, srv.URL+"/b")
	var rm metricdata.ResourceMetrics
	require.NoError(t, s.reader.Collect(context.Background(), &rm))
	st := s.c.Stats()
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		want  int64
	}{
		{"connmgr.client.cache.hits", nil, 2},
		{"connmgr.client.cache.misses", nil, 2},
		{"connmgr.client.cache.entries", nil, 2},
		{"connmgr.client.cache.size", nil, st.Bytes},
		{"connmgr.client.cache.coalesced", nil, 0},
		{"connmgr.client.cache.evictions", nil, 0},
		{"connmgr.client.cache.stale_served", map[string]string{"connmgr.cache.stale.reason": "stale_if_error"}, 0},
		{"connmgr.client.cache.revalidations", map[string]string{"connmgr.cache.revalidation.result": "not_modified"}, 0},
		{"connmgr.client.calls", map[string]string{"connmgr.outcome": "success"}, 2},
	} {
		got, found := sumOf(t, rm, tc.name, tc.attrs)
		assert.True(t, found, "%s is reported", tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
	assert.Positive(t, st.Bytes)
	n, _ := sumOf(t, rm, "connmgr.client.cache.hits", map[string]string{"connmgr.cache.name": "cache"})
	assert.Equal(t, int64(2), n, "the cache's name is the attribute")
}

// TestCacheMarksCallsOnlyWhenObserved: the context of the call the
// cache sends on carries its Cache-Status only when the Manager's calls
// are observed; without observers the cache adds nothing.
func TestCacheMarksCallsOnlyWhenObserved(t *testing.T) {
	for _, observed := range []bool{false, true} {
		var seen []string
		ft := connmgr.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			seen = append(seen, connmgr.CacheStatusFromContext(r.Context()))
			return &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {"max-age=60"}}, Body: http.NoBody, Request: r}, nil
		})
		opts := []connmgr.Option{connmgr.WithTransport(ft)}
		if observed {
			opts = append(opts, connmgr.WithObserver(countingObserver{}))
		}
		m, err := connmgr.New(connmgr.Config{}, opts...)
		require.NoError(t, err)
		c, err := New(Config{})
		require.NoError(t, err)
		require.NoError(t, m.Use(c))
		assert.Equal(t, observed, m.Observed())
		req, _ := http.NewRequest(http.MethodGet, "http://api.test/x", nil)
		resp, err := m.RoundTrip(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		m.Close()
		want := ""
		if observed {
			want = "fwd=uri-miss"
		}
		assert.Equal(t, []string{want}, seen, "observed=%v", observed)
	}
}

type countingObserver struct{}

func (countingObserver) StartCall(*connmgr.CallEvent) connmgr.CallObserver { return nil }

// TestOTelCacheStaleServedSpan: a stale response served (here as the
// request's max-stale allows) leaves a call span marked stale, with the
// reason, and no attempt.
func TestOTelCacheStaleServedSpan(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "cached", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer srv.Close()
	s := newOTelSetup(t)
	clk := newClock()
	s.c.now = clk.Now
	s.get(t, srv.URL+"/a")
	clk.Advance(2 * time.Minute)
	s.spans.Reset()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/a", nil)
	require.NoError(t, err)
	req.Header.Set("Cache-Control", "max-stale")
	resp, err := s.m.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Contains(t, resp.Header.Get("Cache-Status"), "detail=max-stale")
	spans := s.spans.GetSpans()
	require.Len(t, spans, 1, "one call span, no attempt")
	a := attrs(spans[0].Attributes)
	assert.Equal(t, "stale", a["connmgr.cache.status"].AsString())
	assert.Equal(t, "max-stale", a["connmgr.cache.detail"].AsString())
	assert.Equal(t, int64(1), srv.Count())
}

// TestOTelCacheSpansHaveNoSecrets: the call spans of a miss and of a hit
// carry the URL redacted, as every span does.
func TestOTelCacheSpansHaveNoSecrets(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "cached", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer srv.Close()
	s := newOTelSetup(t)
	u := "http://alice:hunter2@" + srv.Addr() + "/a?api_key=sk_live_123&page=2"
	s.get(t, u)
	require.Contains(t, s.get(t, u).Header.Get("Cache-Status"), "hit")
	spans := s.spans.GetSpans()
	require.Len(t, spans, 3)
	for _, sp := range spans {
		for _, kv := range sp.Attributes {
			v := kv.Value.Emit()
			for _, secret := range []string{"hunter2", "sk_live_123"} {
				assert.NotContains(t, v, secret, "%s of %s", kv.Key, sp.Name)
			}
		}
		if sp.Name == "connmgr GET" {
			assert.Equal(t, "http://REDACTED@"+srv.Addr()+"/a?api_key=REDACTED&page=2", attrs(sp.Attributes)["url.full"].AsString())
		}
	}
}
