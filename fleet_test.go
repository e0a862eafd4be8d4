package connmgr

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestRedisBlockValidation(t *testing.T) {
	const secret = "s3cretpw"
	for _, tc := range []struct {
		name  string
		redis RedisConfig
		path  string
	}{
		{"unparsable URL", RedisConfig{URL: "redis://u:" + secret + "@[::1"}, "redis.url"},
		{"wrong scheme", RedisConfig{URL: "http://u:" + secret + "@h:6379"}, "redis.url"},
		{"no host", RedisConfig{URL: "redis://"}, "redis.url"},
		{"unknown on_error", RedisConfig{URL: "redis://h:6379", OnError: "fail"}, "redis.on_error"},
		{"negative timeout", RedisConfig{URL: "redis://h:6379", Timeout: -time.Second}, "redis.timeout"},
		{"share above 1", RedisConfig{URL: "redis://h:6379", LocalShare: 2}, "redis.local_share"},
		{"block without url", RedisConfig{OnError: "deny"}, "redis.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{Redis: tc.redis}.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Path != tc.path {
				t.Fatalf("Validate: %v; want one problem at %s", err, tc.path)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
	for _, ok := range []RedisConfig{{}, {URL: "redis://h:6379/0"}, {URL: "rediss://u:p@h:6380", OnError: "allow", Timeout: time.Second, LocalShare: 0.5}, {URL: "unix:///run/redis.sock"}} {
		if err := (Config{Redis: ok}).Validate(); err != nil {
			t.Errorf("Validate(%+v): %v; want nil", ok, err)
		}
	}
}

func TestRedisPasswordNeverPrinted(t *testing.T) {
	cfg, err := parseConfig([]byte("redis: {url: \"${REDIS_URL}\", on_error: deny}\n"), "yaml", "x.yaml", "", fakeEnv(map[string]string{"REDIS_URL": "redis://app:s3cretpw@cache.internal:6379/2?password=alsosecret"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.Redis.URL, "s3cretpw") {
		t.Fatalf("the loaded URL lost its password: the connector needs it")
	}
	red := cfg.Redacted()
	for _, format := range []string{"yaml", "json"} {
		out, err := MarshalConfig(red, format)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "s3cretpw") || strings.Contains(string(out), "alsosecret") || !strings.Contains(string(out), "cache.internal:6379") {
			t.Errorf("Redacted() as %s: %s; want the host without the passwords", format, out)
		}
	}
	eff, err := cfg.Effective()
	if err != nil {
		t.Fatal(err)
	}
	if r := eff.Redis; r.Prefix != "connmgr:" || r.Timeout != 50*time.Millisecond || r.OnError != "deny" {
		t.Errorf("Effective().Redis = %+v; want the defaults filled in", r)
	}
}

// fakeFleet is a FleetStore that shares nothing and counts its Close.
type fakeFleet struct {
	closed atomic.Int64
}

func (f *fakeFleet) Reserve(context.Context, string, Limit, time.Duration) (Reservation, error) {
	return Reservation{OK: true}, nil
}
func (f *fakeFleet) Cancel(context.Context, string, Limit, Reservation) error { return nil }
func (f *fakeFleet) Pause(context.Context, string, time.Time) error           { return nil }
func (f *fakeFleet) Publish(context.Context, BreakerSignal) error             { return nil }
func (f *fakeFleet) Subscribe(func(BreakerSignal)) func()                     { return func() {} }
func (f *fakeFleet) AcquireProbe(context.Context, string, string, time.Duration, int) (bool, error) {
	return true, nil
}
func (f *fakeFleet) Close() error { f.closed.Add(1); return nil }

func TestFleetConnector(t *testing.T) {
	cfg := Config{Redis: RedisConfig{URL: "redis://u:s3cretpw@127.0.0.1:1/0"}}
	t.Run("no connector", func(t *testing.T) {
		_, err := New(cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Problems[0].Path != "redis" || !strings.Contains(err.Error(), "WithFleetConnector") {
			t.Fatalf("New with a redis block and no connector: %v; want a ConfigError at redis naming WithFleetConnector", err)
		}
	})
	t.Run("opened once, closed by Close", func(t *testing.T) {
		f := &fakeFleet{}
		var got FleetDial
		calls := 0
		m, err := New(cfg, WithFleetConnector(func(d FleetDial) (FleetStore, error) { calls++; got = d; return f, nil }))
		if err != nil {
			t.Fatal(err)
		}
		if calls != 1 || got.Redis.URL != cfg.Redis.URL || got.Logger == nil {
			t.Errorf("connector called %d times with %+v; want once with the block and a logger", calls, got)
		}
		if m.opts.rateStore != f || m.opts.breakerStore != f {
			t.Error("the opened store is not the Manager's rate-limit and breaker store")
		}
		_ = m.Close()
		_ = m.Close()
		if n := f.closed.Load(); n != 1 {
			t.Errorf("store closed %d times; want 1", n)
		}
	})
	t.Run("stores given in code win", func(t *testing.T) {
		f := &fakeFleet{}
		called := false
		m, err := New(cfg, WithRateLimitStore(f), WithBreakerStore(f), WithFleetConnector(func(FleetDial) (FleetStore, error) { called = true; return f, nil }))
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Close()
		if called || f.closed.Load() != 0 {
			t.Errorf("connector called %v, store closed %d times; want neither: the Manager did not open it", called, f.closed.Load())
		}
	})
	t.Run("connector error, panic, nil", func(t *testing.T) {
		sentinel := errors.New("dial redis://u:s3cretpw@127.0.0.1:1/0 failed")
		for name, c := range map[string]FleetConnector{
			"error": func(FleetDial) (FleetStore, error) { return nil, sentinel },
			"panic": func(FleetDial) (FleetStore, error) { panic("boom") },
			"nil":   func(FleetDial) (FleetStore, error) { return (*fakeFleet)(nil), nil },
		} {
			_, err := New(cfg, WithFleetConnector(c), WithLogger(slog.New(slog.DiscardHandler)))
			if err == nil || strings.Contains(err.Error(), "s3cretpw") {
				t.Errorf("%s: New: %v; want an error without the password", name, err)
			}
			if name == "error" && !errors.Is(err, sentinel) {
				t.Errorf("error: %v does not wrap the connector's error", err)
			}
		}
	})
}

// TestRootImportsNoRedis: programs that never import redisstore never
// compile a Redis client.
func TestRootImportsNoRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "redis") {
			t.Errorf("the root package depends on %s", dep)
		}
	}
}

// healthStore is a rate-limit store that reports its health.
type healthStore struct {
	*MemoryRateLimitStore
	st FleetStats
}

func (h healthStore) FleetStats() FleetStats { return h.st }

func TestFleetHealthInStatsAndMetrics(t *testing.T) {
	store := healthStore{NewMemoryRateLimitStore(), FleetStats{Healthy: false, Outages: 2, OnError: "deny"}}
	h := newOTelHarness(t, Config{}, WithRateLimitStore(store))
	if f := h.m.Stats().Fleet; f == nil || f.Outages != 2 || f.Healthy || f.OnError != "deny" {
		t.Fatalf("Stats().Fleet = %+v; want the store's health", f)
	}
	rm := h.metrics(t)
	if n := sumInt(t, rm, "connmgr.client.fleet.outages", nil); n != 2 {
		t.Errorf("connmgr.client.fleet.outages = %d; want 2", n)
	}
	g, ok := findMetric(t, rm, "connmgr.client.fleet.healthy").Data.(metricdata.Gauge[int64])
	if !ok || len(g.DataPoints) != 1 || g.DataPoints[0].Value != 0 {
		t.Errorf("connmgr.client.fleet.healthy = %+v; want one point, 0", g)
	}
	if f := newTestManager(t, Config{}).Stats().Fleet; f != nil {
		t.Errorf("Stats().Fleet without a fleet = %+v; want nil", f)
	}
}

func TestReloadWarnsWhenTheRedisBlockChanges(t *testing.T) {
	var logs lockedWriter
	var buf strings.Builder
	logs.w = &buf
	f := &fakeFleet{}
	cfg := Config{Redis: RedisConfig{URL: "redis://127.0.0.1:1/0"}}
	m, err := New(cfg, WithFleetConnector(func(FleetDial) (FleetStore, error) { return f, nil }), WithLogger(newTestLogger(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "redis block changed") {
		t.Errorf("a reload with the same redis block warned: %s", buf.String())
	}
	cfg.Redis.URL = "redis://127.0.0.1:2/0"
	if err := m.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "redis block changed") {
		t.Errorf("a reload with another redis block did not warn: %q", buf.String())
	}
}

// TestFleetStoreClosedWhenNewFails: a store opened for a config that New
// then refuses is closed before New returns.
func TestFleetStoreClosedWhenNewFails(t *testing.T) {
	f := &fakeFleet{}
	cfg := Config{
		Redis:   RedisConfig{URL: "redis://127.0.0.1:1/0"},
		Default: EndpointConfig{Retry: RetryConfig{MaxAttempts: -1}},
	}
	opened := 0
	connect := func(FleetDial) (FleetStore, error) { opened++; return f, nil }
	if _, err := New(cfg, WithFleetConnector(connect)); err == nil {
		t.Fatal("New accepted max_attempts: -1")
	}
	if n := f.closed.Load(); int(n) != opened {
		t.Errorf("store opened %d times, closed %d times; want as many closes as opens", opened, n)
	}
}
