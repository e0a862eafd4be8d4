package cache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
)

// The cache joins a Manager with Use: every call goes through it, and
// each endpoint's cache block applies.
func ExampleNew() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "hello")
	}))
	defer origin.Close()

	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()
	c, err := cache.New(cache.Config{MaxBytes: 32 << 20})
	if err != nil {
		panic(err)
	}
	m.Use(c)

	for i := 0; i < 2; i++ {
		resp, _ := m.Get(context.Background(), origin.URL)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body), resp.Header.Get("Cache-Status"))
	}
	// Output:
	// hello connmgr; fwd=uri-miss; fwd-status=200; stored
	// hello connmgr; hit; ttl=59
}

// WrapCall puts the cache in front of any RoundTripper, without a
// Manager: then only the Config applies.
func ExampleCache_WrapCall() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "no caching headers")
	}))
	defer origin.Close()

	c, _ := cache.New(cache.Config{TTL: 10 * time.Minute}) // TTL mode
	defer c.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: c.WrapCall(tr)}
	for i := 0; i < 3; i++ {
		resp, _ := client.Get(origin.URL)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	st := c.Stats()
	fmt.Println("hits", st.Hits, "misses", st.Misses)
	// Output:
	// hits 2 misses 1
}

// Stats are plain data; a Manager's Stats carries them too, under
// Plugins["cache"].
func ExampleCache_Stats() {
	c, _ := cache.New(cache.Config{})
	defer c.Close()
	st := c.Stats()
	fmt.Println(st.Hits, st.Misses, st.Entries)
	// Output:
	// 0 0 0
}

// The in-memory store is bounded in bytes; it is the default Store, and
// the Store methods are there for other users.
func ExampleNewMemoryStore() {
	s := cache.NewMemoryStore(1 << 20)
	defer s.Close()
	ctx := context.Background()
	s.Set(ctx, "k", []byte("v"), time.Minute)
	v, ok, _ := s.Get(ctx, "k")
	fmt.Println(string(v), ok)
	// Output:
	// v true
}
