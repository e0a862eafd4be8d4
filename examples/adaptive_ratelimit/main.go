// Command adaptive_ratelimit shows adaptive rate limiting against an
// upstream with a quota, the Go version of the seed's
// AdaptiveRateLimiter done properly.
//
// The upstream allows 20 requests per second; past that it answers 429
// with Retry-After: 1. The client starts at 50 per second. On the first
// 429 the limiter halves its rate (multiplicative decrease) and pauses
// the bucket for the Retry-After; good answers raise the rate again by a
// step per interval (additive increase), and the upstream's
// X-RateLimit-Remaining / X-RateLimit-Reset headers slow it down before
// the upstream says no. Calls that cannot get a token within max_wait
// fail at once with ErrRateLimited and never reach the upstream.
//
// Run it with
//
//	go run ./examples/adaptive_ratelimit
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "adaptive_ratelimit:", err)
		os.Exit(1)
	}
}

// quota is a fixed-window quota of limit requests per second. With
// headers set it also tells the client what is left.
type quota struct {
	mu      sync.Mutex
	window  time.Time
	used    int
	limit   int
	headers bool
}

func (q *quota) step(int64, *http.Request) connmgrtest.Step {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	if now.Sub(q.window) >= time.Second {
		q.window, q.used = now, 0
	}
	if q.used >= q.limit {
		return connmgrtest.Step{Status: http.StatusTooManyRequests, RetryAfter: time.Second}
	}
	q.used++
	st := connmgrtest.Step{Body: "ok"}
	if q.headers {
		left := q.window.Add(time.Second).Sub(now)
		st.Header = http.Header{
			"X-Ratelimit-Remaining": {strconv.Itoa(q.limit - q.used)},
			"X-Ratelimit-Reset":     {strconv.FormatFloat(left.Seconds(), 'f', 3, 64)},
		}
	}
	return st
}

// drive calls the upstream as fast as the limiter lets it for d and
// counts the outcomes.
func drive(m *connmgr.Manager, url string, d time.Duration) (ok, tooMany, limited int, err error) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		resp, err := m.Get(context.Background(), url)
		switch {
		case errors.Is(err, connmgr.ErrRateLimited):
			limited++
			time.Sleep(20 * time.Millisecond)
		case err != nil:
			return ok, tooMany, limited, err
		default:
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				tooMany++
			} else {
				ok++
			}
		}
	}
	return ok, tooMany, limited, nil
}

func run() error {
	plain := &quota{limit: 20}
	upPlain := connmgrtest.NewServerFunc(plain.step)
	defer upPlain.Close()
	told := &quota{limit: 20, headers: true}
	upTold := connmgrtest.NewServerFunc(told.step)
	defer upTold.Close()

	adaptive := connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{MaxAttempts: 1},
		RateLimit: connmgr.RateLimitConfig{
			Rate: 50, Per: time.Second, Burst: 5, MaxWait: 100 * time.Millisecond,
			Adaptive: connmgr.AdaptiveConfig{Enabled: connmgr.Bool(true), MinRate: 5, IncreaseStep: 2, Interval: 500 * time.Millisecond},
		},
		CircuitBreaker: connmgr.BreakerConfig{Disabled: connmgr.Bool(true)}, // 429s are the limiter's business here
	}
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		upPlain.Addr(): adaptive,
		upTold.Addr():  adaptive,
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	fmt.Println("both upstreams allow 20 requests/s; the client starts at 50/s")
	fmt.Println("1. an upstream that only says 429 with Retry-After: 1")
	ok, tooMany, limited, err := drive(m, upPlain.URL, 2500*time.Millisecond)
	if err != nil {
		return err
	}
	st := m.Stats().Endpoints[upPlain.Addr()].RateLimit
	fmt.Printf("   %d ok, %d answered 429, %d refused locally (paused or no token within max_wait: never sent)\n", ok, tooMany, limited)
	fmt.Printf("   current rate %.0f/s after %d decrease(s) and %d increase(s)\n", st.CurrentRate, st.Decreases, st.Increases)
	if tooMany > 0 {
		fmt.Println("   each 429 halved the rate and paused the bucket for its Retry-After, so few calls got one")
	}

	fmt.Println("2. an upstream that also sends X-RateLimit-Remaining and X-RateLimit-Reset")
	ok, tooMany, limited, err = drive(m, upTold.URL, 1500*time.Millisecond)
	if err != nil {
		return err
	}
	st = m.Stats().Endpoints[upTold.Addr()].RateLimit
	fmt.Printf("   %d ok, %d answered 429, %d refused locally; current rate %.0f/s\n", ok, tooMany, limited, st.CurrentRate)
	if tooMany <= 1 {
		fmt.Println("   the limiter slowed down before the upstream said no")
	}
	return nil
}
