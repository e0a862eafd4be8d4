// Command performance_metrics prints a per-host performance summary of
// mixed traffic, and serves it as JSON on a /stats endpoint.
//
// It is the Go counterpart of the seed's "Performance Metrics Collection"
// (Advanced Monitoring and Observability in requests-connection-manager's
// advanced guide). The seed's PerformanceMonitor needs three hooks, a lock
// and a list of the last 1000 response times per host; here the Manager
// keeps the numbers itself, per endpoint, and m.Stats() returns them:
// calls, successes and failures, retries, final status codes, and p50,
// p95 and p99 latency (from a fixed-size histogram, so memory does not
// grow with traffic, within about 12%). The seed's summary is a few lines
// of arithmetic on top; its average response time has no counterpart
// (Stats keeps percentiles, not a sum), and its error_count here counts
// failed calls (an error, or a final 5xx), not failed attempts: those
// show as retries.
//
// Two local upstreams get the traffic: "catalog" is healthy and fast (and
// answers 404 for a missing item), "pricing" is slow, answers 503 to a
// quarter of its requests (retried) and sometimes takes longer than the
// per-try timeout (retried too). Each has its own endpoint in the config,
// so each has its own line in Stats. The program then serves the summary
// at http://127.0.0.1:PORT/stats, fetches it once, prints it and stops
// the server. Run it with
//
//	go run ./examples/performance_metrics
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// calls is the number of calls made to each upstream.
const calls = 60

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "performance_metrics:", err)
		os.Exit(1)
	}
}

func run() error {
	// catalog: 2-10ms; /items/missing is a 404.
	catalog := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			return connmgrtest.Step{Status: http.StatusNotFound, Body: "no such item"}
		}
		return connmgrtest.Step{Body: `{"item":"ok"}`, Delay: jitter(n, 2, 10)}
	})
	defer catalog.Close()
	// pricing: 20-80ms; a quarter of the requests get 503 (the same ones
	// every run: connmgrtest.Flaky is seeded), and one in fifteen takes
	// 400ms, longer than the 200ms per-try timeout.
	flaky := connmgrtest.Flaky(3, 0.25, connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "overloaded"})
	pricing := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		s := flaky(n, r)
		s.Delay = jitter(n, 20, 80)
		if n%15 == 0 {
			s.Delay = 400 * time.Millisecond
		}
		return s
	})
	defer pricing.Close()

	// Endpoints are keyed by authority; a host with no endpoint of its own
	// is counted under "default" with every other such host.
	names := map[string]string{catalog.Addr(): "catalog", pricing.Addr(): "pricing"}
	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{
			Timeout: time.Second,
			Retry:   connmgr.RetryConfig{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond},
		},
		Endpoints: map[string]connmgr.EndpointConfig{
			catalog.Addr(): {},
			pricing.Addr(): {
				Timeout: 200 * time.Millisecond,
				// Most failed attempts succeed on retry: open the breaker
				// on the failure ratio of calls (50% of at least 20 in a
				// minute), not on a few failed attempts in a row.
				CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: -1},
			},
		},
	})
	if err != nil {
		return err
	}
	defer m.Close()

	// Mixed traffic, 8 calls at a time.
	var reqs []*http.Request
	for i := range calls {
		item := strconv.Itoa(i)
		if i%10 == 9 {
			item = "missing"
		}
		for _, u := range []string{catalog.URL + "/items/" + item, pricing.URL + "/prices/" + strconv.Itoa(i)} {
			req, err := http.NewRequest(http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			reqs = append(reqs, req)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	failed := 0
	for _, r := range m.DoAll(ctx, reqs, 8) {
		if r.Err != nil {
			failed++
			continue
		}
		_, _ = io.Copy(io.Discard, r.Response.Body)
		_ = r.Response.Body.Close() // the call ends, and is counted, here
	}
	fmt.Printf("%d calls in %v, %d ended in an error (timeouts, retries exhausted)\n\n",
		len(reqs), time.Since(start).Round(100*time.Millisecond), failed)

	summary := summarize(m.Stats(), names)
	printSummary(summary)

	// The same summary as JSON, for a dashboard or a health check.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(summarize(m.Stats(), names))
	})
	return serveOnce(mux, "/stats")
}

// hostSummary is the seed's get_metrics_summary entry for one host.
type hostSummary struct {
	Host         string         `json:"host"`
	RequestCount uint64         `json:"request_count"`
	ErrorCount   uint64         `json:"error_count"`
	ErrorRate    float64        `json:"error_rate"`
	Retries      uint64         `json:"retries"`
	P50ms        float64        `json:"p50_ms"`
	P95ms        float64        `json:"p95_ms"`
	P99ms        float64        `json:"p99_ms"`
	StatusCodes  map[int]uint64 `json:"status_codes"`
	Breaker      string         `json:"breaker"`
}

// summarize turns Stats into the seed's summary, keyed by name. A call
// counts as an error when it failed: an error (timeout, retries
// exhausted) or a final 5xx; a 404 is an answer, not an error.
func summarize(st connmgr.Stats, names map[string]string) map[string]hostSummary {
	out := map[string]hostSummary{}
	for key, e := range st.Endpoints {
		name, ok := names[key]
		if !ok || e.Requests == 0 {
			continue
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		out[name] = hostSummary{
			Host:         key,
			RequestCount: e.Requests,
			ErrorCount:   e.Failures,
			ErrorRate:    float64(e.Failures) / float64(e.Requests),
			Retries:      e.Retries,
			P50ms:        ms(e.P50),
			P95ms:        ms(e.P95),
			P99ms:        ms(e.P99),
			StatusCodes:  e.StatusCodes,
		}
		if b := e.Breaker; b != nil {
			h := out[name]
			h.Breaker = fmt.Sprintf("%s, opened %d times", b.State, b.Opens)
			out[name] = h
		}
	}
	return out
}

func printSummary(s map[string]hostSummary) {
	fmt.Println("performance summary (from m.Stats()):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "host\trequests\terrors\terror rate\tretries\tp50\tp95\tp99\tstatus codes\tbreaker")
	for _, name := range slices.Sorted(maps.Keys(s)) {
		h := s[name]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%d\t%s\t%s\t%s\t%s\t%s\n", name, h.RequestCount, h.ErrorCount, 100*h.ErrorRate,
			h.Retries, msString(h.P50ms), msString(h.P95ms), msString(h.P99ms), codes(h.StatusCodes), h.Breaker)
	}
	_ = tw.Flush()
}

// serveOnce serves h on a loopback port, fetches path once, prints the
// answer, and stops the server.
func serveOnce(h http.Handler, path string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	url := "http://" + ln.Addr().String() + path
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Printf("\nGET %s: %s %s\n%s", strings.Replace(url, ln.Addr().String(), "127.0.0.1:PORT", 1),
		resp.Status, resp.Header.Get("Content-Type"), body)
	client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Println("stats server stopped")
	return nil
}

// jitter is a delay between lo and hi milliseconds, the same for the
// same n every run.
func jitter(n int64, lo, hi int) time.Duration {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond
}

func msString(ms float64) string {
	return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
}

func codes(c map[int]uint64) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%d=%d", code, c[code]))
	}
	return strings.Join(parts, " ")
}
