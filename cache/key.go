package cache

import (
	"net/url"
	"strings"
)

// primaryKey is the cache key of a request (RFC 9111 section 2): the
// method and the target URI, with the scheme and host lower-cased, a
// default port dropped and the fragment left out. It allocates one
// string.
func primaryKey(method string, u *url.URL) string {
	host := u.Host
	scheme := u.Scheme
	switch {
	case strings.HasSuffix(host, ":80") && strings.EqualFold(scheme, "http"):
		host = host[:len(host)-3]
	case strings.HasSuffix(host, ":443") && strings.EqualFold(scheme, "https"):
		host = host[:len(host)-4]
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.Grow(len(method) + len(scheme) + len(host) + len(path) + len(u.RawQuery) + 6)
	b.WriteString(method)
	b.WriteByte(' ')
	writeLower(&b, scheme)
	b.WriteString("://")
	writeLower(&b, host)
	b.WriteString(path)
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	return b.String()
}

func writeLower(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
}

// sameOrigin reports whether two absolute URLs share scheme, host and
// port (RFC 6454), as section 4.4 requires of Location and
// Content-Location before they are invalidated.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(originHost(a), originHost(b))
}

func originHost(u *url.URL) string {
	h := u.Host
	switch {
	case strings.HasSuffix(h, ":80") && strings.EqualFold(u.Scheme, "http"):
		return h[:len(h)-3]
	case strings.HasSuffix(h, ":443") && strings.EqualFold(u.Scheme, "https"):
		return h[:len(h)-4]
	}
	return h
}
