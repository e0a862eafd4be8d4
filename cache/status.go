package cache

import (
	"net/http"
	"strconv"
	"strings"
)

// Cache-Status (RFC 9211) parameters this cache reports.
const (
	fwdURIMiss  = "uri-miss"  // nothing stored for the URI
	fwdVaryMiss = "vary-miss" // stored, but for other Vary values
	fwdStale    = "stale"     // stored and stale: validated or refetched
	fwdRequest  = "request"   // the request asked to go forward (no-cache, max-age)
	fwdMethod   = "method"    // a method the cache does not answer
	fwdBypass   = "bypass"    // the cache was told to stay out of the way (ranges, conditionals)
)

// cacheStatus is one Cache-Status member, built into one string.
type cacheStatus struct {
	hit       bool
	fwd       string
	fwdStatus int
	stored    bool
	collapsed bool
	ttl       int64
	hasTTL    bool
	detail    string
}

func (s cacheStatus) String(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 48)
	b.WriteString(name)
	if s.hit {
		b.WriteString("; hit")
	}
	if s.fwd != "" {
		b.WriteString("; fwd=")
		b.WriteString(s.fwd)
	}
	if s.fwdStatus > 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(s.fwdStatus))
	}
	if s.stored {
		b.WriteString("; stored")
	}
	if s.collapsed {
		b.WriteString("; collapsed")
	}
	if s.hasTTL {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(s.ttl, 10))
	}
	if s.detail != "" {
		b.WriteString("; detail=")
		b.WriteString(s.detail)
	}
	return b.String()
}

// addStatus appends this cache's member to a response's Cache-Status:
// the list runs from the origin towards the user (RFC 9211 section 2).
func addStatus(h http.Header, name string, s cacheStatus) {
	h["Cache-Status"] = append(h["Cache-Status"], s.String(name))
}
