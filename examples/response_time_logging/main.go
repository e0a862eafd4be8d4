// Command response_time_logging shows a response hook that logs each
// call's response time with log/slog, and an error hook that logs each
// failed attempt, without a secret ever reaching the log.
//
// It is the seed's log_response_time_hook ("Creating Custom Plugins" in
// requests-connection-manager's advanced guide), done properly:
//
//   - structured log records (slog, JSON here) instead of print;
//   - ResponseContext.Duration is the whole call's time to the response
//     headers, retries and backoff included, and Attempt says which try
//     answered;
//   - the hooks log the host and path, never the query string or the
//     userinfo, which may carry secrets; a failed call is logged from the
//     typed *connmgr.Error, whose URL connmgr has already redacted.
//
// The requests below carry a password in the URL, an api_key in the query
// and a bearer token; the program checks that none of them is in the log.
// Run it with
//
//	go run ./examples/response_time_logging
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// secrets are what the requests carry and the log must not.
var secrets = []string{"hunter2", "key-0123456789", "tok-abcdef"}

func main() {
	// The log goes to stdout and, for the check at the end, to a buffer.
	var logged bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(os.Stdout, &logged), &slog.HandlerOptions{
		// No timestamps, so that runs compare line by line.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))

	// /slow answers after 120ms; /flaky fails its first request.
	var flakyHits atomic.Int64
	upstream := connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		switch r.URL.Path {
		case "/v1/slow":
			return connmgrtest.Step{Body: "slow", Delay: 120 * time.Millisecond}
		case "/v1/flaky":
			if flakyHits.Add(1) == 1 {
				return connmgrtest.Step{Status: http.StatusServiceUnavailable}
			}
		}
		return connmgrtest.Step{Body: "ok"}
	})
	defer upstream.Close()
	// An upstream that is down: nothing listens on its port any more.
	down := connmgrtest.NewServer()
	downURL := down.URL
	down.Close()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{
			Timeout: 2 * time.Second,
			Retry:   connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: 20 * time.Millisecond},
			Auth:    connmgr.AuthConfig{BearerToken: "tok-abcdef"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	m.OnResponse(func(c *connmgr.ResponseContext) error {
		logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "response",
			slog.String("endpoint", c.Endpoint),
			slog.String("method", c.Request.Method),
			slog.String("host", c.Request.URL.Host),
			slog.String("path", c.Request.URL.Path), // not the query: it may hold a key
			slog.Int("status", c.Response.StatusCode),
			slog.Int("attempt", c.Attempt),
			slog.Float64("duration_ms", float64(c.Duration.Microseconds())/1000),
		)
		return nil
	})
	m.OnError(func(c *connmgr.ErrorContext) error {
		attrs := []slog.Attr{
			slog.String("endpoint", c.Endpoint),
			slog.String("method", c.Request.Method),
			slog.String("host", c.Request.URL.Host),
			slog.String("path", c.Request.URL.Path),
			slog.Int("attempt", c.Attempt),
			slog.String("error", c.Err.Error()),
			slog.Bool("will_retry", c.Retry),
		}
		if c.Response != nil {
			attrs = append(attrs, slog.Int("status", c.Response.StatusCode))
		}
		logger.LogAttrs(c.Request.Context(), slog.LevelWarn, "attempt failed", attrs...)
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	withSecrets := func(base, path string) string {
		return strings.Replace(base, "http://", "http://alice:hunter2@", 1) + path + "?api_key=key-0123456789&page=2"
	}
	for _, url := range []string{
		withSecrets(upstream.URL, "/v1/fast"),
		withSecrets(upstream.URL, "/v1/slow"),
		withSecrets(upstream.URL, "/v1/flaky"),
		withSecrets(downURL, "/v1/orders"),
	} {
		resp, err := m.Get(ctx, url)
		if err != nil {
			// The typed error says what failed, with the URL redacted.
			var e *connmgr.Error
			if errors.As(err, &e) {
				logger.LogAttrs(ctx, slog.LevelError, "call failed",
					slog.String("endpoint", e.Endpoint),
					slog.String("method", e.Method),
					slog.String("url", e.URL),
					slog.Int("attempts", e.Attempts),
					slog.Bool("retries_exhausted", errors.Is(err, connmgr.ErrRetriesExhausted)),
				)
			} else {
				logger.Error("call failed", "error", err.Error())
			}
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	found := 0
	for _, s := range secrets {
		if strings.Contains(logged.String(), s) {
			fmt.Printf("secret %q is in the log\n", s)
			found++
		}
	}
	if found > 0 {
		os.Exit(1)
	}
	fmt.Printf("checked %d log lines: no password, api_key or bearer token in them\n", strings.Count(logged.String(), "\n"))
}
