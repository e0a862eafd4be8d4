package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// demoBreakerScene shows a circuit breaker opening on 5xx, failing calls
// fast without touching the network, probing after its recovery timeout,
// reopening on a failed probe and closing on a good one. Each state change
// is printed by a state listener as it happens.
func demoBreakerScene(ctx context.Context, out io.Writer) error {
	upstream := connmgrtest.NewServerFunc(func(n int64, _ *http.Request) connmgrtest.Step {
		if n <= 4 {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "overloaded"}
		}
		return connmgrtest.Step{Body: "ok"}
	})
	defer upstream.Close()

	var mu sync.Mutex // orders the listener's lines with the calls'
	start := time.Now()
	stamp := func() string { return fmt.Sprintf("%5dms", time.Since(start).Milliseconds()) }
	m, err := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 3, RecoveryTimeout: 300 * time.Millisecond, HalfOpenRequests: 1},
	}}, connmgr.WithStateListener(func(c connmgr.StateChange) {
		mu.Lock()
		defer mu.Unlock()
		line := fmt.Sprintf("%s   breaker %s -> %s", stamp(), c.From, c.To)
		if c.Err != nil {
			line += " (" + c.Err.Error() + ")"
		}
		fmt.Fprintln(out, line)
	}))
	if err != nil {
		return err
	}
	defer m.Close()

	fmt.Fprintln(out, "scene: a circuit breaker opening and recovering")
	fmt.Fprintln(out, "  upstream: 503 to its first 4 requests, then 200; breaker: opens after 3 failures in a row, probes after 300ms")
	for i := 1; i <= 12; i++ {
		if ctx.Err() != nil {
			return nil
		}
		resp, err := m.Get(ctx, upstream.URL)
		var open *connmgr.CircuitOpenError
		mu.Lock()
		switch {
		case errors.As(err, &open):
			fmt.Fprintf(out, "%s call %2d: refused at once, breaker %s (next probe in %v); the upstream was not called\n",
				stamp(), i, open.State, open.RetryIn.Round(10*time.Millisecond))
		case err != nil:
			fmt.Fprintf(out, "%s call %2d: %v\n", stamp(), i, err)
		default:
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			fmt.Fprintf(out, "%s call %2d: %s\n", stamp(), i, resp.Status)
		}
		mu.Unlock()
		time.Sleep(120 * time.Millisecond)
	}
	st := m.Stats().Endpoints["default"].Breaker
	fmt.Fprintf(out, "  12 calls, %d reached the upstream; the breaker opened %d times, refused %d calls, and is %s\n",
		upstream.Count(), st.Opens, st.Rejected, st.State)
	return nil
}

// demoLimiterScene shows a rate limit making calls wait for a token up to
// max_wait, refusing those that would wait longer or past their deadline,
// and never sending a refused call.
func demoLimiterScene(ctx context.Context, out io.Writer) error {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
	defer upstream.Close()
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		upstream.Addr(): {RateLimit: connmgr.RateLimitConfig{Rate: 5, Per: time.Second, Burst: 2, MaxWait: 500 * time.Millisecond}},
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	fmt.Fprintln(out, "scene: a rate limiter waiting and rejecting")
	fmt.Fprintln(out, "  limit: 5 calls/s, burst 2, max_wait 500ms")
	call := func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		resp, err := m.Get(ctx, upstream.URL)
		if err == nil {
			_ = resp.Body.Close()
		}
		return time.Since(start), err
	}
	for i := 1; i <= 4; i++ {
		took, err := call(ctx)
		if err != nil {
			fmt.Fprintf(out, "  call %d: %v\n", i, err)
			continue
		}
		fmt.Fprintf(out, "  call %d: sent after %v\n", i, took.Round(50*time.Millisecond))
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	took, err := call(short)
	cancel()
	if errors.Is(err, connmgr.ErrRateLimited) {
		fmt.Fprintf(out, "  call 5, with a 100ms deadline: refused after %v: the wait for a token would pass its deadline\n", took.Round(10*time.Millisecond))
	}

	// Eight callers at once: the bucket refills at one token per 200ms,
	// so those that would wait more than 500ms are refused at once.
	time.Sleep(400 * time.Millisecond) // let the burst refill
	var wg sync.WaitGroup
	var mu sync.Mutex
	var waits []time.Duration
	refused := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := call(ctx)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, connmgr.ErrRateLimited) {
				refused++
			} else if err == nil {
				waits = append(waits, took.Round(100*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	fmt.Fprintf(out, "  8 callers at once: %d sent (after %v), %d refused with ErrRateLimited\n", len(waits), waits, refused)
	st := m.Stats().Endpoints[upstream.Addr()].RateLimit
	fmt.Fprintf(out, "  limiter: %d allowed (%d after waiting), %d refused; the upstream saw %d requests\n",
		st.Allowed, st.Waited, st.Rejected, upstream.Count())
	return nil
}
