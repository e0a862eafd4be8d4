package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// A contender is one way of making the benchmark's request.
type contender struct {
	name string
	// newClient builds the contender over rt, the base transport every
	// contender shares in a scenario. rt is nil only for contenders with
	// ownTransport set, in the loopback scenario.
	newClient func(tb testing.TB, rt http.RoundTripper) *client
	// ownTransport says that, over the network, the contender should use
	// the transport it builds itself rather than the shared one. Only
	// connmgr does: its transport and pool are part of what it sells.
	ownTransport bool
	// inProcessOnly leaves the contender out of BenchmarkLoopback: it is a
	// variant whose difference only shows without a network.
	inProcessOnly bool
}

// A client is a built contender.
type client struct {
	// fetch GETs url, reads the body to EOF, closes it, and fails unless
	// the status is 200. It is safe for concurrent use.
	fetch func(url string) error
	// close releases the client and closes its idle connections.
	close func()
}

// contenders lists every contender in the order tables show them.
// connmgrContenders comes from connmgr_test.go.
func contenders() []contender {
	cs := []contender{
		{name: "raw", newClient: newRaw},
		{name: "raw_timeout", newClient: newRawTimeout},
		{name: "retryablehttp", newClient: newRetryableHTTP},
		{name: "resty", newClient: newResty},
		{name: "failsafe", newClient: newFailsafe},
		{name: "gobreaker_rate", newClient: newGobreakerRate},
	}
	return append(cs, connmgrContenders...)
}

// perTryTimeout is the protection raw_timeout adds, matching connmgr's
// default per-attempt timeout.
const perTryTimeout = 10 * time.Second

// newRaw is plain net/http with no timeout at all.
func newRaw(_ testing.TB, rt http.RoundTripper) *client {
	hc := &http.Client{Transport: rt}
	return &client{
		fetch: func(url string) error { return get(hc, url) },
		close: hc.CloseIdleConnections,
	}
}

// newRawTimeout is plain net/http with the caller bounding each request
// with a context timeout: the baseline connmgr is judged against, since it
// gives the same protection.
func newRawTimeout(_ testing.TB, rt http.RoundTripper) *client {
	hc := &http.Client{Transport: rt}
	return &client{
		fetch: func(url string) error { return getWithTimeout(hc, url) },
		close: hc.CloseIdleConnections,
	}
}

// get is the workload through an *http.Client: GET url with no deadline
// of the caller's own, then consume.
func get(hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return consume(hc.Do(req))
}

// getWithTimeout is get with the caller bounding the request by
// perTryTimeout, as raw_timeout does.
func getWithTimeout(hc *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), perTryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return consume(hc.Do(req))
}

// consume reads resp's body to EOF and closes it, the workload's common
// tail. It does not allocate on success.
func consume(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	return consumeBody(resp.StatusCode, resp.Body)
}

func consumeBody(status int, body io.ReadCloser) error {
	_, err := io.Copy(io.Discard, body)
	if cerr := body.Close(); err == nil {
		err = cerr
	}
	if err == nil && status != http.StatusOK {
		err = statusError(status)
	}
	return err
}

// statusError is an unexpected response status.
type statusError int

func (e statusError) Error() string { return "bench: unexpected status " + strconv.Itoa(int(e)) }

// cannedURL is the URL requested over cannedTransport; nothing resolves it.
const cannedURL = "http://upstream.test/small"

// BenchmarkInProcess measures each contender's own cost: the base
// transport is cannedTransport, so no bytes cross a socket.
func BenchmarkInProcess(b *testing.B) {
	for _, c := range contenders() {
		b.Run(c.name, func(b *testing.B) {
			cl := c.newClient(b, cannedTransport{})
			defer cl.close()
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := cl.fetch(cannedURL); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkCannedTransport is the floor under BenchmarkInProcess: one
// RoundTrip of cannedTransport and reading its body, with no client.
func BenchmarkCannedTransport(b *testing.B) {
	req, err := http.NewRequest(http.MethodGet, cannedURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	var rt cannedTransport
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := consume(rt.RoundTrip(req)); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// cpuStart is the process CPU time when a measurement began.
type cpuStart struct {
	t  time.Duration
	ok bool
}

func startCPU() cpuStart {
	t, ok := processCPU()
	return cpuStart{t, ok}
}

// report adds cpu-ns/op: the CPU time the whole process (client, server,
// GC, kernel on its behalf) spent per operation since s. Unlike ns/op,
// which is wall time, it barely moves when other processes compete for
// the cores, and under RunParallel it is the cost of one request rather
// than the inverse of throughput.
func (s cpuStart) report(b *testing.B) {
	if now, ok := processCPU(); ok && s.ok && b.N > 0 {
		b.ReportMetric(float64(now-s.t)/float64(b.N), "cpu-ns/op")
	}
}

// loopbackGoroutines is the number of concurrent callers in the g=64
// loopback benchmarks.
const loopbackGoroutines = 64

// BenchmarkLoopback measures each contender against a real HTTP/1.1
// server on 127.0.0.1, with one caller (g=1) and with 64 concurrent
// callers (g=64). Client and server share the machine's cores.
func BenchmarkLoopback(b *testing.B) {
	srv := newLoopbackServer(b)
	url := srv.URL + "/small"
	for _, c := range contenders() {
		if c.inProcessOnly {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			// One client per contender, kept across g=1 and g=64 and across
			// the b.N ramp-up, so its pool stays warm.
			cl := newLoopbackClient(b, c)
			defer cl.close()

			b.Run("g=1", func(b *testing.B) {
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					if err := cl.fetch(url); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
			})
			b.Run("g="+strconv.Itoa(loopbackGoroutines), func(b *testing.B) {
				// RunParallel starts SetParallelism(p) × GOMAXPROCS
				// goroutines: with GOMAXPROCS=2, 32 × 2 = 64.
				procs := runtime.GOMAXPROCS(0)
				b.SetParallelism((loopbackGoroutines + procs - 1) / procs)
				b.ReportAllocs()
				cpu := startCPU()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := cl.fetch(url); err != nil {
							b.Error(err)
							return
						}
					}
				})
				cpu.report(b)
			})
		})
	}
}

// newLoopbackServer starts an HTTP/1.1 server on 127.0.0.1 that answers
// every request with 200 and payload, closed when tb ends.
func newLoopbackServer(tb testing.TB) *httptest.Server {
	contentType := []string{"text/plain; charset=utf-8"}
	contentLength := []string{strconv.Itoa(len(payload))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = contentType
		h["Content-Length"] = contentLength
		_, _ = w.Write(payload)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// newLoopbackClient builds c for the loopback scenario: over a fresh
// newPooledTransport, or over its own transport if c.ownTransport. close
// also closes the pooled transport's idle connections.
func newLoopbackClient(tb testing.TB, c contender) *client {
	if c.ownTransport {
		return c.newClient(tb, nil)
	}
	tr := newPooledTransport()
	cl := c.newClient(tb, tr)
	closeClient := cl.close
	cl.close = func() {
		closeClient()
		tr.CloseIdleConnections()
	}
	return cl
}

// newPooledTransport is the base transport every contender except
// connmgr uses over the network. Its pool matches connmgr's defaults
// (64 idle connections per host, 90s idle timeout), so no contender pays
// for new connections that another one keeps.
func newPooledTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * loopbackGoroutines
	tr.MaxIdleConnsPerHost = loopbackGoroutines
	tr.IdleConnTimeout = 90 * time.Second
	return tr
}
