package connmgr

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAdmissionHosts measures finding an upstream's breaker and
// admitting through it, closed, with 1 to 1,000 hosts under one endpoint:
// it must stay flat, serial and at 64 goroutines.
func BenchmarkAdmissionHosts(b *testing.B) {
	for _, hosts := range []int{1, 8, 1000} {
		s := newBreakerSet(breakerDefaults(), &dispatcher{deliver: func(StateChange) {}})
		names := make([]string, hosts)
		for i := range names {
			names[i] = fmt.Sprintf("host-%d.test:443", i)
			s.upstream("ep", names[i], time.Now)
		}
		now := time.Now()
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				u := s.upstream("ep", names[i%hosts], time.Now)
				p, _ := u.guard.b.allow("ep", time.Now)
				p.done("ep", outcomeSuccess, nil, now)
			}
		})
		b.Run(fmt.Sprintf("hosts=%d/g=64", hosts), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(64/max(1, testingProcs()), 1))
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					u := s.upstream("ep", names[i%hosts], time.Now)
					p, _ := u.guard.b.allow("ep", time.Now)
					p.done("ep", outcomeSuccess, nil, now)
					i++
				}
			})
		})
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
