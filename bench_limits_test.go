package connmgr

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// The limiter and the breaker must add no allocation per request. Run:
//
//	go test -run '^$' -bench 'Breaker|Limiter|PipelineLimits|PipelineParallel' -benchmem .

func BenchmarkBreakerClosed(b *testing.B) {
	s := newBreakerSet(breakerDefaults(), &dispatcher{deliver: func(StateChange) {}})
	now := time.Now()
	clock := func() time.Time { return now }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		br := s.get("api.test:443", clock)
		p, refused := br.allow("ep", clock)
		if refused != nil {
			b.Fatal(refused)
		}
		p.done("ep", outcomeSuccess, nil, now)
	}
}

func BenchmarkBreakerClosedParallel(b *testing.B) {
	s := newBreakerSet(breakerDefaults(), &dispatcher{deliver: func(StateChange) {}})
	now := time.Now()
	clock := func() time.Time { return now }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, _ := s.get("api.test:443", clock).allow("ep", clock)
			p.done("ep", outcomeSuccess, nil, now)
		}
	})
}

func BenchmarkLimiterTake(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("keyed=%v", keyed), func(b *testing.B) {
			cfg := RateLimitConfig{Rate: 1e9, Burst: 1 << 20}
			if keyed {
				cfg.Key = "header:X-User-ID"
			}
			l := testLimiter(cfg, time.Now())
			req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
			req.Header.Set("X-User-ID", "user-42")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				bk := l.bucketFor(req, time.Now)
				if err := l.take(req.Context(), bk, "ep", time.Time{}, time.Now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPipelineLimits is BenchmarkPipeline's connmgr_roundtrip with
// the breaker off, on (the default) and with a rate limit too: the
// differences are what the limits cost a call.
func BenchmarkPipelineLimits(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/items", nil)
	for _, tc := range []struct {
		name string
		cfg  EndpointConfig
	}{
		{"breaker_off", EndpointConfig{CircuitBreaker: BreakerConfig{Disabled: Bool(true)}}},
		{"breaker_on_default", EndpointConfig{}},
		{"breaker_and_limiter", EndpointConfig{RateLimit: RateLimitConfig{Rate: 1e9, Burst: 1 << 20}}},
		{"breaker_limiter_adaptive", EndpointConfig{RateLimit: RateLimitConfig{Rate: 1e9, Burst: 1 << 20, Adaptive: AdaptiveConfig{Enabled: Bool(true)}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, err := New(Config{Default: tc.cfg}, WithTransport(cannedTransport{}))
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				resp, err := m.RoundTrip(req)
				drain(b, resp, err)
			}
		})
	}
}

// BenchmarkPipelineParallel runs calls from GOMAXPROCS goroutines
// against 1 endpoint and against 1000 endpoints (one breaker each), with
// the default breaker on and off.
func BenchmarkPipelineParallel(b *testing.B) {
	for _, endpoints := range []int{1, 1000} {
		for _, breakerOn := range []bool{false, true} {
			b.Run(fmt.Sprintf("endpoints=%d/breaker=%v", endpoints, breakerOn), func(b *testing.B) {
				def := EndpointConfig{}
				if !breakerOn {
					def.CircuitBreaker.Disabled = Bool(true)
				}
				cfg := Config{Default: def, Endpoints: map[string]EndpointConfig{}}
				reqs := make([]*http.Request, endpoints)
				for i := range reqs {
					host := fmt.Sprintf("h%d.test", i)
					cfg.Endpoints[host] = EndpointConfig{}
					reqs[i], _ = http.NewRequest(http.MethodGet, "http://"+host+"/v1/items", nil)
				}
				m, err := New(cfg, WithTransport(cannedTransport{}))
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				var seq atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := int(seq.Add(1)) * 7919
					for pb.Next() {
						i++
						resp, err := m.RoundTrip(reqs[i%len(reqs)])
						drain(b, resp, err)
					}
				})
			})
		}
	}
}
