package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// -v prints response and request headers; those that carry a URL carry
// its query too, and must be redacted as the request URL is.
func TestVerboseRedactsURLHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("Content-Location", "/login?session=s&token=SECRET-CL")
			http.Redirect(w, r, "/cb?code=SECRET-CODE&token=SECRET-TOKEN&page=2", http.StatusFound)
		case "/a":
			http.Redirect(w, r, "/b", http.StatusFound) // the client sends Referer: /a?access_token=...
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"Location and Content-Location", srv.URL + "/login", []string{
			"< Location: /cb?code=REDACTED&token=REDACTED&page=2",
			"< Content-Location: /login?session=s&token=REDACTED",
		}},
		{"Referer", srv.URL + "/a?access_token=SECRET-AT", []string{
			"> Referer: " + srv.URL + "/a?access_token=REDACTED",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "get", "-v", "-L", tc.url)
			if code != exitOK {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			for _, line := range strings.Split(stderr, "\n") {
				if strings.Contains(line, "SECRET") {
					t.Errorf("-v printed a secret: %s", line)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}
