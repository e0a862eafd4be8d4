package cache_test

import (
	"fmt"

	"github.com/connmgr/connmgr/cache"
)

// Stats in the shape the Manager's metrics and status page read
// (connmgr.CacheStatsReporter).
func ExampleStats_CacheStats() {
	s := cache.Stats{Hits: 3, Misses: 1, Bytes: 2048, Entries: 1}
	cs := s.CacheStats()
	fmt.Println(cs.Hits, cs.Misses, cs.Entries, cs.HitRatio())
	// Output:
	// 3 1 1 0.75
}
