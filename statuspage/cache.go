package statuspage

import (
	"fmt"
	"sort"

	"github.com/connmgr/connmgr"
)

// CacheSection is one cache plugin's numbers on the page
// (Manager.CacheStats), with its hit ratio. A cache serves the whole
// Manager: its numbers are not split by endpoint.
type CacheSection struct {
	connmgr.CacheStats
	// HitRatio is CacheStats.HitRatio: the share of lookups answered
	// without the origin, 0 to 1.
	HitRatio float64 `json:"hit_ratio"`
}

// cacheSections is the JSON form of the Manager's caches.
func cacheSections(cs map[string]connmgr.CacheStats) map[string]CacheSection {
	if len(cs) == 0 {
		return nil
	}
	out := make(map[string]CacheSection, len(cs))
	for name, s := range cs {
		out[name] = CacheSection{CacheStats: s, HitRatio: s.HitRatio()}
	}
	return out
}

// cacheView is one cache on the HTML page.
type cacheView struct {
	Name, HitRatio string
	Lookups        uint64
	Numbers        []nameValue
}

func cacheViews(cs map[string]connmgr.CacheStats) []cacheView {
	names := make([]string, 0, len(cs))
	for n := range cs {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]cacheView, 0, len(names))
	for _, n := range names {
		s := cs[n]
		cv := cacheView{Name: n, HitRatio: fmt.Sprintf("%.1f%%", 100*s.HitRatio()),
			Lookups: s.Hits + s.Misses + s.Revalidated + s.Replaced}
		cv.Numbers = []nameValue{
			{"hits", fmt.Sprint(s.Hits)},
			{"misses", fmt.Sprint(s.Misses)},
			{"revalidated (304) / replaced", fmt.Sprintf("%d / %d", s.Revalidated, s.Replaced)},
			{"stale served (while revalidate / if error)", fmt.Sprintf("%d / %d", s.StaleWhileRevalidate, s.StaleIfError)},
			{"coalesced", fmt.Sprint(s.Coalesced)},
			{"held", fmt.Sprintf("%d entries, %s", s.Entries, byteSize(s.Bytes))},
			{"evictions", fmt.Sprint(s.Evictions)},
		}
		out = append(out, cv)
	}
	return out
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
