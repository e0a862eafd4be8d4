package cache

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Partial responses (RFC 9111 sections 3.3 and 3.4).
//
// A 206 to a single byte range, whose Content-Range names a known
// complete length and whose body is exactly that range, is stored as an
// incomplete response, apart from the URI's complete responses (so a
// request without Range never sees it). A later Range request inside
// the stored range is answered from it. A new 206 for the same
// representation (the same strong entity tag) that overlaps or touches
// the stored range is combined with it (3.4), the new response's fields
// winning; once the parts cover the whole representation, the result
// is stored as the complete 200.

// partialKey is where a URI's incomplete responses live.
func partialKey(key string) string { return "partial " + key }

// parseContentRange parses "bytes first-last/complete" (RFC 9110 section
// 14.4) with a known complete length; ok is false for anything else.
func parseContentRange(v string) (first, last, size int64, ok bool) {
	unit, rest, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	rng, total, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var ok1, ok2, ok3 bool
	first, ok1 = digits(a)
	last, ok2 = digits(b)
	size, ok3 = digits(total)
	if !ok1 || !ok2 || !ok3 || first > last || last >= size {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

func contentRangeValue(first, last, size int64) string {
	return "bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/" + strconv.FormatInt(size, 10)
}

// fromPartial answers req's Range from a stored incomplete response when
// it may be used as it is and holds every byte asked for.
func (t *transport) fromPartial(req *http.Request, key string, rcc *directives, s *settings) *http.Response {
	c := t.c
	pvs, _ := c.backend.load(req.Context(), partialKey(key))
	if pvs == nil {
		return nil
	}
	pe := pvs.selectFor(req.Header)
	if pe == nil {
		return nil
	}
	a, b, size, ok := parseContentRange(pe.header.Get("Content-Range"))
	if !ok || int64(len(pe.body)) != b-a+1 {
		return nil
	}
	x, y, ok := parseRange(req.Header.Get("Range"), size)
	if !ok || x < a || y > b {
		return nil
	}
	age := currentAge(pe.fresh.initialAge, pe.respTime, c.now())
	st := cacheStatus{hit: true}
	switch decideReuse(pe, age, rcc, s.shared, false) {
	case reuseFresh:
	case reuseStale:
		st.detail = "max-stale"
	default:
		return nil
	}
	c.stats.hits.Add(1)
	resp := c.serve(req, http.MethodGet, pe, age, st)
	resp.Header["Content-Range"] = []string{contentRangeValue(x, y, size)}
	resp.Header["Content-Length"] = []string{strconv.FormatInt(y-x+1, 10)}
	resp.ContentLength = y - x + 1
	body := &entryBody{}
	body.Reset(pe.body[x-a : y-a+1])
	resp.Body = body
	return resp
}

// storePartial makes resp, a 206 to req, stored (and combined) when the
// caller has read its body to the end, if section 3.3 allows it.
func (c *Cache) storePartial(req *http.Request, key string, resp *http.Response, rcc *directives, s *settings, reqTime, respTime time.Time) bool {
	if s.ttl > 0 || resp.StatusCode != http.StatusPartialContent || len(resp.Header["Content-Range"]) != 1 {
		return false
	}
	a, b, size, ok := parseContentRange(resp.Header["Content-Range"][0])
	if !ok || (resp.ContentLength >= 0 && resp.ContentLength != b-a+1) || (s.maxObject >= 0 && size > s.maxObject) {
		return false
	}
	cc := parseDirectives(resp.Header["Cache-Control"])
	// Judged as the 200 it is part of: 206 itself is heuristically
	// cacheable too (RFC 9110 15.3.7), so nothing is loosened.
	if !c.storable(req, rcc, http.StatusOK, resp.Header, &cc, s) {
		return false
	}
	names, _ := varyNames(resp.Header)
	vk := newVaryKey(mergeNames(names, c.keyHeaders), req.Header)
	hdr := storedHeader(resp.Header, &cc, s.shared)
	ctx := context.WithoutCancel(req.Context())
	st := *s
	resp.Body = &captureBody{ReadCloser: resp.Body, limit: b - a + 1, done: func(data []byte) {
		if int64(len(data)) != b-a+1 {
			return // the body does not match its Content-Range: keep nothing
		}
		c.savePartial(ctx, key, buildEntry(http.StatusPartialContent, hdr, data, reqTime, respTime, vk, st.shared, c.cfg.HeuristicMax, 0), a, b, size, &st)
	}}
	return true
}

// savePartial stores e (bytes a-b of size), combined with a stored
// incomplete response of the same representation (section 3.4).
func (c *Cache) savePartial(ctx context.Context, key string, e *entry, a, b, size int64, s *settings) {
	pk := partialKey(key)
	if pvs, _ := c.backend.load(ctx, pk); pvs != nil && len(pvs.list) > 0 && sameSelection(&pvs.list[0].vary, &e.vary) {
		if m, lo, hi := combine(pvs.list[0], e, a, b, size); m != nil {
			e, a, b = m, lo, hi
		}
	}
	c.stats.stored.Add(1)
	if a == 0 && b == size-1 { // complete: the 200 it is part of
		h := e.header.Clone()
		delete(h, "Content-Range")
		h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		full := buildEntry(http.StatusOK, h, e.body, e.reqTime, e.respTime, e.vary, s.shared, c.cfg.HeuristicMax, 0)
		vs, ok := c.backend.load(ctx, key)
		if !ok {
			vs = &variants{}
		}
		c.backend.save(ctx, key, vs.with(full, c.cfg.MaxVariants), storeTTL(full, s))
		c.backend.remove(ctx, pk)
		return
	}
	c.backend.save(ctx, pk, (&variants{}).with(e, 1), storeTTL(e, s))
}

// combine is section 3.4: the stored part old and the new part e (bytes
// a-b of size) become one when both carry the same strong entity tag
// and their ranges overlap or touch; the new response's fields are kept
// (as a 304's would be, 4.3.4), and the combined range is lo-hi. nil
// when they may not be combined.
func combine(old, e *entry, a, b, size int64) (m *entry, lo, hi int64) {
	oa, ob, osize, ok := parseContentRange(old.header.Get("Content-Range"))
	if !ok || osize != size || int64(len(old.body)) != ob-oa+1 {
		return nil, 0, 0
	}
	if e.etag == "" || old.etag != e.etag || !strongETag(e.etag) {
		return nil, 0, 0
	}
	if a > ob+1 || oa > b+1 {
		return nil, 0, 0 // a gap between them
	}
	lo, hi = min(a, oa), max(b, ob)
	body := make([]byte, hi-lo+1)
	copy(body[oa-lo:], old.body)
	copy(body[a-lo:], e.body)
	h := e.header.Clone()
	h["Content-Range"] = []string{contentRangeValue(lo, hi, size)}
	h["Content-Length"] = []string{strconv.FormatInt(hi-lo+1, 10)}
	c := *e
	c.header, c.body = h, body
	return &c, lo, hi
}
