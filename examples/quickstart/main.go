// Command quickstart is the README's quick start as a program: build a
// Manager from a Config, make a call through it, and print its Stats as
// JSON.
//
// It corresponds to the seed's basic usage (ConnectionManager with
// endpoint_configs, then manager.get): per-endpoint settings are keyed by
// the URL's authority ("host:port", "host" or "*.example.com"), and
// everything an endpoint leaves unset comes from Default, then from the
// built-in defaults (10s per try, 3 attempts, retries on 408, 429 and
// 5xx with backoff, a retry budget).
//
// The upstream is local and fails the first request with a 503, so the
// call succeeds on its second attempt. Run it with
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	upstream := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Body: "hello, world"},
	)
	defer upstream.Close()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{Timeout: 5 * time.Second},
		Endpoints: map[string]connmgr.EndpointConfig{
			upstream.Addr(): { // "api.example.com" in real life
				Retry: connmgr.RetryConfig{MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond},
			},
		},
	})
	if err != nil {
		log.Fatal(err) // a *connmgr.ConfigError naming every bad field
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.Get(ctx, upstream.URL+"/hello")
	if err != nil {
		log.Fatal(err) // a *connmgr.Error; errors.Is(err, connmgr.ErrRetriesExhausted) and so on
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close() // the call ends when its body is closed
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s (the upstream saw %d requests)\n", resp.Status, body, upstream.Count())

	// m.Client() gives any library that takes an *http.Client the same
	// pipeline.
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m.Stats()); err != nil {
		log.Fatal(err)
	}
}
