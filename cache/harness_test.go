package cache

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a fake clock for the cache; the origin's Date headers are set
// from it too.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is a test server on 127.0.0.1 whose handler a test swaps.
type origin struct {
	srv     *httptest.Server
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
	lastReq atomic.Pointer[http.Request]
}

func newOrigin(t *testing.T) *origin {
	o := &origin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.lastReq.Store(r.Clone(r.Context()))
		(*o.handler.Load())(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) handle(h http.HandlerFunc) { o.handler.Store(&h) }

// harness is a cache in front of a real loopback transport.
type harness struct {
	t      *testing.T
	c      *Cache
	clk    *clock
	o      *origin
	client *http.Client
	tr     *http.Transport
	// down makes the transport behind the cache fail every request, as an
	// origin outage or a local refusal would.
	down atomic.Bool
}

var errDown = errors.New("origin down")

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	c.now = clk.Now
	tr := &http.Transport{}
	h := &harness{t: t, c: c, clk: clk, o: newOrigin(t), tr: tr}
	h.client = &http.Client{Transport: c.WrapCall(rtFunc(func(r *http.Request) (*http.Response, error) {
		if h.down.Load() {
			return nil, errDown
		}
		return tr.RoundTrip(r)
	}))}
	t.Cleanup(func() {
		c.Close()
		tr.CloseIdleConnections()
	})
	return h
}

// response is what a test saw: status, header and the whole body.
type response struct {
	status int
	header http.Header
	body   string
}

func (h *harness) do(method, path string, header http.Header) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.o.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (h *harness) get(path string, kv ...string) response {
	h.t.Helper()
	hdr := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		hdr.Add(kv[i], kv[i+1])
	}
	return h.do(http.MethodGet, path, hdr)
}

// date formats the fake clock's time as an HTTP-date, shifted by d.
func (h *harness) date(d time.Duration) string {
	return h.clk.Now().Add(d).UTC().Format(http.TimeFormat)
}

// serve makes the origin answer with the given fields (a "Date" of the
// fake clock unless set) and a body counting the origin's hits.
func (h *harness) serve(kv ...string) {
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", h.date(0))
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
		io.WriteString(w, "body-"+itoa(h.o.hits.Load()))
	})
}

func itoa(n int64) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// eventually polls cond every millisecond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
