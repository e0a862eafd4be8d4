package cache

import (
	"bytes"
	"net/http"
	"strconv"
	"time"
)

// Constructing responses from the cache (RFC 9111 section 4).

// serve builds the response for a stored entry: its own header copy with
// Age (section 5.1, on every response from the cache) and Cache-Status,
// and a fresh reader over the stored body. A caller's If-None-Match or
// If-Modified-Since that the entry satisfies gets a 304.
func (c *Cache) serve(req *http.Request, method string, e *entry, age time.Duration, st cacheStatus) *http.Response {
	st.hasTTL = true
	left := e.fresh.lifetime - age
	st.ttl = int64(left / time.Second)
	if left < 0 && left%time.Second != 0 {
		st.ttl-- // floor: a stale response never shows ttl=0
	}
	status, line, n := e.status, e.statusLine, int64(len(e.body))
	var h http.Header
	var slab []string // every value, and room for Age and Cache-Status: one allocation
	skip := func(string) bool { return false }
	if callerConditional(req) && e.status == http.StatusOK && notModified(req, e) {
		status, line, n = http.StatusNotModified, "304 Not Modified", 0
		skip = notModifiedField
	}
	// The caller owns its header: copy every value, never share the
	// entry's slices.
	h = make(http.Header, len(e.header)+2)
	vals := 2
	for _, v := range e.header {
		vals += len(v)
	}
	slab = make([]string, 0, vals)
	for k, v := range e.header {
		if skip(k) {
			continue
		}
		start := len(slab)
		slab = append(slab, v...)
		h[k] = slab[start:len(slab):len(slab)]
	}
	slab = append(slab, strconv.FormatInt(ageSeconds(age), 10))
	h["Age"] = slab[len(slab)-1 : len(slab) : len(slab)]
	cs := st.String(c.cfg.Name)
	if prev := h["Cache-Status"]; len(prev) > 0 {
		h["Cache-Status"] = append(prev[:len(prev):len(prev)], cs)
	} else {
		slab = append(slab, cs)
		h["Cache-Status"] = slab[len(slab)-1 : len(slab) : len(slab)]
	}
	resp := &http.Response{
		Status: line, StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: n, Request: req, Body: http.NoBody,
	}
	if method != http.MethodHead && n > 0 {
		b := &entryBody{}
		b.Reset(e.body)
		resp.Body = b
	}
	return resp
}

// entryBody is a hit's body: a reader over the stored bytes, which are
// never written again.
type entryBody struct{ bytes.Reader }

func (*entryBody) Close() error { return nil }

// gatewayTimeout is the answer to only-if-cached with nothing usable
// stored (section 5.2.1.7).
func (c *Cache) gatewayTimeout(req *http.Request, fwd string) *http.Response {
	h := http.Header{"Content-Length": {"0"}}
	addStatus(h, c.cfg.Name, cacheStatus{detail: "only-if-cached"})
	return &http.Response{
		Status: "504 Gateway Timeout", StatusCode: http.StatusGatewayTimeout, Proto: "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1, Header: h, Body: http.NoBody, Request: req,
	}
}
