// Command prometheus_metrics exports connmgr's OpenTelemetry metrics to
// Prometheus and prints what a scrape returns.
//
// The Manager gets an OpenTelemetry MeterProvider whose reader is the
// OpenTelemetry Prometheus exporter (go.opentelemetry.io/otel/exporters/
// prometheus), registered in a Prometheus registry that promhttp serves
// at /metrics on 127.0.0.1. The program sends traffic to two local
// upstreams, a healthy one and one that fails until its circuit breaker
// opens, scrapes /metrics once and prints the connmgr and HTTP client
// series, then a per-host summary computed from the scrape. The root
// connmgr package imports only the OpenTelemetry API; the SDK and the
// exporter are the program's choice. Run it with
//
//	go run ./examples/prometheus_metrics
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus_metrics:", err)
		os.Exit(1)
	}
}

func run() error {
	// The exporter is a metric reader; the registry is what /metrics serves.
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = provider.Shutdown(context.Background()) }()

	healthy := connmgrtest.NewServerFunc(func(n int64, _ *http.Request) connmgrtest.Step {
		return connmgrtest.Step{Body: "ok", Delay: time.Duration(n%5) * time.Millisecond}
	})
	defer healthy.Close()
	failing := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "down"})
	defer failing.Close()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{Retry: connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: time.Millisecond}},
		Endpoints: map[string]connmgr.EndpointConfig{
			healthy.Addr(): {},
			failing.Addr(): {CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 4, RecoveryTimeout: time.Minute}},
		},
	}, connmgr.WithMeterProvider(provider))
	if err != nil {
		return err
	}
	defer m.Close()

	for i := range 20 {
		call(m, fmt.Sprintf("%s/items/%d", healthy.URL, i))
	}
	for i := range 6 {
		call(m, fmt.Sprintf("%s/orders/%d", failing.URL, i))
	}

	// Serve /metrics on loopback and scrape it once, as Prometheus would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Shutdown(context.Background())
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "metrics server:", err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Printf("GET http://127.0.0.1:PORT/metrics: %s\n\n", resp.Status)

	// The series connmgr exports (bucket lines left out for brevity).
	ports := strings.NewReplacer(healthy.Addr(), "HEALTHY", failing.Addr(), "FAILING",
		`"`+portOf(healthy.Addr())+`"`, `"HEALTHY_PORT"`, `"`+portOf(failing.Addr())+`"`, `"FAILING_PORT"`)
	var samples []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "connmgr_") && !strings.Contains(line, "http_client_") || strings.Contains(line, "_bucket{") {
			continue
		}
		fmt.Println(ports.Replace(line))
		if !strings.HasPrefix(line, "#") {
			samples = append(samples, line)
		}
	}
	fmt.Println()
	printSummary(samples, map[string]string{"127.0.0.1:" + portOf(healthy.Addr()): "healthy", "127.0.0.1:" + portOf(failing.Addr()): "failing"})
	return nil
}

func call(m *connmgr.Manager, url string) {
	resp, err := m.Get(context.Background(), url)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // the attempt, and its duration sample, end here
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

var (
	sampleLine = regexp.MustCompile(`^([a-z_]+)\{(.*)\} (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)
)

// printSummary is a per-host summary computed from the scrape: attempts,
// failed attempts and mean attempt duration per server, and calls by
// outcome per endpoint.
func printSummary(samples []string, names map[string]string) {
	type host struct{ attempts, failed, seconds float64 }
	hosts := map[string]*host{}
	outcomes := map[string]map[string]float64{}
	for _, s := range samples {
		mm := sampleLine.FindStringSubmatch(s)
		if mm == nil {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(mm[2], -1) {
			labels[p[1]] = p[2]
		}
		v, _ := strconv.ParseFloat(mm[3], 64)
		name := names[labels["server_address"]+":"+labels["server_port"]]
		switch mm[1] {
		case "http_client_request_duration_seconds_count":
			if hosts[name] == nil {
				hosts[name] = &host{}
			}
			hosts[name].attempts += v
			if labels["error_type"] != "" {
				hosts[name].failed += v
			}
		case "http_client_request_duration_seconds_sum":
			if hosts[name] == nil {
				hosts[name] = &host{}
			}
			hosts[name].seconds += v
		case "connmgr_client_calls_total":
			ep := names[labels["connmgr_endpoint"]]
			if outcomes[ep] == nil {
				outcomes[ep] = map[string]float64{}
			}
			outcomes[ep][labels["connmgr_outcome"]] += v
		}
	}
	keys := make([]string, 0, len(hosts))
	for k := range hosts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("per host, from the scrape:")
	for _, k := range keys {
		h := hosts[k]
		fmt.Printf("  %-8s %2.0f attempts, %2.0f failed, mean %.1fms; calls %s\n", k, h.attempts, h.failed,
			1000*h.seconds/h.attempts, formatOutcomes(outcomes[k]))
	}
}

func formatOutcomes(o map[string]float64) string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, o[k]))
	}
	return strings.Join(parts, " ")
}
