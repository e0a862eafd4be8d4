package cache

import (
	"sync/atomic"

	"github.com/connmgr/connmgr"
)

// Stats are a cache's numbers since New: plain data for logs, JSON and
// tests. Manager.Stats includes them under Plugins["cache"].
type Stats struct {
	// Hits counts requests answered from the cache without the origin
	// (fresh, or stale as max-stale or stale-while-revalidate allow).
	Hits uint64 `json:"hits"`
	// Misses counts requests that went to the origin with nothing usable
	// stored (uri-miss or vary-miss).
	Misses uint64 `json:"misses"`
	// Revalidated counts validations the origin answered 304: the stored
	// body was served. Replaced counts those answered with a new response.
	Revalidated uint64 `json:"revalidated"`
	Replaced    uint64 `json:"replaced"`
	// StaleWhileRevalidate counts stale responses served while a
	// background refresh ran; StaleIfError those served because the
	// origin failed or the call was refused locally.
	StaleWhileRevalidate uint64 `json:"stale_while_revalidate"`
	StaleIfError         uint64 `json:"stale_if_error"`
	// Coalesced counts requests that shared another's origin request.
	Coalesced uint64 `json:"coalesced"`
	// Stored counts responses written to the store; TooLarge those not
	// stored for passing max_object_size.
	Stored   uint64 `json:"stored"`
	TooLarge uint64 `json:"too_large"`
	// Invalidated counts URIs invalidated by unsafe methods.
	Invalidated uint64 `json:"invalidated"`
	// Bypassed counts requests the cache let through untouched (other
	// methods, ranges, conditionals, endpoints with the cache off).
	Bypassed uint64 `json:"bypassed"`
	// BackgroundRefreshes counts stale-while-revalidate refreshes started.
	BackgroundRefreshes uint64 `json:"background_refreshes"`
	// Bytes and Entries are what the in-memory store holds (URIs, with
	// their variants); Evictions counts entries it dropped to stay
	// under max_bytes. All 0 with another Store.
	Bytes     int64  `json:"bytes"`
	Entries   int64  `json:"entries"`
	Evictions uint64 `json:"evictions"`
	// StoreErrors counts failed calls to a Store (each was a miss).
	StoreErrors uint64 `json:"store_errors"`
}

type counters struct {
	hits, misses, revalidated, replaced, swr, sie, coalesced atomic.Uint64
	stored, tooLarge, invalidated, bypassed, background      atomic.Uint64
}

// Stats returns a snapshot of the cache's numbers.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		Revalidated: c.stats.revalidated.Load(), Replaced: c.stats.replaced.Load(),
		StaleWhileRevalidate: c.stats.swr.Load(), StaleIfError: c.stats.sie.Load(),
		Coalesced: c.stats.coalesced.Load(), Stored: c.stats.stored.Load(), TooLarge: c.stats.tooLarge.Load(),
		Invalidated: c.stats.invalidated.Load(), Bypassed: c.stats.bypassed.Load(),
		BackgroundRefreshes: c.stats.background.Load(),
	}
	if c.mem != nil {
		s.Bytes, s.Entries, s.Evictions = c.mem.Bytes(), int64(c.mem.Len()), c.mem.Evictions()
	}
	if b, ok := c.backend.(*bytesBackend); ok {
		s.StoreErrors = b.errors.Load()
	}
	return s
}

// PluginStats is Stats, for connmgr.Manager.Stats.
func (c *Cache) PluginStats() any { return c.Stats() }

// CacheStats is s in the shape the Manager's metrics and the status page
// read (connmgr.CacheStatsReporter).
func (s Stats) CacheStats() connmgr.CacheStats {
	return connmgr.CacheStats{
		Hits: s.Hits, Misses: s.Misses, Revalidated: s.Revalidated, Replaced: s.Replaced,
		StaleWhileRevalidate: s.StaleWhileRevalidate, StaleIfError: s.StaleIfError,
		Coalesced: s.Coalesced, Evictions: s.Evictions, Bytes: s.Bytes, Entries: s.Entries,
	}
}
