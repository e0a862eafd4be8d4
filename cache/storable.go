package cache

import (
	"net/http"
	"time"
)

// settings are the rules for one request: the Config, overridden by the
// endpoint's cache block.
type settings struct {
	enabled   bool
	shared    bool
	ttl       time.Duration // > 0: TTL mode
	maxObject int64         // < 0: no limit
	// staleIfError is the configured window; < 0 means never.
	staleIfError time.Duration
	// credentials: the endpoint adds its own auth, which counts as an
	// Authorization header for section 3.5.
	credentials bool
}

// understoodStatus are the statuses whose caching rules this cache
// implements, for must-understand (RFC 9111 section 5.2.2.3).
func understoodStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// storable is RFC 9111 section 3 (and 3.5 for Authorization): may this
// response to req be stored? The method has been checked already.
func (c *Cache) storable(req *http.Request, reqCC *directives, status int, h http.Header, cc *directives, s *settings) bool {
	if reqCC.noStore { // 5.2.1.5
		return false
	}
	if status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false // final, and not a partial or a 304 (no ranges are combined)
	}
	if cc.mustUnderstand { // 5.2.2.3: understood statuses ignore no-store
		if !understoodStatus(status) {
			return false
		}
	} else if cc.noStore { // 5.2.2.5
		return false
	}
	if s.shared && cc.private { // 5.2.2.7
		return false
	}
	if _, star := varyNames(h); star { // 4.1: never matches
		return false
	}
	if s.shared && (len(req.Header["Authorization"]) > 0 || s.credentials) && !cc.public && !cc.sMaxAge.set() && !cc.mustRevalidate { // 3.5
		return false
	}
	if s.ttl > 0 {
		return c.ttlStatus(status)
	}
	return cc.public || (!s.shared && cc.private) || len(h["Expires"]) > 0 ||
		cc.maxAge != deltaAbsent || (s.shared && cc.sMaxAge != deltaAbsent) || heuristicStatus(status)
}

func (c *Cache) ttlStatus(code int) bool {
	for _, s := range c.cfg.Statuses {
		if s == code {
			return true
		}
	}
	return false
}
