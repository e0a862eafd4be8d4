package cache

import (
	"net/http"
	"strconv"
)

// head sends a HEAD the cache could not answer, and lets a 200 freshen
// the stored GET response it would have selected (RFC 9111 section
// 4.3.5): the same representation (same validators, same length) is
// updated as a 304 would update it, and the HEAD is answered from it,
// stored fields included; another representation makes it invalid.
func (t *transport) head(req *http.Request, key string, e *entry, vs *variants, fwd string, rcc *directives, s *settings) (*http.Response, error) {
	c := t.c
	ctx := req.Context()
	c.stats.bypassed.Add(1)
	reqTime := c.now()
	resp, err := sane(t.next.RoundTrip(req))
	if err != nil {
		if stale := t.staleIfError(req, e, rcc, s, fwd, 0); stale != nil {
			return stale, nil
		}
		return nil, err
	}
	respTime := c.now()
	if e != nil && resp.StatusCode == http.StatusOK {
		if sameRepresentation(e, resp.Header) {
			drainClose(resp.Body)
			u := freshen(e, resp.Header, reqTime, respTime, s, c.cfg.HeuristicMax)
			c.backend.save(ctx, key, vs.replace(e, u), storeTTL(u, s))
			c.stats.revalidated.Add(1)
			age := currentAge(u.fresh.initialAge, u.respTime, respTime)
			return c.serve(req, http.MethodHead, u, age, cacheStatus{fwd: fwd, fwdStatus: http.StatusOK}), nil
		}
		c.backend.save(ctx, key, vs.without(e), storeTTL(e, s))
		c.stats.invalidated.Add(1)
	}
	addStatus(resp.Header, c.cfg.Name, cacheStatus{fwd: fwd, fwdStatus: resp.StatusCode})
	return resp, nil
}

// sameRepresentation reports whether a HEAD response describes the
// stored response e (section 4.3.5): its validators, else its length,
// agree.
func sameRepresentation(e *entry, h http.Header) bool {
	if tag := h.Get("Etag"); tag != "" {
		return tag == e.etag
	}
	if lm := h.Get("Last-Modified"); lm != "" {
		return lm == e.lastMod
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		return err == nil && n == int64(len(e.body))
	}
	return true
}

// without returns a copy of v without e.
func (v *variants) without(e *entry) *variants {
	out := &variants{list: make([]*entry, 0, len(v.list))}
	for _, x := range v.list {
		if x != e {
			out.list = append(out.list, x)
		}
	}
	return out
}
