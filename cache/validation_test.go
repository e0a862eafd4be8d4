package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestValidation is RFC 9111 section 4.3: a stale response is validated
// with the stored validators; a 304 freshens it (4.3.4) and its body is
// served; a 200 replaces it.
func TestValidation(t *testing.T) {
	tests := []struct {
		rule        string
		stored      []string // response fields of the first response
		wantINM     string
		wantIMS     bool
		answer304   []string // nil: answer 200
		wantBody    string
		wantHeader  [2]string // a field the served response must carry
		wantOrigin2 int       // origin hits after a third request
	}{
		{"4.3.1: If-None-Match carries the stored ETag", []string{"Etag", `"a"`}, `"a"`, false, []string{"Cache-Control", "max-age=60"}, "body-1", [2]string{"Etag", `"a"`}, 2},
		{"4.3.1: If-Modified-Since carries Last-Modified", []string{"Last-Modified", "Wed, 01 Jan 2020 00:00:00 GMT"}, "", true, []string{"Cache-Control", "max-age=60", "Last-Modified", "Wed, 01 Jan 2020 00:00:00 GMT"}, "body-1", [2]string{"Last-Modified", "Wed, 01 Jan 2020 00:00:00 GMT"}, 2},
		{"4.3.4: the 304's fields replace the stored ones", []string{"Etag", `"a"`, "X-Test", "old"}, `"a"`, false, []string{"Etag", `"a"`, "X-Test", "new", "Cache-Control", "max-age=60"}, "body-1", [2]string{"X-Test", "new"}, 2},
		{"4.3.4: fields the 304 omits are kept", []string{"Etag", `"a"`, "X-Kept", "k"}, `"a"`, false, []string{"Cache-Control", "max-age=60"}, "body-1", [2]string{"X-Kept", "k"}, 2},
		{"3.2: Content-Length is not updated by a 304", []string{"Etag", `"a"`}, `"a"`, false, []string{"Etag", `"a"`, "Content-Length", "999", "Cache-Control", "max-age=60"}, "body-1", [2]string{"Content-Length", "6"}, 2},
		{"4.3.3: a 200 replaces the stored response", []string{"Etag", `"a"`}, `"a"`, false, nil, "body-2", [2]string{"Etag", `"b"`}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", h.date(0))
				w.Header().Set("Cache-Control", "max-age=1")
				for i := 0; i+1 < len(tt.stored); i += 2 {
					w.Header().Set(tt.stored[i], tt.stored[i+1])
				}
				w.Write([]byte("body-1"))
			})
			h.get("/v")
			h.clk.Advance(10 * time.Second)
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("If-None-Match"); got != tt.wantINM {
					t.Errorf("If-None-Match = %q, want %q", got, tt.wantINM)
				}
				if got := r.Header.Get("If-Modified-Since") != ""; got != tt.wantIMS {
					t.Errorf("If-Modified-Since sent = %v, want %v", got, tt.wantIMS)
				}
				w.Header().Set("Date", h.date(0))
				if tt.answer304 != nil {
					for i := 0; i+1 < len(tt.answer304); i += 2 {
						w.Header().Set(tt.answer304[i], tt.answer304[i+1])
					}
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Etag", `"b"`)
				w.Write([]byte("body-2"))
			})
			r := h.get("/v")
			if r.status != 200 || r.body != tt.wantBody {
				t.Errorf("got %d %q, want 200 %q", r.status, r.body, tt.wantBody)
			}
			if got := r.header.Get(tt.wantHeader[0]); got != tt.wantHeader[1] {
				t.Errorf("%s = %q, want %q", tt.wantHeader[0], got, tt.wantHeader[1])
			}
			r3 := h.get("/v")
			if h.o.hits.Load() != int64(tt.wantOrigin2) || r3.body != tt.wantBody {
				t.Errorf("after validation the response is fresh again: origin hits %d (want %d), body %q", h.o.hits.Load(), tt.wantOrigin2, r3.body)
			}
		})
	}
}

// TestValidationStatus is RFC 9211 on a validation: fwd=stale with the
// origin's 304, and Stats counting it.
func TestValidationStatus(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=1", "Etag", `"a"`)
	h.get("/s")
	h.clk.Advance(5 * time.Second)
	h.o.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	r := h.get("/s")
	if got := r.header.Get("Cache-Status"); !strings.Contains(got, "fwd=stale; fwd-status=304") {
		t.Errorf("Cache-Status = %q, want fwd=stale; fwd-status=304", got)
	}
	if st := h.c.Stats(); st.Revalidated != 1 || st.Misses != 1 {
		t.Errorf("Stats = %+v, want 1 revalidated, 1 miss", st)
	}
}

// TestMultipleVariantsValidation is RFC 9111 section 4.3.1 and 4.3.4
// with two stored variants: the conditional request lists both entity
// tags, and the 304's ETag picks the one freshened.
func TestMultipleVariantsValidation(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		lang := r.Header.Get("Accept-Language")
		w.Header().Set("Date", h.date(0))
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Etag", `"`+lang+`"`)
		w.Write([]byte("in " + lang))
	})
	h.get("/m", "Accept-Language", "en")
	h.get("/m", "Accept-Language", "fr")
	h.clk.Advance(5 * time.Second)
	var inm string
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		inm = r.Header.Get("If-None-Match")
		w.Header().Set("Etag", `"fr"`)
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusNotModified)
	})
	r := h.get("/m", "Accept-Language", "fr")
	if inm != `"fr", "en"` {
		t.Errorf("4.3.1: If-None-Match = %q, want the selected tag first, then the others", inm)
	}
	if r.body != "in fr" {
		t.Errorf("4.3.4: served %q, want the fr variant", r.body)
	}
	hits := h.o.hits.Load()
	if r := h.get("/m", "Accept-Language", "fr"); r.body != "in fr" || h.o.hits.Load() != hits {
		t.Errorf("4.3.4: the fr variant was freshened: got %q, origin hits %d -> %d", r.body, hits, h.o.hits.Load())
	}
}

// TestConditionalFromCaller is RFC 9110 section 13.2.2 applied by the
// cache: a caller's If-None-Match that a fresh stored response matches is
// answered 304 without the origin.
func TestConditionalFromCaller(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=60", "Etag", `"a"`)
	h.get("/c")
	r := h.get("/c", "If-None-Match", `W/"a"`)
	if r.status != http.StatusNotModified || h.o.hits.Load() != 1 || r.body != "" {
		t.Errorf("got %d %q (origin hits %d), want 304 from the cache", r.status, r.body, h.o.hits.Load())
	}
	r = h.get("/c", "If-None-Match", `"b"`)
	if r.status != http.StatusOK || r.body != "body-1" {
		t.Errorf("a tag that does not match gets the stored 200, got %d %q", r.status, r.body)
	}
}

// TestConditionalIfModifiedSince is RFC 9110 13.1.3 with RFC 9111 4.3.2:
// the stored Last-Modified, else its Date, decides a caller's
// If-Modified-Since on a fresh stored response.
func TestConditionalIfModifiedSince(t *testing.T) {
	tests := []struct {
		rule, lastMod string
		ims           time.Duration // relative to the stored Date
		want          int
	}{
		{"13.1.3: not modified since a later date", "Wed, 01 Jan 2020 00:00:00 GMT", 0, 304},
		{"13.1.3: modified since an earlier date", "Wed, 01 Jan 2020 00:00:00 GMT", -100000 * time.Hour, 200},
		{"4.3.2: without Last-Modified, Date stands in", "", time.Second, 304},
		{"4.3.2: ... and is after an earlier date", "", -time.Hour, 200},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			kv := []string{"Cache-Control", "max-age=60"}
			if tt.lastMod != "" {
				kv = append(kv, "Last-Modified", tt.lastMod)
			}
			h.serve(kv...)
			h.get("/ims")
			r := h.get("/ims", "If-Modified-Since", h.date(tt.ims))
			if r.status != tt.want || h.o.hits.Load() != 1 {
				t.Errorf("got %d (origin hits %d), want %d from the cache", r.status, h.o.hits.Load(), tt.want)
			}
		})
	}
}

// TestVaryMissValidation is RFC 9111 sections 4.3.1 and 4.3.4 on a Vary
// miss: the request goes with every stored entity tag, and the 304 names
// the stored response that also suits it, stored again for this request.
func TestVaryMissValidation(t *testing.T) {
	h := newHarness(t, Config{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("Etag", `"one"`)
		if r.Header.Get("If-None-Match") == `"one"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("the same for everyone"))
	})
	h.get("/vm", "Accept-Encoding", "gzip")
	r := h.get("/vm", "Accept-Encoding", "br")
	if r.status != 200 || r.body != "the same for everyone" || !strings.Contains(r.header.Get("Cache-Status"), "fwd=vary-miss; fwd-status=304") {
		t.Fatalf("4.3.4: got %d %q %v, want the stored body validated", r.status, r.body, r.header["Cache-Status"])
	}
	if r := h.get("/vm", "Accept-Encoding", "br"); h.o.hits.Load() != 2 || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Errorf("the validated response is stored for br too: origin hits %d, %v", h.o.hits.Load(), r.header["Cache-Status"])
	}
}
