package cache

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestTTLMode is the Python seed's request cache: fresh for TTL whatever
// the headers say, for the configured methods and statuses, still
// honouring no-store.
func TestTTLMode(t *testing.T) {
	tests := []struct {
		rule   string
		cfg    Config
		method string
		status int
		cc     string
		after  time.Duration
		hit    bool
	}{
		{"ttl: a response without freshness is cached for the TTL", Config{TTL: time.Minute}, "GET", 200, "", 30 * time.Second, true},
		{"ttl: max-age=0 is overridden", Config{TTL: time.Minute}, "GET", 200, "max-age=0", 30 * time.Second, true},
		{"ttl: no-cache is overridden", Config{TTL: time.Minute}, "GET", 200, "no-cache", 30 * time.Second, true},
		{"ttl: past the TTL it is stale", Config{TTL: time.Minute}, "GET", 200, "", 2 * time.Minute, false},
		{"ttl: no-store is still honoured", Config{TTL: time.Minute}, "GET", 200, "no-store", time.Second, false},
		{"ttl: private is honoured in shared mode", Config{TTL: time.Minute}, "GET", 200, "private", time.Second, false},
		{"ttl: private is cached in private mode", Config{TTL: time.Minute, Mode: Private}, "GET", 200, "private", time.Second, true},
		{"ttl: a status not listed is not cached", Config{TTL: time.Minute}, "GET", 500, "", time.Second, false},
		{"ttl: listed statuses are", Config{TTL: time.Minute, Statuses: []int{500}}, "GET", 500, "", time.Second, true},
		{"ttl: POST when listed, keyed on the body", Config{TTL: time.Minute, Methods: []string{"GET", "post"}}, "POST", 200, "", time.Second, true},
		{"ttl: POST not listed is not cached", Config{TTL: time.Minute}, "POST", 200, "", time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				if tt.cc != "" {
					w.Header().Set("Cache-Control", tt.cc)
				}
				w.WriteHeader(tt.status)
				w.Write([]byte("x"))
			})
			send := func(body string) {
				req, _ := http.NewRequest(tt.method, h.o.srv.URL+"/t", bytes.NewReader([]byte(body)))
				resp, err := h.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			send("a")
			h.clk.Advance(tt.after)
			send("a")
			if got := h.o.hits.Load() == 1; got != tt.hit {
				t.Errorf("hit = %v (origin hits %d), want %v", got, h.o.hits.Load(), tt.hit)
			}
			if tt.method == "POST" && tt.hit {
				send("b")
				if h.o.hits.Load() != 2 {
					t.Errorf("a POST with another body must not hit; origin hits %d", h.o.hits.Load())
				}
			}
		})
	}
}
