package connmgr

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// deadURL returns the URL of a loopback port nothing listens on.
func deadURL(t testing.TB) string {
	s := connmgrtest.NewServer()
	u := s.URL
	s.Close()
	return u
}

// hammer sends n GETs to url from workers goroutines and counts the
// calls that failed (an error, or a 5xx). Bounded by a minute.
func hammer(t *testing.T, m *Manager, url string, n, workers int) (failed int64, firstErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var next, nFailed atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				resp, err := m.Get(ctx, url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode >= 500 {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					nFailed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "the calls took longer than a minute")
	return nFailed.Load(), firstErr
}

func TestLoadBalancingRidesOutADeadAndAFailingUpstream(t *testing.T) {
	var ups []UpstreamConfig
	for i := 0; i < 3; i++ {
		s := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
		defer s.Close()
		ups = append(ups, UpstreamConfig{URL: s.URL})
	}
	failing := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer failing.Close()
	dead := deadURL(t)
	ups = append(ups, UpstreamConfig{URL: failing.URL}, UpstreamConfig{URL: dead})

	t.Run("naive round robin without retries", func(t *testing.T) {
		// The contrast: no retries, no ejection, no breaker.
		m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"payments": {
			Upstreams:        ups,
			Retry:            RetryConfig{MaxAttempts: 1},
			OutlierDetection: OutlierConfig{Disabled: Bool(true)},
			CircuitBreaker:   BreakerConfig{Disabled: Bool(true)},
		}}})
		failed, _ := hammer(t, m, "http://payments/v1/x", 1000, 8)
		assert.InDelta(t, 400, failed, 20, "2 of 5 upstreams fail: about 40%% of calls")
	})

	t.Run("defaults", func(t *testing.T) {
		// Default settings but faster backoff, so the test is quick.
		m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"payments": {
			Upstreams: ups,
			Retry:     RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		}}})
		const calls = 10000
		failed, firstErr := hammer(t, m, "http://payments/v1/x", calls, 16)
		rate := float64(failed) / calls
		t.Logf("client-visible failures: %d of %d (%.3f%%); first: %v", failed, calls, rate*100, firstErr)
		assert.Less(t, rate, 0.005)

		var total, deadN, failingN uint64
		for _, u := range m.Stats().Endpoints["payments"].Upstreams {
			total += u.Requests
			switch u.Upstream {
			case dead:
				deadN = u.Requests
			case failing.URL:
				failingN = u.Requests
			}
		}
		t.Logf("attempts: %d in all; dead upstream %d (%.2f%%), failing upstream %d (%.2f%%)",
			total, deadN, 100*float64(deadN)/float64(total), failingN, 100*float64(failingN)/float64(total))
		assert.Less(t, float64(deadN)/float64(total), 0.02, "the dead upstream's share of attempts")
		assert.Less(t, float64(failingN)/float64(total), 0.02, "the failing upstream's share of attempts")
		h := m.Health().Endpoints["payments"]
		out := 0
		for _, u := range h.Upstreams {
			if u.Ejected {
				out++
			}
		}
		assert.Equal(t, 1, out, "max_ejection_percent 10%% of 5: one ejected, the other held off by its breaker")
	})
}

func TestLogicalEndpointRequestGoesToAnUpstream(t *testing.T) {
	a := connmgrtest.NewServer(connmgrtest.Step{Body: "a"})
	defer a.Close()
	b := connmgrtest.NewServer(connmgrtest.Step{Body: "b"})
	defer b.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"payments": {
		Upstreams: []UpstreamConfig{{URL: a.URL}, {URL: b.URL}},
	}}})
	req, err := http.NewRequest(http.MethodGet, "http://payments/v1/charge?id=7", nil)
	require.NoError(t, err)
	req.Header.Set("X-Trace", "t1")
	var bodies []string
	for i := 0; i < 2; i++ {
		resp, err := m.Do(req)
		require.NoError(t, err)
		bodies = append(bodies, readAll(t, resp))
		assert.Equal(t, "/v1/charge", resp.Request.URL.Path)
		assert.Equal(t, "id=7", resp.Request.URL.RawQuery)
		assert.Contains(t, []string{a.Addr(), b.Addr()}, resp.Request.URL.Host, "resp.Request shows where it went")
	}
	assert.ElementsMatch(t, []string{"a", "b"}, bodies, "round robin")
	assert.Equal(t, "http://payments/v1/charge?id=7", req.URL.String(), "the caller's request is not modified")
	assert.Equal(t, "payments", req.Host)
	got := a.Requests()
	require.Len(t, got, 1)
	assert.Equal(t, a.Addr(), got[0].Host, "the Host header names the upstream")
	assert.Equal(t, "t1", got[0].Header.Get("X-Trace"))
}

func TestNoHealthyUpstreamFallsBackOrSaysWhy(t *testing.T) {
	fb := connmgrtest.NewServer(connmgrtest.Step{Body: "from the fallback"})
	defer fb.Close()
	dead := deadURL(t)
	cfg := Config{Endpoints: map[string]EndpointConfig{
		"payments": {
			Upstreams:        []UpstreamConfig{{URL: dead}},
			Retry:            RetryConfig{MaxAttempts: 1},
			OutlierDetection: OutlierConfig{Consecutive5xx: 1, ConsecutiveGatewayFailure: 1},
			PanicThreshold:   -1,
		},
	}}
	m := newTestManager(t, cfg)
	_, err := get(t, m, "http://payments/x")
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "the first call reaches the dead upstream")
	_, err = get(t, m, "http://payments/x")
	require.ErrorIs(t, err, ErrNoHealthyUpstream)
	var nh *NoHealthyUpstreamError
	require.ErrorAs(t, err, &nh)
	assert.Equal(t, "payments", nh.Endpoint)
	require.Len(t, nh.Upstreams, 1)
	assert.Equal(t, dead, nh.Upstreams[0].Upstream)
	assert.True(t, strings.HasPrefix(nh.Upstreams[0].Reason, "ejected for "), nh.Upstreams[0].Reason)

	// With a fallback endpoint, it answers instead.
	pc := cfg.Endpoints["payments"]
	pc.Fallback = fb.Addr()
	cfg.Endpoints["payments"] = pc
	cfg.Endpoints[fb.Addr()] = EndpointConfig{}
	m2 := newTestManager(t, cfg)
	_, _ = get(t, m2, "http://payments/x") // ejects the dead one
	resp, err := get(t, m2, "http://payments/x")
	require.NoError(t, err)
	assert.Equal(t, "from the fallback", readAll(t, resp))
}

func TestUpstreamConfigErrorsAtNew(t *testing.T) {
	_, err := New(Config{
		Default: EndpointConfig{Upstreams: []UpstreamConfig{{URL: "https://a"}}},
		Endpoints: map[string]EndpointConfig{
			"x": {Balancer: "foo", Upstreams: []UpstreamConfig{{URL: "a:80"}}},
			"y": {HealthCheck: HealthCheckConfig{Path: "health", Interval: time.Millisecond}},
		},
	})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	msg := err.Error()
	for _, want := range []string{
		"default.upstreams: the default block cannot have upstreams",
		`endpoints["x"].upstreams[0].url: want an http:// or https:// URL`,
		`endpoints["y"].health_check.path: must start with '/'`,
		`endpoints["y"].health_check.interval: must be at least 1s`,
	} {
		assert.Contains(t, msg, want)
	}
	_, err = New(Config{Endpoints: map[string]EndpointConfig{"x": {Balancer: "foo"}}})
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), `endpoints["x"].balancer: unknown balancer "foo"`)

	// Registered, it is fine; a built-in name cannot be taken.
	m, err := New(Config{Endpoints: map[string]EndpointConfig{"x": {Balancer: "foo"}}},
		WithBalancer("foo", BalancerBuilderFunc(func(ups []*Upstream) Picker { return nil })))
	require.NoError(t, err)
	m.Close()
	_, err = New(Config{}, WithBalancer("random", BalancerBuilderFunc(func(ups []*Upstream) Picker { return nil })))
	assert.ErrorContains(t, err, `WithBalancer: "random" is a built-in balancer`)
}

func TestCustomBalancerThroughTheManager(t *testing.T) {
	a := connmgrtest.NewServer(connmgrtest.Step{Body: "a"})
	defer a.Close()
	b := connmgrtest.NewServer(connmgrtest.Step{Body: "b"})
	defer b.Close()
	var outcomes atomic.Int64
	// "last": always the last upstream, reporting each outcome.
	last := BalancerBuilderFunc(func(ups []*Upstream) Picker {
		return PickerFunc(func(PickInfo) (PickResult, error) {
			return PickResult{Upstream: ups[len(ups)-1], Done: func(Outcome) { outcomes.Add(1) }}, nil
		})
	})
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"svc": {
		Upstreams: []UpstreamConfig{{URL: a.URL}, {URL: b.URL}}, Balancer: "last",
	}}}, WithBalancer("last", last))
	for i := 0; i < 3; i++ {
		resp, err := get(t, m, "http://svc/")
		require.NoError(t, err)
		assert.Equal(t, "b", readAll(t, resp))
	}
	assert.EqualValues(t, 3, outcomes.Load())
}

func TestRetryGoesToAnotherUpstream(t *testing.T) {
	bad := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer bad.Close()
	good := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
	defer good.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"svc": {
		Upstreams: []UpstreamConfig{{URL: bad.URL}, {URL: good.URL}},
		Balancer:  BalancerRandom,
		Retry:     RetryConfig{MaxAttempts: 2, InitialBackoff: time.Millisecond},
	}}})
	for i := 0; i < 20; i++ {
		resp, err := get(t, m, "http://svc/")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "call %d: the retry went to the other upstream", i)
		resp.Body.Close()
	}
	assert.LessOrEqual(t, bad.Count(), int64(5+1), "then the failing one was ejected (or its breaker opened)")
}

func TestLBGoroutinesStopOnReloadAndClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
	defer srv.Close()
	cfg := func(path string) Config {
		return Config{Endpoints: map[string]EndpointConfig{"svc": {
			Upstreams:   []UpstreamConfig{{URL: srv.URL}, {URL: "dns:///svc.internal:" + srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]}},
			HealthCheck: HealthCheckConfig{Path: path, Interval: time.Second},
		}}}
	}
	m, err := New(cfg("/a"), WithResolver(staticResolver{"svc.internal": {"127.0.0.1"}}))
	require.NoError(t, err)
	resp, err := get(t, m, "http://svc/")
	require.NoError(t, err)
	resp.Body.Close()
	first := m.table.Load().byKey["svc"].lb

	// A changed endpoint gets new goroutines; the old ones stop.
	require.NoError(t, m.Reload(cfg("/b")))
	second := m.table.Load().byKey["svc"].lb
	require.NotSame(t, first, second)
	select {
	case <-first.hc.done:
	default:
		t.Fatal("the replaced endpoint's health checker still runs")
	}
	select {
	case <-first.disc.done:
	default:
		t.Fatal("the replaced endpoint's discoverer still runs")
	}
	var sum uint64
	up := m.Stats().Endpoints["svc"].Upstreams
	require.Len(t, up, 2, "the new endpoint starts from the addresses the old one found")
	for _, u := range up {
		sum += u.Requests
	}
	assert.EqualValues(t, 1, sum, "the history carried over by address")

	// An unchanged endpoint keeps them.
	require.NoError(t, m.Reload(cfg("/b")))
	assert.Same(t, second, m.table.Load().byKey["svc"].lb)
	require.NoError(t, m.Close())
	select {
	case <-second.hc.done:
	default:
		t.Fatal("Close did not stop the health checker")
	}
}

func TestNoHealthyUpstreamNamesAnOpenBreaker(t *testing.T) {
	bad := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer bad.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"svc": {
		Upstreams:        []UpstreamConfig{{URL: bad.URL}},
		Retry:            RetryConfig{MaxAttempts: 1},
		CircuitBreaker:   BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Minute},
		OutlierDetection: OutlierConfig{Disabled: Bool(true)},
	}}})
	resp, err := get(t, m, "http://svc/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp.Body.Close()
	_, err = get(t, m, "http://svc/")
	require.ErrorIs(t, err, ErrNoHealthyUpstream)
	var nh *NoHealthyUpstreamError
	require.ErrorAs(t, err, &nh)
	assert.Regexp(t, `^circuit open \(next probe in [\dms.]+\)$`, nh.Upstreams[0].Reason)
	assert.EqualValues(t, 1, bad.Count(), "the open breaker kept the second call off the network")
	assert.Equal(t, "open", m.Stats().Endpoints["svc"].Upstreams[0].Breaker)
}

func TestWeightsAndHashKeysThroughTheManager(t *testing.T) {
	a := connmgrtest.NewServer(connmgrtest.Step{Body: "a"})
	defer a.Close()
	b := connmgrtest.NewServer(connmgrtest.Step{Body: "b"})
	defer b.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"weighted": {Upstreams: []UpstreamConfig{{URL: a.URL}, {URL: b.URL, Weight: 3}}, Balancer: BalancerWeightedRoundRobin},
		"sticky":   {Upstreams: []UpstreamConfig{{URL: a.URL}, {URL: b.URL}}, Balancer: BalancerConsistentHash, HashKey: "header:X-User-ID"},
	}})
	got := map[string]int{}
	for i := 0; i < 400; i++ {
		got[callOK(t, m, "http://weighted/")]++
	}
	assert.Equal(t, map[string]int{"a": 100, "b": 300}, got)

	for _, user := range []string{"alice", "bob", "carol", "dave"} {
		seen := map[string]bool{}
		for i := 0; i < 5; i++ {
			req, _ := http.NewRequest(http.MethodGet, "http://sticky/cart", nil)
			req.Header.Set("X-User-ID", user)
			resp, err := m.Do(req)
			require.NoError(t, err)
			seen[readAll(t, resp)] = true
		}
		assert.Len(t, seen, 1, "every call of %s goes to the same upstream", user)
	}
}
