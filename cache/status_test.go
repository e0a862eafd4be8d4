package cache

import (
	"net/http"
	"testing"
	"time"
)

// TestCacheStatus is RFC 9211: every response that passed the cache
// carries one Cache-Status member, appended after the origin's.
func TestCacheStatus(t *testing.T) {
	h := newHarness(t, Config{Name: "edge"})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("Cache-Status", "origin-cache; hit")
		w.Write([]byte("x"))
	})
	steps := []struct {
		rule string
		do   func() response
		want []string
	}{
		{"2.1, 2.2, 2.5: a miss: fwd=uri-miss, fwd-status, stored", func() response { return h.get("/cs") },
			[]string{"origin-cache; hit", "edge; fwd=uri-miss; fwd-status=200; stored"}},
		{"2.1, 2.7: a hit with its remaining ttl", func() response { return h.get("/cs") },
			[]string{"origin-cache; hit", "edge; hit; ttl=10"}},
		{"2.2: fwd=request when the request made it go forward", func() response { return h.get("/cs", "Cache-Control", "no-cache") },
			[]string{"origin-cache; hit", "edge; fwd=request; fwd-status=200; stored"}},
		{"2.2: fwd=stale for a stale response", func() response { h.clk.Advance(20 * time.Second); return h.get("/cs") },
			[]string{"origin-cache; hit", "edge; fwd=stale; fwd-status=200; stored"}},
		{"2.2: fwd=method for a method the cache does not answer", func() response { return h.do(http.MethodPost, "/cs", nil) },
			[]string{"origin-cache; hit", "edge; fwd=method; fwd-status=200"}},
		{"2.2: fwd=bypass for a range request", func() response { return h.get("/cs", "Range", "bytes=0-0") },
			[]string{"origin-cache; hit", "edge; fwd=bypass; fwd-status=200"}},
	}
	for _, s := range steps {
		r := s.do()
		got := r.header["Cache-Status"]
		if len(got) != len(s.want) {
			t.Errorf("%s: Cache-Status = %q, want %q", s.rule, got, s.want)
			continue
		}
		for i := range got {
			if got[i] != s.want[i] {
				t.Errorf("%s: Cache-Status = %q, want %q", s.rule, got, s.want)
			}
		}
	}
}
