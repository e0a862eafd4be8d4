package connmgr

import (
	"fmt"
	"net/url"
	"testing"
)

// BenchmarkEndpointLookup measures finding a request's endpoint with 0
// to 10,000 configured endpoints: a URL that names a configured host
// (hit, the hosts taken in turn) and one that falls to the default
// (miss). It should stay flat as the table grows, apart from the cache
// misses of a large map.
func BenchmarkEndpointLookup(b *testing.B) {
	for _, n := range []int{0, 1, 100, 10000} {
		cfg := Config{Endpoints: make(map[string]EndpointConfig, n)}
		hits := make([]*url.URL, max(n, 1))
		for i := range n {
			host := fmt.Sprintf("host-%d.example.com", i)
			cfg.Endpoints[host] = EndpointConfig{}
			hits[i] = &url.URL{Scheme: "https", Host: host}
		}
		if n == 0 {
			hits[0] = &url.URL{Scheme: "https", Host: "api.example.com"}
		}
		m, err := New(cfg, WithTransport(cannedTransport{}))
		if err != nil {
			b.Fatal(err)
		}
		tbl := m.table.Load()
		miss := &url.URL{Scheme: "https", Host: "elsewhere.example.net"}
		b.Run(fmt.Sprintf("keys=%d/hit", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if tbl.lookup(hits[i%len(hits)]) == nil {
					b.Fatal("no endpoint")
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/miss", n), func(b *testing.B) {
			for b.Loop() {
				if tbl.lookup(miss) != tbl.def {
					b.Fatal("want the default")
				}
			}
		})
		_ = m.Close()
	}
}
