package connmgr

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The cache's share of the telemetry: instruments read from the cache
// plugins' numbers (Manager.CacheStats) when the reader collects, so a
// call pays nothing for them, and the span attributes of a call a cache
// answered or sent on (cache_observe.go). Names, units and attributes
// are documented in docs/observability.md.

const (
	attrCacheName      = attribute.Key("connmgr.cache.name")
	attrCacheFwd       = attribute.Key("connmgr.cache.fwd")
	attrCacheDetail    = attribute.Key("connmgr.cache.detail")
	attrCacheCollapsed = attribute.Key("connmgr.cache.collapsed")
	attrCacheStale     = attribute.Key("connmgr.cache.stale.reason")
	attrCacheResult    = attribute.Key("connmgr.cache.revalidation.result")
)

// cacheInstruments are the observable instruments of the cache plugins.
type cacheInstruments struct {
	hits, misses, stale, revalidations, coalesced, evictions metric.Int64ObservableCounter
	bytes, entries                                           metric.Int64ObservableUpDownCounter
}

// registerCacheMetrics makes the cache instruments on meter and registers
// their callback, which reads m.CacheStats(). Errors go to keep.
func registerCacheMetrics(m *Manager, meter metric.Meter, keep func(error)) metric.Registration {
	var ci cacheInstruments
	var err error
	counter := func(dst *metric.Int64ObservableCounter, name, unit, desc string) {
		*dst, err = meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		keep(err)
	}
	counter(&ci.hits, "connmgr.client.cache.hits", "{request}", "Requests a cache plugin answered without the origin (fresh, or stale as max-stale or stale-while-revalidate allow).")
	counter(&ci.misses, "connmgr.client.cache.misses", "{request}", "Requests a cache plugin sent to the origin with nothing usable stored.")
	counter(&ci.stale, "connmgr.client.cache.stale_served", "{response}", "Stale responses a cache plugin served, by reason (stale_while_revalidate, stale_if_error).")
	counter(&ci.revalidations, "connmgr.client.cache.revalidations", "{request}", "Validations of stored responses, by result (not_modified: the stored body served; replaced).")
	counter(&ci.coalesced, "connmgr.client.cache.coalesced", "{request}", "Requests that shared another request's origin call.")
	counter(&ci.evictions, "connmgr.client.cache.evictions", "{entry}", "Entries a cache plugin dropped to stay within its size bound.")
	ci.bytes, err = meter.Int64ObservableUpDownCounter("connmgr.client.cache.size", metric.WithUnit("By"),
		metric.WithDescription("Bytes a cache plugin holds (keys, headers, bodies; 0 when its store does not say)."))
	keep(err)
	ci.entries, err = meter.Int64ObservableUpDownCounter("connmgr.client.cache.entries", metric.WithUnit("{entry}"),
		metric.WithDescription("Entries (URIs with their variants) a cache plugin holds (0 when its store does not say)."))
	keep(err)
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for name, s := range m.CacheStats() {
			ci.observe(o, name, s)
		}
		return nil
	}, ci.hits, ci.misses, ci.stale, ci.revalidations, ci.coalesced, ci.evictions, ci.bytes, ci.entries)
	keep(err)
	return reg
}

// observe reports one cache's numbers.
func (ci *cacheInstruments) observe(o metric.Observer, name string, s CacheStats) {
	n := attrCacheName.String(name)
	set := metric.WithAttributes(n)
	o.ObserveInt64(ci.hits, int64(s.Hits), set)
	o.ObserveInt64(ci.misses, int64(s.Misses), set)
	o.ObserveInt64(ci.stale, int64(s.StaleWhileRevalidate), metric.WithAttributes(n, attrCacheStale.String("stale_while_revalidate")))
	o.ObserveInt64(ci.stale, int64(s.StaleIfError), metric.WithAttributes(n, attrCacheStale.String("stale_if_error")))
	o.ObserveInt64(ci.revalidations, int64(s.Revalidated), metric.WithAttributes(n, attrCacheResult.String("not_modified")))
	o.ObserveInt64(ci.revalidations, int64(s.Replaced), metric.WithAttributes(n, attrCacheResult.String("replaced")))
	o.ObserveInt64(ci.coalesced, int64(s.Coalesced), set)
	o.ObserveInt64(ci.evictions, int64(s.Evictions), set)
	o.ObserveInt64(ci.bytes, s.Bytes, set)
	o.ObserveInt64(ci.entries, s.Entries, set)
}

// cacheSpanAttrs reduces a Cache-Status member (WithCacheStatus) to the
// span's bounded attributes: connmgr.cache.status is hit (fresh from the
// cache), stale (a stale response served: max-stale,
// stale-while-revalidate, stale-if-error), miss (sent on: uri-miss,
// vary-miss, a stale entry validated, a request that asked) or bypass (a
// method or request the cache does not answer); connmgr.cache.fwd and
// connmgr.cache.detail name why, from fixed sets.
func cacheSpanAttrs(status string) []attribute.KeyValue {
	detail := boundedCache(cacheParam(status, "detail"), "max-stale", "stale-while-revalidate", "stale-if-error", "only-if-cached")
	fwd := boundedCache(cacheParam(status, "fwd"), "uri-miss", "vary-miss", "stale", "request", "method", "bypass")
	kind := "miss"
	switch {
	case hasParam(status, "hit") && detail == "":
		kind = "hit"
	case hasParam(status, "hit") || detail == "stale-if-error":
		kind = "stale"
	case fwd == "method" || fwd == "bypass":
		kind = "bypass"
	}
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, attrCacheStatus.String(kind))
	if fwd != "" {
		attrs = append(attrs, attrCacheFwd.String(fwd))
	}
	if detail != "" {
		attrs = append(attrs, attrCacheDetail.String(detail))
	}
	if hasParam(status, "collapsed") {
		attrs = append(attrs, attrCacheCollapsed.Bool(true))
	}
	return attrs
}

// boundedCache returns v when it is one of known, "" when empty, else
// "other": a span attribute from a fixed set.
func boundedCache(v string, known ...string) string {
	if v == "" {
		return ""
	}
	for _, k := range known {
		if v == k {
			return v
		}
	}
	return "other"
}

// readCacheMark notes a cache's mark on the call: its span gets the
// cache attributes. (A call the cache answered itself never enters the
// pipeline, which records the call metrics: the cache counts it.)
func (c *otelCall) readCacheMark(ctx context.Context) {
	c.cacheStatus = CacheStatusFromContext(ctx)
}
