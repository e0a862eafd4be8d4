package cache

import (
	"net/http"
	"testing"
)

// TestStorable is RFC 9111 section 3 (and 3.5): a response is stored,
// and a second request is a hit, only when the rules allow it.
func TestStorable(t *testing.T) {
	tests := []struct {
		rule    string
		mode    Mode
		reqHdr  []string
		status  int
		respHdr []string
		stored  bool
	}{
		{"3: max-age makes a 200 storable", Shared, nil, 200, []string{"Cache-Control", "max-age=60"}, true},
		{"3: Expires makes it storable", Shared, nil, 200, []string{"Expires", "Thu, 18 Aug 2050 02:01:18 GMT"}, true},
		{"3: explicit freshness makes any final status storable", Shared, nil, 500, []string{"Cache-Control", "max-age=60"}, true},
		{"3: a 500 without freshness is not", Shared, nil, 500, nil, false},
		{"5.2.2.5: no-store", Shared, nil, 200, []string{"Cache-Control", "max-age=60, no-store"}, false},
		{"5.2.2.5: nO-StOrE", Shared, nil, 200, []string{"Cache-Control", "max-age=60, nO-StOrE"}, false},
		{"5.2.1.5: request no-store", Shared, []string{"Cache-Control", "no-store"}, 200, []string{"Cache-Control", "max-age=60"}, false},
		{"5.2.2.7: private in a shared cache", Shared, nil, 200, []string{"Cache-Control", "private, max-age=60"}, false},
		{"5.2.2.7: private in a private cache", Private, nil, 200, []string{"Cache-Control", "private, max-age=60"}, true},
		{"3.5: Authorization in a shared cache", Shared, []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60"}, false},
		{"3.5: Authorization with public", Shared, []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60, public"}, true},
		{"3.5: Authorization with s-maxage", Shared, []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "s-maxage=60"}, true},
		{"3.5: Authorization with must-revalidate", Shared, []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60, must-revalidate"}, true},
		{"3.5: Authorization in a private cache", Private, []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60"}, true},
		{"5.2.2.3: must-understand with an understood status ignores no-store", Shared, nil, 200, []string{"Cache-Control", "max-age=60, must-understand, no-store"}, true},
		{"5.2.2.3: must-understand with another status is not stored", Shared, nil, 299, []string{"Cache-Control", "max-age=60, must-understand"}, false},
		{"4.1: Vary: * is never stored (it never matches)", Shared, nil, 200, []string{"Cache-Control", "max-age=60", "Vary", "*"}, false},
		{"4.1: Vary: Foo, * too", Shared, nil, 200, []string{"Cache-Control", "max-age=60", "Vary", "Foo, *"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{Mode: tt.mode})
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.respHdr); i += 2 {
					w.Header().Add(tt.respHdr[i], tt.respHdr[i+1])
				}
				w.Header().Set("Date", h.date(0))
				w.WriteHeader(tt.status)
				w.Write([]byte("x"))
			})
			h.get("/r", tt.reqHdr...)
			h.get("/r", tt.reqHdr...)
			if got := h.o.hits.Load() == 1; got != tt.stored {
				t.Errorf("stored = %v (origin hits %d), want %v", got, h.o.hits.Load(), tt.stored)
			}
		})
	}
}

// TestStoredFields is RFC 9111 section 3.1: hop-by-hop fields and those
// Connection names are not stored; everything else is (Set-Cookie too,
// section 7 of RFC 9111 notes it does not inhibit caching).
func TestStoredFields(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", `max-age=60, no-cache="X-Secret", private="X-User"`)
		w.Header().Set("Connection", "a")
		w.Header().Set("A", "1")
		w.Header().Set("C", "3")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("Set-Cookie", "s=1")
		w.Header().Set("X-Secret", "s")
		w.Header().Set("X-User", "u")
		w.Write([]byte("x"))
	})
	h.get("/f")
	r := h.get("/f")
	if h.o.hits.Load() != 1 {
		t.Fatalf("not a hit: origin hits %d", h.o.hits.Load())
	}
	for _, rule := range []struct {
		rule, field string
		present     bool
	}{
		{"3.1: fields named by Connection are not stored", "A", false},
		{"3.1: other fields are", "C", true},
		{"3.1: Keep-Alive is hop-by-hop", "Keep-Alive", false},
		{"3.1: Proxy-Authenticate is hop-by-hop", "Proxy-Authenticate", false},
		{"3.1: Set-Cookie is stored", "Set-Cookie", true},
		{"5.2.2.4: no-cache=field is not served without validation", "X-Secret", false},
		{"5.2.2.7: private=field is not stored by a shared cache", "X-User", false},
	} {
		if _, got := r.header[rule.field]; got != rule.present {
			t.Errorf("%s: %s present = %v, want %v", rule.rule, rule.field, got, rule.present)
		}
	}
}

// TestStoredHeaderHopByHop is RFC 9111 section 3.1 with RFC 9110 section
// 7.6.1 on the stored form itself: Transfer-Encoding, which net/http
// never hands over with a response (it removes "chunked" and refuses any
// other coding), is dropped here too should a RoundTripper pass it on.
func TestStoredHeaderHopByHop(t *testing.T) {
	in := http.Header{"Transfer-Encoding": {"gzip, chunked"}, "Te": {"trailers"}, "Trailer": {"X"},
		"Upgrade": {"h2c"}, "Proxy-Connection": {"keep-alive"}, "A": {"1"}}
	var cc directives
	out := storedHeader(in, &cc, true)
	for _, f := range []string{"Transfer-Encoding", "Te", "Trailer", "Upgrade", "Proxy-Connection"} {
		if _, ok := out[f]; ok {
			t.Errorf("3.1: hop-by-hop %s stored", f)
		}
	}
	if out.Get("A") != "1" {
		t.Errorf("3.1: end-to-end field A not stored: %v", out)
	}
}
