package cache

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// TestPartialResponses is RFC 9111 sections 3.3 and 3.4: 206 responses
// stored, reused for ranges inside them, and combined. The origin serves
// "0123456789" with ranges (http.ServeContent), max-age=100 and the
// row's ETag.
func TestPartialResponses(t *testing.T) {
	type step struct {
		method, rng string
		origin      bool   // the step reaches the origin
		status      int    // 0: do not check
		body        string // checked with status
	}
	tests := []struct {
		rule  string
		etag  string
		steps []step
	}{
		{"3.3: a stored 206 answers a range inside it", `"v1"`, []step{
			{"GET", "bytes=2-5", true, 206, "2345"},
			{"GET", "bytes=3-4", false, 206, "34"},
			{"GET", "bytes=2-5", false, 206, "2345"},
		}},
		{"3.3: a range reaching outside the stored part goes to the origin", `"v1"`, []step{
			{"GET", "bytes=2-5", true, 206, "2345"},
			{"GET", "bytes=5-6", true, 206, "56"},
		}},
		{"3.3: an incomplete response never answers a request without Range", `"v1"`, []step{
			{"GET", "bytes=0-8", true, 206, "012345678"},
			{"GET", "", true, 200, "0123456789"},
		}},
		{"3.4: touching parts with one strong ETag combine into the complete 200", `"v1"`, []step{
			{"GET", "bytes=0-4", true, 206, "01234"},
			{"GET", "bytes=5-9", true, 206, "56789"},
			{"GET", "", false, 200, "0123456789"},
			{"GET", "bytes=-3", false, 206, "789"},
		}},
		{"3.4: overlapping parts combine, and answer a range across both", `"v1"`, []step{
			{"GET", "bytes=2-5", true, 206, "2345"},
			{"GET", "bytes=4-7", true, 206, "4567"},
			{"GET", "bytes=3-6", false, 206, "3456"},
		}},
		{"3.4: parts with a weak ETag are not combined", `W/"v1"`, []step{
			{"GET", "bytes=0-4", true, 206, "01234"},
			{"GET", "bytes=5-9", true, 206, "56789"},
			{"GET", "", true, 200, "0123456789"},
		}},
		{"3.4: parts without a validator are not combined", "", []step{
			{"GET", "bytes=0-4", true, 206, "01234"},
			{"GET", "bytes=5-9", true, 206, "56789"},
			{"GET", "bytes=3-6", true, 206, "3456"},
		}},
		{"4.4: an unsafe method invalidates the stored part", `"v1"`, []step{
			{"GET", "bytes=2-5", true, 206, "2345"},
			{"DELETE", "", true, 0, ""},
			{"GET", "bytes=2-5", true, 206, "2345"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=100")
				if tt.etag != "" {
					w.Header().Set("ETag", tt.etag)
				}
				if r.Method == http.MethodDelete {
					return
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader([]byte("0123456789")))
			})
			for i, s := range tt.steps {
				before := h.o.hits.Load()
				hdr := http.Header{}
				if s.rng != "" {
					hdr.Set("Range", s.rng)
				}
				r := h.do(s.method, "/p", hdr)
				if went := h.o.hits.Load() > before; went != s.origin {
					t.Fatalf("step %d (%s %s): reached the origin = %v, want %v", i, s.method, s.rng, went, s.origin)
				}
				if s.status != 0 && (r.status != s.status || r.body != s.body) {
					t.Fatalf("step %d (%s %s): got %d %q, want %d %q", i, s.method, s.rng, r.status, r.body, s.status, s.body)
				}
			}
		})
	}
}

// TestPartialMismatchNotStored is RFC 9110 section 14.4 with RFC 9111
// 3.3: a 206 whose body is not the range its Content-Range names is not
// stored.
func TestPartialMismatchNotStored(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Content-Range", "bytes 4-9/10") // six bytes
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("01234")) // five
	})
	h.get("/m", "Range", "bytes=-5")
	h.get("/m", "Range", "bytes=-5")
	if n := h.o.hits.Load(); n != 2 {
		t.Fatalf("origin hits = %d, want 2 (the inconsistent 206 is not stored)", n)
	}
}

// TestParseContentRange is RFC 9110 section 14.4.
func TestParseContentRange(t *testing.T) {
	tests := []struct {
		v          string
		a, b, size int64
		ok         bool
	}{
		{"bytes 0-4/10", 0, 4, 10, true},
		{"bytes 9-9/10", 9, 9, 10, true},
		{"Bytes 1-2/3", 1, 2, 3, true},
		{"bytes 0-4/*", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 5-4/10", 0, 0, 0, false},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"items 0-4/10", 0, 0, 0, false},
		{"bytes 0-4", 0, 0, 0, false},
	}
	for _, tt := range tests {
		a, b, size, ok := parseContentRange(tt.v)
		if ok != tt.ok || (ok && (a != tt.a || b != tt.b || size != tt.size)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.v, a, b, size, ok, tt.a, tt.b, tt.size, tt.ok)
		}
	}
}
