package connmgr

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCacheSpanAttrs: a cache's Cache-Status member reduces to bounded
// span attributes.
func TestCacheSpanAttrs(t *testing.T) {
	for _, tc := range []struct {
		member, status, fwd, detail string
		served                      bool
	}{
		{"hit; ttl=59", "hit", "", "", true},
		{"hit; ttl=-3; detail=max-stale", "stale", "", "max-stale", true},
		{"hit; ttl=-3; detail=stale-while-revalidate", "stale", "", "stale-while-revalidate", true},
		{"fwd=stale; fwd-status=503; ttl=-3; detail=stale-if-error", "stale", "stale", "stale-if-error", true},
		{"fwd=uri-miss", "miss", "uri-miss", "", false},
		{"fwd=uri-miss; fwd-status=200; stored; collapsed", "miss", "uri-miss", "", true},
		{"fwd=vary-miss", "miss", "vary-miss", "", false},
		{"fwd=method", "bypass", "method", "", false},
		{"fwd=bypass", "bypass", "bypass", "", false},
		{"fwd=uri-miss; detail=only-if-cached", "miss", "uri-miss", "only-if-cached", true},
		{"fwd=/secret/path; detail=whatever", "miss", "other", "other", false},
	} {
		got := map[string]string{}
		for _, kv := range cacheSpanAttrs(tc.member) {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		assert.Equal(t, tc.status, got["connmgr.cache.status"], tc.member)
		assert.Equal(t, tc.fwd, got["connmgr.cache.fwd"], tc.member)
		assert.Equal(t, tc.detail, got["connmgr.cache.detail"], tc.member)
		assert.Equal(t, tc.served, cacheServed(tc.member), tc.member)
	}
}
