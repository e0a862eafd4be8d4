// Package cache is an HTTP cache for connmgr: RFC 9111 caching with
// RFC 5861's stale-while-revalidate and stale-if-error, request
// coalescing, and RFC 9211's Cache-Status header, as a connmgr plugin.
//
//	c, err := cache.New(cache.Config{MaxBytes: 64 << 20})
//	...
//	err = m.Use(c) // every call of m goes through the cache
//
// # The model
//
// The cache wraps each whole call (connmgr.MiddlewarePlugin), outside
// the Manager's concurrency cap, retries, rate limiter and breaker. For a
// GET (and a HEAD, answered from the stored GET) it looks up the stored
// responses of the URI, picks the one whose Vary selection the request
// matches, and decides, as RFC 9111 section 4 says, whether it may be
// used as it is (fresh, or stale as the request's max-stale or the
// response's stale-while-revalidate allow), must be validated
// (If-None-Match, If-Modified-Since; a 304 freshens it), or cannot be
// used. Going to the origin, concurrent callers of one URI share one
// request; each reads its own copy of the body as it streams in, and
// the response is stored when the body has been read to its end within
// max_object_size. When the origin fails (an error, 500, 502, 503, 504)
// or the Manager refuses the call locally (circuit open, rate limited,
// concurrency cap full, no healthy upstream), a stale response is served
// if stale-if-error allows it. A successful unsafe method invalidates
// the URI (section 4.4).
//
// Each rule lives in its own file: storable.go (section 3), freshness.go
// (4.2), reuse.go (4.2.4, 5.2, RFC 5861), vary.go (4.1), validation.go
// (4.3), head.go (4.3.5), invalidation.go (4.4), directives.go (5.2),
// serve.go (4, responses from the cache), status.go (RFC 9211);
// flight.go and flight_stream.go coalesce and stream, transport.go and
// fetch.go put it together.
//
// # Modes
//
// Shared (the default) is a cache for many users: private responses
// are not stored, s-maxage and proxy-revalidate apply, and a response to
// a request that carried Authorization is stored only when public,
// s-maxage or must-revalidate allow it (section 3.5). Private is one
// user's cache. TTL mode (Config.TTL, or an endpoint's cache.ttl) is the
// Python seed's request cache: a response is fresh for the TTL whatever
// its headers say, still honouring no-store.
//
// # Storage
//
// Entries live in a Store: the default MemoryStore (otter v2, bounded by
// MaxBytes) or a shared one such as redisstore's. They belong to the
// Cache, not to a Manager's config, so they survive Manager.Reload.
package cache
