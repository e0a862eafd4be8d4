// Package redact removes secrets from URLs and headers before they reach
// logs, errors, spans, Stats or a status page. It is the one place that
// decides what is secret.
package redact

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Mask replaces every secret value.
const Mask = "REDACTED"

// DefaultHeaders are always secret: credentials (Authorization and its
// proxy form, the usual API key header, and the token headers of GitLab
// and Vault) and session cookies.
var DefaultHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Api-Key", "X-Auth-Token", "X-Vault-Token",
}

// DefaultQueryKeys are URL query parameters that are always secret.
var DefaultQueryKeys = []string{
	"access_token", "api_key", "apikey", "api-key", "auth", "client_secret",
	"code", "key", "password", "passwd", "secret", "sig", "signature", "token",
	"refresh_token", "id_token", "x-amz-signature", "x-goog-signature",
}

// Redactor knows which headers and query keys are secret. The zero value
// is not usable; build one with New. A Redactor is immutable and safe for
// concurrent use.
type Redactor struct {
	headers   map[string]bool // canonical header names
	queryKeys map[string]bool // lower-case query keys
}

// New returns a Redactor for the default lists plus extra headers and
// query keys (case-insensitive).
func New(extraHeaders, extraQueryKeys []string) *Redactor {
	r := &Redactor{headers: map[string]bool{}, queryKeys: map[string]bool{}}
	for _, h := range append(append([]string(nil), DefaultHeaders...), extraHeaders...) {
		r.headers[http.CanonicalHeaderKey(strings.TrimSpace(h))] = true
	}
	for _, k := range append(append([]string(nil), DefaultQueryKeys...), extraQueryKeys...) {
		r.queryKeys[strings.ToLower(strings.TrimSpace(k))] = true
	}
	return r
}

// SecretHeader reports whether the header's value is secret.
func (r *Redactor) SecretHeader(name string) bool {
	return r.headers[http.CanonicalHeaderKey(name)]
}

// SecretQueryKey reports whether the query parameter's value is secret.
func (r *Redactor) SecretQueryKey(key string) bool {
	return r.queryKeys[strings.ToLower(key)]
}

// URL returns u as a string with the password in its userinfo (and the
// whole userinfo when it holds only a user name that may be a token),
// secret query values, and the fragment removed. A nil URL gives "".
func (r *Redactor) URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		c.User = url.User(Mask)
	}
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		c.RawQuery = r.query(c.RawQuery)
	}
	return c.String()
}

// String redacts a raw URL string. A string that does not parse is
// replaced entirely, since it cannot be inspected.
func (r *Redactor) String(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mask
	}
	return r.URL(u)
}

// query redacts secret values in a raw query, keeping order and the
// encoding of everything else.
func (r *Redactor) query(raw string) string {
	parts := strings.Split(raw, "&")
	changed := false
	for i, p := range parts {
		key, _, hasValue := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if hasValue && r.SecretQueryKey(key) {
			parts[i] = p[:strings.IndexByte(p, '=')+1] + Mask
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return strings.Join(parts, "&")
}

// Header returns a copy of h with every secret value replaced by Mask.
func (r *Redactor) Header(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if r.SecretHeader(k) {
			masked := make([]string, len(vs))
			for i := range masked {
				masked[i] = Mask
			}
			out[k] = masked
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Headers lists the secret header names, sorted, for documentation and
// status output.
func (r *Redactor) Headers() []string {
	out := make([]string, 0, len(r.headers))
	for h := range r.headers {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
