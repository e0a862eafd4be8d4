package connmgr

import (
	"fmt"
	"net/http"
	"testing"
)

// balancedConfig is an endpoint "api.test" with n upstreams under the
// named balancer (n 0: no upstreams).
func balancedConfig(n int, balancer string) Config {
	ec := EndpointConfig{Balancer: balancer}
	for i := 0; i < n; i++ {
		ec.Upstreams = append(ec.Upstreams, UpstreamConfig{URL: fmt.Sprintf("http://10.0.%d.%d:80", i/250, i%250+1)})
	}
	return Config{Endpoints: map[string]EndpointConfig{"api.test": ec}}
}

func benchPipeline(b *testing.B, cfg Config) {
	m, err := New(cfg, WithTransport(cannedTransport{}))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/items", nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		resp, err := m.RoundTrip(req)
		drain(b, resp, err)
	}
}

// BenchmarkPipelineBalanced is the default pipeline to one host, then to
// a logical endpoint with 5 and 1,000 upstreams.
func BenchmarkPipelineBalanced(b *testing.B) {
	b.Run("one_host", func(b *testing.B) { benchPipeline(b, balancedConfig(0, "")) })
	for _, n := range []int{5, 1000} {
		for _, name := range []string{BalancerRoundRobin, BalancerP2CEWMA} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) { benchPipeline(b, balancedConfig(n, name)) })
		}
	}
}

func TestBalancedPipelineAddsAtMostOneAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	allocs := func(cfg Config) float64 {
		m, err := New(cfg, WithTransport(cannedTransport{}))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/items", nil)
		return testing.AllocsPerRun(200, func() {
			resp, err := m.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
		})
	}
	base := allocs(balancedConfig(0, ""))
	for _, n := range []int{5, 1000} {
		got := allocs(balancedConfig(n, BalancerP2CEWMA))
		t.Logf("%d upstreams: %.0f allocations per call, %.0f without a balancer", n, got, base)
		if got > base+1 {
			t.Errorf("%d upstreams: %.0f allocations per call, want at most %.0f", n, got, base+1)
		}
	}
}
