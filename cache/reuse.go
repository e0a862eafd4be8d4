package cache

import (
	"net/http"
	"time"
)

// reuse is what RFC 9111 section 4 allows a cache to do with a stored
// response for a request.
type reuse int

const (
	// reuseForward: no stored response may be used; go to the origin.
	reuseForward reuse = iota
	// reuseValidate: ask the origin whether the stored response is still
	// good (section 4.3), or forward when it has no validator.
	reuseValidate
	// reuseFresh: serve the fresh stored response (section 4.2).
	reuseFresh
	// reuseStale: serve it stale, as the request's max-stale allows
	// (section 5.2.1.2).
	reuseStale
	// reuseSWR: serve it stale and refresh it in the background
	// (RFC 5861 section 3).
	reuseSWR
)

// decideReuse applies sections 4.2 to 4.3 and 5.2 to a stored response
// of current age age. Pure: no clock, no I/O.
func decideReuse(e *entry, age time.Duration, req *directives, shared, swr bool) reuse {
	if e.cc.noCache && !e.ttlMode { // 5.2.2.4: never without validation
		return reuseValidate
	}
	if req.noCache { // 5.2.1.4
		return reuseValidate
	}
	life := e.fresh.lifetime
	fresh := life > age
	if req.maxAge.set() && (age > deltaDuration(req.maxAge) || req.maxAge == 0) { // 5.2.1.1; max-age=0 is a reload
		if !(fresh && e.cc.immutable) { // RFC 8246: a reload need not revalidate an immutable response
			return reuseValidate
		}
	}
	if req.minFresh.set() && life-age < deltaDuration(req.minFresh) { // 5.2.1.3
		return reuseValidate
	}
	if fresh {
		return reuseFresh
	}
	if !mayServeStale(e, shared) {
		return reuseValidate
	}
	staleness := age - life
	if req.maxStaleAny || (req.maxStale.set() && staleness <= deltaDuration(req.maxStale)) { // 5.2.1.2
		return reuseStale
	}
	if swr && e.cc.staleWhileRevalidate.set() && staleness <= deltaDuration(e.cc.staleWhileRevalidate) {
		return reuseSWR
	}
	return reuseValidate
}

// mayServeStale is section 4.2.4: must-revalidate forbids serving a
// stale response, and in a shared cache so do proxy-revalidate and
// s-maxage (5.2.2.8, 5.2.2.10). TTL-mode entries ignore their
// Cache-Control.
func mayServeStale(e *entry, shared bool) bool {
	if e.ttlMode {
		return true
	}
	if e.cc.mustRevalidate || e.cc.noCache {
		return false
	}
	if shared && (e.cc.proxyRevalidate || e.cc.sMaxAge != deltaAbsent) {
		return false
	}
	return true
}

// staleIfErrorOK is RFC 5861 section 4: may e, at age, answer a request
// whose origin failed? The window is the longest of the response's
// stale-if-error, the request's, and the configured one; a negative
// configured window means never.
func staleIfErrorOK(e *entry, age time.Duration, req *directives, s *settings) bool {
	if s.staleIfError < 0 || req.noCache || !mayServeStale(e, s.shared) {
		return false
	}
	window := max(s.staleIfError, deltaDuration(e.cc.staleIfError), deltaDuration(req.staleIfError))
	return age-e.fresh.lifetime <= window
}

// errorStatus are the statuses RFC 5861 section 4 counts as errors.
func errorStatus(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
