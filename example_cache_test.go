package connmgr_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
)

// cacheableOrigin answers every request with a body fresh for a minute.
var cacheableOrigin = connmgr.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {"max-age=60"}},
		Body: http.NoBody, Request: r}, nil
})

func getAndClose(m *connmgr.Manager, url string) {
	if resp, err := m.Get(context.Background(), url); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

// The cache plugin's numbers, by plugin name, in the one shape the
// metrics and the status page read.
func ExampleManager_CacheStats() {
	m, _ := connmgr.New(connmgr.Config{}, connmgr.WithTransport(cacheableOrigin))
	defer m.Close()
	c, _ := cache.New(cache.Config{})
	_ = m.Use(c)
	for range 4 {
		getAndClose(m, "http://api.example.com/items/1")
	}
	s := m.CacheStats()["cache"]
	fmt.Printf("hits %d, misses %d, hit ratio %.2f\n", s.Hits, s.Misses, s.HitRatio())
	// Output:
	// hits 3, misses 1, hit ratio 0.75
}

// HitRatio is the share of lookups answered without the origin.
func ExampleCacheStats_HitRatio() {
	s := connmgr.CacheStats{Hits: 8, Misses: 1, Revalidated: 1}
	fmt.Println(s.HitRatio())
	// Output:
	// 0.8
}

// cacheMarks is an observer that prints what a cache did with each call.
type cacheMarks struct{}

func (cacheMarks) StartCall(ev *connmgr.CallEvent) connmgr.CallObserver {
	status, _, _ := strings.Cut(connmgr.CacheStatusFromContext(ev.Context), ";")
	fmt.Printf("call to %s: cache %q\n", ev.Endpoint, status)
	return nil
}

// A cache in front of the Manager shows up in its observers: the call it
// sends on carries its forward reason, and a hit, which never enters the
// pipeline, is reported as a call of its own (ObserveCachedResponse).
func ExampleManager_ObserveCachedResponse() {
	m, _ := connmgr.New(connmgr.Config{}, connmgr.WithTransport(cacheableOrigin), connmgr.WithObserver(cacheMarks{}))
	defer m.Close()
	c, _ := cache.New(cache.Config{})
	_ = m.Use(c)
	getAndClose(m, "http://api.example.com/items/1")
	getAndClose(m, "http://api.example.com/items/1")
	// Output:
	// call to default: cache "fwd=uri-miss"
	// call to default: cache "hit"
}

// A cache marks the calls it sends on, for the Manager's observers.
func ExampleWithCacheStatus() {
	ctx := connmgr.WithCacheStatus(context.Background(), "fwd=vary-miss")
	fmt.Println(connmgr.CacheStatusFromContext(ctx))
	fmt.Printf("%q\n", connmgr.CacheStatusFromContext(context.Background()))
	// Output:
	// fwd=vary-miss
	// ""
}

// CacheStatusFromContext reads the mark; "" when there is none.
func ExampleCacheStatusFromContext() {
	req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/", nil)
	req = req.WithContext(connmgr.WithCacheStatus(req.Context(), "fwd=stale"))
	fmt.Println(connmgr.CacheStatusFromContext(req.Context()))
	// Output:
	// fwd=stale
}

// Observed is false for a Manager with no observer, no OpenTelemetry
// provider and no logger: a cache then reports nothing to it.
func ExampleManager_Observed() {
	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()
	o, _ := connmgr.New(connmgr.Config{}, connmgr.WithObserver(cacheMarks{}))
	defer o.Close()
	fmt.Println(m.Observed(), o.Observed())
	// Output:
	// false true
}
