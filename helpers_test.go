package connmgr

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newTestManager builds a Manager that is closed when the test ends.
func newTestManager(t testing.TB, cfg Config, opts ...Option) *Manager {
	t.Helper()
	m, err := New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// fastRetries is a Default config for wire tests: quick backoff, no
// budget, so tests are fast and deterministic.
func fastRetries(attempts int) EndpointConfig {
	return EndpointConfig{
		Timeout:      2 * time.Second,
		TotalTimeout: 10 * time.Second,
		Retry: RetryConfig{
			MaxAttempts:    attempts,
			InitialBackoff: time.Millisecond,
			MaxBackoff:     2 * time.Millisecond,
			Budget:         RetryBudgetConfig{Disabled: Bool(true)},
		},
	}
}

// readAll reads and closes a response body.
func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(b)
}

func get(t testing.TB, m *Manager, url string) (*http.Response, error) {
	t.Helper()
	return m.Get(context.Background(), url)
}

// fakeTransport answers from a function and records the requests it saw.
type fakeTransport struct {
	mu   sync.Mutex // guards reqs
	reqs []*http.Request
	fn   func(n int, r *http.Request) (*http.Response, error)
}

func (f *fakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	n := len(f.reqs)
	f.mu.Unlock()
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return f.fn(n, r)
}

func (f *fakeTransport) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func cannedResponse(r *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}
}

// newTestLogger logs at debug level as text into w.
func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
