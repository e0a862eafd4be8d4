package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRequestDirectives is RFC 9111 section 5.2.1: a stored response of
// max-age=100, aged by `after`, and a second request with directives.
func TestRequestDirectives(t *testing.T) {
	tests := []struct {
		rule   string
		after  time.Duration
		cc     string
		hit    bool
		status int
	}{
		{"5.2.1.1: max-age=N accepts a response no older than N", 10 * time.Second, "max-age=30", true, 200},
		{"5.2.1.1: max-age=N refuses an older one", 40 * time.Second, "max-age=30", false, 200},
		{"5.2.1.1: max-age=0 always validates", 0, "max-age=0", false, 200},
		{"5.2.1.2: max-stale=N accepts N seconds of staleness", 120 * time.Second, "max-stale=30", true, 200},
		{"5.2.1.2: but no more", 140 * time.Second, "max-stale=30", false, 200},
		{"5.2.1.2: max-stale alone accepts any staleness", time.Hour, "max-stale", true, 200},
		{"5.2.1.3: min-fresh=N wants N seconds of freshness left", 10 * time.Second, "min-fresh=50", true, 200},
		{"5.2.1.3: refused when less is left", 60 * time.Second, "min-fresh=50", false, 200},
		{"5.2.1.4: no-cache always goes to the origin", 0, "no-cache", false, 200},
		{"5.2.1.7: only-if-cached answers from the cache", 10 * time.Second, "only-if-cached", true, 200},
		{"5.2.1.7: only-if-cached with nothing usable is a 504", 200 * time.Second, "only-if-cached", true, 504},
		{"5.2.3: an unknown request directive changes nothing", 10 * time.Second, "foo=bar", true, 200},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.serve("Cache-Control", "max-age=100")
			h.get("/d")
			h.clk.Advance(tt.after)
			r := h.get("/d", "Cache-Control", tt.cc)
			if got := h.o.hits.Load() == 1; got != tt.hit {
				t.Errorf("answered from the cache = %v (origin hits %d), want %v", got, h.o.hits.Load(), tt.hit)
			}
			if r.status != tt.status {
				t.Errorf("status = %d, want %d", r.status, tt.status)
			}
		})
	}
}

// TestResponseDirectives is RFC 9111 section 5.2.2 and 4.2.4: what a
// stored response's own directives allow, fresh and stale.
func TestResponseDirectives(t *testing.T) {
	tests := []struct {
		rule   string
		mode   Mode
		cc     string
		after  time.Duration
		reqCC  string
		cached bool
	}{
		{"5.2.2.4: no-cache is never served without validation", Shared, "max-age=10000, no-cache", 0, "", false},
		{"5.2.2.4: nO-CaChE too", Shared, "max-age=10000, No-CaChE", 0, "", false},
		{"5.2.2.2: must-revalidate allows a fresh response", Shared, "max-age=100, must-revalidate", 10 * time.Second, "", true},
		{"5.2.2.2: must-revalidate forbids a stale one even with max-stale", Shared, "max-age=2, must-revalidate", 10 * time.Second, "max-stale", false},
		{"5.2.2.8: proxy-revalidate binds a shared cache", Shared, "max-age=2, proxy-revalidate", 10 * time.Second, "max-stale", false},
		{"5.2.2.8: but not a private one", Private, "max-age=2, proxy-revalidate", 10 * time.Second, "max-stale", true},
		{"5.2.2.10: s-maxage implies proxy-revalidate", Shared, "s-maxage=2", 10 * time.Second, "max-stale", false},
		{"4.2.4: a stale response may be served when the request allows", Shared, "max-age=2", 10 * time.Second, "max-stale", true},
		{"RFC 8246: immutable is served fresh on a reload (max-age=0)", Shared, "max-age=10000, immutable", 10 * time.Second, "max-age=0", true},
		{"RFC 8246: immutable does not outlive freshness", Shared, "max-age=2, immutable", 10 * time.Second, "", false},
		{"4.2.1: an invalid max-age is stale at once", Shared, "max-age=3600a", 0, "", false},
		{"4.2.1: conflicting max-age values are stale", Shared, "max-age=1800, max-age=1", 0, "", false},
		{"5.2: a quoted max-age is read", Shared, `max-age="3600"`, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{Mode: tt.mode})
			h.serve("Cache-Control", tt.cc)
			h.get("/d")
			h.clk.Advance(tt.after)
			var kv []string
			if tt.reqCC != "" {
				kv = []string{"Cache-Control", tt.reqCC}
			}
			h.get("/d", kv...)
			if got := h.o.hits.Load() == 1; got != tt.cached {
				t.Errorf("served from the cache = %v (origin hits %d), want %v", got, h.o.hits.Load(), tt.cached)
			}
		})
	}
}

// TestAgeHeader is RFC 9111 section 5.1 and 4.2.3: every response from
// the cache carries Age, grown by the time it was held.
func TestAgeHeader(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Date", h.date(-5*time.Second)) // apparent age 5s
		w.Header().Set("Age", "3")
		w.Write([]byte("x"))
	})
	h.get("/age")
	h.clk.Advance(20 * time.Second)
	r := h.get("/age")
	if got := r.header.Get("Age"); got != "25" {
		t.Errorf("Age = %q, want 25 (max(apparent 5, corrected 3) + 20 resident)", got)
	}
	h.clk.Advance(90 * time.Second)
	h.get("/age")
	if h.o.hits.Load() != 2 {
		t.Errorf("4.2: the response (age 115 > 100) should be stale; origin hits %d", h.o.hits.Load())
	}
}

// TestHeuristicFreshness is RFC 9111 section 4.2.2 end to end.
func TestHeuristicFreshness(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", h.date(0))
		w.Header().Set("Last-Modified", h.date(-100*time.Minute))
		w.Write([]byte("x"))
	})
	h.get("/h")
	h.clk.Advance(9 * time.Minute)
	r := h.get("/h")
	if h.o.hits.Load() != 1 || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("4.2.2: within 10%% of 100m the response is fresh; origin hits %d, %v", h.o.hits.Load(), r.header["Cache-Status"])
	}
	h.clk.Advance(2 * time.Minute)
	h.get("/h")
	if h.o.hits.Load() != 2 {
		t.Errorf("4.2.2: past 10m it is stale; origin hits %d", h.o.hits.Load())
	}
}

// TestHitHeaderIsTheCallersOwn: a caller changing a hit's header in
// place never changes what is stored.
func TestHitHeaderIsTheCallersOwn(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=60", "X-Kept", "stored", "Etag", `"a"`)
	h.get("/own")
	for _, cond := range []string{"", `"a"`} {
		r := h.get("/own", "If-None-Match", cond)
		for k := range r.header {
			r.header[k][0] = "changed"
		}
	}
	if r := h.get("/own"); r.header.Get("X-Kept") != "stored" || r.header.Get("Etag") != `"a"` {
		t.Errorf("the stored header changed: %v", r.header)
	}
}
