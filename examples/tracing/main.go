// Command tracing shows connmgr's OpenTelemetry spans, printed to stdout
// by the SDK's stdouttrace exporter.
//
// It is the Go counterpart of the seed's "Distributed Tracing
// Integration" plugin (requests-connection-manager's advanced guide),
// which made up a trace ID, put X-Trace-ID and X-Span-ID headers on the
// request and kept spans in a dict. Here the Manager is given a real
// TracerProvider and the W3C propagator: each call gets a span, each
// attempt a client span under it, and each attempt's own request carries
// a traceparent naming that attempt's span (the caller's request is never
// written to), so the upstream's spans join the same trace.
//
// The program makes two calls inside a "checkout" span of its own: one
// to an upstream that answers 503 twice and then 200 (three attempts,
// two backoff events), and one refused locally by an open circuit
// breaker (a span with the reason, no attempt). It prints what the
// upstream saw, the span tree, then each span as stdouttrace writes it.
// Run it with
//
//	go run ./examples/tracing
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
}

func run() error {
	// Spans go to stdouttrace (pretty JSON) and, for the tree printed
	// first, to an in-memory copy.
	var jsonOut bytes.Buffer
	stdout, err := stdouttrace.New(stdouttrace.WithWriter(&jsonOut), stdouttrace.WithPrettyPrint(), stdouttrace.WithoutTimestamps())
	if err != nil {
		return err
	}
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(stdout), sdktrace.WithSyncer(mem))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	flaky := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Body: `{"order":42}`},
	)
	defer flaky.Close()
	down := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer down.Close()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{Retry: connmgr.RetryConfig{MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond}},
		Endpoints: map[string]connmgr.EndpointConfig{
			down.Addr(): {Retry: connmgr.RetryConfig{MaxAttempts: 1},
				CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Minute}},
		},
		Redact: connmgr.RedactConfig{QueryKeys: []string{"session"}},
	}, connmgr.WithTracerProvider(tp), connmgr.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		return err
	}
	defer m.Close()

	// Open the breaker of "down" before the traced part (one failure).
	drain(m.Get(context.Background(), down.URL+"/warmup"))
	mem.Reset()
	jsonOut.Reset()

	ctx, checkout := tp.Tracer("example/checkout").Start(context.Background(), "checkout")
	resp, err := m.Get(ctx, flaky.URL+"/v1/orders/42?session=s3cr3t")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // the last attempt's span ends here
	fmt.Printf("call 1: %s %s\n", resp.Status, body)
	_, err = m.Get(ctx, down.URL+"/v1/refunds")
	var open *connmgr.CircuitOpenError
	fmt.Printf("call 2: refused by the open breaker: %v\n", errors.As(err, &open))
	checkout.End()

	fmt.Println("\nwhat the upstream saw:")
	for i, r := range flaky.Requests() {
		fmt.Printf("  attempt %d traceparent %s\n", i+1, r.Header.Get("Traceparent"))
	}

	fmt.Println("\nspans:")
	printTree(mem.GetSpans())

	fmt.Println("\nstdouttrace output:")
	os.Stdout.Write(jsonOut.Bytes())
	return nil
}

func drain(resp *http.Response, err error) {
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

// printTree prints the spans as a tree, with the attributes a reader of
// the trace looks at first.
func printTree(spans tracetest.SpanStubs) {
	children := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		children[s.Parent.SpanID().String()] = append(children[s.Parent.SpanID().String()], s)
	}
	for _, list := range children {
		sort.Slice(list, func(i, j int) bool { return list[i].StartTime.Before(list[j].StartTime) })
	}
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			fmt.Printf("  %s%s (%s) span %s%s\n", strings.Repeat("  ", depth), s.Name, s.SpanKind, s.SpanContext.SpanID(), describe(s))
			walk(s.SpanContext.SpanID().String(), depth+1)
		}
	}
	walk("0000000000000000", 0)
}

func describe(s tracetest.SpanStub) string {
	keys := []attribute.Key{"connmgr.attempt", "http.request.resend_count", "http.response.status_code", "error.type",
		"connmgr.outcome", "connmgr.refusal.reason", "url.full"}
	var parts []string
	for _, k := range keys {
		for _, kv := range s.Attributes {
			if kv.Key == k {
				parts = append(parts, fmt.Sprintf("%s=%s", k, kv.Value.Emit()))
			}
		}
	}
	for _, ev := range s.Events {
		var attrs []string
		for _, kv := range ev.Attributes {
			if kv.Key == "connmgr.retry.reason" || kv.Key == "connmgr.refusal.reason" {
				attrs = append(attrs, kv.Value.Emit())
			}
		}
		parts = append(parts, fmt.Sprintf("event %s(%s)", ev.Name, strings.Join(attrs, ",")))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, " ")
}
