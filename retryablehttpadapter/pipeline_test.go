package retryablehttpadapter_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/retryablehttpadapter"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quick is a config whose retries wait milliseconds, with no retry
// budget in the way.
func quick() connmgr.Config {
	return connmgr.Config{Default: connmgr.EndpointConfig{
		Timeout:      2 * time.Second,
		TotalTimeout: 10 * time.Second,
		Retry: connmgr.RetryConfig{
			MaxAttempts:    3,
			InitialBackoff: time.Millisecond,
			MaxBackoff:     2 * time.Millisecond,
			MaxRetryAfter:  100 * time.Millisecond,
			Budget:         connmgr.RetryBudgetConfig{Disabled: connmgr.Bool(true)},
		},
	}}
}

func newManager(t *testing.T, opts ...connmgr.Option) *connmgr.Manager {
	t.Helper()
	m, err := connmgr.New(quick(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func send(t *testing.T, m *connmgr.Manager, req *http.Request) (int, string) {
	t.Helper()
	resp, err := m.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode, string(b)
}

func getReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}

// TestPipelineUsesRetryablehttpPolicy: with retryablehttp's
// DefaultRetryPolicy, the Manager retries what retryablehttp retries
// (505, which connmgr's default retry_on does not list) and not what it
// does not (408, which connmgr's default does), and waits what
// LinearJitterBackoff says, counting retries as retryablehttp does.
func TestPipelineUsesRetryablehttpPolicy(t *testing.T) {
	var mu sync.Mutex
	var attempts []int
	linear := func(min, max time.Duration, n int, resp *http.Response) time.Duration {
		mu.Lock()
		attempts = append(attempts, n)
		mu.Unlock()
		return retryablehttp.LinearJitterBackoff(min, max, n, resp)
	}
	m := newManager(t,
		connmgr.WithRetryPolicy(retryablehttpadapter.RetryPolicy(retryablehttp.DefaultRetryPolicy)),
		connmgr.WithBackoff(retryablehttpadapter.Backoff(linear)))

	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 505}, connmgrtest.Step{Status: 503}, connmgrtest.Step{Body: "ok"})
	defer srv.Close()
	code, body := send(t, m, getReq(t, srv.URL))
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	assert.EqualValues(t, 3, srv.Count())
	mu.Lock()
	assert.Equal(t, []int{0, 1}, attempts, "retryablehttp counts retries from 0")
	mu.Unlock()

	timeout := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusRequestTimeout}, connmgrtest.Step{Body: "ok"})
	defer timeout.Close()
	code, _ = send(t, m, getReq(t, timeout.URL))
	assert.Equal(t, http.StatusRequestTimeout, code, "DefaultRetryPolicy does not retry 408")
	assert.EqualValues(t, 1, timeout.Count())
}

// TestPipelineStillRefusesToRetryPOST: retryablehttp retries a POST
// that got a 503; through connmgr the policy only says the 503 is
// retryable, and a POST without an Idempotency-Key is still sent once.
func TestPipelineStillRefusesToRetryPOST(t *testing.T) {
	m := newManager(t,
		connmgr.WithRetryPolicy(retryablehttpadapter.RetryPolicy(retryablehttp.DefaultRetryPolicy)),
		connmgr.WithBackoff(retryablehttpadapter.Backoff(retryablehttp.LinearJitterBackoff)))
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable}, connmgrtest.Step{Body: "charged"})
	defer srv.Close()

	post := func(key string) *http.Request {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/charge", strings.NewReader(`{"amount":100}`))
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		return req
	}
	code, _ := send(t, m, post(""))
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.EqualValues(t, 1, srv.Count(), "the POST was sent once")

	srv.Reset()
	code, body := send(t, m, post("charge-42"))
	assert.Equal(t, http.StatusOK, code, "with an Idempotency-Key it is retried")
	assert.Equal(t, "charged", body)
	got := srv.Requests()
	require.Len(t, got, 2)
	assert.Equal(t, `{"amount":100}`, string(got[1].Body), "the body was replayed whole")
}

// TestPipelineStillCapsRetryAfter: retryablehttp's DefaultBackoff waits a
// 503's Retry-After, however long; through connmgr a Retry-After past
// max_retry_after (100ms here) is not waited for.
func TestPipelineStillCapsRetryAfter(t *testing.T) {
	m := newManager(t,
		connmgr.WithRetryPolicy(retryablehttpadapter.RetryPolicy(retryablehttp.DefaultRetryPolicy)),
		connmgr.WithBackoff(retryablehttpadapter.Backoff(retryablehttp.DefaultBackoff)))
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable, RetryAfter: 3 * time.Second}, connmgrtest.Step{Body: "ok"})
	defer srv.Close()
	start := time.Now()
	code, _ := send(t, m, getReq(t, srv.URL))
	elapsed := time.Since(start)
	assert.Less(t, elapsed, time.Second, "waited %v: retryablehttp would wait the 3s Retry-After", elapsed)
	assert.Contains(t, []int{http.StatusServiceUnavailable, http.StatusOK}, code)
}
