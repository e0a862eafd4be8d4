package connmgr

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/connmgr/connmgr/connmgrtest"
)

// logRecord is one captured slog record, its attributes as strings.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recordingHandler keeps every record at Debug and above.
type recordingHandler struct {
	mu   sync.Mutex // guards recs
	recs []logRecord
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

// named returns the records with message msg.
func (h *recordingHandler) named(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

func (h *recordingHandler) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), h.recs...)
}

type panickingHandler struct{ recordingHandler }

func (*panickingHandler) Handle(context.Context, slog.Record) error { panic("handler broke") }

func TestUpstreamEjectionAndReturnAreLogged(t *testing.T) {
	clk := newFakeClock()
	s := testSet(5, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	h := &recordingHandler{}
	s.logger = slog.New(h)
	bad := s.members()[1]

	sendTo(t, s, bad, 5, Outcome{Err: syscall.ECONNREFUSED})
	require.True(t, ejected(s, bad))
	ej := h.named("connmgr: upstream ejected")
	require.Len(t, ej, 1)
	assert.Equal(t, slog.LevelWarn, ej[0].level)
	assert.Equal(t, map[string]string{"endpoint": "svc", "upstream": "http://10.0.0.1:80", "for": "30s", "ejections": "1"}, ej[0].attrs)
	assert.Empty(t, h.named("connmgr: upstream back from ejection"), "not back yet")

	clk.Advance(30 * time.Second)
	require.False(t, ejected(s, bad))
	back := h.named("connmgr: upstream back from ejection")
	require.Len(t, back, 1)
	assert.Equal(t, slog.LevelInfo, back[0].level)
	assert.Equal(t, map[string]string{"endpoint": "svc", "upstream": "http://10.0.0.1:80"}, back[0].attrs)

	sendTo(t, s, bad, 5, Outcome{StatusCode: 503})
	ej = h.named("connmgr: upstream ejected")
	require.Len(t, ej, 2)
	assert.Equal(t, "2", ej[1].attrs["ejections"])
	assert.Equal(t, "1m0s", ej[1].attrs["for"], "the second ejection in a row lasts twice as long")
	assert.Len(t, h.all(), 3, "nothing else is logged: %v", h.all())
}

func TestUpstreamHealthChangesAreLoggedByLevel(t *testing.T) {
	clk := newFakeClock()
	s := testSet(2, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	h := &recordingHandler{}
	s.logger = slog.New(h)
	u := s.members()[0]
	hp := &healthPolicy{healthy: 2, unhealthy: 2}

	type step struct {
		ok       bool
		errText  string
		logged   bool
		level    slog.Level
		from, to string
	}
	for i, st := range []step{
		{ok: true, logged: true, level: slog.LevelDebug, from: "unknown", to: "healthy"},
		{ok: true},
		{errText: "status 503", logged: true, level: slog.LevelDebug, from: "healthy", to: "degraded"},
		{errText: "status 503", logged: true, level: slog.LevelWarn, from: "degraded", to: "unhealthy"},
		{errText: "status 503"},
		{ok: true},
		{ok: true, logged: true, level: slog.LevelInfo, from: "unhealthy", to: "healthy"},
		{ok: true},
	} {
		before := len(h.all())
		s.reportHealth(u, hp, st.ok, st.errText)
		recs := h.all()[before:]
		if !st.logged {
			assert.Empty(t, recs, "step %d: no change, no line", i)
			continue
		}
		require.Len(t, recs, 1, "step %d", i)
		r := recs[0]
		assert.Equal(t, "connmgr: upstream health changed", r.msg, "step %d", i)
		assert.Equal(t, st.level, r.level, "step %d", i)
		want := map[string]string{"endpoint": "svc", "upstream": "http://10.0.0.0:80", "from": st.from, "to": st.to}
		if st.errText != "" {
			want["error"] = st.errText
		}
		assert.Equal(t, want, r.attrs, "step %d", i)
	}
}

func TestUpstreamLogsSurviveAPanickingHandler(t *testing.T) {
	clk := newFakeClock()
	s := testSet(3, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	s.logger = slog.New(&panickingHandler{})
	bad := s.members()[0]
	assert.NotPanics(t, func() {
		sendTo(t, s, bad, 5, Outcome{StatusCode: 502})
		s.reportHealth(bad, &healthPolicy{healthy: 1, unhealthy: 1}, false, "status 500")
		clk.Advance(30 * time.Second)
	})
	assert.False(t, ejected(s, bad), "back from ejection although its log line panicked")
}

// lbWorld is a Manager whose endpoint "payments" balances over a good
// upstream and a sick one: the sick one fails its health checks and
// answers 503, so outlier detection ejects it.
type lbWorld struct {
	m         *Manager
	good, bad *connmgrtest.Server
	sick      atomic.Bool
}

func newLBWorld(t *testing.T, opts ...Option) *lbWorld {
	t.Helper()
	w := &lbWorld{good: connmgrtest.NewServer()}
	w.sick.Store(true)
	w.bad = connmgrtest.NewServerFunc(func(int64, *http.Request) connmgrtest.Step {
		if w.sick.Load() {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable}
		}
		return connmgrtest.Step{}
	})
	t.Cleanup(w.good.Close)
	t.Cleanup(w.bad.Close)
	w.m = newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"payments": {
			Upstreams:        []UpstreamConfig{{URL: w.good.URL}, {URL: w.bad.URL}},
			Retry:            RetryConfig{MaxAttempts: 1},
			CircuitBreaker:   BreakerConfig{Disabled: Bool(true)},
			HealthCheck:      HealthCheckConfig{Path: "/health", Interval: time.Second, UnhealthyThreshold: 1, HealthyThreshold: 1},
			OutlierDetection: OutlierConfig{Consecutive5xx: 2, ConsecutiveGatewayFailure: 2, MaxEjectionPercent: 50},
			PanicThreshold:   -1,
		},
	}}, opts...)
	return w
}

// ejectBad sends calls until the sick upstream is ejected (bounded).
func (w *lbWorld) ejectBad(t *testing.T) {
	t.Helper()
	for i := 0; i < 50; i++ {
		for _, u := range w.m.Stats().Endpoints["payments"].Upstreams {
			if u.Ejected {
				return
			}
		}
		resp, err := w.m.Get(context.Background(), "http://payments/v1")
		if err == nil {
			_ = resp.Body.Close()
		}
	}
	t.Fatal("the sick upstream was never ejected")
}

func (w *lbWorld) waitUnhealthy(t *testing.T) {
	t.Helper()
	h := waitHealth(t, w.m, "payments", func(h EndpointHealth) bool { return h.Upstreams[1].Status == HealthUnhealthy })
	require.Equal(t, HealthUnhealthy, h.Upstreams[1].Status)
}

func TestUpstreamEventsThroughTheManagersLogger(t *testing.T) {
	h := &recordingHandler{}
	w := newLBWorld(t, WithLogger(slog.New(h)))
	w.waitUnhealthy(t)
	bad := "http://" + w.bad.Addr()
	var down *logRecord
	for _, r := range h.named("connmgr: upstream health changed") {
		if r.attrs["upstream"] == bad && r.attrs["to"] == "unhealthy" {
			down = &r
		}
	}
	require.NotNil(t, down, "records: %v", h.all())
	assert.Equal(t, slog.LevelWarn, down.level)
	assert.Equal(t, "payments", down.attrs["endpoint"])
	assert.Equal(t, "status 503", down.attrs["error"])

	w.sick.Store(false)
	waitHealth(t, w.m, "payments", func(h EndpointHealth) bool { return h.Upstreams[1].Status == HealthHealthy })
	var up []logRecord
	for _, r := range h.named("connmgr: upstream health changed") {
		if r.attrs["upstream"] == bad && r.attrs["from"] == "unhealthy" {
			up = append(up, r)
		}
	}
	require.Len(t, up, 1)
	assert.Equal(t, slog.LevelInfo, up[0].level)
	assert.Equal(t, "healthy", up[0].attrs["to"])
}

func TestUpstreamEventsWithoutALoggerLogNothing(t *testing.T) {
	h := &recordingHandler{}
	prev := slog.Default()
	slog.SetDefault(slog.New(h))
	t.Cleanup(func() { slog.SetDefault(prev) })

	w := newLBWorld(t, WithLogger(nil))
	w.waitUnhealthy(t)
	w.sick.Store(false)
	waitHealth(t, w.m, "payments", func(h EndpointHealth) bool { return h.Upstreams[1].Status == HealthHealthy })
	w.sick.Store(true)
	w.ejectBad(t)
	assert.Empty(t, h.all(), "WithLogger(nil) logs nothing, not even to slog.Default")
}

// upstreamPoint returns the int64 point of name for endpoint payments
// and upstream up (an authority), and whether there is one.
func upstreamPoint(t *testing.T, rm metricdata.ResourceMetrics, name, up string) (int64, bool) {
	t.Helper()
	var points []metricdata.DataPoint[int64]
	switch d := findMetric(t, rm, name).Data.(type) {
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	case metricdata.Sum[int64]:
		require.True(t, d.IsMonotonic, "%s is a counter", name)
		points = d.DataPoints
	default:
		t.Fatalf("%s is a %T", name, d)
	}
	for _, dp := range points {
		ep, _ := dp.Attributes.Value("connmgr.endpoint")
		u, _ := dp.Attributes.Value("connmgr.upstream")
		if ep.AsString() == "payments" && u.AsString() == up {
			assert.Equal(t, 2, dp.Attributes.Len(), "only endpoint and upstream: %v", dp.Attributes.ToSlice())
			return dp.Value, true
		}
	}
	return 0, false
}

func TestUpstreamHealthAndEjectionMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	w := newLBWorld(t, WithMeterProvider(mp))
	collect := func() metricdata.ResourceMetrics {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		return rm
	}
	w.waitUnhealthy(t)
	waitHealth(t, w.m, "payments", func(h EndpointHealth) bool { return h.Upstreams[0].Status == HealthHealthy })
	rm := collect()
	good, bad := w.good.Addr(), w.bad.Addr()
	for _, tc := range []struct {
		name, up string
		want     int64
	}{
		{"connmgr.client.upstream.health", good, int64(HealthHealthy)},
		{"connmgr.client.upstream.health", bad, int64(HealthUnhealthy)},
		{"connmgr.client.upstream.ejected", bad, 0},
		{"connmgr.client.upstream.ejections", bad, 0},
	} {
		got, ok := upstreamPoint(t, rm, tc.name, tc.up)
		require.True(t, ok, "%s has a point for %s", tc.name, tc.up)
		assert.Equal(t, tc.want, got, "%s %s", tc.name, tc.up)
	}
	m := findMetric(t, rm, "connmgr.client.upstream.health")
	assert.Equal(t, "{status}", m.Unit)
	assert.Equal(t, "{ejection}", findMetric(t, rm, "connmgr.client.upstream.ejections").Unit)

	// Healthy again by its checks, then ejected by its answers.
	w.sick.Store(false)
	waitHealth(t, w.m, "payments", func(h EndpointHealth) bool { return h.Upstreams[1].Status == HealthHealthy })
	w.sick.Store(true)
	w.ejectBad(t)
	rm = collect()
	got, _ := upstreamPoint(t, rm, "connmgr.client.upstream.ejected", bad)
	assert.EqualValues(t, 1, got, "ejected now")
	got, _ = upstreamPoint(t, rm, "connmgr.client.upstream.ejections", bad)
	assert.EqualValues(t, 1, got)
	got, _ = upstreamPoint(t, rm, "connmgr.client.upstream.ejections", good)
	assert.EqualValues(t, 0, got)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if strings.HasPrefix(m.Name, "connmgr.client.upstream.") {
				assert.NotContains(t, m.Name, "http://")
			}
		}
	}
}

func TestHealthReportDecodesAsItEncodes(t *testing.T) {
	in := HealthReport{Overall: HealthDegraded, Endpoints: map[string]EndpointHealth{"payments": {
		Status: HealthDegraded, Usable: 1, Total: 2,
		Upstreams: []UpstreamHealth{{Upstream: "http://a:80", Status: HealthHealthy}, {Upstream: "http://b:80", Status: HealthUnhealthy, LastError: "status 503"}},
	}}}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"status":"unhealthy"`)
	var out HealthReport
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)
	var s HealthStatus
	assert.EqualError(t, s.UnmarshalText([]byte("sick")), `connmgr: unknown health status "sick"`)
}
