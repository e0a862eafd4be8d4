package cache

import (
	"errors"
	"net/http"
)

// fetch goes to the origin for req: as a follower of a flight already
// under way for the key, or as the creator of a new one (alone when
// coalesce is false). e is the stored response req selected, if any: it
// is validated, and answers a failure when stale-if-error allows.
func (t *transport) fetch(req *http.Request, key string, e *entry, vs *variants, fwd string,
	rcc *directives, s *settings, coalesce bool) (*http.Response, error) {
	c := t.c
	var f *flight
	creator := false
	c.flightsMu.Lock()
	if coalesce {
		if g := c.flights[key]; g != nil && g.tryJoin() {
			f = g
		}
	}
	if f == nil {
		creator = true
		f = c.newFlight(key, req, e, vs, s, canValidate(e, vs), *rcc)
		f.participants = 1
		if coalesce && !c.closed.Load() {
			f.registered = true
			c.flights[key] = f
		}
	}
	c.flightsMu.Unlock()
	p := f.newParticipant(req.Context(), creator)
	if creator && !f.start(t.next, 0, nil) {
		f.settle(outError, ErrClosed)
	}
	select {
	case <-f.ready:
	case <-req.Context().Done():
		p.leave()
		return nil, req.Context().Err()
	}
	return t.outcome(req, key, f, p, e, vs, fwd, rcc, s)
}

// outcome is one participant's answer once its flight has one.
func (t *transport) outcome(req *http.Request, key string, f *flight, p *participant, e *entry, vs *variants,
	fwd string, rcc *directives, s *settings) (*http.Response, error) {
	c := t.c
	follower := !p.creator
	switch f.kind {
	case outError:
		p.leave()
		if resp := t.staleIfError(req, e, rcc, s, fwd, 0); resp != nil {
			return resp, nil
		}
		return nil, f.err
	case outRetry:
		p.leave()
		return t.fetch(req, key, nil, nil, fwd, rcc, s, false)
	case outEntry:
		p.leave()
		if !f.entry.vary.matches(req.Header) {
			return t.fetch(req, key, e, vs, fwd, rcc, s, false)
		}
		if follower {
			c.stats.coalesced.Add(1)
		}
		age := currentAge(f.entry.fresh.initialAge, f.entry.respTime, c.now())
		return c.serve(req, req.Method, f.entry, age, cacheStatus{fwd: fwd, fwdStatus: http.StatusNotModified, collapsed: follower}), nil
	case outSolo:
		if follower {
			p.leave()
			return t.fetch(req, key, e, vs, fwd, rcc, s, false)
		}
		resp := f.takeSolo()
		if resp == nil { // cannot happen while the creator is here; be safe
			p.leave()
			return t.fetch(req, key, e, vs, fwd, rcc, s, false)
		}
		if errorStatus(resp.StatusCode) {
			if stale := t.staleIfError(req, e, rcc, s, fwd, resp.StatusCode); stale != nil {
				drainClose(resp.Body)
				p.leave()
				return stale, nil
			}
		}
		resp.Body = &soloBody{ReadCloser: resp.Body, p: p}
		addStatus(resp.Header, c.cfg.Name, cacheStatus{fwd: fwd, fwdStatus: resp.StatusCode})
		return resp, nil
	default: // outStream
		if follower && !f.vary.matches(req.Header) {
			p.leave()
			return t.fetch(req, key, e, vs, fwd, rcc, s, false)
		}
		if errorStatus(f.resp.StatusCode) {
			if stale := t.staleIfError(req, e, rcc, s, fwd, f.resp.StatusCode); stale != nil {
				p.leave()
				return stale, nil
			}
		}
		if follower {
			c.stats.coalesced.Add(1)
		}
		return f.streamResponse(req, p, cacheStatus{fwd: fwd, collapsed: follower}), nil
	}
}

// staleIfError serves e when the origin failed (status 0: an error, or
// a local refusal) and RFC 5861 section 4 allows it; nil otherwise.
func (t *transport) staleIfError(req *http.Request, e *entry, rcc *directives, s *settings, fwd string, status int) *http.Response {
	if e == nil {
		return nil
	}
	c := t.c
	age := currentAge(e.fresh.initialAge, e.respTime, c.now())
	if !staleIfErrorOK(e, age, rcc, s) {
		return nil
	}
	c.stats.sie.Add(1)
	return c.serve(req, req.Method, e, age, cacheStatus{fwd: fwd, fwdStatus: status, detail: "stale-if-error"})
}

// ErrClosed is the error of a call that needed the origin while the
// Cache was closing.
var ErrClosed = errors.New("cache: closed")
