package connmgr_test

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// One span per call, one client span per attempt under it.
func ExampleWithTracerProvider() {
	up := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{Body: "ok"})
	defer up.Close()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	m, _ := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: time.Millisecond}}},
		connmgr.WithTracerProvider(tp))
	defer m.Close()
	resp, err := m.Get(context.Background(), up.URL+"/orders?api_key=secret")
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // the last attempt's span ends here

	for _, s := range spans.GetSpans() {
		attrs := attribute.NewSet(s.Attributes...)
		attempt, _ := attrs.Value("connmgr.attempt") // "unknown" on the call span
		status, _ := attrs.Value("http.response.status_code")
		fmt.Println(s.Name, s.SpanKind, attempt.Emit(), status.Emit())
	}
	// Output:
	// GET client 1 503
	// GET client 2 200
	// connmgr GET internal unknown 200
}

// Calls by outcome, read from a manual reader.
func ExampleWithMeterProvider() {
	up := connmgrtest.NewServer()
	defer up.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	m, _ := connmgr.New(connmgr.Config{}, connmgr.WithMeterProvider(mp))
	defer m.Close()
	for range 3 {
		if resp, err := m.Get(context.Background(), up.URL); err == nil {
			_ = resp.Body.Close()
		}
	}
	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[int64]); ok && mt.Name == "connmgr.client.calls" {
				for _, dp := range sum.DataPoints {
					outcome, _ := dp.Attributes.Value("connmgr.outcome")
					fmt.Println(mt.Name, outcome.Emit(), dp.Value)
				}
			}
			names = append(names, mt.Name)
		}
	}
	sort.Strings(names)
	fmt.Println(names[len(names)-2:])
	// Output:
	// connmgr.client.calls success 3
	// [http.client.active_requests http.client.request.duration]
}

// Each attempt's own request carries the trace context.
func ExampleWithPropagator() {
	up := connmgrtest.NewServer()
	defer up.Close()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	m, _ := connmgr.New(connmgr.Config{}, connmgr.WithTracerProvider(tp), connmgr.WithPropagator(propagation.TraceContext{}))
	defer m.Close()

	resp, err := m.Get(context.Background(), up.URL)
	if err != nil {
		panic(err)
	}
	_ = resp.Body.Close()
	fmt.Println(len(up.Requests()[0].Header.Get("Traceparent")))
	// Output: 55
}

// The running config, as a status page shows it: defaults filled in,
// secrets redacted.
func ExampleManager_RunningConfig() {
	m, _ := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"API.example.com": {Auth: connmgr.AuthConfig{BearerToken: "s3cr3t"}},
	}})
	defer m.Close()
	ec := m.RunningConfig().Endpoints["api.example.com"]
	fmt.Println(ec.Auth.BearerToken, ec.Timeout, ec.Retry.MaxAttempts)
	// Output: REDACTED 10s 3
}
