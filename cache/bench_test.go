package cache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/connmgr/connmgr"
)

const benchBody = `{"id":42,"name":"widget","tags":["a","b","c"],"price":12.5}`

func benchOrigin(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Etag", `"v1"`)
		io.WriteString(w, benchBody)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// pipelineCache is a Manager with the cache joined, and the RoundTripper
// a caller uses: the whole call, cache first.
func pipelineCache(tb testing.TB) (http.RoundTripper, *Cache, func()) {
	m, err := connmgr.New(connmgr.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := New(Config{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Use(c); err != nil {
		tb.Fatal(err)
	}
	return m, c, func() { m.Close() }
}

func roundTrip(tb testing.TB, rt http.RoundTripper, req *http.Request) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkFreshHit is a fresh hit through the full pipeline (Manager and
// cache), body read and closed.
func BenchmarkFreshHit(b *testing.B) {
	srv := benchOrigin(b)
	rt, _, done := pipelineCache(b)
	defer done()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/item/42", nil)
	roundTrip(b, rt, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip(b, rt, req)
	}
}

// BenchmarkLoopbackRoundTrip is the same request over loopback with a
// plain http.Transport: what a hit saves.
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	srv := benchOrigin(b)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/item/42", nil)
	roundTrip(b, tr, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip(b, tr, req)
	}
}

// BenchmarkFreshHitParallel is BenchmarkFreshHit from every P.
func BenchmarkFreshHitParallel(b *testing.B) {
	srv := benchOrigin(b)
	rt, _, done := pipelineCache(b)
	defer done()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/item/42", nil)
	roundTrip(b, rt, req)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			roundTrip(b, rt, req)
		}
	})
}

// BenchmarkChurn stores 100,000 distinct URIs through the cache (an
// in-process origin) with max_bytes of 8 MiB, and reports the bytes held.
func BenchmarkChurn(b *testing.B) {
	c, err := New(Config{MaxBytes: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, 1024)
	rt := c.WrapCall(rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {"max-age=60"}},
			Body: io.NopCloser(&byteReader{b: body}), ContentLength: int64(len(body)), Request: r}, nil
	}))
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://api.test/items/"+strconv.FormatInt(n.Add(1), 10), nil)
		roundTrip(b, rt, req)
	}
	b.ReportMetric(float64(c.Stats().Bytes), "bytes-held")
}

type byteReader struct {
	b   []byte
	off int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// TestFreshHitAllocs: a fresh hit through the pipeline costs at most 10
// allocations, body read included.
func TestFreshHitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	srv := benchOrigin(t)
	rt, _, done := pipelineCache(t)
	defer done()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/item/42", nil)
	roundTrip(t, rt, req)
	if n := testing.AllocsPerRun(200, func() { roundTrip(t, rt, req) }); n > 10 {
		t.Errorf("a fresh hit costs %.0f allocations, want <= 10", n)
	}
}
