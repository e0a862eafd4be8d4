package statuspage_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/statuspage"
)

// newCacheFixture is a Manager with the cache plugin after one miss and
// two hits: a hit ratio of 2/3.
func newCacheFixture(t *testing.T) *connmgr.Manager {
	t.Helper()
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "cached", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	t.Cleanup(srv.Close)
	m, err := connmgr.New(connmgr.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	c, err := cache.New(cache.Config{})
	require.NoError(t, err)
	require.NoError(t, m.Use(c))
	for range 3 {
		resp, err := m.Get(context.Background(), srv.URL+"/item?token=q-secret-000")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
	}
	require.Equal(t, int64(1), srv.Count())
	return m
}

func TestHTMLShowsTheCacheHitRatio(t *testing.T) {
	m := newCacheFixture(t)
	_, body := get(t, statuspage.Handler(m), "/", "text/html")
	assert.Regexp(t, `(?s)<h2 id="cache-cache">Cache cache</h2>.*?hit ratio \(3 lookups\)</span> <span class="hit-ratio">66\.7%</span>.*?hits</span> 2<.*?misses</span> 1<.*?held</span> 1 entries, \d`, body)
	assert.NotContains(t, body, "q-secret-000")
}

func TestJSONHasTheCacheNumbers(t *testing.T) {
	m := newCacheFixture(t)
	_, body := get(t, statuspage.Handler(m), "/?format=json", "")
	var p statuspage.Page
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	cs, ok := p.Caches["cache"]
	require.True(t, ok, "caches.cache in %s", body)
	assert.InDelta(t, 2.0/3, cs.HitRatio, 1e-9)
	assert.Equal(t, uint64(2), cs.Hits)
	assert.Equal(t, uint64(1), cs.Misses)
	assert.Equal(t, int64(1), cs.Entries)
	assert.Positive(t, cs.Bytes)
	assert.Regexp(t, regexp.MustCompile(`"caches": \{\s*"cache": \{\s*"hits": 2,`), body)
}

func TestNoCacheSectionWithoutACache(t *testing.T) {
	f := newFixture(t)
	_, body := get(t, statuspage.Handler(f.m), "/", "text/html")
	assert.NotContains(t, body, `id="cache-`)
	_, js := get(t, statuspage.Handler(f.m), "/?format=json", "")
	assert.NotContains(t, js, `"caches"`)
}
