package cache

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBytesStore runs the cache over a Store of bytes (the way the
// Redis store plugs in): hits, Vary variants and revalidation survive the
// round trip through the encoding.
func TestBytesStore(t *testing.T) {
	s := NewMemoryStore(1 << 20)
	defer s.Close()
	h := newHarness(t, Config{Store: s})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		if tag := `"` + r.Header.Get("Accept-Language") + `"`; strings.Contains(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Date", h.date(0))
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Etag", `"`+r.Header.Get("Accept-Language")+`"`)
		w.Write([]byte("in " + r.Header.Get("Accept-Language")))
	})
	h.get("/b", "Accept-Language", "en")
	h.get("/b", "Accept-Language", "fr")
	if r := h.get("/b", "Accept-Language", "en"); r.body != "in en" || h.o.hits.Load() != 2 {
		t.Fatalf("hit through bytes: %q, origin hits %d", r.body, h.o.hits.Load())
	}
	h.clk.Advance(time.Minute)
	if r := h.get("/b", "Accept-Language", "en"); r.body != "in en" || r.header.Get("Age") != "0" {
		t.Errorf("revalidated through bytes: %q Age %q", r.body, r.header.Get("Age"))
	}
	if n, ok, _ := s.Get(context.Background(), hashKey(primaryKey(http.MethodGet, mustURL(t, h.o.srv.URL+"/b")))); !ok || len(n) == 0 {
		t.Error("nothing stored as bytes under the hashed primary key")
	}
	for k := range s.c.Keys() {
		if strings.Contains(k, "127.0.0.1") {
			t.Errorf("a Store of bytes sees the URL in key %q", k)
		}
	}
	if st := h.c.Stats(); st.Hits != 1 || st.Revalidated != 1 || st.StoreErrors != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// badStore fails, or panics, on every call.
type badStore struct{ panics bool }

func (b badStore) fail() error {
	if b.panics {
		panic("store exploded")
	}
	return errors.New("store down")
}
func (b badStore) Get(context.Context, string) ([]byte, bool, error) { return nil, false, b.fail() }
func (b badStore) Set(context.Context, string, []byte, time.Duration) error {
	return b.fail()
}
func (b badStore) Delete(context.Context, string) error { return b.fail() }

// corruptStore returns bytes that are not an entry.
type corruptStore struct{}

func (corruptStore) Get(context.Context, string) ([]byte, bool, error) {
	return []byte("\x00not gob"), true, nil
}
func (corruptStore) Set(context.Context, string, []byte, time.Duration) error { return nil }
func (corruptStore) Delete(context.Context, string) error                     { return nil }

// TestStoreFailures: a Store that errors, panics or returns garbage is a
// miss, never a failed call.
func TestStoreFailures(t *testing.T) {
	for name, s := range map[string]Store{"error": badStore{}, "panic": badStore{panics: true}, "corrupt": corruptStore{}} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{Store: s})
			h.serve("Cache-Control", "max-age=60")
			for i := 0; i < 2; i++ {
				if r := h.get("/s"); r.status != 200 {
					t.Fatalf("status %d", r.status)
				}
			}
			h.do(http.MethodPost, "/s", nil) // Delete
			if h.o.hits.Load() != 3 {
				t.Errorf("origin hits %d, want 3: every call went through", h.o.hits.Load())
			}
			if name != "corrupt" && h.c.Stats().StoreErrors == 0 {
				t.Error("store errors not counted")
			}
		})
	}
}

// TestBadTransport: a RoundTripper that returns nothing, a response
// without header or body, or panics on the cache's goroutine, is an
// error or a usable response, never a crash.
func TestBadTransport(t *testing.T) {
	for name, rt := range map[string]rtFunc{
		"nothing":  func(*http.Request) (*http.Response, error) { return nil, nil },
		"bare":     func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil },
		"panics":   func(*http.Request) (*http.Response, error) { panic("boom") },
		"resp+err": func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 500}, errors.New("x") },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			methods := []string{http.MethodGet, http.MethodPost}
			if name == "panics" {
				// On the caller's goroutine a panic goes up, as in net/http;
				// on the cache's own (a GET's shared request) it is an error.
				methods = methods[:1]
			}
			for _, m := range methods {
				req, _ := http.NewRequest(m, "http://origin.test/x", nil)
				resp, err := c.WrapCall(rt).RoundTrip(req)
				if (resp == nil) == (err == nil) {
					t.Errorf("%s: resp %v, err %v: want exactly one", m, resp, err)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
}
