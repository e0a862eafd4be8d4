package connmgr

import (
	"net/url"
	"time"
)

// CacheConfig is an endpoint's settings for the HTTP cache plugin
// (package cache, joined with m.Use). It does nothing while no cache
// plugin is in use. Every zero field inherits from the default block, and
// past that takes the plugin's own setting (its cache.Config), so one
// cache serves every endpoint with its own mode, TTL and limits.
type CacheConfig struct {
	// Enabled turns the cache on or off for this endpoint. nil inherits;
	// default on (when a cache plugin is in use).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Mode is "shared" (one cache for many users: RFC 9111's rules for
	// private responses and Authorization apply) or "private" (one
	// user's cache). "" inherits; default: the plugin's mode (shared).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// TTL, when positive, switches the endpoint to TTL mode: a response
	// with a cacheable status is fresh for TTL whatever its freshness
	// headers say (no-store is still honoured, and in shared mode
	// private and Authorization too). 0 inherits; default: the plugin's
	// (0: RFC 9111 freshness); negative means RFC 9111 freshness here even
	// when the plugin sets a TTL.
	TTL time.Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// MaxObjectSize is the largest body stored, in bytes; a larger one is
	// passed through whole and not stored. 0 inherits; default: the
	// plugin's (1 MiB); negative means no per-object limit.
	MaxObjectSize int64 `yaml:"max_object_size,omitempty" json:"max_object_size,omitempty"`
	// StaleIfError lets a stale response be served, up to this long past
	// its freshness, when the origin fails (error, 500, 502, 503, 504) or
	// the call is refused locally (circuit open, rate limited,
	// concurrency cap full, no healthy upstream); a response's own
	// stale-if-error directive may allow longer. 0 inherits; default: the
	// plugin's (0: only what responses allow); negative means never, even
	// when a response allows it.
	StaleIfError time.Duration `yaml:"stale_if_error,omitempty" json:"stale_if_error,omitempty"`
}

// validateCache checks an endpoint's cache block.
func validateCache(p *problems, path string, c CacheConfig) {
	switch c.Mode {
	case "", "shared", "private":
	default:
		p.add(path+".mode", `must be "shared" or "private", got %q`, c.Mode)
	}
}

// AttachPlugin is a Plugin that needs the Manager it joins, for example
// to read each endpoint's cache block with CacheConfigFor. Use calls
// Attach before the plugin joins the chain; an error keeps it out.
type AttachPlugin interface {
	Plugin
	Attach(m *Manager) error
}

// CacheConfigFor returns the key of the endpoint that requests to u use
// ("default" when no key matches) and that endpoint's cache block, with
// what it leaves unset inherited from the default block. Fields still
// zero mean "the cache plugin's own setting".
func (m *Manager) CacheConfigFor(u *url.URL) (endpoint string, cfg CacheConfig) {
	ep := m.table.Load().lookup(u)
	return ep.key, ep.cfg.Cache
}

// SendsCredentials reports whether the endpoint that requests to u use
// adds credentials of its own (its auth block: a bearer token, basic
// authentication or an API key). A shared cache treats such a request as
// one with Authorization (RFC 9111 section 3.5): the caller's request
// does not show the header, but the upstream's answer was made for that
// credential.
func (m *Manager) SendsCredentials(u *url.URL) bool {
	a := m.table.Load().lookup(u).cfg.Auth
	return a.BearerToken != "" || a.Username != "" || a.Password != "" || a.APIKey != ""
}
