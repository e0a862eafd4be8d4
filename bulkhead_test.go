package connmgr

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrencyQueueHonoursTheCallsTotalTimeout: a call queued for a
// slot of the concurrency cap waited out the queue's own wait (here an
// hour) even when its total timeout, set per call through CallOptions,
// was 20ms. The queue now ends at the call's deadline, as every wait does.
func TestConcurrencyQueueHonoursTheCallsTotalTimeout(t *testing.T) {
	cfg := fastRetries(1)
	cfg.MaxConcurrent, cfg.MaxQueue, cfg.MaxQueueWait = 1, 5, time.Hour
	cfg.TotalTimeout = time.Hour
	entered, release := make(chan struct{}), make(chan struct{})
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		if n == 1 {
			close(entered)
			<-release
		}
		return cannedResponse(r, 200, "ok"), nil
	}}
	m := newTestManager(t, Config{Default: cfg}, WithTransport(ft))
	first := make(chan error, 1)
	go func() {
		resp, err := get(t, m, "http://x.test/")
		if err == nil {
			_ = resp.Body.Close()
		}
		first <- err
	}()
	<-entered
	defer func() {
		close(release)
		require.NoError(t, <-first)
	}()

	ctx := WithCallOptions(context.Background(), CallOptions{TotalTimeout: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		resp, err := m.Get(ctx, "http://x.test/")
		if err == nil {
			_ = resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrConcurrencyLimit)
	case <-time.After(5 * time.Second):
		t.Fatal("the queued call outlived its total timeout")
	}
	assert.EqualValues(t, 1, ft.count(), "the refused call never reached the transport")
}

// TestConcurrencyQueueCallerDeadlineIsTheCallers: when the caller's own
// context deadline is what ends the wait in the queue, the error is the
// caller's (context.DeadlineExceeded), not a refusal by the cap.
func TestConcurrencyQueueCallerDeadlineIsTheCallers(t *testing.T) {
	cfg := fastRetries(1)
	cfg.MaxConcurrent, cfg.MaxQueue, cfg.MaxQueueWait = 1, 5, time.Hour
	entered, release := make(chan struct{}), make(chan struct{})
	ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
		if n == 1 {
			close(entered)
			<-release
		}
		return cannedResponse(r, 200, "ok"), nil
	}}
	m := newTestManager(t, Config{Default: cfg}, WithTransport(ft))
	first := make(chan error, 1)
	go func() {
		resp, err := get(t, m, "http://x.test/")
		if err == nil {
			_ = resp.Body.Close()
		}
		first <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Get(ctx, "http://x.test/")
	close(release)
	require.NoError(t, <-first)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, ErrConcurrencyLimit)
}
