package redisstore

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// TestCacheSharedByTwoManagers: a response stored by one Manager's cache
// is a hit in the other's, through Redis.
func TestCacheSharedByTwoManagers(t *testing.T) {
	srv := redistest.Start(t)
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = io.WriteString(w, "rates v1")
	}))
	defer origin.Close()
	newManager := func() *connmgr.Manager {
		c, err := cache.New(cache.Config{Store: open(t, srv).Cache("shared")})
		if err != nil {
			t.Fatal(err)
		}
		m, err := connmgr.New(connmgr.Config{}, connmgr.WithPlugins(c))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	a, b := newManager(), newManager()
	get := func(m *connmgr.Manager) string {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, origin.URL+"/v1/rates", nil)
		resp, err := m.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := get(a); got != "rates v1" {
		t.Fatalf("A: %q", got)
	}
	if got := get(b); got != "rates v1" {
		t.Fatalf("B: %q", got)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the origin saw %d requests; want 1: B's call is a hit on what A stored", n)
	}
}
