package cache

import (
	"net/http"
	"strings"
	"time"
)

// hasValidator reports whether e can be revalidated (RFC 9111 4.3.1).
func (e *entry) hasValidator() bool { return e.etag != "" || e.lastMod != "" }

// canValidate reports whether a request can be sent conditionally: the
// selected stored response has a validator or, with none selected (a
// Vary miss), another stored response of the URI has an entity tag,
// which a 304 can then pick (section 4.3.4).
func canValidate(selected *entry, vs *variants) bool {
	if selected != nil {
		return selected.hasValidator()
	}
	if vs != nil {
		for _, e := range vs.list {
			if e.etag != "" {
				return true
			}
		}
	}
	return false
}

// conditionalRequest returns a clone of req asking the origin to
// validate the stored responses (section 4.3.1): If-None-Match with the
// entity tag of every stored response that has one (the selected one
// first), and If-Modified-Since with the selected one's Last-Modified.
// selected is nil on a Vary miss: the tags alone are sent.
func conditionalRequest(req *http.Request, selected *entry, vs *variants) *http.Request {
	out := req.Clone(req.Context())
	var tags []string
	if selected != nil && selected.etag != "" {
		tags = append(tags, selected.etag)
	}
	if vs != nil {
		for _, e := range vs.list {
			if e != selected && e.etag != "" && !containsString(tags, e.etag) {
				tags = append(tags, e.etag)
			}
		}
	}
	if len(tags) > 0 {
		out.Header.Set("If-None-Match", strings.Join(tags, ", "))
	}
	if selected != nil && selected.lastMod != "" {
		out.Header.Set("If-Modified-Since", selected.lastMod)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// strongETag reports whether tag is a strong entity tag.
func strongETag(tag string) bool { return !strings.HasPrefix(tag, "W/") }

// opaque drops the weak prefix, for weak comparison (RFC 9110 8.8.3.2).
func opaque(tag string) string { return strings.TrimPrefix(tag, "W/") }

// select304 returns the stored responses a 304 freshens (section
// 4.3.4): those with its strong entity tag; else, without one, those
// whose Last-Modified it repeats; else the only stored response when it
// has no validator (and the 304 has none either).
func select304(vs *variants, h http.Header) []*entry {
	if vs == nil {
		return nil
	}
	var out []*entry
	if tag := h.Get("Etag"); tag != "" {
		for _, e := range vs.list {
			if e.etag == tag && strongETag(tag) || e.etag != "" && !strongETag(tag) && opaque(e.etag) == opaque(tag) {
				out = append(out, e)
			}
		}
		return out
	}
	if lm := h.Get("Last-Modified"); lm != "" {
		for _, e := range vs.list {
			if e.lastMod == lm {
				out = append(out, e)
			}
		}
		return out
	}
	if len(vs.list) == 1 && !vs.list[0].hasValidator() {
		return vs.list[:1]
	}
	// A 304 without validators answers our conditional request for the
	// selected response: freshen the ones that have validators.
	for _, e := range vs.list {
		if e.hasValidator() {
			out = append(out, e)
		}
	}
	return out
}

// notUpdated are fields a 304 does not replace in a stored response
// (section 3.2): the stored body keeps its length.
var notUpdated = map[string]bool{"Content-Length": true}

// freshen returns e updated with a 304's header fields (section 4.3.4,
// 3.2): every field it carries replaces the stored one, except
// Content-Length and the fields never stored.
func freshen(e *entry, h http.Header, reqTime, respTime time.Time, s *settings, heuristicMax time.Duration) *entry {
	hdr := e.header.Clone()
	cc := parseDirectives(h["Cache-Control"])
	for k, v := range storedHeader(h, &cc, s.shared) {
		if notUpdated[k] {
			continue
		}
		hdr[k] = v
	}
	ttl := time.Duration(0)
	if e.ttlMode {
		ttl = e.fresh.lifetime
	}
	return buildEntry(e.status, hdr, e.body, reqTime, respTime, e.vary, s.shared, heuristicMax, ttl)
}

// notModified evaluates a caller's If-None-Match and If-Modified-Since
// against a response the cache is about to serve (RFC 9110 13.1.2,
// 13.1.3, 13.2.2): true means answer 304.
func notModified(req *http.Request, e *entry) bool {
	if inm := req.Header["If-None-Match"]; len(inm) > 0 {
		if e.etag == "" {
			return false
		}
		for _, line := range inm {
			for _, t := range strings.Split(line, ",") {
				t = strings.TrimSpace(t)
				if t == "*" || opaque(t) == opaque(e.etag) {
					return true
				}
			}
		}
		return false
	}
	ims, ok := headerDate(req.Header, "If-Modified-Since")
	if !ok {
		return false
	}
	// RFC 9111 4.3.2: without Last-Modified, the stored response's Date,
	// or the time it was received, stands in for it.
	lm, ok := parseHTTPDate(e.lastMod)
	if !ok {
		if lm, ok = headerDate(e.header, "Date"); !ok {
			lm = e.respTime
		}
	}
	return !lm.After(ims)
}

// notModifiedFields are the stored fields a 304 from the cache leaves
// out (RFC 9110 15.4.5): those describing the body.
func notModifiedField(k string) bool {
	switch k {
	case "Content-Length", "Content-Encoding", "Content-Range", "Content-Type":
		return true
	}
	return false
}
