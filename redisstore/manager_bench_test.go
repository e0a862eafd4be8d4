package redisstore

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// okTransport answers every request at once, so the benchmarks measure
// the Manager, not a network.
type okTransport struct{}

func (okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

func benchManager(b *testing.B, srv *redistest.Server, ep connmgr.EndpointConfig) *connmgr.Manager {
	b.Helper()
	cfg := connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{"api.example": ep}}
	opts := []connmgr.Option{connmgr.WithTransport(okTransport{})}
	if srv != nil {
		cfg.Redis = connmgr.RedisConfig{URL: srv.URL(), Prefix: "bench:"}
		opts = append(opts, connmgr.WithFleetConnector(Connect))
	}
	m, err := connmgr.New(cfg, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	return m
}

func runCalls(b *testing.B, m *connmgr.Manager) {
	req, _ := http.NewRequest(http.MethodGet, "http://api.example/v1", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := m.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// BenchmarkManagerAdmission is one call through a Manager with a rate
// limit kept locally and with `scope: fleet` (one Redis round trip on
// loopback per admission).
func BenchmarkManagerAdmission(b *testing.B) {
	limit := connmgr.RateLimitConfig{Rate: 1e9, Per: time.Second, Burst: 1 << 20}
	b.Run("local", func(b *testing.B) {
		runCalls(b, benchManager(b, nil, connmgr.EndpointConfig{RateLimit: limit}))
	})
	b.Run("fleet", func(b *testing.B) {
		fleet := limit
		fleet.Scope = "fleet"
		runCalls(b, benchManager(b, redistest.Start(b), connmgr.EndpointConfig{RateLimit: fleet}))
	})
}

// BenchmarkManagerClosedBreaker is one call through a closed breaker,
// without a fleet and with breaker signals shared through Redis: the
// same cost, since admission never calls the store.
func BenchmarkManagerClosedBreaker(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		runCalls(b, benchManager(b, nil, connmgr.EndpointConfig{}))
	})
	b.Run("fleet", func(b *testing.B) {
		runCalls(b, benchManager(b, redistest.Start(b), connmgr.EndpointConfig{}))
	})
}
