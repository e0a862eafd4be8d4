package cache

import (
	"context"
	"net/http"
)

// unsafeMethod reports whether a method is not safe (RFC 9110 9.2.1);
// an unknown method counts as unsafe.
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, "":
		return false
	}
	return true
}

// invalidate is RFC 9111 section 4.4: a non-error response (2xx, 3xx)
// to an unsafe method makes the stored responses of the target URI
// invalid, and those of Location and Content-Location when they share
// its origin.
func (c *Cache) invalidate(ctx context.Context, req *http.Request, resp *http.Response) {
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return
	}
	c.removeURI(ctx, req.URL.String(), req)
	for _, name := range []string{"Location", "Content-Location"} {
		v := resp.Header.Get(name)
		if v == "" {
			continue
		}
		u, err := req.URL.Parse(v)
		if err != nil || !sameOrigin(u, req.URL) {
			continue
		}
		c.removeURI(ctx, u.String(), req)
	}
}

func (c *Cache) removeURI(ctx context.Context, raw string, req *http.Request) {
	u, err := req.URL.Parse(raw)
	if err != nil {
		return
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		c.backend.remove(ctx, primaryKey(m, u))
	}
	c.backend.remove(ctx, partialKey(primaryKey(http.MethodGet, u)))
	c.stats.invalidated.Add(1)
}
