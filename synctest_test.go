//go:build go1.25

package connmgr

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run in a synctest bubble: time is fake, so long waits are
// checked exactly and take no real time.

func TestRetryAfterWaitIsExactInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent []time.Time
		tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
			sent = append(sent, time.Now())
			if n == 1 {
				resp := cannedResponse(r, 429, "slow down")
				resp.Header.Set("Retry-After", "20")
				return resp, nil
			}
			return cannedResponse(r, 200, "ok"), nil
		}}
		m, err := New(Config{Default: EndpointConfig{TotalTimeout: time.Minute}}, WithTransport(tr))
		require.NoError(t, err)
		defer m.Close()
		resp, err := get(t, m, "http://api.test/")
		require.NoError(t, err)
		assert.Equal(t, "ok", readAll(t, resp))
		require.Len(t, sent, 2)
		assert.Equal(t, 20*time.Second, sent[1].Sub(sent[0]), "waited exactly Retry-After (longer than the backoff)")
	})
}

func TestBackoffGrowsAndStaysUnderCeilingInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent []time.Time
		tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
			sent = append(sent, time.Now())
			return cannedResponse(r, 503, ""), nil
		}}
		m, err := New(Config{Default: EndpointConfig{
			TotalTimeout: time.Hour,
			Retry: RetryConfig{MaxAttempts: 6, InitialBackoff: time.Second, MaxBackoff: 4 * time.Second,
				Budget: RetryBudgetConfig{Disabled: Bool(true)}},
			CircuitBreaker: BreakerConfig{Disabled: Bool(true)}, // it would open after 5 failures
		}}, WithTransport(tr))
		require.NoError(t, err)
		defer m.Close()
		resp, err := get(t, m, "http://api.test/")
		require.NoError(t, err)
		readAll(t, resp)
		require.Len(t, sent, 6)
		ceilings := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
		for i, ceiling := range ceilings {
			gap := sent[i+1].Sub(sent[i])
			assert.LessOrEqual(t, gap, ceiling, "backoff %d", i+1)
			assert.GreaterOrEqual(t, gap, time.Duration(0))
		}
	})
}

func TestWaitPastDeadlineFailsNowInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
			resp := cannedResponse(r, 503, "")
			resp.Header.Set("Retry-After", "25")
			return resp, nil
		}}
		m, err := New(Config{Default: EndpointConfig{TotalTimeout: 20 * time.Second}}, WithTransport(tr))
		require.NoError(t, err)
		defer m.Close()
		start := time.Now()
		resp, err := get(t, m, "http://api.test/")
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, 503, resp.StatusCode)
		assert.Equal(t, 1, tr.count())
		assert.Zero(t, time.Since(start), "no time passed: the wait could not fit before the deadline")
	})
}

func TestPerTryTimeoutInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent []time.Time
		tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
			sent = append(sent, time.Now())
			if n < 3 {
				<-r.Context().Done() // hang until the per-try timeout
				return nil, r.Context().Err()
			}
			return cannedResponse(r, 200, "third time"), nil
		}}
		m, err := New(Config{Default: EndpointConfig{
			Timeout: 3 * time.Second,
			Retry:   RetryConfig{InitialBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond},
		}}, WithTransport(tr))
		require.NoError(t, err)
		defer m.Close()
		resp, err := get(t, m, "http://api.test/")
		require.NoError(t, err)
		assert.Equal(t, "third time", readAll(t, resp))
		require.Len(t, sent, 3)
		assert.Equal(t, 3*time.Second, sent[1].Sub(sent[0]).Round(time.Millisecond))
	})
}
