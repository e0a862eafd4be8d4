package connmgr

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects is how many redirects a call follows, as net/http's
// default policy.
const maxRedirects = 10

// CheckRedirect is the redirect policy of the clients the Manager uses
// (Do, Get, Post) and returns (Client). Set it as the CheckRedirect of
// an *http.Client you build yourself around a Manager to get the same.
//
// It follows at most 10 redirects, as net/http's default policy, and
// applies browsers' default referrer policy (strict-origin-when-cross-
// origin) to the Referer header net/http sets on each hop, which is
// otherwise the previous URL in full, query included, whatever host it
// goes to:
//   - to the same origin (scheme, host and port), the Referer is kept;
//   - to another origin, it is cut to the origin of the page it names
//     ("https://api.example.com/"), so that API keys, tokens and
//     signatures in the query or path are not handed to another host;
//   - from https to http, it is removed.
//
// Userinfo is never kept. A Referer the caller set explicitly follows the
// same rules once the redirect leaves its origin. The Manager applies the
// same policy to every redirected request it is given as a RoundTripper,
// so a client without CheckRedirect is covered too; CheckRedirect also
// keeps net/http's limit of 10 redirects.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("stopped after 10 redirects")
	}
	if len(via) > 0 {
		applyReferrerPolicy(req, via[len(via)-1].URL)
	}
	return nil
}

// redirectHop applies the same referrer policy at the transport, to a
// request net/http made to follow a redirect (req.Response is the
// redirect), so that an *http.Client built without CheckRedirect does
// not leak either. req is not changed: a copy is returned when its
// Referer must change.
func redirectHop(req *http.Request) *http.Request {
	prev := req.Response.Request
	ref := req.Header.Get("Referer")
	if prev == nil || prev.URL == nil || ref == "" {
		return req
	}
	probe := &http.Request{URL: req.URL, Header: http.Header{"Referer": {ref}}}
	applyReferrerPolicy(probe, prev.URL)
	got := probe.Header.Get("Referer")
	if got == ref {
		return req
	}
	r := req.WithContext(req.Context())
	r.Header = req.Header.Clone()
	if got == "" {
		r.Header.Del("Referer")
	} else {
		r.Header.Set("Referer", got)
	}
	return r
}

// applyReferrerPolicy rewrites req's Referer for a hop from prev to
// req.URL (strict-origin-when-cross-origin).
func applyReferrerPolicy(req *http.Request, prev *url.URL) {
	ref := req.Header.Get("Referer")
	if ref == "" || prev == nil || req.URL == nil {
		return
	}
	switch {
	case strings.EqualFold(prev.Scheme, "https") && !strings.EqualFold(req.URL.Scheme, "https"):
		req.Header.Del("Referer")
	case sameOrigin(prev, req.URL):
		if u, err := url.Parse(ref); err == nil && u.User != nil {
			u.User = nil
			req.Header.Set("Referer", u.String())
		}
	default:
		u, err := url.Parse(ref)
		if err != nil || u.Scheme == "" || u.Host == "" {
			req.Header.Del("Referer")
			return
		}
		req.Header.Set("Referer", strings.ToLower(u.Scheme)+"://"+u.Host+"/")
	}
}

// sameOrigin reports whether a and b have the same scheme, host and port
// (an implied port counts as written).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		originPort(a) == originPort(b)
}

func originPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}
