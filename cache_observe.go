package connmgr

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// This file lets a cache in front of the Manager (a MiddlewarePlugin such
// as package cache) show up where the Manager reports its calls: a call it
// answers itself never enters the pipeline, so it reports it with
// ObserveCachedResponse; a call it sends on carries its Cache-Status
// through the request's context (WithCacheStatus), which the call's
// observers read with CacheStatusFromContext.

// cacheStatusKey is the context key of WithCacheStatus.
type cacheStatusKey struct{}

// cacheStatusUsed is set once any context was marked: until then the
// OpenTelemetry observer does not look for a mark (no context walk per
// call for Managers without a cache).
var cacheStatusUsed atomic.Bool

// WithCacheStatus returns ctx marked with status, one RFC 9211
// Cache-Status member without the cache's name ("hit",
// "hit; detail=stale-while-revalidate", "fwd=uri-miss"): what a cache in
// front of the Manager did with the call that carries ctx. The Manager's
// observers read it with CacheStatusFromContext; its OpenTelemetry call
// span carries it as connmgr.cache.status (docs/observability.md).
func WithCacheStatus(ctx context.Context, status string) context.Context {
	cacheStatusUsed.Store(true)
	return context.WithValue(ctx, cacheStatusKey{}, status)
}

// CacheStatusFromContext returns the Cache-Status member WithCacheStatus
// put in ctx, or "".
func CacheStatusFromContext(ctx context.Context) string {
	if ctx == nil || !cacheStatusUsed.Load() {
		return ""
	}
	s, _ := ctx.Value(cacheStatusKey{}).(string)
	return s
}

// Observed reports whether the Manager's calls are observed (an Observer
// given with WithObserver, or OpenTelemetry tracing; metrics alone and the
// refusal log are recorded by the pipeline, not observed). A cache uses it to
// skip marking calls (WithCacheStatus) and reporting hits
// (ObserveCachedResponse) that nobody would see.
func (m *Manager) Observed() bool { return len(m.observers) > 0 }

// ObserveCachedResponse reports to the Manager's observers a call that a
// cache in front of the Manager answered without entering the pipeline:
// a call with no attempt, whose CallEvent.Context is marked with status
// (see WithCacheStatus: "hit", or "hit; detail=..." for a stale response,
// or "fwd=stale; detail=stale-if-error" for one served because the origin
// failed), started at start and ended now with resp. Such a call is not
// in the endpoint's Stats, nor in the connmgr.client.calls metric: the
// cache counts it. Without observers it does nothing.
func (m *Manager) ObserveCachedResponse(req *http.Request, resp *http.Response, status string, start time.Time) {
	if m == nil || len(m.observers) == 0 || req == nil || req.URL == nil {
		return
	}
	ep := m.table.Load().lookup(req.URL)
	ctx := WithCacheStatus(req.Context(), status)
	ev := &CallEvent{Context: ctx, Request: req, Endpoint: ep.key, Start: start}
	end := CallEndEvent{Response: resp, Duration: m.now().Sub(start)}
	for _, o := range m.observers {
		if co := m.observeStart(o, ev); co != nil {
			m.observeCallEnd(co, end)
		}
	}
}

// cacheServed reports whether a Cache-Status member says the response
// came from the cache (a hit, a stale response served, a coalesced
// follower's copy, the 504 of only-if-cached), not from a call the
// pipeline made for this caller.
func cacheServed(status string) bool {
	return hasParam(status, "hit") || hasParam(status, "collapsed") ||
		hasParam(status, "detail=stale-if-error") || hasParam(status, "detail=only-if-cached")
}

// hasParam reports whether the member status has the parameter p (a
// whole "; "-separated item).
func hasParam(status, p string) bool {
	for len(status) > 0 {
		i := 0
		for i < len(status) && status[i] != ';' {
			i++
		}
		item := status[:i]
		for len(item) > 0 && item[0] == ' ' {
			item = item[1:]
		}
		if item == p {
			return true
		}
		if i == len(status) {
			break
		}
		status = status[i+1:]
	}
	return false
}

// cacheParam returns the value of the parameter named name= in status.
func cacheParam(status, name string) string {
	for len(status) > 0 {
		i := 0
		for i < len(status) && status[i] != ';' {
			i++
		}
		item := status[:i]
		for len(item) > 0 && item[0] == ' ' {
			item = item[1:]
		}
		if len(item) > len(name) && item[:len(name)] == name && item[len(name)] == '=' {
			return item[len(name)+1:]
		}
		if i == len(status) {
			break
		}
		status = status[i+1:]
	}
	return ""
}
