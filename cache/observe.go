package cache

import (
	"net/http"
	"strings"

	"github.com/connmgr/connmgr"
)

// The cache in the Manager's observability: a call the cache answers
// itself never enters the Manager's pipeline, so the cache reports it
// (connmgr.Manager.ObserveCachedResponse: a call span marked with its
// Cache-Status); a call it sends on carries its Cache-Status in its
// context (connmgr.WithCacheStatus), for the pipeline's call span. Both
// only when the Manager's calls are observed: otherwise they cost nothing.

// fwdMarks are the context marks of forwarded calls, built once.
var fwdMarks = map[string]string{
	fwdURIMiss: "fwd=" + fwdURIMiss, fwdVaryMiss: "fwd=" + fwdVaryMiss, fwdStale: "fwd=" + fwdStale,
	fwdRequest: "fwd=" + fwdRequest, fwdMethod: "fwd=" + fwdMethod, fwdBypass: "fwd=" + fwdBypass,
}

// observed returns the Manager whose calls are observed, or nil.
func (t *transport) observed() *connmgr.Manager {
	if m := t.c.mgr.Load(); m != nil && m.Observed() {
		return m
	}
	return nil
}

// mark returns req with its context marked with the forward reason, when
// the Manager's calls are observed.
func (t *transport) mark(req *http.Request, fwd string) *http.Request {
	if t.observed() == nil || fwd == "" {
		return req
	}
	mark, ok := fwdMarks[fwd]
	if !ok {
		mark = "fwd=" + fwd
	}
	return req.WithContext(connmgr.WithCacheStatus(req.Context(), mark))
}

// observe runs the call and reports it to m's observers when the cache
// answered it without a call of the Manager: a hit, a stale response
// served on an error, a coalesced follower's copy, the 504 of
// only-if-cached.
func (t *transport) observe(m *connmgr.Manager, req *http.Request) (*http.Response, error) {
	start := t.c.now()
	resp, err := t.roundTrip(req)
	if err != nil || resp == nil {
		return resp, err
	}
	if member := t.ownStatus(resp.Header); member != "" && answeredHere(member) {
		m.ObserveCachedResponse(req, resp, member, start)
	}
	return resp, err
}

// ownStatus returns this cache's Cache-Status member (the last one)
// without its name, or "".
func (t *transport) ownStatus(h http.Header) string {
	v := h["Cache-Status"]
	if len(v) == 0 {
		return ""
	}
	last := v[len(v)-1]
	if !strings.HasPrefix(last, t.c.cfg.Name+"; ") {
		return ""
	}
	return last[len(t.c.cfg.Name)+2:]
}

// answeredHere reports whether a member says the response did not come
// from this caller's call of the Manager.
func answeredHere(member string) bool {
	return strings.HasPrefix(member, "hit") || strings.Contains(member, "; collapsed") ||
		strings.Contains(member, "detail=stale-if-error") || strings.Contains(member, "detail=only-if-cached")
}
