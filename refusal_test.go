package connmgr

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefusalHooksNeverWriteTheCallersRequest: error hooks run for local
// refusals; with no request hook to make a clone they were handed the
// caller's own request, so a hook setting a header (a request ID) or a
// path wrote to it. They get a clone.
func TestRefusalHooksNeverWriteTheCallersRequest(t *testing.T) {
	hook := func(ec *ErrorContext) error {
		ec.Request.Header.Set("X-Hook", "1")
		ec.Request.URL.Path = "/changed"
		return nil
	}
	t.Run("open breaker", func(t *testing.T) {
		cfg := fastRetries(1)
		cfg.CircuitBreaker.ConsecutiveFailures = 1
		ft := &fakeTransport{fn: func(int, *http.Request) (*http.Response, error) { return nil, errors.New("down") }}
		m := newTestManager(t, Config{Default: cfg}, WithTransport(ft))
		_, err := get(t, m, "http://x.test/")
		require.Error(t, err)
		m.OnError(hook)
		req, _ := http.NewRequest("GET", "http://x.test/", nil)
		_, err = m.RoundTrip(req)
		require.ErrorIs(t, err, ErrCircuitOpen)
		assert.Empty(t, req.Header.Get("X-Hook"))
		assert.Equal(t, "/", req.URL.Path)
	})
	t.Run("concurrency cap", func(t *testing.T) {
		cfg := fastRetries(1)
		cfg.MaxConcurrent = 1
		entered, release := make(chan struct{}), make(chan struct{})
		ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) {
			close(entered)
			<-release
			return cannedResponse(r, 200, "ok"), nil
		}}
		m := newTestManager(t, Config{Default: cfg}, WithTransport(ft))
		m.OnError(hook)
		done := make(chan error, 1)
		go func() {
			resp, err := get(t, m, "http://x.test/")
			if err == nil {
				_ = resp.Body.Close()
			}
			done <- err
		}()
		<-entered
		req, _ := http.NewRequest("GET", "http://x.test/", nil)
		_, err := m.RoundTrip(req)
		close(release)
		require.NoError(t, <-done)
		require.ErrorIs(t, err, ErrConcurrencyLimit)
		assert.Empty(t, req.Header.Get("X-Hook"))
		assert.Equal(t, "/", req.URL.Path)
	})
}
