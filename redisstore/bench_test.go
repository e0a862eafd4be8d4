package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// BenchmarkReserve is the cost of one admission: on Redis (one loopback
// round trip running the GCRA script) and from the local fallback bucket
// (Redis down, FallbackLocal), which is what a Manager pays without a
// fleet limit too, give or take its own bucket.
func BenchmarkReserve(b *testing.B) {
	lim := connmgr.Limit{Rate: 1e9, Burst: 1 << 20}
	ctx := context.Background()
	b.Run("fleet", func(b *testing.B) {
		srv := redistest.Start(b)
		s := open(b, srv)
		b.ReportAllocs()
		for b.Loop() {
			if r, err := s.Reserve(ctx, "bench", lim, 0); err != nil || !r.OK {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("local", func(b *testing.B) {
		srv := redistest.Start(b)
		s := open(b, srv)
		srv.Kill()
		_, _ = s.Reserve(ctx, "bench", lim, 0) // finds Redis gone
		waitFor(b, time.Second, "the store to mark Redis down", func() bool { return !s.Stats().Healthy })
		b.ReportAllocs()
		for b.Loop() {
			if r, err := s.Reserve(ctx, "bench", lim, 0); err != nil || !r.OK {
				b.Fatal(r, err)
			}
		}
	})
}

// BenchmarkCacheGet is one shared-cache lookup of a 1 KiB entry.
func BenchmarkCacheGet(b *testing.B) {
	srv := redistest.Start(b)
	c := open(b, srv).Cache("bench")
	ctx := context.Background()
	if err := c.Set(ctx, "k", make([]byte, 1024), time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := c.Get(ctx, "k"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
