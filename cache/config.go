package cache

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Mode says whose responses a cache holds.
type Mode string

const (
	// Shared is a cache for many users (the default, SPEC section 7):
	// private responses are not stored, s-maxage and proxy-revalidate
	// apply, and a response to a request with Authorization is stored
	// only when public, s-maxage or must-revalidate allow it (RFC 9111
	// section 3.5).
	Shared Mode = "shared"
	// Private is one user's cache: private responses are stored too.
	Private Mode = "private"
)

// Config is the cache's settings. Its zero value is a shared RFC 9111
// cache of 64 MiB in memory. Each endpoint's cache block in the
// Manager's config (connmgr.CacheConfig: enabled, mode, ttl,
// max_object_size, stale_if_error) overrides the matching field here.
type Config struct {
	// Name names this cache in the Cache-Status header (RFC 9211).
	// Default "connmgr".
	Name string
	// Mode is Shared or Private. "" means Shared.
	Mode Mode
	// TTL, when positive, is TTL mode (the Python seed's request cache):
	// a response to one of Methods with one of Statuses is fresh for TTL
	// whatever its freshness headers say. no-store is still honoured,
	// and in Shared mode private and Authorization too. Default 0: RFC
	// 9111 freshness.
	TTL time.Duration
	// Methods are the methods cached in TTL mode. Default GET and HEAD.
	// A method with a body (POST) is keyed on a hash of the body too.
	Methods []string
	// Statuses are the statuses cached in TTL mode. Default 200, 203,
	// 204, 300, 301, 308, 404, 405, 410, 414 and 501.
	Statuses []int
	// KeyHeaders are request header names whose values join the key, in
	// every mode, as if each response named them in Vary. Default none.
	KeyHeaders []string
	// MaxObjectSize is the largest body stored, in bytes; a larger one
	// is passed through whole and not stored. Default 1 MiB; negative
	// means no per-object limit.
	MaxObjectSize int64
	// MaxBytes bounds the default in-memory store, in bytes (keys,
	// headers and bodies). Default 64 MiB. Ignored when Store is set.
	MaxBytes int64
	// StaleIfError lets a stale response be served up to this long past
	// its freshness when the origin fails or the call is refused
	// locally; a response's stale-if-error directive may allow longer.
	// Default 0: only what responses allow; negative means never.
	StaleIfError time.Duration
	// HeuristicMax caps a heuristic freshness lifetime (10% of the time
	// since Last-Modified, RFC 9111 section 4.2.2). Default 24h;
	// negative means no heuristic freshness.
	HeuristicMax time.Duration
	// MaxVariants is how many responses are kept per URL for Vary.
	// Default 8.
	MaxVariants int
	// Store holds the entries. Default: a MemoryStore of MaxBytes.
	Store Store
	// StoreTimeout bounds each call to Store. Default 100ms.
	StoreTimeout time.Duration
	// BackgroundRevalidations bounds the stale-while-revalidate
	// refreshes running at once; a stale hit past the bound is served
	// without starting one. Default 4; negative turns
	// stale-while-revalidate off.
	BackgroundRevalidations int
	// BackgroundTimeout bounds one background refresh. Default 30s.
	BackgroundTimeout time.Duration
	// DisableCoalescing sends concurrent misses for one URL each to the
	// origin. Default false: one request, every caller its own copy.
	DisableCoalescing bool
}

const (
	defaultName          = "connmgr"
	defaultMaxObjectSize = 1 << 20
	defaultMaxBytes      = 64 << 20
	defaultHeuristicMax  = 24 * time.Hour
	defaultMaxVariants   = 8
	defaultStoreTimeout  = 100 * time.Millisecond
	defaultBackground    = 4
	defaultBgTimeout     = 30 * time.Second
)

var defaultTTLStatuses = []int{200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}

// withDefaults validates c and fills in its defaults. Errors name the
// field.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cache: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Name == "" {
		c.Name = defaultName
	} else if !validToken(c.Name) {
		bad("Name", "must be a token (letters, digits, -._~ and the like), got %q", c.Name)
	}
	switch c.Mode {
	case "":
		c.Mode = Shared
	case Shared, Private:
	default:
		bad("Mode", `must be "shared" or "private", got %q`, string(c.Mode))
	}
	if c.TTL < 0 {
		bad("TTL", "must be >= 0, got %v", c.TTL)
	}
	if c.Methods == nil {
		c.Methods = []string{http.MethodGet, http.MethodHead}
	}
	c.Methods = append([]string(nil), c.Methods...)
	c.KeyHeaders = append([]string(nil), c.KeyHeaders...)
	for i, m := range c.Methods {
		if !validToken(m) {
			bad(fmt.Sprintf("Methods[%d]", i), "not a method: %q", m)
		}
		c.Methods[i] = strings.ToUpper(m)
	}
	if c.Statuses == nil {
		c.Statuses = defaultTTLStatuses
	}
	for i, s := range c.Statuses {
		if s < 200 || s > 599 {
			bad(fmt.Sprintf("Statuses[%d]", i), "must be a final status 200..599, got %d", s)
		}
	}
	for i, h := range c.KeyHeaders {
		if !validToken(h) {
			bad(fmt.Sprintf("KeyHeaders[%d]", i), "not a header name: %q", h)
		}
	}
	if c.MaxObjectSize == 0 {
		c.MaxObjectSize = defaultMaxObjectSize
	}
	orDefault(&c.MaxBytes, defaultMaxBytes, "MaxBytes", bad)
	if c.HeuristicMax == 0 {
		c.HeuristicMax = defaultHeuristicMax
	}
	orDefault(&c.MaxVariants, defaultMaxVariants, "MaxVariants", bad)
	orDefault(&c.StoreTimeout, defaultStoreTimeout, "StoreTimeout", bad)
	if c.BackgroundRevalidations == 0 {
		c.BackgroundRevalidations = defaultBackground
	}
	orDefault(&c.BackgroundTimeout, defaultBgTimeout, "BackgroundTimeout", bad)
	return c, errors.Join(errs...)
}

// orDefault sets *v to def when it is zero, and reports a negative *v as
// bad input naming field.
func orDefault[T int | int64 | time.Duration](v *T, def T, field string, bad func(field, format string, args ...any)) {
	switch {
	case *v < 0:
		bad(field, "must be >= 0, got %v", *v)
	case *v == 0:
		*v = def
	}
}
