//go:build go1.25

package connmgr

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPipelineRateWithinTwoPercentInFakeTime drives the whole pipeline
// (hooks off, breaker on) from several goroutines against a limit of 50
// attempts per second for 4 fake seconds: the upstream must see the
// configured rate within 2%.
func TestPipelineRateWithinTwoPercentInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sent []time.Time
		tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
			mu.Lock()
			sent = append(sent, time.Now())
			mu.Unlock()
			return cannedResponse(r, 200, "ok"), nil
		}}
		m, err := New(Config{Default: EndpointConfig{
			RateLimit: RateLimitConfig{Rate: 50, Burst: 1, MaxWait: time.Second},
		}}, WithTransport(tr))
		require.NoError(t, err)
		defer m.Close()

		start := time.Now()
		const run = 4 * time.Second
		var rejected atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < run {
					resp, err := m.Get(context.Background(), "http://api.test/")
					if errors.Is(err, ErrRateLimited) {
						rejected.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					readAll(t, resp)
				}
			}()
		}
		wg.Wait()
		n := 0
		for _, at := range sent {
			if at.Sub(start) < run {
				n++
			}
		}
		want := 50*run.Seconds() + 1
		assert.InDelta(t, want, float64(n), want*0.02, "sent %d in %v, want %.0f ±2%%", n, run, want)
		assert.Zero(t, rejected.Load(), "4 callers at 50/s never wait a whole second")
		assert.Greater(t, m.Stats().Endpoints["default"].RateLimit.Waited, uint64(100))
	})
}

// TestRateLimitWaitHonoursTheDeadlineInFakeTime: a wait that would pass
// the call's deadline fails at once, not at the deadline.
func TestRateLimitWaitHonoursTheDeadlineInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
		m, err := New(Config{Default: EndpointConfig{
			RateLimit: RateLimitConfig{Rate: 1, Per: 10 * time.Second, Burst: 1, MaxWait: time.Minute},
		}}, WithTransport(tr))
		require.NoError(t, err)
		defer m.Close()
		resp, err := m.Get(context.Background(), "http://api.test/")
		require.NoError(t, err)
		readAll(t, resp)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err = m.Get(ctx, "http://api.test/")
		require.ErrorIs(t, err, ErrRateLimited)
		assert.Zero(t, time.Since(start), "no time passed: the 10s wait could never fit in 5s")

		ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel2()
		start = time.Now()
		resp, err = m.Get(ctx2, "http://api.test/")
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, 10*time.Second, time.Since(start), "waited exactly for the token")
	})
}
