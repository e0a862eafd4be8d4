package cache

import (
	"net/http"
	"testing"
)

// TestVary is RFC 9111 section 4.1: a stored response is used only for
// a request whose fields named by Vary match, normalised.
func TestVary(t *testing.T) {
	tests := []struct {
		rule   string
		vary   []string // Vary lines of the stored response
		first  []string // request fields of the request that stored it
		second []string
		hit    bool
	}{
		{"4.1: the same value matches", []string{"Accept-Language"}, []string{"Accept-Language", "en"}, []string{"Accept-Language", "en"}, true},
		{"4.1: another value does not", []string{"Accept-Language"}, []string{"Accept-Language", "en"}, []string{"Accept-Language", "fr"}, false},
		{"4.1: absent matches only absent", []string{"Accept-Language"}, nil, nil, true},
		{"4.1: absent does not match present", []string{"Accept-Language"}, nil, []string{"Accept-Language", "en"}, false},
		{"4.1: field names are case-insensitive", []string{"accept-LANGUAGE"}, []string{"Accept-Language", "en"}, []string{"Accept-Language", "en"}, true},
		{"4.1: whitespace around commas is normalised", []string{"Accept"}, []string{"Accept", "a,b"}, []string{"Accept", "a , b"}, true},
		{"4.1: field lines combine", []string{"Accept"}, []string{"Accept", "a, b"}, []string{"Accept", "a", "Accept", "b"}, true},
		{"4.1: every listed field must match", []string{"A, B"}, []string{"A", "1", "B", "2"}, []string{"A", "1", "B", "3"}, false},
		{"4.1: Vary lines combine", []string{"A", "B"}, []string{"A", "1", "B", "2"}, []string{"A", "1", "B", "2"}, true},
		{"4.1: an unrelated field does not matter", []string{"A"}, []string{"A", "1", "C", "x"}, []string{"A", "1", "C", "y"}, true},
		{"4.1: Vary: * never matches", []string{"*"}, nil, nil, false},
		{"4.1: Vary: A, * never matches", []string{"A, *"}, []string{"A", "1"}, []string{"A", "1"}, false},
		{"4.1: *, * on two lines never matches", []string{"*", "*"}, nil, nil, false},
		{"4.1: an empty Vary member is ignored", []string{", A"}, []string{"A", "1"}, []string{"A", "1"}, true},
		{"4.1: Accept-Language ignores case", []string{"Accept-Language"}, []string{"Accept-Language", "en, de"}, []string{"Accept-Language", "eN, De"}, true},
		{"4.1: Accept-Language ignores order", []string{"Accept-Language"}, []string{"Accept-Language", "en, de;q=0.5"}, []string{"Accept-Language", "de;q=0.5,en"}, true},
		{"4.1: Accept-Language keeps q-values apart", []string{"Accept-Language"}, []string{"Accept-Language", "en, de;q=0.5"}, []string{"Accept-Language", "en;q=0.5, de"}, false},
		{"4.1: Accept-Encoding ignores order", []string{"Accept-Encoding"}, []string{"Accept-Encoding", "gzip, br"}, []string{"Accept-Encoding", "br,gzip"}, true},
		{"4.1: other fields keep case", []string{"X-Case"}, []string{"X-Case", "a"}, []string{"X-Case", "A"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				for _, v := range tt.vary {
					w.Header().Add("Vary", v)
				}
				w.Write([]byte("x"))
			})
			h.get("/vary", tt.first...)
			h.get("/vary", tt.second...)
			if got := h.o.hits.Load() == 1; got != tt.hit {
				t.Errorf("hit = %v (origin hits %d), want %v", got, h.o.hits.Load(), tt.hit)
			}
		})
	}
}

// TestVaryVariants is RFC 9111 section 4.1: several responses stored for
// one URI, each served to the requests that select it; a miss for a new
// value is reported as vary-miss (RFC 9211).
func TestVaryVariants(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		w.Write([]byte(r.Header.Get("Accept-Language")))
	})
	h.get("/l", "Accept-Language", "en")
	r := h.get("/l", "Accept-Language", "de")
	if got := r.header.Get("Cache-Status"); got != "connmgr; fwd=vary-miss; fwd-status=200; stored" {
		t.Errorf("Cache-Status = %q, want fwd=vary-miss", got)
	}
	for _, lang := range []string{"en", "de", "en"} {
		if r := h.get("/l", "Accept-Language", lang); r.body != lang {
			t.Errorf("served %q to %s", r.body, lang)
		}
	}
	if h.o.hits.Load() != 2 {
		t.Errorf("origin hits %d, want 2 (one per variant)", h.o.hits.Load())
	}
}

// TestKeyHeaders: Config.KeyHeaders join the key as if every response
// named them in Vary.
func TestKeyHeaders(t *testing.T) {
	h := newHarness(t, Config{KeyHeaders: []string{"x-tenant"}})
	h.serve("Cache-Control", "max-age=60")
	h.get("/k", "X-Tenant", "a")
	h.get("/k", "X-Tenant", "b")
	h.get("/k", "X-Tenant", "a")
	if h.o.hits.Load() != 2 {
		t.Errorf("origin hits %d, want 2 (one per tenant)", h.o.hits.Load())
	}
}
