// Command ttl_cache is the Python seed's RequestCache plugin, done as
// an HTTP cache: "cache this API for ten minutes whatever its headers
// say".
//
// The seed kept a dict keyed on an MD5 of method, URL, headers and
// body, cached GET 2xx answers for a TTL, and printed HIT or MISS. Here
// one cache.Cache joins the Manager with m.Use; the endpoint's cache
// block sets TTL mode (ttl: 10m); Config.KeyHeaders puts a header in the
// key, as the seed's key held the request headers. no-store is still
// honoured, the cache is bounded in bytes, and every answer says what
// happened in its Cache-Status header (RFC 9211).
//
// Run it with
//
//	go run ./examples/ttl_cache
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	// An API that says nothing about caching.
	api := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/private" {
			return connmgrtest.Step{Body: "secret", Header: http.Header{"Cache-Control": {"no-store"}}}
		}
		return connmgrtest.Step{Body: fmt.Sprintf(`{"answer":%d,"lang":%q}`, n, r.Header.Get("Accept-Language"))}
	})
	defer api.Close()
	host := strings.TrimPrefix(api.URL, "http://")

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		host: {Cache: connmgr.CacheConfig{TTL: 10 * time.Minute}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := cache.New(cache.Config{KeyHeaders: []string{"Accept-Language"}, MaxBytes: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Use(c); err != nil { // m.Close closes the cache too
		log.Fatal(err)
	}

	get := func(path, lang string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, api.URL+path, nil)
		if lang != "" {
			req.Header.Set("Accept-Language", lang)
		}
		resp, err := m.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		kind := "MISS"
		if strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
			kind = "HIT "
		}
		fmt.Printf("%s GET %s (%s) -> %s  [Cache-Status: %s]\n", kind, path, lang, body, resp.Header.Get("Cache-Status"))
	}
	get("/get?param=value", "en")
	get("/get?param=value", "en")
	get("/get?param=value", "fr") // another key header value: another entry
	get("/get?param=value", "fr")
	get("/private", "")
	get("/private", "") // no-store: never kept, even in TTL mode

	st := c.Stats()
	fmt.Printf("the API saw %d requests for 6 calls; hits %d, misses %d, stored %d\n", api.Count(), st.Hits, st.Misses, st.Stored)
	fmt.Printf("Manager.Stats().Plugins[\"cache\"] has the same numbers: %v\n", m.Stats().Plugins["cache"].(cache.Stats).Hits == st.Hits)
}
