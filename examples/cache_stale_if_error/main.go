// Command cache_stale_if_error puts an RFC 9111 cache in front of a
// flaky upstream: while the upstream fails and its circuit breaker is
// open, callers still get the last good answer, marked stale.
//
// The upstream answers with "Cache-Control: max-age=2". The endpoint's
// cache block allows serving a stale answer for up to a minute when the
// origin fails (stale_if_error: 60s, RFC 5861). Then the upstream starts
// answering 503: the first failure is answered from the cache, the
// breaker opens, and calls the breaker refuses locally (ErrCircuitOpen,
// no request sent) are answered from the cache too. The cache wraps the
// whole call, outside the retries, so it sees the Manager's final word.
//
// Run it with
//
//	go run ./examples/cache_stale_if_error
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	var down atomic.Bool
	upstream := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if down.Load() {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "maintenance"}
		}
		return connmgrtest.Step{Body: `{"price":42}`, Header: http.Header{"Cache-Control": {"max-age=2"}}}
	})
	defer upstream.Close()
	host := strings.TrimPrefix(upstream.URL, "http://")

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{host: {
		Retry:          connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: time.Minute},
		Cache:          connmgr.CacheConfig{StaleIfError: time.Minute},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := cache.New(cache.Config{}) // shared mode, 64 MiB in memory
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Use(c); err != nil {
		log.Fatal(err)
	}

	call := func(i int) {
		resp, err := m.Get(context.Background(), upstream.URL+"/price")
		if err != nil {
			fmt.Printf("call %d: error %v (circuit open: %v)\n", i, err, errors.Is(err, connmgr.ErrCircuitOpen))
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("call %d: %d %s  [Cache-Status: %s]\n", i, resp.StatusCode, body, resp.Header.Get("Cache-Status"))
	}

	call(1) // a miss: stored
	call(2) // a fresh hit
	time.Sleep(2100 * time.Millisecond)
	down.Store(true)
	fmt.Println("-- the upstream goes down; the answer is now stale --")
	for i := 3; i <= 6; i++ {
		call(i)
	}
	st := m.Stats()
	fmt.Printf("breaker %s; the upstream saw %d requests for 6 calls\n", st.Endpoints[host].Breaker.State, upstream.Count())
	cs := c.Stats()
	fmt.Printf("cache: %d hit, %d miss, %d stale-if-error\n", cs.Hits, cs.Misses, cs.StaleIfError)
}
