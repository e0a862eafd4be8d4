package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"time"
)

// transport is the cache in front of the rest of a call.
type transport struct {
	c    *Cache
	next http.RoundTripper
}

// RoundTrip answers req from the cache when RFC 9111 allows it, and
// otherwise sends it on (coalesced with concurrent misses for the same
// URI), storing the response while the caller reads it.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if m := t.observed(); m != nil {
		return t.observe(m, req)
	}
	return t.roundTrip(req)
}

func (t *transport) roundTrip(req *http.Request) (*http.Response, error) {
	c := t.c
	if c.closed.Load() {
		return t.next.RoundTrip(req)
	}
	s := c.settingsFor(req.URL)
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	switch {
	case !s.enabled:
		c.stats.bypassed.Add(1)
		return t.next.RoundTrip(req)
	case !c.cacheableMethod(method, &s):
		return t.forwardOther(req, method, &s)
	case rangeRequest(req, method):
		// looked up: a stored complete response may answer it
	case bypassRequest(req):
		return t.forward(req, cacheStatus{fwd: fwdBypass})
	}
	return t.lookup(req, method, &s)
}

// bypassRequest reports requests the cache passes through untouched:
// ranges and preconditions it does not evaluate (If-Match,
// If-Unmodified-Since, If-Range).
func bypassRequest(req *http.Request) bool {
	h := req.Header
	return len(h["Range"]) > 0 || len(h["If-Match"]) > 0 || len(h["If-Unmodified-Since"]) > 0 || len(h["If-Range"]) > 0
}

// callerConditional reports a request with its own validators.
func callerConditional(req *http.Request) bool {
	return len(req.Header["If-None-Match"]) > 0 || len(req.Header["If-Modified-Since"]) > 0
}

// forwardOther sends a method the cache does not answer, and invalidates
// on an unsafe one (section 4.4).
// A POST response that names its own URI as Content-Location and has
// explicit freshness is stored for that URI's GET (see post.go).
func (t *transport) forwardOther(req *http.Request, method string, s *settings) (*http.Response, error) {
	c := t.c
	reqTime := c.now()
	t.c.stats.bypassed.Add(1)
	resp, err := sane(t.next.RoundTrip(req))
	if err != nil {
		return nil, err
	}
	st := cacheStatus{fwd: fwdMethod, fwdStatus: resp.StatusCode}
	if unsafeMethod(method) {
		c.invalidate(req.Context(), req, resp)
	}
	if method == http.MethodPost {
		cc := parseDirectives(resp.Header["Cache-Control"])
		if c.postReusable(req, resp, &cc, s) {
			c.storePOST(req, resp, &cc, s, reqTime, c.now())
			st.stored = true
		}
	}
	addStatus(resp.Header, c.cfg.Name, st)
	return resp, nil
}

func (t *transport) forward(req *http.Request, st cacheStatus) (*http.Response, error) {
	t.c.stats.bypassed.Add(1)
	resp, err := sane(t.next.RoundTrip(t.mark(req, st.fwd)))
	if err == nil {
		st.fwdStatus = resp.StatusCode
		addStatus(resp.Header, t.c.cfg.Name, st)
	}
	return resp, err
}

// lookup is the cache proper: find a stored response, decide whether
// it may be used (section 4), else go to the origin.
func (t *transport) lookup(req *http.Request, method string, s *settings) (*http.Response, error) {
	c := t.c
	ctx := req.Context()
	key, req, err := c.keyFor(req, method, s)
	if err != nil {
		return nil, err
	}
	vs, _ := c.backend.load(ctx, key)
	var e *entry
	fwd := fwdURIMiss
	if vs != nil {
		if e = vs.selectFor(req.Header); e == nil {
			fwd = fwdVaryMiss
		}
	}
	rcc := requestDirectives(req.Header)
	var age time.Duration
	if len(req.Header["Range"]) > 0 {
		return t.rangeLookup(req, key, e, &rcc, s)
	}
	if e != nil {
		now := c.now()
		age = currentAge(e.fresh.initialAge, e.respTime, now)
		switch decideReuse(e, age, &rcc, s.shared, c.bg != nil) {
		case reuseFresh:
			c.stats.hits.Add(1)
			return c.serve(req, method, e, age, cacheStatus{hit: true}), nil
		case reuseStale:
			c.stats.hits.Add(1)
			return c.serve(req, method, e, age, cacheStatus{hit: true, detail: "max-stale"}), nil
		case reuseSWR:
			c.stats.hits.Add(1)
			c.stats.swr.Add(1)
			t.refresh(req, key, e, vs, s)
			return c.serve(req, method, e, age, cacheStatus{hit: true, detail: "stale-while-revalidate"}), nil
		}
		fwd = fwdStale
		if age < e.fresh.lifetime {
			fwd = fwdRequest
		}
	}
	if rcc.onlyIfCached { // 5.2.1.7
		return c.gatewayTimeout(req, fwd), nil
	}
	if e == nil {
		c.stats.misses.Add(1)
	}
	if method == http.MethodHead && !callerConditional(req) {
		return t.head(t.mark(req, fwd), key, e, vs, fwd, &rcc, s)
	}
	if method == http.MethodHead || callerConditional(req) {
		resp, err := t.forward(req, cacheStatus{fwd: fwd})
		if err != nil && e != nil && staleIfErrorOK(e, age, &rcc, s) {
			c.stats.sie.Add(1)
			return c.serve(req, method, e, age, cacheStatus{fwd: fwd, detail: "stale-if-error"}), nil
		}
		return resp, err
	}
	return t.fetch(t.mark(req, fwd), key, e, vs, fwd, &rcc, s, !c.cfg.DisableCoalescing)
}

// keyFor returns the primary key of req. In TTL mode a method other than
// GET and HEAD is keyed on a hash of its body as well; the body is read
// (up to the object size limit) and req comes back with a replayable one.
func (c *Cache) keyFor(req *http.Request, method string, s *settings) (string, *http.Request, error) {
	if method == http.MethodHead {
		method = http.MethodGet // a HEAD is answered from the stored GET
	}
	key := primaryKey(method, req.URL)
	if method == http.MethodGet || req.Body == nil || req.Body == http.NoBody {
		return key, req, nil
	}
	limit := s.maxObject
	if limit < 0 {
		limit = 1 << 30
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	req.Body.Close()
	if err != nil {
		return "", nil, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(data))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	out.ContentLength = int64(len(data))
	sum := sha256.Sum256(data)
	if int64(len(data)) > limit {
		return key + "#unkeyable", out, nil // too large to key: never matches what is stored
	}
	return key + "#" + hex.EncodeToString(sum[:]), out, nil
}

// selectFor returns the newest stored response whose Vary selection (and
// key headers) req matches (section 4.1).
func (v *variants) selectFor(h http.Header) *entry {
	for _, e := range v.list {
		if e.vary.matches(h) {
			return e
		}
	}
	return nil
}

// refresh starts a background revalidation of a stale entry (RFC 5861
// section 3) unless one is running for the key or every slot is taken.
func (t *transport) refresh(req *http.Request, key string, e *entry, vs *variants, s *settings) {
	c := t.c
	select {
	case c.bg <- struct{}{}:
	default:
		return
	}
	c.flightsMu.Lock()
	if _, busy := c.flights[key]; busy || c.closed.Load() {
		c.flightsMu.Unlock()
		<-c.bg
		return
	}
	f := c.newFlight(key, req, e, vs, s, e.hasValidator(), noDirectives)
	f.background = true
	f.registered = true
	c.flights[key] = f
	c.flightsMu.Unlock()
	c.stats.background.Add(1)
	f.start(t.next, c.cfg.BackgroundTimeout, func() { <-c.bg })
}

// errNoResponse is what a RoundTripper that returned neither a response
// nor an error is taken to have returned.
var errNoResponse = errors.New("cache: the transport returned no response and no error")

// sane makes a RoundTripper's answer safe to use: a response always has
// a header and a body, or there is an error.
func sane(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	if resp == nil {
		return nil, errNoResponse
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	return resp, nil
}
