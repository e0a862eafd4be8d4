package connmgr

// CacheStats are a cache plugin's numbers in the one shape the Manager's
// metrics (connmgr.client.cache.*) and the status page read: the value
// a cache plugin's PluginStats returns implements CacheStatsReporter
// (package cache's Stats does). Counters count since the cache was made.
type CacheStats struct {
	// Hits counts requests answered from the cache without the origin
	// (fresh, or stale as max-stale or stale-while-revalidate allow).
	Hits uint64 `json:"hits"`
	// Misses counts requests sent to the origin with nothing usable
	// stored.
	Misses uint64 `json:"misses"`
	// Revalidated counts validations answered 304 (the stored body was
	// served); Replaced those answered with a new response.
	Revalidated uint64 `json:"revalidated"`
	Replaced    uint64 `json:"replaced"`
	// StaleWhileRevalidate and StaleIfError count stale responses served
	// under RFC 5861.
	StaleWhileRevalidate uint64 `json:"stale_while_revalidate"`
	StaleIfError         uint64 `json:"stale_if_error"`
	// Coalesced counts requests that shared another's origin request.
	Coalesced uint64 `json:"coalesced"`
	// Evictions counts entries dropped to stay within the size bound.
	Evictions uint64 `json:"evictions"`
	// Bytes and Entries are what the cache holds now (0 when its store
	// does not say).
	Bytes   int64 `json:"bytes"`
	Entries int64 `json:"entries"`
}

// CacheStatsReporter is implemented by the statistics a cache plugin
// reports through StatsPlugin.PluginStats.
type CacheStatsReporter interface {
	CacheStats() CacheStats
}

// HitRatio is the share of the cache's lookups it answered without the
// origin: Hits over Hits, Misses, Revalidated and Replaced (a validation
// went to the origin). 0 before any lookup.
func (s CacheStats) HitRatio() float64 {
	n := s.Hits + s.Misses + s.Revalidated + s.Replaced
	if n == 0 {
		return 0
	}
	return float64(s.Hits) / float64(n)
}

// CacheStats returns the numbers of the Manager's cache plugins (those
// whose PluginStats value implements CacheStatsReporter), by plugin
// name; nil when there is none. Each plugin is read under the recovery
// helper: one that panics is left out.
func (m *Manager) CacheStats() map[string]CacheStats {
	return m.cacheStatsOf(m.pluginStats(m.chain.Load().plugins))
}

// cacheStatsOf returns the cache statistics among plugin statistics
// (Stats.Plugins), by plugin name.
func (m *Manager) cacheStatsOf(plugins map[string]any) map[string]CacheStats {
	var out map[string]CacheStats
	for name, v := range plugins {
		r, ok := v.(CacheStatsReporter)
		if !ok {
			continue
		}
		var cs CacheStats
		var err error
		func() {
			defer m.recovered("plugin CacheStats", name, &err)
			cs = r.CacheStats()
		}()
		if err != nil {
			continue
		}
		if out == nil {
			out = make(map[string]CacheStats, 1)
		}
		out[name] = cs
	}
	return out
}
