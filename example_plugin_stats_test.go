package connmgr_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
)

// counter is a plugin with numbers of its own.
type counter struct{ seen atomic.Int64 }

func (c *counter) Name() string { return "counter" }
func (c *counter) OnRequest(*connmgr.RequestContext) error {
	c.seen.Add(1)
	return nil
}
func (c *counter) PluginStats() any { return map[string]int64{"seen": c.seen.Load()} }

// A StatsPlugin's numbers appear in the Manager's Stats under its name.
func ExampleStatsPlugin() {
	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()
	c := &counter{}
	c.seen.Store(3)
	m.Use(c)
	fmt.Println(m.Stats().Plugins["counter"])
	// Output:
	// map[seen:3]
}

// recorder is a plugin that reads each endpoint's cache block from the
// Manager it joins, as the cache plugin does.
type recorder struct{ m *connmgr.Manager }

func (r *recorder) Name() string                    { return "recorder" }
func (r *recorder) Attach(m *connmgr.Manager) error { r.m = m; return nil }
func (r *recorder) WrapCall(next http.RoundTripper) http.RoundTripper {
	return next
}

// CacheConfigFor tells a plugin which endpoint a URL uses and its cache
// block, inherited from the default block.
func ExampleManager_CacheConfigFor() {
	m, _ := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{Cache: connmgr.CacheConfig{Mode: "private"}},
		Endpoints: map[string]connmgr.EndpointConfig{
			"api.example.com": {Cache: connmgr.CacheConfig{TTL: 10 * time.Minute}},
		},
	})
	defer m.Close()
	r := &recorder{}
	m.Use(r) // Use calls Attach
	for _, raw := range []string{"https://api.example.com/v1", "https://other.example.com/"} {
		u, _ := url.Parse(raw)
		key, cc := r.m.CacheConfigFor(u)
		fmt.Println(key, cc.Mode, cc.TTL)
	}
	// Output:
	// api.example.com private 10m0s
	// default private 0s
}
