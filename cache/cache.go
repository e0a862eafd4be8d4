package cache

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
)

// Cache is an HTTP cache (RFC 9111, with RFC 5861's stale-while-
// revalidate and stale-if-error, and RFC 9211's Cache-Status) for a
// connmgr.Manager, or for any http.RoundTripper through WrapCall.
//
// It wraps whole calls (connmgr.MiddlewarePlugin), outside the
// Manager's retry loop: a hit never reaches the concurrency cap, the
// rate limiter or the breaker, and a failure the Manager reports after
// its retries, or a local refusal (circuit open, rate limited, cap
// full), is where stale-if-error answers. Concurrent misses for one URL
// share one origin request; every caller gets its own streamed copy.
//
// Join it with m.Use(c). Each endpoint's cache block (connmgr.CacheConfig)
// overrides the Config. Entries live in the Cache, so they survive
// Manager.Reload. A Cache is safe for concurrent use; Close (or removing
// it from the Manager, or closing the Manager) stops its background
// refreshes and waits for them.
type Cache struct {
	cfg     Config
	base    settings
	backend backend
	mem     *MemoryStore // the default store, nil with Config.Store
	now     func() time.Time
	stats   counters
	// keyHeaders are Config.KeyHeaders, canonical and sorted: they join
	// every stored response's Vary selection.
	keyHeaders []string

	mgr atomic.Pointer[connmgr.Manager]

	// flightsMu guards flights: the origin requests in progress, by key.
	flightsMu sync.Mutex
	flights   map[string]*flight

	bg      chan struct{} // slots for background refreshes
	closing context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup // every goroutine the cache started
	closed  atomic.Bool
}

var (
	_ connmgr.MiddlewarePlugin = (*Cache)(nil)
	_ connmgr.AttachPlugin     = (*Cache)(nil)
	_ connmgr.StatsPlugin      = (*Cache)(nil)
)

// ErrAttached is returned by Attach when the cache already serves another
// Manager.
var ErrAttached = errors.New("cache: already in use by another Manager")

// New returns a cache with cfg's settings, or an error naming the field
// that is wrong.
func New(cfg Config) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cache{cfg: cfg, now: time.Now, flights: make(map[string]*flight)}
	c.base = settings{
		enabled: true, shared: cfg.Mode != Private, ttl: cfg.TTL,
		maxObject: cfg.MaxObjectSize, staleIfError: cfg.StaleIfError,
	}
	for _, h := range cfg.KeyHeaders {
		c.keyHeaders = mergeNames(c.keyHeaders, []string{http.CanonicalHeaderKey(h)})
	}
	if cfg.Store != nil {
		c.backend = &bytesBackend{s: cfg.Store, timeout: cfg.StoreTimeout}
	} else {
		c.mem = NewMemoryStore(cfg.MaxBytes)
		c.backend = c.mem
	}
	if cfg.BackgroundRevalidations > 0 {
		c.bg = make(chan struct{}, cfg.BackgroundRevalidations)
	}
	c.closing, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// Name is the plugin's name in the Manager's chain: "cache".
func (c *Cache) Name() string { return "cache" }

// Attach is called by Manager.Use: the cache reads each endpoint's cache
// block from m from then on. A cache serves one Manager at a time.
func (c *Cache) Attach(m *connmgr.Manager) error {
	if m == nil {
		return errors.New("cache: Attach: nil Manager")
	}
	if !c.mgr.CompareAndSwap(nil, m) && c.mgr.Load() != m {
		return ErrAttached
	}
	return nil
}

// WrapCall returns next with the cache in front of it. The Manager calls
// it for its plugins; use it directly to put the cache in front of any
// RoundTripper (then only the Config applies).
func (c *Cache) WrapCall(next http.RoundTripper) http.RoundTripper {
	return &transport{c: c, next: next}
}

// Close stops background refreshes and in-flight shared origin
// requests, and waits for the cache's goroutines to end. Calls made
// after Close go straight to the origin. It is safe to call twice.
func (c *Cache) Close() error {
	c.flightsMu.Lock()
	already := c.closed.Swap(true)
	c.flightsMu.Unlock()
	if already {
		return nil
	}
	c.stop()
	c.wg.Wait()
	if c.mem != nil {
		c.mem.Close()
	}
	return nil
}

// settingsFor resolves the rules for a request to u: the Config, with the
// endpoint's cache block on top.
func (c *Cache) settingsFor(u *url.URL) settings {
	s := c.base
	m := c.mgr.Load()
	if m == nil {
		return s
	}
	_, ec := m.CacheConfigFor(u)
	s.credentials = m.SendsCredentials(u)
	if ec.Enabled != nil {
		s.enabled = *ec.Enabled
	}
	switch ec.Mode {
	case string(Shared):
		s.shared = true
	case string(Private):
		s.shared = false
	}
	switch {
	case ec.TTL > 0:
		s.ttl = ec.TTL
	case ec.TTL < 0:
		s.ttl = 0
	}
	if ec.MaxObjectSize != 0 {
		s.maxObject = ec.MaxObjectSize
	}
	if ec.StaleIfError != 0 {
		s.staleIfError = ec.StaleIfError
	}
	return s
}

// cacheableMethod reports whether the cache answers and stores method.
func (c *Cache) cacheableMethod(method string, s *settings) bool {
	if s.ttl > 0 {
		for _, m := range c.cfg.Methods {
			if m == method {
				return true
			}
		}
		return false
	}
	return method == http.MethodGet || method == http.MethodHead
}

// keepStale is how long past its freshness and stale windows a stored
// response is kept: for validation, a request's max-stale or
// stale-if-error. The byte bound evicts it sooner when space is short.
const keepStale = 24 * time.Hour

// storeTTL is how long the store keeps an entry: its freshness, the
// longest stale window that may use it, and keepStale.
func storeTTL(e *entry, s *settings) time.Duration {
	return e.fresh.lifetime + max(deltaDuration(e.cc.staleWhileRevalidate), deltaDuration(e.cc.staleIfError), s.staleIfError, 0) + keepStale
}
