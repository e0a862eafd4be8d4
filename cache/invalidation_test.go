package cache

import (
	"net/http"
	"testing"
)

// TestInvalidation is RFC 9111 section 4.4: a non-error response to an
// unsafe method invalidates the target URI, and same-origin Location and
// Content-Location.
func TestInvalidation(t *testing.T) {
	tests := []struct {
		rule     string
		method   string
		status   int
		location string // Location of the unsafe method's response ("" none); "%s" is the origin
		check    string // path fetched again
		gone     bool
	}{
		{"4.4: POST invalidates the target URI", http.MethodPost, 200, "", "/x", true},
		{"4.4: PUT too", http.MethodPut, 204, "", "/x", true},
		{"4.4: DELETE too", http.MethodDelete, 200, "", "/x", true},
		{"4.4: a method whose safety is unknown too", "FOO", 200, "", "/x", true},
		{"4.4: a redirect is not an error", http.MethodPost, 303, "/y", "/x", true},
		{"4.4: an error status does not invalidate", http.MethodPost, 500, "", "/x", false},
		{"4.4: a safe method does not", http.MethodOptions, 200, "", "/x", false},
		{"4.4: same-origin Location is invalidated", http.MethodPost, 201, "/y", "/y", true},
		{"4.4: another origin's Location is not", http.MethodPost, 201, "http://elsewhere.example/y", "/y", false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet {
					if tt.location != "" {
						w.Header().Set("Location", tt.location)
						w.Header().Set("Content-Location", tt.location)
					}
					w.WriteHeader(tt.status)
					return
				}
				w.Header().Set("Cache-Control", "max-age=60")
				w.Write([]byte("x"))
			})
			h.get("/x")
			h.get("/y")
			h.do(tt.method, "/x", nil)
			before := h.o.hits.Load()
			h.get(tt.check)
			if got := h.o.hits.Load() > before; got != tt.gone {
				t.Errorf("%s went to the origin = %v, want %v", tt.check, got, tt.gone)
			}
		})
	}
}
