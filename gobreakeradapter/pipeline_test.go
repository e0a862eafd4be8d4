package gobreakeradapter_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/gobreakeradapter"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// breakers records the breakers a factory built, by upstream.
type breakers struct {
	mu    sync.Mutex // guards built
	built map[string]*gobreakeradapter.Breaker
}

func (b *breakers) factory(st gobreaker.Settings) connmgr.BreakerFactory {
	f := gobreakeradapter.Factory(st)
	return func(endpoint, upstream string) connmgr.Breaker {
		br := f(endpoint, upstream).(*gobreakeradapter.Breaker)
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.built == nil {
			b.built = map[string]*gobreakeradapter.Breaker{}
		}
		b.built[endpoint+" "+upstream] = br
		return br
	}
}

func (b *breakers) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.built)
}

func (b *breakers) only(t *testing.T) *gobreakeradapter.Breaker {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Len(t, b.built, 1)
	for _, br := range b.built {
		return br
	}
	return nil
}

// oneAttempt is a config with no retries, so that each call is one
// attempt and one outcome for the breaker.
func oneAttempt() connmgr.Config {
	return connmgr.Config{Default: connmgr.EndpointConfig{
		Timeout: 2 * time.Second,
		Retry:   connmgr.RetryConfig{MaxAttempts: 1},
	}}
}

func call(ctx context.Context, t *testing.T, m *connmgr.Manager, url string) (int, error) {
	t.Helper()
	resp, err := m.Get(ctx, url)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode, nil
}

// TestPipelineOnGobreaker: the Manager's pipeline runs on gobreaker
// breakers: failures trip it, an open breaker fails calls at once with
// ErrCircuitOpen without reaching the upstream, and it recovers through
// a half-open probe.
func TestPipelineOnGobreaker(t *testing.T) {
	srv := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Body: "ok"},
	)
	defer srv.Close()
	var rec breakers
	m, err := connmgr.New(oneAttempt(), connmgr.WithBreakerFactory(rec.factory(gobreaker.Settings{
		Timeout:     100 * time.Millisecond,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
	})))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		status, err := call(ctx, t, m, srv.URL)
		require.NoError(t, err, "a final 503 is a response, not an error")
		assert.Equal(t, http.StatusServiceUnavailable, status)
	}
	br := rec.only(t)
	assert.Equal(t, gobreaker.StateOpen, br.State(), "three 503s trip it")

	start := time.Now()
	_, err = call(ctx, t, m, srv.URL)
	require.Error(t, err)
	assert.ErrorIs(t, err, connmgr.ErrCircuitOpen)
	assert.ErrorIs(t, err, gobreaker.ErrOpenState, "the breaker's own error is kept")
	assert.Less(t, time.Since(start), 50*time.Millisecond, "fails fast")
	assert.EqualValues(t, 3, srv.Count(), "the upstream was not called")

	time.Sleep(150 * time.Millisecond) // past gobreaker's Timeout: half-open
	status, err := call(ctx, t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, gobreaker.StateClosed, br.State(), "the probe closed it")
	status, err = call(ctx, t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, 1, rec.count(), "one breaker for the one upstream")
	rec.mu.Lock()
	assert.Contains(t, rec.built, "default "+srv.Addr(), "built for the endpoint and the upstream's host:port")
	rec.mu.Unlock()
}

// TestPipelineOnGobreakerCallerCancelIsIgnored: calls the caller gives up
// on say nothing about the upstream and do not trip the breaker.
func TestPipelineOnGobreakerCallerCancelIsIgnored(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Delay: 5 * time.Second})
	defer srv.Close()
	var rec breakers
	m, err := connmgr.New(oneAttempt(), connmgr.WithBreakerFactory(rec.factory(gobreaker.Settings{
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
	})))
	require.NoError(t, err)
	defer m.Close()
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := call(ctx, t, m, srv.URL)
		cancel()
		require.Error(t, err)
		assert.False(t, errors.Is(err, connmgr.ErrCircuitOpen), "call %d: %v", i, err)
	}
	br := rec.only(t)
	assert.Equal(t, gobreaker.StateClosed, br.State())
	assert.EqualValues(t, 0, br.Counts().TotalFailures)
	assert.EqualValues(t, 3, br.Counts().TotalExclusions)
}
