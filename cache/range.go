package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Range requests (RFC 9110 section 14, RFC 9111 section 3.4).
//
// A cache may answer a Range request from a complete stored response it
// could use for the whole request (RFC 9110 section 14.2: a server may
// ignore Range, and one that honours it sends a 206 with a single
// Content-Range). This cache does so for one byte range on a GET; a
// request with several ranges, another unit, a range the stored
// response cannot satisfy, or preconditions it does not evaluate
// (If-Range, If-Match, If-Unmodified-Since) goes to the origin
// untouched.

// rangeRequest reports a GET whose only precondition-like field is one
// Range line: the cache looks it up.
func rangeRequest(req *http.Request, method string) bool {
	h := req.Header
	return method == http.MethodGet && len(h["Range"]) == 1 && len(h["If-Match"]) == 0 &&
		len(h["If-Unmodified-Since"]) == 0 && len(h["If-Range"]) == 0 && !callerConditional(req)
}

// parseRange resolves a Range field value against a representation of
// size bytes (RFC 9110 section 14.1.2): one int-range ("a-b", "a-") or
// suffix-range ("-n") of the bytes unit. ok is false for anything else,
// and for a range that selects nothing (section 14.1.1: unsatisfiable).
func parseRange(v string, size int64) (first, last int64, ok bool) {
	unit, spec, found := strings.Cut(strings.TrimSpace(v), "=")
	if !found || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if a == "" { // suffix-range
		n, ok := digits(b)
		if !ok || n == 0 || size == 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size - 1, true
	}
	first, ok = digits(a)
	if !ok || first >= size {
		return 0, 0, false
	}
	if b == "" {
		return first, size - 1, true
	}
	last, ok = digits(b)
	if !ok || last < first {
		return 0, 0, false
	}
	return first, min(last, size-1), true
}

// digits parses 1*DIGIT.
func digits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// rangeFrom reports whether e, a complete stored response, can answer
// req's Range, and the bytes it selects.
func rangeFrom(req *http.Request, e *entry) (first, last int64, ok bool) {
	if e.status != http.StatusOK {
		return 0, 0, false
	}
	return parseRange(req.Header.Get("Range"), int64(len(e.body)))
}

// serveRange is serve for a Range request: a 206 with the stored fields,
// a Content-Range and the selected bytes (RFC 9110 section 15.3.7.1).
func (c *Cache) serveRange(req *http.Request, e *entry, first, last int64, age time.Duration, st cacheStatus) *http.Response {
	resp := c.serve(req, http.MethodGet, e, age, st)
	n := last - first + 1
	resp.StatusCode, resp.Status = http.StatusPartialContent, "206 Partial Content"
	resp.Header["Content-Range"] = []string{"bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/" + strconv.FormatInt(int64(len(e.body)), 10)}
	resp.Header["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	resp.ContentLength = n
	b := &entryBody{}
	b.Reset(e.body[first : last+1])
	resp.Body = b
	return resp
}

// rangeLookup answers a Range request from e when e may be used as it is
// (fresh, or stale as the request allows) and holds the range; anything
// else goes to the origin untouched, Range and all, where a stored
// incomplete response may answer it, and a 206 is stored (partial.go).
func (t *transport) rangeLookup(req *http.Request, key string, e *entry, rcc *directives, s *settings) (*http.Response, error) {
	c := t.c
	if e != nil {
		age := currentAge(e.fresh.initialAge, e.respTime, c.now())
		if first, last, ok := rangeFrom(req, e); ok {
			switch decideReuse(e, age, rcc, s.shared, false) {
			case reuseFresh:
				c.stats.hits.Add(1)
				return c.serveRange(req, e, first, last, age, cacheStatus{hit: true}), nil
			case reuseStale:
				c.stats.hits.Add(1)
				return c.serveRange(req, e, first, last, age, cacheStatus{hit: true, detail: "max-stale"}), nil
			}
		}
	}
	if resp := t.fromPartial(req, key, rcc, s); resp != nil {
		return resp, nil
	}
	if rcc.onlyIfCached { // 5.2.1.7
		return c.gatewayTimeout(req, fwdBypass), nil
	}
	reqTime := c.now()
	c.stats.bypassed.Add(1)
	resp, err := sane(t.next.RoundTrip(req))
	if err != nil {
		return nil, err
	}
	st := cacheStatus{fwd: fwdBypass, fwdStatus: resp.StatusCode}
	st.stored = c.storePartial(req, key, resp, rcc, s, reqTime, c.now())
	addStatus(resp.Header, c.cfg.Name, st)
	return resp, nil
}
