package cache

import (
	"net/http"
	"testing"
	"time"
)

// TestHeadFreshens is RFC 9111 section 4.3.5: a 200 to a HEAD updates
// the stored GET response it describes, or invalidates it when it
// describes another.
func TestHeadFreshens(t *testing.T) {
	tests := []struct {
		rule      string
		headETag  string
		wantField string // X-Test on the next GET
		cached    bool   // the next GET is a hit
	}{
		{"4.3.5: the same validator freshens the stored response", `"a"`, "2", true},
		{"4.3.5: another validator invalidates it", `"b"`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.serve("Cache-Control", "max-age=1", "Etag", `"a"`, "X-Test", "1", "X-Kept", "k")
			h.get("/head")
			h.clk.Advance(10 * time.Second)
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", h.date(0))
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("Etag", tt.headETag)
				w.Header().Set("X-Test", "2")
				if r.Method == http.MethodGet {
					w.Write([]byte("new"))
				}
			})
			r := h.do(http.MethodHead, "/head", nil)
			if tt.cached && (r.header.Get("X-Kept") != "k" || r.header.Get("X-Test") != "2") {
				t.Errorf("the HEAD answer carries the stored fields, updated: %v", r.header)
			}
			before := h.o.hits.Load()
			g := h.get("/head")
			if hit := h.o.hits.Load() == before; hit != tt.cached {
				t.Errorf("next GET hit = %v, want %v", hit, tt.cached)
			}
			if tt.cached && (g.header.Get("X-Test") != tt.wantField || g.body != "body-1") {
				t.Errorf("next GET: X-Test %q body %q, want %q and the stored body", g.header.Get("X-Test"), g.body, tt.wantField)
			}
		})
	}
}

// TestHeadFromStoredGet: a HEAD is answered from a fresh stored GET,
// without a body.
func TestHeadFromStoredGet(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=60")
	h.get("/h")
	r := h.do(http.MethodHead, "/h", nil)
	if h.o.hits.Load() != 1 || r.body != "" || r.header.Get("Content-Length") != "6" {
		t.Errorf("origin hits %d, body %q, Content-Length %q", h.o.hits.Load(), r.body, r.header.Get("Content-Length"))
	}
}
