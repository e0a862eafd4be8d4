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

// A usage error shows the argument at fault, but never the secrets a URL
// or a header can hold.
func TestUsageErrorsRedactArguments(t *testing.T) {
	const bad = "ftp://alice:PASSWORD@example.com/?token=TOKEN"
	const extra = "http://bob:PASSWORD@example.com/?access_token=TOKEN&page=2"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", bad}, `"ftp://REDACTED@example.com/?token=REDACTED" is not an http:// or https:// URL`},
		{[]string{"get", "http://a", extra}, `unexpected argument "http://REDACTED@example.com/?access_token=REDACTED&page=2"`},
		{[]string{"get", "-H", "Authorization Bearer TOKEN", "http://a"}, `-H/--header #1: want "Name: value"`},
		{[]string{"get", "-H", "Accept: x", "-H", "TOKEN", "http://a"}, `-H/--header #2: want "Name: value"`},
		{[]string{extra}, `unknown command "http://REDACTED@example.com/?access_token=REDACTED&page=2"`},
		{[]string{"help", extra}, `unknown command "http://REDACTED@example.com/`},
		{[]string{"config", extra}, `unknown command "http://REDACTED@example.com/`},
		{[]string{"config", "check", "a.yaml", extra}, `unexpected argument "http://REDACTED@example.com/`},
		{[]string{"config", "sample", extra}, `unexpected argument "http://REDACTED@example.com/`},
		{[]string{"demo", extra}, `unexpected argument "http://REDACTED@example.com/`},
		{[]string{"get", "http://a", "http://[::1?token=TOKEN"}, `unexpected argument "REDACTED"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if strings.Contains(stderr, "PASSWORD") || strings.Contains(stderr, "TOKEN") {
				t.Errorf("stderr shows a secret:\n%s", stderr)
			}
		})
	}
}

// The error of a call that got no response names the URL redacted.
func TestTransportErrorRedactsURL(t *testing.T) {
	code, _, stderr := runCLI(t, "get", "-v", "http://alice:PASSWORD@127.0.0.1:1/x?token=TOKEN&access_token=AT")
	if code != exitTransport {
		t.Errorf("exit %d, want %d", code, exitTransport)
	}
	if strings.Contains(stderr, "PASSWORD") || strings.Contains(stderr, "TOKEN") || strings.Contains(stderr, "=AT") {
		t.Errorf("stderr shows a secret:\n%s", stderr)
	}
}
