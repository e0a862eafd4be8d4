package connmgr

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestUpstreamsDecodeAsStringsOrMappings(t *testing.T) {
	yml := `
endpoints:
  payments:
    upstreams:
      - https://pay-1.internal:8443
      - {url: "https://pay-2.internal:8443", weight: 3}
      - url: dns:///pay.internal:8443
    balancer: p2c_ewma
    hash_key: "header:X-User-ID"
    health_check: {path: /health, interval: 10s, timeout: 2s, healthy_threshold: 2, unhealthy_threshold: 3, expected_statuses: [200], jitter: 1s}
    outlier_detection: {consecutive_5xx: 5, consecutive_gateway_failure: 5, base_ejection_time: 30s, max_ejection_time: 300s, max_ejection_percent: 10}
    panic_threshold: 50
    slow_start: 30s
    discovery: {refresh: 15s}
`
	want := EndpointConfig{
		Upstreams: []UpstreamConfig{
			{URL: "https://pay-1.internal:8443"}, {URL: "https://pay-2.internal:8443", Weight: 3}, {URL: "dns:///pay.internal:8443"},
		},
		Balancer: "p2c_ewma",
		HashKey:  "header:X-User-ID",
		HealthCheck: HealthCheckConfig{Path: "/health", Interval: 10 * time.Second, Timeout: 2 * time.Second,
			HealthyThreshold: 2, UnhealthyThreshold: 3, ExpectedStatuses: []int{200}, Jitter: time.Second},
		OutlierDetection: OutlierConfig{Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, BaseEjectionTime: 30 * time.Second,
			MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10},
		PanicThreshold: 50,
		SlowStart:      30 * time.Second,
		Discovery:      DiscoveryConfig{Refresh: 15 * time.Second},
	}
	cfg, err := ParseConfig([]byte(yml), "yaml")
	require.NoError(t, err)
	assert.Equal(t, want, cfg.Endpoints["payments"])

	js := `{"endpoints": {"payments": {"upstreams": ["https://pay-1.internal:8443", {"url": "https://pay-2.internal:8443", "weight": 3}]}}}`
	cfg, err = ParseConfig([]byte(js), "json")
	require.NoError(t, err)
	assert.Equal(t, want.Upstreams[:2], cfg.Endpoints["payments"].Upstreams)

	// encoding/json and yaml round trips, plain strings where there is no weight.
	b, err := json.Marshal(want.Upstreams)
	require.NoError(t, err)
	assert.JSONEq(t, `["https://pay-1.internal:8443",{"url":"https://pay-2.internal:8443","weight":3},"dns:///pay.internal:8443"]`, string(b))
	var back []UpstreamConfig
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, want.Upstreams, back)
	y, err := yaml.Marshal(want.Upstreams)
	require.NoError(t, err)
	var yback []UpstreamConfig
	require.NoError(t, yaml.Unmarshal(y, &yback))
	assert.Equal(t, want.Upstreams, yback)
}

func TestUpstreamsDecodeErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"endpoints:\n  p:\n    upstreams:\n      - {url: http://a, wieght: 3}\n", `line 4: endpoints["p"].upstreams[0].wieght: unknown key (did you mean "weight"?)`},
		{"endpoints:\n  p:\n    upstreams:\n      - {url: http://a, weight: many}\n", `endpoints["p"].upstreams[0].weight: must be a whole number`},
		{"endpoints:\n  p:\n    upstreams: http://a\n", `endpoints["p"].upstreams`},
		{"endpoints:\n  p:\n    health_check: {interval: 10}\n", `endpoints["p"].health_check.interval: a duration needs a unit`},
	} {
		_, err := ParseConfig([]byte(tc.yml), "yaml")
		if assert.Error(t, err, tc.yml) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}

func TestValidateUpstreams(t *testing.T) {
	for _, tc := range []struct {
		name      string
		c         EndpointConfig
		isDefault bool
		want      []string
	}{
		{"fine", EndpointConfig{Upstreams: []UpstreamConfig{{URL: "https://a:1"}, {URL: "https://b:1", Weight: 2}}, Balancer: "consistent_hash", HashKey: "cookie:sid",
			HealthCheck: HealthCheckConfig{Path: "/h", Interval: time.Second}}, false, nil},
		{"default with upstreams", EndpointConfig{Upstreams: []UpstreamConfig{{URL: "https://a:1"}}}, true,
			[]string{"default.upstreams: the default block cannot have upstreams: give them to a named endpoint"}},
		{"no scheme", EndpointConfig{Upstreams: []UpstreamConfig{{URL: "a.internal:8443"}}}, false,
			[]string{`x.upstreams[0].url: want an http:// or https:// URL (or dns:///host:port), got "a.internal:8443"`}},
		{"no host", EndpointConfig{Upstreams: []UpstreamConfig{{URL: "https://"}}}, false,
			[]string{`x.upstreams[0].url: URL must name a host, got "https://"`}},
		{"weight", EndpointConfig{Upstreams: []UpstreamConfig{{URL: "https://a", Weight: -1}}}, false,
			[]string{"x.upstreams[0].weight: must be > 0, got -1"}},
		{"duplicate", EndpointConfig{Upstreams: []UpstreamConfig{{URL: "https://a"}, {URL: "https://A"}}}, false,
			[]string{"x.upstreams[1].url: same upstream as upstreams[0]"}},
		{"balancer", EndpointConfig{Balancer: "Fancy One"}, false,
			[]string{"x.balancer: not a balancer name: want one of round_robin, weighted_round_robin, random, least_request, p2c_ewma, consistent_hash, or a name registered with WithBalancer"}},
		{"hash key", EndpointConfig{HashKey: "body:x"}, false,
			[]string{`x.hash_key: unknown form "body": want "path", "header:", "cookie:" or "query:"`}},
		{"health path", EndpointConfig{HealthCheck: HealthCheckConfig{Path: "health"}}, false,
			[]string{`x.health_check.path: must start with '/', got "health"`}},
		{"interval", EndpointConfig{HealthCheck: HealthCheckConfig{Path: "/h", Interval: 500 * time.Millisecond}}, false,
			[]string{"x.health_check.interval: must be at least 1s, got 500ms"}},
		{"statuses and thresholds", EndpointConfig{HealthCheck: HealthCheckConfig{ExpectedStatuses: []int{99}, HealthyThreshold: -1}}, false,
			[]string{"x.health_check.expected_statuses[0]: must be an HTTP status 100..599, got 99", "x.health_check.healthy_threshold: must be >= 1, got -1"}},
		{"outlier", EndpointConfig{OutlierDetection: OutlierConfig{MaxEjectionPercent: 101, BaseEjectionTime: -time.Second}}, false,
			[]string{"x.outlier_detection.base_ejection_time: must be >= 0, got -1s", "x.outlier_detection.max_ejection_percent: must be 0..100, got 101"}},
		{"panic and discovery", EndpointConfig{PanicThreshold: 101, Discovery: DiscoveryConfig{Refresh: time.Millisecond}}, false,
			[]string{"x.discovery.refresh: must be at least 1s, got 1ms", "x.panic_threshold: must be <= 100 (percent), got 101"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p problems
			path := "x"
			if tc.isDefault {
				path = "default"
			}
			validateUpstreams(&p, path, tc.c, tc.isDefault)
			var got []string
			for _, fe := range p.list {
				got = append(got, fe.Error())
			}
			assert.ElementsMatch(t, tc.want, got)
		})
	}
}

func TestUnknownBalancerNeedsRegistration(t *testing.T) {
	var p problems
	checkBalancerKnown(&p, `endpoints["x"]`, "foo", nil)
	require.Len(t, p.list, 1)
	assert.Equal(t, `endpoints["x"].balancer: unknown balancer "foo": want one of round_robin, weighted_round_robin, random, least_request, p2c_ewma, consistent_hash, or a name registered with WithBalancer`, p.list[0].Error())
	p = problems{}
	checkBalancerKnown(&p, `endpoints["x"]`, "foo", map[string]BalancerBuilder{"foo": BalancerBuilderFunc(nil)})
	checkBalancerKnown(&p, `endpoints["x"]`, "p2c_ewma", nil)
	assert.Empty(t, p.list)
}

// FuzzUpstreamSettings: any upstream URL, weight, balancer, hash key and
// health path is accepted or refused with a problem, never a panic; what
// is accepted can be balanced.
func FuzzUpstreamSettings(f *testing.F) {
	f.Add("https://a:1", 2, "round_robin", "header:X-User", "/health")
	f.Add("dns:///h:80", 0, "consistent_hash", "cookie:", "health")
	f.Add("http://[::1", -1, "Foo", "query:q", "/")
	f.Add("dns://x/y", 1001, "", "path", "")
	f.Fuzz(func(t *testing.T, u string, w int, balancer, hashKey, path string) {
		c := EndpointConfig{Upstreams: []UpstreamConfig{{URL: u, Weight: w}}, Balancer: balancer, HashKey: hashKey,
			HealthCheck: HealthCheckConfig{Path: path}}
		var p problems
		validateUpstreams(&p, "x", c, false)
		for _, fe := range p.list {
			if fe.Problem == "" || fe.Path == "" {
				t.Fatalf("a problem without a path or text: %+v", fe)
			}
		}
		if len(p.list) > 0 || !isBuiltinBalancer(balancer) {
			return
		}
		s := testSet(0, balancer, EndpointConfig{HashKey: hashKey}, newFakeClock())
		defer s.close()
		tgt, err := parseUpstream(c.Upstreams[0])
		if err != nil {
			t.Fatalf("validated, yet %v", err)
		}
		if tgt.url != nil {
			s.setMembers([]memberSpec{{url: tgt.url, weight: tgt.weight}}, nil)
			res, err := s.Pick(PickInfo{Request: hashRequest("k")})
			if err != nil {
				t.Fatal(err)
			}
			res.Done(Outcome{StatusCode: 200})
		}
	})
}
