package cache

import (
	"net/http"
	"testing"
)

// TestPOSTReusedForGET is RFC 9110 section 9.3.3 with RFC 9111 sections
// 3 and 4.4: a POST response with explicit freshness and a
// Content-Location naming the POST's own URI answers a later GET.
func TestPOSTReusedForGET(t *testing.T) {
	tests := []struct {
		rule   string
		fields []string
		reqCC  string
		reused bool
	}{
		{"9.3.3: explicit freshness and Content-Location = target URI", []string{"Cache-Control", "max-age=100", "Content-Location", "/p"}, "", true},
		{"9.3.3: an absolute Content-Location naming the same URI", []string{"Cache-Control", "max-age=100", "Content-Location", "ABS"}, "", true},
		{"9.3.3: Expires is explicit freshness too", []string{"Expires", "EXP", "Content-Location", "/p"}, "", true},
		{"9.3.3: another Content-Location is another resource", []string{"Cache-Control", "max-age=100", "Content-Location", "/q"}, "", false},
		{"9.3.3: without Content-Location nothing is stored", []string{"Cache-Control", "max-age=100"}, "", false},
		{"9.3.3: without explicit freshness nothing is stored", []string{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT", "Content-Location", "/p"}, "", false},
		{"5.2.2.5: no-store still forbids it", []string{"Cache-Control", "max-age=100, no-store", "Content-Location", "/p"}, "", false},
		{"5.2.1.5: so does the request's no-store", []string{"Cache-Control", "max-age=100", "Content-Location", "/p"}, "no-store", false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{Mode: Private})
			fields := append([]string(nil), tt.fields...)
			for i, f := range fields {
				switch f {
				case "ABS":
					fields[i] = h.o.srv.URL + "/p"
				case "EXP":
					fields[i] = h.date(100e9)
				}
			}
			h.serve(fields...)
			hdr := http.Header{}
			if tt.reqCC != "" {
				hdr.Set("Cache-Control", tt.reqCC)
			}
			posted := h.do(http.MethodPost, "/p", hdr)
			got := h.get("/p")
			if reused := h.o.hits.Load() == 1; reused != tt.reused {
				t.Fatalf("GET answered from the POST response = %v (origin hits %d), want %v", reused, h.o.hits.Load(), tt.reused)
			}
			if tt.reused && got.body != posted.body {
				t.Errorf("GET body %q, want the POST's %q", got.body, posted.body)
			}
		})
	}
}

// TestPOSTStillInvalidates is RFC 9111 section 4.4: a POST invalidates the
// stored GET of its URI even when its own response is not reusable.
func TestPOSTStillInvalidates(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=100")
	h.get("/p")
	h.do(http.MethodPost, "/p", nil)
	h.get("/p")
	if n := h.o.hits.Load(); n != 3 {
		t.Fatalf("origin hits = %d, want 3 (the GET after the POST goes to the origin)", n)
	}
}
