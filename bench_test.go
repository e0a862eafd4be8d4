package connmgr

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cannedTransport answers every request with a small 200, as cheaply as
// possible, so benchmarks measure the pipeline and not the network.
type cannedTransport struct{}

const cannedBody = `{"ok":true,"id":"0123456789abcdef0123456789abcdef01234567"}`

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(cannedBody)), ContentLength: int64(len(cannedBody)), Request: r,
	}, nil
}

func drain(b *testing.B, resp *http.Response, err error) {
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// newBenchManager is a default Manager over the canned transport, closed
// when the benchmark ends.
func newBenchManager(b *testing.B) *Manager {
	b.Helper()
	m, err := New(Config{}, WithTransport(cannedTransport{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	return m
}

// BenchmarkPipeline compares the default pipeline with a plain
// http.Client whose caller sets a per-request timeout (the same
// protection), both over a canned transport.
func BenchmarkPipeline(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/v1/items", nil)
	b.Run("net_http_with_timeout", func(b *testing.B) {
		c := &http.Client{Transport: cannedTransport{}}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			doWithTimeout(b, c, req, 10*time.Second)
		}
	})
	b.Run("connmgr_default", func(b *testing.B) {
		m := newBenchManager(b)
		c := m.Client()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := c.Do(req)
			drain(b, resp, err)
		}
	})
	b.Run("connmgr_caller_timeout", func(b *testing.B) {
		// The caller keeps its own timeout, shorter than connmgr's: the
		// attempt runs under it instead of nesting a second timer.
		m := newBenchManager(b)
		c := m.Client()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			doWithTimeout(b, c, req, 5*time.Second)
		}
	})
	b.Run("connmgr_roundtrip", func(b *testing.B) {
		m := newBenchManager(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := m.RoundTrip(req)
			drain(b, resp, err)
		}
	})
}

// doWithTimeout sends req under a per-request timeout, as a caller that
// protects itself would, and drains the response.
func doWithTimeout(b *testing.B, c *http.Client, req *http.Request, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	drain(b, resp, err)
}
