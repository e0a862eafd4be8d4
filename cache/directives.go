package cache

import (
	"net/http"
	"strings"
)

// maxDelta is the largest delta-seconds value kept: RFC 9111 section
// 1.2.2 says a larger one, or an overflow, counts as 2^31.
const maxDelta = 1 << 31

// delta is a delta-seconds argument: absent (-1), invalid (-2), or seconds.
type delta int64

const (
	deltaAbsent  delta = -1
	deltaInvalid delta = -2
)

func (d delta) set() bool   { return d >= 0 }
func (d delta) valid() bool { return d != deltaInvalid }

// directives is a parsed Cache-Control field (RFC 9111 section 5.2), of
// a request or a response. Names are case-insensitive; an argument may
// be a token or a quoted string. A directive given twice with different
// arguments is invalid (section 4.2.1: "the response should be
// considered stale"). Unknown directives are ignored (section 5.2.3).
type directives struct {
	maxAge, sMaxAge, maxStale, minFresh delta
	staleWhileRevalidate, staleIfError  delta

	noStore, noCache, mustRevalidate, proxyRevalidate bool
	public, private, immutable, onlyIfCached          bool
	mustUnderstand, noTransform                       bool
	// maxStaleAny is max-stale without an argument: any staleness.
	maxStaleAny bool
	// noCacheFields and privateFields are the field names of the
	// qualified forms no-cache="a, b" and private="a" (lower case).
	noCacheFields, privateFields []string
}

var noDirectives = directives{
	maxAge: deltaAbsent, sMaxAge: deltaAbsent, maxStale: deltaAbsent, minFresh: deltaAbsent,
	staleWhileRevalidate: deltaAbsent, staleIfError: deltaAbsent,
}

// parseDirectives parses every Cache-Control field line of h, as one
// comma-separated list (RFC 9110 section 5.3). It never fails: what it
// cannot read it ignores or marks invalid.
func parseDirectives(lines []string) directives {
	d := noDirectives
	for _, line := range lines {
		for len(line) > 0 {
			var member string
			member, line = nextMember(line)
			d.apply(member)
		}
	}
	return d
}

// requestDirectives parses a request's Cache-Control, with Pragma:
// no-cache read as Cache-Control: no-cache when there is no Cache-Control
// (RFC 9111 section 5.4).
func requestDirectives(h http.Header) directives {
	cc := h["Cache-Control"]
	if len(cc) == 0 {
		if p := h["Pragma"]; len(p) > 0 && pragmaNoCache(p) {
			d := noDirectives
			d.noCache = true
			return d
		}
		return noDirectives
	}
	return parseDirectives(cc)
}

func pragmaNoCache(lines []string) bool {
	for _, line := range lines {
		for len(line) > 0 {
			var m string
			m, line = nextMember(line)
			if strings.EqualFold(strings.TrimSpace(m), "no-cache") {
				return true
			}
		}
	}
	return false
}

// nextMember splits the first list member off s, honouring quoted
// strings (a comma inside quotes does not split).
func nextMember(s string) (member, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// apply records one directive ("name" or "name=arg").
func (d *directives) apply(member string) {
	member = strings.Trim(member, " \t")
	if member == "" {
		return
	}
	name, arg, hasArg := member, "", false
	if i := strings.IndexByte(member, '='); i >= 0 {
		name, arg, hasArg = member[:i], member[i+1:], true
	}
	switch strings.ToLower(name) {
	case "max-age":
		d.maxAge = mergeDelta(d.maxAge, arg, hasArg)
	case "s-maxage":
		d.sMaxAge = mergeDelta(d.sMaxAge, arg, hasArg)
	case "max-stale":
		if !hasArg {
			d.maxStaleAny = true
			return
		}
		d.maxStale = mergeDelta(d.maxStale, arg, hasArg)
	case "min-fresh":
		d.minFresh = mergeDelta(d.minFresh, arg, hasArg)
	case "stale-while-revalidate":
		d.staleWhileRevalidate = mergeDelta(d.staleWhileRevalidate, arg, hasArg)
	case "stale-if-error":
		d.staleIfError = mergeDelta(d.staleIfError, arg, hasArg)
	case "no-store":
		d.noStore = true
	case "no-cache":
		if hasArg {
			if fields := fieldNames(arg); len(fields) > 0 {
				d.noCacheFields = append(d.noCacheFields, fields...)
				return
			}
		}
		d.noCache = true
	case "private":
		if hasArg {
			if fields := fieldNames(arg); len(fields) > 0 {
				d.privateFields = append(d.privateFields, fields...)
				return
			}
		}
		d.private = true
	case "public":
		d.public = true
	case "must-revalidate":
		d.mustRevalidate = true
	case "proxy-revalidate":
		d.proxyRevalidate = true
	case "immutable":
		d.immutable = true
	case "only-if-cached":
		d.onlyIfCached = true
	case "must-understand":
		d.mustUnderstand = true
	case "no-transform":
		d.noTransform = true
	}
}

// mergeDelta folds a repeated directive: the same value again is kept, a
// different one makes it invalid.
func mergeDelta(prev delta, arg string, hasArg bool) delta {
	v := parseDelta(arg, hasArg)
	switch {
	case prev == deltaAbsent:
		return v
	case prev == v:
		return prev
	default:
		return deltaInvalid
	}
}

// parseDelta reads delta-seconds (RFC 9111 section 1.2.2): digits only,
// as a token or a quoted string; larger than 2^31 counts as 2^31.
func parseDelta(arg string, hasArg bool) delta {
	if !hasArg {
		return deltaInvalid
	}
	if len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
		arg = arg[1 : len(arg)-1]
	}
	if arg == "" {
		return deltaInvalid
	}
	var n int64
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if c < '0' || c > '9' {
			return deltaInvalid
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	if n > maxDelta {
		n = maxDelta
	}
	return delta(n)
}

// fieldNames reads the quoted field-name list of no-cache="a, b" (a bare
// token is accepted too), lower-cased.
func fieldNames(arg string) []string {
	arg = strings.Trim(arg, `"`)
	var out []string
	for _, f := range strings.Split(arg, ",") {
		if f = strings.TrimSpace(f); f != "" && validToken(f) {
			out = append(out, strings.ToLower(f))
		}
	}
	return out
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
