package cache

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStaleWhileRevalidate is RFC 5861 section 3: within the window a
// stale response is served at once and refreshed in the background,
// once.
func TestStaleWhileRevalidate(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=1, stale-while-revalidate=60")
	h.get("/swr")
	h.clk.Advance(10 * time.Second)
	r := h.get("/swr")
	if r.body != "body-1" || !strings.Contains(r.header.Get("Cache-Status"), "hit; ttl=-9; detail=stale-while-revalidate") {
		t.Fatalf("3: want the stale body at once, got %q %v", r.body, r.header["Cache-Status"])
	}
	eventually(t, "the background refresh to be stored", func() bool { return h.c.Stats().Stored == 2 })
	if r := h.get("/swr"); r.body != "body-2" || !strings.Contains(r.header.Get("Cache-Status"), "hit; ttl=1") {
		t.Errorf("3: after the refresh the new response is served fresh: %q %v", r.body, r.header["Cache-Status"])
	}
	if h.o.hits.Load() != 2 {
		t.Errorf("origin hits %d, want 2", h.o.hits.Load())
	}
	h.clk.Advance(120 * time.Second)
	h.get("/swr")
	if h.o.hits.Load() != 3 {
		t.Errorf("3: past the window the response is validated in the foreground; origin hits %d", h.o.hits.Load())
	}
	if st := h.c.Stats(); st.StaleWhileRevalidate != 1 || st.BackgroundRefreshes != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestStaleWhileRevalidateBounded: background refreshes are bounded, and
// Close cancels the ones running and waits for them (goleak checks).
func TestStaleWhileRevalidateBounded(t *testing.T) {
	h := newHarness(t, Config{BackgroundRevalidations: 1})
	h.serve("Cache-Control", "max-age=1, stale-while-revalidate=60")
	h.get("/a")
	h.get("/b")
	h.clk.Advance(5 * time.Second)
	blocked := make(chan struct{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		close(blocked)
		<-r.Context().Done()
	})
	h.get("/a")
	<-blocked
	h.get("/b")
	if n := h.c.Stats().BackgroundRefreshes; n != 1 {
		t.Errorf("background refreshes = %d, want 1 (the bound)", n)
	}
	done := make(chan struct{})
	go func() { h.c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the background refresh")
	}
}

// TestStaleIfError is RFC 5861 section 4 and the Config's window: a
// stale response answers a failed or refused origin request.
func TestStaleIfError(t *testing.T) {
	tests := []struct {
		rule    string
		cfg     Config
		cc      string
		reqCC   string
		after   time.Duration
		fail    string // "error" or "503"
		served  bool
		wantErr bool
	}{
		{"4: the response's stale-if-error window", Config{}, "max-age=1, stale-if-error=60", "", 30 * time.Second, "error", true, false},
		{"4: past the window the error goes through", Config{}, "max-age=1, stale-if-error=60", "", 120 * time.Second, "error", false, true},
		{"4: a 503 counts as an error", Config{}, "max-age=1, stale-if-error=60", "", 30 * time.Second, "503", true, false},
		{"4: the request's stale-if-error", Config{}, "max-age=1", "stale-if-error=60", 30 * time.Second, "error", true, false},
		{"config: stale_if_error serves without a directive", Config{StaleIfError: time.Minute}, "max-age=1", "", 30 * time.Second, "error", true, false},
		{"config: negative never serves stale", Config{StaleIfError: -1}, "max-age=1, stale-if-error=60", "", 30 * time.Second, "error", false, true},
		{"4.2.4: must-revalidate forbids it", Config{StaleIfError: time.Minute}, "max-age=1, must-revalidate", "", 30 * time.Second, "error", false, true},
		{"no stale response: the 503 is passed on", Config{}, "max-age=1", "", 30 * time.Second, "503", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			h.serve("Cache-Control", tt.cc, "Etag", `"e"`)
			h.get("/sie")
			h.clk.Advance(tt.after)
			if tt.fail == "error" {
				h.down.Store(true)
			} else {
				h.o.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
			}
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, h.o.srv.URL+"/sie", nil)
			if tt.reqCC != "" {
				req.Header.Set("Cache-Control", tt.reqCC)
			}
			resp, err := h.client.Do(req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer resp.Body.Close()
			stale := strings.Contains(resp.Header.Get("Cache-Status"), "detail=stale-if-error")
			if stale != tt.served || (stale && resp.StatusCode != 200) {
				t.Errorf("served stale = %v (status %d, %v), want %v", stale, resp.StatusCode, resp.Header["Cache-Status"], tt.served)
			}
		})
	}
}
