package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
)

// result is what a run of the binary gave.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the connmgr binary with args, stdin and extra environment
// variables ("K=V"), and returns its exit code and output.
func cli(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running connmgr %v: %v", args, err)
	}
	return r
}

// check fails unless r has the exit code and its outputs contain the
// substrings; a nil list for stderr means stderr must be empty.
func (r result) check(t *testing.T, code int, stdout []string, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if stderr == nil && r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}
}

func TestCLIHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage:", "get", "request", "config", "demo", "Examples:", "Exit codes:"}},
		{[]string{"help", "get"}, []string{"Usage: connmgr get [flags] URL", "--header", "Examples:", "Exit codes:"}},
		{[]string{"get", "--help"}, []string{"Usage: connmgr get [flags] URL", "-H, --header", "-d, --data", "-o, --output", "-v, --verbose", "--config FILE", "connmgr get -v --config connmgr.yaml"}},
		{[]string{"head", "-h"}, []string{"Usage: connmgr head [flags] URL", "connmgr head -i"}},
		{[]string{"post", "--help"}, []string{"Usage: connmgr post [flags] URL", "connmgr post -H"}},
		{[]string{"put", "--help"}, []string{"Usage: connmgr put [flags] URL", "connmgr put "}},
		{[]string{"delete", "--help"}, []string{"Usage: connmgr delete [flags] URL", "connmgr delete -v"}},
		{[]string{"request", "--help"}, []string{"Usage: connmgr request -X METHOD [flags] URL", "-X, --request METHOD", "connmgr request -X PATCH"}},
		{[]string{"config", "--help"}, []string{"Usage: connmgr config <command>", "sample", "check", "Examples:"}},
		{[]string{"help", "config"}, []string{"Usage: connmgr config <command>"}},
		{[]string{"config", "sample", "--help"}, []string{"Usage: connmgr config sample", "Example:"}},
		{[]string{"config", "help", "check"}, []string{"Usage: connmgr config check [flags] FILE", "--env-prefix", "Exit codes:", "Examples:"}},
		{[]string{"config", "check", "--help"}, []string{"Usage: connmgr config check [flags] FILE"}},
		{[]string{"demo", "--help"}, []string{"Usage: connmgr demo [flags]", "-config", "Example:", "demo --config policy.yaml"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cli(t, "", nil, tt.args...).check(t, 0, tt.want, nil)
		})
	}
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"get"}, []string{"connmgr get: missing URL", "Usage: connmgr get"}},
		{[]string{"get", "ftp://x"}, []string{`"ftp://x" is not an http:// or https:// URL`}},
		{[]string{"get", "http://a", "http://b"}, []string{`unexpected argument "http://b"`}},
		{[]string{"get", "--bogus", "http://a"}, []string{"flag provided but not defined: -bogus"}},
		{[]string{"get", "-d", "x", "http://a"}, []string{"get sends no body"}},
		{[]string{"get", "-H", "NoColon", "http://a"}, []string{`want "Name: value"`}},
		{[]string{"post", "-d", "@/does/not/exist", "http://a"}, []string{"--data: open /does/not/exist"}},
		{[]string{"request", "-X", "BAD METHOD", "http://a"}, []string{`"BAD METHOD" is not an HTTP method`}},
		{[]string{"config"}, []string{"Usage: connmgr config <command>"}},
		{[]string{"config", "frob"}, []string{`unknown command "frob"`}},
		{[]string{"config", "check"}, []string{"missing FILE"}},
		{[]string{"config", "sample", "x"}, []string{`unexpected argument "x"`}},
		{[]string{"demo", "--config", "/does/not/exist.yaml"}, []string{"connmgr demo: --config: open /does/not/exist.yaml"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cli(t, "", nil, tt.args...).check(t, 2, nil, tt.want)
		})
	}
}

func TestCLIConfigSample(t *testing.T) {
	r := cli(t, "", nil, "config", "sample")
	r.check(t, 0, []string{"default:", "endpoints:"}, nil)
	if r.stdout != connmgr.SampleConfig() {
		t.Error("stdout is not connmgr.SampleConfig()")
	}
	path := filepath.Join(t.TempDir(), "connmgr.yaml")
	if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, "", nil, "config", "check", path).check(t, 0, []string{"is valid: 5 endpoints", "api.primary.com:"}, nil)
}

func TestCLIConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `default:
  timeout: 2s
  retry: {max_attempts: 4}
endpoints:
  api.example.com:
    auth: {bearer_token: "${CHECK_TOKEN}"}
    timeout: 1s
`)
	env := []string{"CHECK_TOKEN=s3cr3t-token"}

	r := cli(t, "", env, "config", "check", good)
	r.check(t, 0, []string{
		good + " is valid: 1 endpoint (api.example.com) and default",
		"Secrets are REDACTED",
		// The endpoint's effective settings: its own, default's, built-in.
		"  api.example.com:\n    timeout: 1s\n    total_timeout: 30s\n    retry:\n      max_attempts: 4\n",
		"bearer_token: REDACTED",
	}, nil)
	if strings.Contains(r.stdout, "s3cr3t") {
		t.Error("the token reached stdout")
	}

	r = cli(t, "", env, "config", "check", "--json", good)
	r.check(t, 0, nil, nil)
	var doc struct {
		Endpoints map[string]struct {
			Timeout string `json:"timeout"`
			Retry   struct {
				MaxAttempts int `json:"max_attempts"`
			} `json:"retry"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
	}
	if ep := doc.Endpoints["api.example.com"]; ep.Timeout != "1s" || ep.Retry.MaxAttempts != 4 {
		t.Errorf("--json endpoint = %+v", ep)
	}

	// Environment overrides.
	r = cli(t, "", append(env, "CM_ENDPOINTS__API_EXAMPLE_COM__TIMEOUT=3s"), "config", "check", "--env-prefix", "CM_", good)
	r.check(t, 0, []string{"  api.example.com:\n    timeout: 3s\n"}, nil)

	// Without the variable the file is invalid.
	cli(t, "", nil, "config", "check", good).check(t, 1, nil, []string{"line 6: endpoints[\"api.example.com\"].auth.bearer_token: environment variable CHECK_TOKEN is not set"})

	bad := write("bad.json", `{
  "default": {"timeout": 5, "retry": {"max_attempts": -1}},
  "endpoints": {"api.example.com": {"timout": "1s", "fallback": "nowhere.example.com"}}
}`)
	r = cli(t, "", nil, "config", "check", bad)
	r.check(t, 1, nil, []string{
		"invalid config in " + bad + " (4 problems):",
		"line 2: default.timeout: a duration needs a unit",
		"line 2: default.retry.max_attempts: must be >= 1, got -1",
		`line 3: endpoints["api.example.com"].timout: unknown key (did you mean "timeout"?)`,
		`line 3: endpoints["api.example.com"].fallback: names no endpoint`,
	})
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	cli(t, "", nil, "config", "check", filepath.Join(dir, "missing.yaml")).check(t, 1, nil, []string{"no such file or directory"})
}

// testUpstream is a local server for the request commands: /ok, /flaky (503
// twice, then 200), /missing (404), /echo (the request, as JSON),
// /redirect (302 to /ok).
type testUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	flaky int
}

func newUpstream(t *testing.T) *testUpstream {
	u := &testUpstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=very-secret")
		io.WriteString(w, "hello\n")
	})
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.flaky++
		n := u.flaky
		u.mu.Unlock()
		if n%3 != 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "finally\n")
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such thing", http.StatusNotFound)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		headers := map[string]string{}
		for k := range r.Header {
			headers[k] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "body": string(body), "headers": headers, "host": r.Host})
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	u.Server = httptest.NewServer(mux)
	t.Cleanup(u.Close)
	return u
}

type echoed struct {
	Method  string            `json:"method"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
	Host    string            `json:"host"`
}

func parseEcho(t *testing.T, s string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		t.Fatalf("not an echo: %v\n%s", err, s)
	}
	return e
}

func TestCLIRequests(t *testing.T) {
	u := newUpstream(t)

	t.Run("get", func(t *testing.T) {
		cli(t, "", nil, "get", u.URL+"/ok").check(t, 0, []string{"hello\n"}, nil)
	})
	t.Run("status 404 exits 1 and still writes the body", func(t *testing.T) {
		cli(t, "", nil, "get", u.URL+"/missing").check(t, 1, []string{"no such thing"}, nil)
	})
	t.Run("no response exits 3", func(t *testing.T) {
		cli(t, "", nil, "get", "http://"+closedAddr(t)+"/x").check(t, 3, nil, []string{"connmgr get: GET http://", "retries exhausted", "connection refused"})
	})
	t.Run("post data", func(t *testing.T) {
		r := cli(t, "", nil, "post", "-d", "a=1&b=2", u.URL+"/echo")
		r.check(t, 0, nil, nil)
		e := parseEcho(t, r.stdout)
		if e.Method != "POST" || e.Body != "a=1&b=2" || e.Headers["Content-Type"] != "application/x-www-form-urlencoded" {
			t.Errorf("echo = %+v", e)
		}
	})
	t.Run("put data from a file, own content type", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "item.json")
		os.WriteFile(f, []byte(`{"n":1}`), 0o600)
		r := cli(t, "", nil, "put", "--data", "@"+f, "-H", "Content-Type: application/json", u.URL+"/echo")
		e := parseEcho(t, r.stdout)
		if r.code != 0 || e.Method != "PUT" || e.Body != `{"n":1}` || e.Headers["Content-Type"] != "application/json" {
			t.Errorf("code %d, echo = %+v", r.code, e)
		}
	})
	t.Run("data from stdin", func(t *testing.T) {
		r := cli(t, "from stdin", nil, "request", "-X", "patch", "-d", "@-", u.URL+"/echo")
		e := parseEcho(t, r.stdout)
		if r.code != 0 || e.Method != "PATCH" || e.Body != "from stdin" {
			t.Errorf("code %d, echo = %+v", r.code, e)
		}
	})
	t.Run("request defaults to GET, or POST with data", func(t *testing.T) {
		if e := parseEcho(t, cli(t, "", nil, "request", u.URL+"/echo").stdout); e.Method != "GET" {
			t.Errorf("method = %s", e.Method)
		}
		if e := parseEcho(t, cli(t, "", nil, "request", "-d", "x", u.URL+"/echo").stdout); e.Method != "POST" {
			t.Errorf("method = %s", e.Method)
		}
	})
	t.Run("delete and headers", func(t *testing.T) {
		r := cli(t, "", nil, "delete", "-H", "X-One: 1", "--header", "X-Two: 2", "-H", "Host: other.example", u.URL+"/echo")
		e := parseEcho(t, r.stdout)
		if e.Method != "DELETE" || e.Headers["X-One"] != "1" || e.Headers["X-Two"] != "2" || e.Host != "other.example" {
			t.Errorf("echo = %+v", e)
		}
	})
	t.Run("head with -i", func(t *testing.T) {
		r := cli(t, "", nil, "head", "-i", u.URL+"/ok")
		r.check(t, 0, []string{"HTTP/1.1 200 OK\r\n", "Set-Cookie: session=very-secret\r\n"}, nil)
		if strings.Contains(r.stdout, "hello") {
			t.Error("HEAD printed a body")
		}
	})
	t.Run("output to a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "out.txt")
		cli(t, "", nil, "get", "-o", f, u.URL+"/ok").check(t, 0, nil, nil)
		if b, _ := os.ReadFile(f); string(b) != "hello\n" {
			t.Errorf("file holds %q", b)
		}
	})
	t.Run("redirects only with -L", func(t *testing.T) {
		r := cli(t, "", nil, "get", "-i", u.URL+"/redirect")
		r.check(t, 0, []string{"302 Found", "Location: /ok"}, nil)
		cli(t, "", nil, "get", "-L", u.URL+"/redirect").check(t, 0, []string{"hello\n"}, nil)
	})
	t.Run("flags after the URL", func(t *testing.T) {
		cli(t, "", nil, "get", u.URL+"/ok", "-o", "-").check(t, 0, []string{"hello\n"}, nil)
	})
}

func TestCLIVerbose(t *testing.T) {
	u := newUpstream(t)
	r := cli(t, "", nil, "get", "-v", "-H", "Authorization: Bearer my-secret", u.URL+"/flaky?token=qsecret&page=2")
	addr := strings.TrimPrefix(u.URL, "http://")
	r.check(t, 0, []string{"finally\n"}, []string{
		"* endpoint default: timeout 10s per try, 30s in all; up to 3 attempts, backoff 100ms..5s, retry on 408,429,500,502,503,504",
		"> attempt 1: GET " + u.URL + "/flaky?token=REDACTED&page=2 (upstream " + addr + ")",
		"> Authorization: REDACTED",
		"< attempt 1: HTTP/1.1 503 Service Unavailable in ",
		"< Retry-After: 0",
		"! attempt 1: will retry after a backoff",
		"< attempt 2: HTTP/1.1 503 Service Unavailable",
		"< attempt 3: HTTP/1.1 200 OK in ",
		"* 200 OK, 8 body bytes, 3 attempts, ",
	})
	for _, secret := range []string{"my-secret", "qsecret"} {
		if strings.Contains(r.stderr, secret) {
			t.Errorf("stderr shows %q:\n%s", secret, r.stderr)
		}
	}
	if strings.Count(r.stderr, "> attempt ") != 3 {
		t.Errorf("want 3 attempts:\n%s", r.stderr)
	}

	t.Run("transport failure", func(t *testing.T) {
		r := cli(t, "", nil, "get", "-v", "http://"+closedAddr(t)+"/x")
		r.check(t, 3, nil, []string{
			"! attempt 1: failed after ", "connection refused",
			"! attempt 3: no retry: that was the last of 3 attempts (retry.max_attempts)",
			"* no response after 3 attempts", "every attempt failed",
		})
	})
}

func TestCLIRequestWithConfig(t *testing.T) {
	u := newUpstream(t)
	addr := strings.TrimPrefix(u.URL, "http://")
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`default:
  retry: {max_attempts: 1}
endpoints:
  %q:
    auth: {bearer_token: "${CLI_TOKEN}"}
    headers: {X-Team: payments}
    retry: {max_attempts: 2, initial_backoff: 10ms}
`, addr)), 0o600)
	env := []string{"CLI_TOKEN=tok-123"}

	r := cli(t, "", env, "get", "--config", path, u.URL+"/echo")
	e := parseEcho(t, r.stdout)
	if r.code != 0 || e.Headers["Authorization"] != "Bearer tok-123" || e.Headers["X-Team"] != "payments" {
		t.Errorf("code %d, echo = %+v", r.code, e)
	}

	// Two attempts, not three: both 503, so the 503 is the answer.
	r = cli(t, "", env, "get", "-v", "--config", path, u.URL+"/flaky")
	r.check(t, 1, []string{"busy"}, []string{
		"* endpoint " + addr + ": timeout 10s per try, 30s in all; up to 2 attempts, backoff 10ms..5s",
		"> Authorization: REDACTED",
		"> X-Team: payments",
		"! attempt 2: no retry: that was the last of 2 attempts (retry.max_attempts)",
		"* 503 Service Unavailable",
	})
	if strings.Contains(r.stderr, "tok-123") {
		t.Errorf("stderr shows the token:\n%s", r.stderr)
	}

	// Environment overrides through --env-prefix.
	r = cli(t, "", append(env, "CLI_DEFAULT__HEADERS__X=1", "CLI_DEFAULT__RETRY__MAX_ATTEMPTS=2"), "get", "--config", path, "--env-prefix", "CLI_", u.URL+"/ok")
	r.check(t, 2, nil, []string{"default.headers is a map"})

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("default:\n  timeout: 10\n"), 0o600)
	cli(t, "", nil, "get", "--config", bad, u.URL+"/ok").check(t, 2, nil, []string{"connmgr get: --config: invalid config in " + bad + ": line 2: default.timeout: a duration needs a unit"})
}

func TestCLIDemoWithConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(path, []byte("default:\n  timeout: 2s\n  retry: {max_attempts: 2}\nendpoints:\n  flaky: {retry: {max_attempts: 5}}\n"), 0o600)
	r := cli(t, "", nil, "demo", "--config", path, "--duration", "1s", "--workers", "2")
	r.check(t, 0, []string{"connmgr demo: 5 local upstreams", "what happened:"}, nil)
	// Every upstream has its own row, the ones the file does not name too.
	summary := parseSummary(t, r.stdout)
	names := make([]string, 0, len(summary))
	for name := range summary {
		names = append(names, name)
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); got != "flaky,healthy,limited,resetting,slow" {
		t.Errorf("summary rows = %s", got)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
