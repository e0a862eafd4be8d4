package cache

import (
	"context"
	"io"
	"net/http"
	"time"
)

// POST responses reused for GET (RFC 9110 section 9.3.3, RFC 9111
// section 4).
//
// A response to POST is cacheable when it has explicit freshness and a
// Content-Location naming the POST's own target URI: it is then a
// representation of that URI, and a later GET (or HEAD) of it may be
// answered with it. This cache stores such a response under the GET key
// of the URI, after the invalidation that the POST itself causes
// (section 4.4), once the caller has read its body to the end. Anything
// else about a POST is passed through as before.

// postReusable reports whether resp, the answer to the POST req, may
// be stored as the URI's GET response.
func (c *Cache) postReusable(req *http.Request, resp *http.Response, cc *directives, s *settings) bool {
	if s.ttl > 0 {
		return false
	}
	loc := resp.Header["Content-Location"]
	if len(loc) != 1 {
		return false
	}
	u, err := req.URL.Parse(loc[0])
	if err != nil || primaryKey(http.MethodGet, u) != primaryKey(http.MethodGet, req.URL) {
		return false
	}
	explicit := cc.maxAge != deltaAbsent || (s.shared && cc.sMaxAge != deltaAbsent) || len(resp.Header["Expires"]) > 0
	if !explicit {
		return false
	}
	rcc := requestDirectives(req.Header)
	if !c.storable(req, &rcc, resp.StatusCode, resp.Header, cc, s) {
		return false
	}
	return s.maxObject < 0 || resp.ContentLength <= s.maxObject
}

// storePOST makes resp's body store the response as the GET response of
// req's URI when the caller has read it all (within the object size).
func (c *Cache) storePOST(req *http.Request, resp *http.Response, cc *directives, s *settings, reqTime, respTime time.Time) {
	names, _ := varyNames(resp.Header)
	names = mergeNames(names, c.keyHeaders)
	vk := newVaryKey(names, req.Header)
	hdr := storedHeader(resp.Header, cc, s.shared)
	key := primaryKey(http.MethodGet, req.URL)
	ctx := context.WithoutCancel(req.Context())
	settings := *s
	resp.Body = &captureBody{ReadCloser: resp.Body, limit: s.maxObject, done: func(data []byte) {
		e := buildEntry(resp.StatusCode, hdr, data, reqTime, respTime, vk, settings.shared, c.cfg.HeuristicMax, 0)
		vs, ok := c.backend.load(ctx, key)
		if !ok {
			vs = &variants{}
		}
		c.backend.save(ctx, key, vs.with(e, c.cfg.MaxVariants), storeTTL(e, &settings))
		c.stats.stored.Add(1)
	}}
}

// captureBody keeps a copy of what the caller reads, and hands it to
// done at the end of the body, unless it grew past limit (< 0: none).
type captureBody struct {
	io.ReadCloser
	buf   []byte
	limit int64
	over  bool
	done  func([]byte)
}

func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.over {
		if b.limit >= 0 && int64(len(b.buf)+n) > b.limit {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF && !b.over && b.done != nil {
		done := b.done
		b.done = nil
		done(b.buf)
	}
	return n, err
}
