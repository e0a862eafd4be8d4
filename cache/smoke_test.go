package cache

import (
	"net/http"
	"testing"
	"time"
)

func TestSmokeFreshHitThenStale(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=60", "Etag", `"v1"`)
	r1 := h.get("/a")
	r2 := h.get("/a")
	if r1.body != "body-1" || r2.body != "body-1" || h.o.hits.Load() != 1 {
		t.Fatalf("got %q %q hits %d", r1.body, r2.body, h.o.hits.Load())
	}
	t.Log(r1.header["Cache-Status"], r2.header["Cache-Status"], r2.header["Age"])
	h.clk.Advance(2 * time.Minute)
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Cache-Control", "max-age=60")
			w.WriteHeader(304)
			return
		}
		w.Write([]byte("changed"))
	})
	r3 := h.get("/a")
	t.Log(r3.status, r3.body, r3.header["Cache-Status"], h.o.hits.Load())
}
