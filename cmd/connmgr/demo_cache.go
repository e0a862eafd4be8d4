package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/connmgrtest"
)

// demoCacheScene shows the HTTP cache plugin: hits for a hot set of
// URLs, revalidations answered 304 once they go stale, and stale answers
// served while the upstream is down and its breaker open. max-age is 2
// seconds, not 1: Date has whole seconds, so a response stored late in a
// second is already most of a second old, and with max-age=1 the first
// phase could find it stale.
func demoCacheScene(ctx context.Context, out io.Writer) error {
	var down atomic.Bool
	upstream := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if down.Load() {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "down"}
		}
		h := http.Header{"Cache-Control": {"max-age=2"}, "Etag": {`"v1"`}}
		if r.Header.Get("If-None-Match") == `"v1"` {
			return connmgrtest.Step{Status: http.StatusNotModified, Header: h}
		}
		return connmgrtest.Step{Body: "item " + strings.TrimPrefix(r.URL.Path, "/items/"), Header: h}
	})
	defer upstream.Close()

	m, err := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: time.Minute},
		Cache:          connmgr.CacheConfig{StaleIfError: 30 * time.Second},
	}})
	if err != nil {
		return err
	}
	defer m.Close()
	c, err := cache.New(cache.Config{MaxBytes: 8 << 20})
	if err != nil {
		return err
	}
	if err := m.Use(c); err != nil {
		return err
	}

	fmt.Fprintln(out, "scene: an HTTP cache in front of an upstream (max-age=2, ETag; stale_if_error: 30s)")
	calls := 0
	phase := func(name string, n int) {
		statuses := map[string]int{}
		for i := 0; i < n && ctx.Err() == nil; i++ {
			calls++
			resp, err := m.Get(ctx, fmt.Sprintf("%s/items/%d", upstream.URL, i%5))
			if err != nil {
				statuses["error"]++
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			statuses[cacheOutcome(resp.Header.Get("Cache-Status"))]++
		}
		fmt.Fprintf(out, "  %-44s %v\n", name, statuses)
	}
	phase("20 calls over 5 URLs:", 20)
	time.Sleep(2100 * time.Millisecond)
	phase("2s later, stale: validated with If-None-Match:", 5)
	down.Store(true)
	time.Sleep(2100 * time.Millisecond)
	phase("the upstream is down (503), then its breaker open:", 10)

	st := c.Stats()
	fmt.Fprintf(out, "  %d calls, %d reached the upstream; hit ratio %.0f%%, %d revalidated (304), %d stale served on error; breaker %s\n",
		calls, upstream.Count(), 100*float64(st.Hits)/float64(max(calls, 1)), st.Revalidated, st.StaleIfError,
		m.Stats().Endpoints["default"].Breaker.State)
	return nil
}

// cacheOutcome names a Cache-Status value in a word.
func cacheOutcome(cs string) string {
	switch {
	case strings.Contains(cs, "detail=stale-if-error"):
		return "stale-if-error"
	case strings.Contains(cs, "; hit"):
		return "hit"
	case strings.Contains(cs, "fwd-status=304"):
		return "revalidated"
	default:
		return "miss"
	}
}
