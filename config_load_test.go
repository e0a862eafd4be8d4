package connmgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeEnv is an environment for the loader that is not the process's.
func fakeEnv(vars map[string]string) environment {
	return environment{
		lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		environ: func() []string {
			out := make([]string, 0, len(vars))
			for k, v := range vars {
				out = append(out, k+"="+v)
			}
			sort.Strings(out)
			return out
		},
	}
}

func parseYAML(t *testing.T, src string, env map[string]string) (Config, error) {
	t.Helper()
	return parseConfig([]byte(src), "yaml", "test.yaml", "", fakeEnv(env))
}

// problemsOf returns the problems of a *ConfigError, failing the test
// when err is something else.
func problemsOf(t *testing.T, err error) []FieldError {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want a *ConfigError", err, err)
	}
	return ce.Problems
}

// wantProblem fails unless err holds a problem at line (0: any line)
// whose Path is path and whose Problem contains each of substrings.
func wantProblem(t *testing.T, err error, line int, path string, substrings ...string) {
	t.Helper()
	for _, p := range problemsOf(t, err) {
		if p.Path != path || (line != 0 && p.Line != line) {
			continue
		}
		ok := true
		for _, s := range substrings {
			if !strings.Contains(p.Problem, s) {
				ok = false
			}
		}
		if ok {
			return
		}
	}
	t.Errorf("no problem at line %d, path %s, containing %q; got:\n%v", line, path, substrings, err)
}

const fullYAML = `# every kind of value
default:
  timeout: 2s
  total_timeout: 1m30s
  retry:
    max_attempts: 4
    initial_backoff: 50ms
    max_backoff: 2s
    retry_on: [503, 504]
    max_retry_after: 10s
    non_idempotent: false
    max_buffered_body: 4096
    budget: {ratio: 0.5, min_per_second: 2.5, disabled: false}
  headers: {User-Agent: "svc/1.0"}
  transport:
    max_idle_conns_per_host: 8
    max_conns_per_host: 16
    idle_conn_timeout: 1m
    dial_timeout: 3s
    keep_alive: 15s
    tls_handshake_timeout: 4s
    disable_http2: true
  tls: {min_version: "1.3", ca_mode: append, pins_only: false, insecure_skip_verify: false}
  rate_limit: {rate: 10, per: 1s, burst: 5, max_wait: 100ms, disabled: false}
  circuit_breaker: {consecutive_failures: 7, recovery_timeout: 20s, disabled: false}
  max_concurrent: 100
endpoints:
  api.example.com:
    auth: {bearer_token: "${TOKEN}"}
    retry: {retry_on: []}
    fallback: backup.example.com
  backup.example.com:
    auth: {username: svc, password: "${PASSWORD:-hunter2}"}
    tls: {pins: ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="], server_name: backup.internal}
  "*.internal.example.com":
    auth: {api_key: k, api_key_header: X-Key}
    rate_limit: {disabled: true}
    max_concurrent: -1
redact:
  headers: [X-Session]
  query_keys: [sess]
`

const fullJSON = `{
	"default": {
		"timeout": "2s",
		"total_timeout": "1m30s",
		"retry": {
			"max_attempts": 4,
			"initial_backoff": "50ms",
			"max_backoff": "2s",
			"retry_on": [503, 504],
			"max_retry_after": "10s",
			"non_idempotent": false,
			"max_buffered_body": 4096,
			"budget": {"ratio": 0.5, "min_per_second": 2.5, "disabled": false}
		},
		"headers": {"User-Agent": "svc\/1.0"},
		"transport": {
			"max_idle_conns_per_host": 8,
			"max_conns_per_host": 16,
			"idle_conn_timeout": "1m",
			"dial_timeout": "3s",
			"keep_alive": "15s",
			"tls_handshake_timeout": "4s",
			"disable_http2": true
		},
		"tls": {"min_version": "1.3", "ca_mode": "append", "pins_only": false, "insecure_skip_verify": false},
		"rate_limit": {"rate": 10, "per": "1s", "burst": 5, "max_wait": "100ms", "disabled": false},
		"circuit_breaker": {"consecutive_failures": 7, "recovery_timeout": "20s", "disabled": false},
		"max_concurrent": 100
	},
	"endpoints": {
		"api.example.com": {
			"auth": {"bearer_token": "${TOKEN}"},
			"retry": {"retry_on": []},
			"fallback": "backup.example.com"
		},
		"backup.example.com": {
			"auth": {"username": "svc", "password": "${PASSWORD:-hunter2}"},
			"tls": {"pins": ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="], "server_name": "backup.internal"}
		},
		"*.internal.example.com": {
			"auth": {"api_key": "k", "api_key_header": "X-Key"},
			"rate_limit": {"disabled": true},
			"max_concurrent": -1
		}
	},
	"redact": {"headers": ["X-Session"], "query_keys": ["sess"]}
}
`

func fullConfig() Config {
	return Config{
		Default: EndpointConfig{
			Timeout:      2 * time.Second,
			TotalTimeout: 90 * time.Second,
			Retry: RetryConfig{
				MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second,
				RetryOn: []int{503, 504}, MaxRetryAfter: 10 * time.Second, NonIdempotent: Bool(false),
				MaxBufferedBody: 4096,
				Budget:          RetryBudgetConfig{Ratio: 0.5, MinPerSecond: 2.5, Disabled: Bool(false)},
			},
			Headers: map[string]string{"User-Agent": "svc/1.0"},
			Transport: TransportConfig{
				MaxIdleConnsPerHost: 8, MaxConnsPerHost: 16, IdleConnTimeout: time.Minute,
				DialTimeout: 3 * time.Second, KeepAlive: 15 * time.Second, TLSHandshakeTimeout: 4 * time.Second,
				DisableHTTP2: Bool(true),
			},
			TLS:            TLSConfig{MinVersion: "1.3", CAMode: "append", PinsOnly: Bool(false), InsecureSkipVerify: Bool(false)},
			RateLimit:      RateLimitConfig{Rate: 10, Per: time.Second, Burst: 5, MaxWait: 100 * time.Millisecond, Disabled: Bool(false)},
			CircuitBreaker: BreakerConfig{ConsecutiveFailures: 7, RecoveryTimeout: 20 * time.Second, Disabled: Bool(false)},
			MaxConcurrent:  100,
		},
		Endpoints: map[string]EndpointConfig{
			"api.example.com": {
				Auth:     AuthConfig{BearerToken: "tok"},
				Retry:    RetryConfig{RetryOn: []int{}},
				Fallback: "backup.example.com",
			},
			"backup.example.com": {
				Auth: AuthConfig{Username: "svc", Password: "hunter2"},
				TLS:  TLSConfig{Pins: []string{"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, ServerName: "backup.internal"},
			},
			"*.internal.example.com": {
				Auth:          AuthConfig{APIKey: "k", APIKeyHeader: "X-Key"},
				RateLimit:     RateLimitConfig{Disabled: Bool(true)},
				MaxConcurrent: -1,
			},
		},
		Redact: RedactConfig{Headers: []string{"X-Session"}, QueryKeys: []string{"sess"}},
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigYAMLAndJSONAreEqual(t *testing.T) {
	t.Setenv("TOKEN", "tok")
	dir := t.TempDir()
	want := fullConfig()
	for _, name := range []string{"c.yaml", "c.yml", "C.YAML"} {
		got, err := LoadConfig(writeFile(t, dir, name, fullYAML))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	got, err := LoadConfig(writeFile(t, dir, "c.json", fullJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("json:\n got %+v\nwant %+v", got, want)
	}
	// An empty list is kept as such: it does not inherit.
	if rs := got.Endpoints["api.example.com"].Retry.RetryOn; rs == nil || len(rs) != 0 {
		t.Errorf("retry_on: [] decoded as %#v, want an empty non-nil list", rs)
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadConfig(writeFile(t, dir, "c.toml", "a = 1")); err == nil || !strings.Contains(err.Error(), ".yaml, .yml or .json") {
		t.Errorf("unknown extension: err = %v", err)
	}
	big := writeFile(t, dir, "big.yaml", "# "+strings.Repeat("x", maxConfigFileSize)+"\n{}\n")
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: err = %v", err)
	}
	p := writeFile(t, dir, "bad.yaml", "default:\n  timeout: 5\n")
	_, err := LoadConfig(p)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Source != p {
		t.Fatalf("err = %v, want a *ConfigError with Source %s", err, p)
	}
	if want := "connmgr: invalid config in " + p + ": line 2: default.timeout: a duration needs a unit"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message = %q, want prefix %q", err.Error(), want)
	}
}

func TestParseConfigStrict(t *testing.T) {
	tests := []struct {
		name   string
		format string
		src    string
		line   int
		path   string
		want   []string
	}{
		{"unknown top-level key", "yaml", "default: {}\nendpoint: {}\n", 2, "endpoint", []string{`did you mean "endpoints"?`}},
		{"unknown nested key", "yaml", "default:\n  retry:\n    max_attempt: 3\n", 3, "default.retry.max_attempt", []string{`did you mean "max_attempts"?`}},
		{"unknown key far from any", "yaml", "default:\n  zzzzzzzz: 1\n", 2, "default.zzzzzzzz", []string{"unknown key; known keys here:", "timeout"}},
		{"wrong case", "yaml", "default:\n  Timeout: 1s\n", 2, "default.Timeout", []string{`did you mean "timeout"?`}},
		{"unknown key in endpoint", "yaml", "endpoints:\n  api.x.com:\n    rate_limit: {rate: 1, burts: 2}\n", 3, `endpoints["api.x.com"].rate_limit.burts`, []string{`"burst"`}},
		{"unknown key in json", "json", "{\n  \"default\": {\n    \"timeuot\": \"1s\"\n  }\n}\n", 3, "default.timeuot", []string{`"timeout"`}},
		{"duration without unit", "yaml", "default:\n  timeout: 10\n", 2, "default.timeout", []string{"needs a unit", `"10"`}},
		{"duration as json number", "json", "{\"default\": {\"timeout\": 10}}", 1, "default.timeout", []string{"needs a unit"}},
		{"zero duration without unit", "yaml", "default:\n  timeout: 0\n", 2, "default.timeout", []string{"needs a unit"}},
		{"bad duration", "yaml", "default:\n  timeout: 10 seconds\n", 2, "default.timeout", []string{"not a duration"}},
		{"fraction for a whole number", "yaml", "default:\n  retry: {max_attempts: 2.5}\n", 2, "default.retry.max_attempts", []string{"whole number"}},
		{"string for a number", "yaml", "default:\n  retry:\n    max_attempts: three\n", 3, "default.retry.max_attempts", []string{"must be a whole number", `"three"`}},
		{"json string for a number", "json", "{\"default\": {\"retry\": {\"max_attempts\": \"3\"}}}", 1, "default.retry.max_attempts", []string{"must be a whole number"}},
		{"second of two on a line", "yaml", "default:\n  retry: {max_attempts: 2, max_backoff: x}\n", 2, "default.retry.max_backoff", []string{"not a duration"}},
		{"string for a bool", "yaml", "default:\n  transport: {disable_http2: maybe}\n", 2, "default.transport.disable_http2", []string{"must be true or false"}},
		{"string for a float", "yaml", "default:\n  rate_limit: {rate: fast}\n", 2, "default.rate_limit.rate", []string{"must be a number"}},
		{"scalar for a list", "yaml", "default:\n  retry: {retry_on: 503}\n", 2, "default.retry.retry_on", []string{"must be a list"}},
		{"scalar for a block", "yaml", "default:\n  retry: 3\n", 2, "default.retry", []string{"must be a mapping"}},
		{"list for a scalar", "yaml", "default:\n  fallback: [a, b]\n", 2, "default.fallback", []string{"cannot unmarshal"}},
		{"duplicate key", "yaml", "default:\n  timeout: 1s\n  timeout: 2s\n", 3, "default.timeout", []string{"already set on line 2"}},
		{"duplicate endpoint", "yaml", "endpoints:\n  a.com: {}\n  a.com: {}\n", 3, `endpoints["a.com"]`, []string{"already set on line 2"}},
		{"duplicate key in json", "json", "{\"default\": {},\n \"default\": {}}", 2, "default", []string{"already set on line 1"}},
		{"empty file", "yaml", "", 0, "", []string{"no settings", "{}"}},
		{"comments only", "yaml", "# nothing\n", 0, "", []string{"no settings"}},
		{"empty json", "json", "  \n", 0, "", []string{"no settings"}},
		{"two documents", "yaml", "default: {}\n---\ndefault: {}\n", 2, "", []string{"more than one YAML document"}},
		{"top level is a list", "yaml", "- a\n- b\n", 1, "", []string{"must hold a mapping"}},
		{"top level is null", "yaml", "null\n", 1, "", []string{"must hold a mapping"}},
		{"yaml syntax error", "yaml", "default:\n  timeout: 1s\n bad: [\n", 0, "", []string{"did not find expected key"}},
		{"tab indentation", "yaml", "default:\n\ttimeout: 1s\n", 2, "", []string{"not tabs"}},
		{"json syntax error", "json", "{\n  \"default\": {\n    \"timeout\": \"1s\",\n  }\n}\n", 4, "", []string{"invalid JSON"}},
		{"json trailing data", "json", "{}\n{}\n", 0, "", []string{"after the top-level value"}},
		{"json truncated", "json", "{\"default\": {\n", 0, "", []string{"unexpected end"}},
		{"yaml in a json file", "json", "default:\n  timeout: 1s\n", 1, "", []string{"invalid JSON"}},
		{"unknown format", "toml", "{}", 0, "", []string{"unknown format"}},
		{"key with ${}", "yaml", "endpoints:\n  ${HOST}: {}\n", 2, `endpoints["${HOST}"]`, []string{"values only"}},
		{"mapping key is not a scalar", "yaml", "default:\n  ? [a]\n  : 1\n", 2, "default", []string{"plain strings"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.src), tt.format, "f", "", fakeEnv(nil))
			if err == nil {
				t.Fatal("no error")
			}
			wantProblem(t, err, tt.line, tt.path, tt.want...)
		})
	}
}

func TestParseConfigTabsInJSON(t *testing.T) {
	// Go's json.MarshalIndent(v, "", "\t") output must load: tabs are
	// not allowed in YAML indentation, but a .json file is read as JSON.
	src := "{\n\t\"default\": {\n\t\t\"timeout\": \"3s\"\n\t}\n}\n"
	cfg, err := parseConfig([]byte(src), "json", "f", "", fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Default.Timeout != 3*time.Second {
		t.Errorf("timeout = %v, want 3s", cfg.Default.Timeout)
	}
}

func TestParseConfigYAMLFeatures(t *testing.T) {
	// Anchors and merge keys work, and the keys they bring are checked.
	src := `default: &base
  timeout: 3s
  retry: {max_attempts: 5}
endpoints:
  a.example.com:
    <<: *base
    timeout: 4s
  b.example.com:
    retry: &r {max_attempts: 2}
  c.example.com:
    retry: *r
`
	cfg, err := parseYAML(t, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Endpoints["a.example.com"]; got.Timeout != 4*time.Second || got.Retry.MaxAttempts != 5 {
		t.Errorf("merged endpoint = %+v", got)
	}
	if got := cfg.Endpoints["c.example.com"].Retry.MaxAttempts; got != 2 {
		t.Errorf("alias: max_attempts = %d, want 2", got)
	}
	_, err = parseYAML(t, "endpoints:\n  x.com: &x {timeout: 1s}\n  y.com:\n    <<: *x\n    rety: {}\n", nil)
	wantProblem(t, err, 5, `endpoints["y.com"].rety`, "unknown key")
}

func TestParseConfigValidationNamesPathsAndLines(t *testing.T) {
	src := `default:
  retry:
    initial_backoff: 10s
endpoints:
  api.example.com:
    retry:
      max_attempts: -1
    rate_limit: {rate: -5}
  b.example.com:
    timeout: 1s
    retry: {initial_backoff: 6s}
  c.example.com:
    timeout: 1s
`
	_, err := parseYAML(t, src, nil)
	ps := problemsOf(t, err)
	want := []FieldError{
		// Set nowhere, so the enclosing block's line is given.
		{Path: "default.retry.max_backoff", Line: 2, Problem: "must be >= initial_backoff (10s), got 5s"},
		{Path: `endpoints["api.example.com"].retry.max_attempts`, Line: 7, Problem: "must be >= 1, got -1"},
		{Path: `endpoints["api.example.com"].rate_limit.rate`, Line: 8, Problem: "must be >= 0, got -5"},
		// max_backoff is inherited, so the line is the retry block's.
		// c.example.com inherits both, so only default is blamed.
		{Path: `endpoints["b.example.com"].retry.max_backoff`, Line: 11, Problem: "must be >= initial_backoff (6s), got 5s"},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("problems:\n got %v\nwant %v", ps, want)
	}
	wantMsg := `line 7: endpoints["api.example.com"].retry.max_attempts: must be >= 1, got -1`
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("message %q does not contain %q", err.Error(), wantMsg)
	}
}

// TestValidationRules goes through every rule compile enforces, as a
// config file states it.
func TestValidationRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		path string
		want string
	}{
		{"max_attempts negative", "default: {retry: {max_attempts: -2}}", "default.retry.max_attempts", "must be >= 1"},
		{"max_attempts huge", "default: {retry: {max_attempts: 101}}", "default.retry.max_attempts", "must be <= 100"},
		{"initial_backoff negative", "default: {retry: {initial_backoff: -1s}}", "default.retry.initial_backoff", "must be >= 0"},
		{"max_backoff negative", "default: {retry: {max_backoff: -1s}}", "default.retry.max_backoff", "must be >= 0"},
		{"max_backoff below initial", "default: {retry: {initial_backoff: 1s, max_backoff: 500ms}}", "default.retry.max_backoff", "must be >= initial_backoff"},
		{"max_retry_after negative", "default: {retry: {max_retry_after: -1s}}", "default.retry.max_retry_after", "must be >= 0"},
		{"retry_on not a status", "default: {retry: {retry_on: [503, 99]}}", "default.retry.retry_on[1]", "HTTP status 100..599"},
		{"budget ratio negative", "default: {retry: {budget: {ratio: -0.1}}}", "default.retry.budget.ratio", "must be >= 0"},
		{"budget floor negative", "default: {retry: {budget: {min_per_second: -1}}}", "default.retry.budget.min_per_second", "must be >= 0"},
		{"two kinds of auth", "default: {auth: {bearer_token: a, api_key: b}}", "default.auth", "set only one"},
		{"password without username", "default: {auth: {password: p}}", "default.auth.username", "must be set when password is set"},
		{"bad api key header", `default: {auth: {api_key: k, api_key_header: "X Key"}}`, "default.auth.api_key_header", "not a valid header name"},
		{"control character in token", `default: {auth: {bearer_token: "a\nb"}}`, "default.auth.bearer_token", "control characters"},
		{"bad header name", `default: {headers: {"Bad Name": v}}`, `default.headers["Bad Name"]`, "not a valid header name"},
		{"control character in header", `default: {headers: {X-A: "v\r\nX-B: w"}}`, `default.headers["X-A"]`, "control characters"},
		{"max_idle_conns_per_host negative", "default: {transport: {max_idle_conns_per_host: -1}}", "default.transport.max_idle_conns_per_host", "must be >= 0"},
		{"max_conns_per_host negative", "default: {transport: {max_conns_per_host: -1}}", "default.transport.max_conns_per_host", "must be >= 0"},
		{"idle_conn_timeout negative", "default: {transport: {idle_conn_timeout: -1s}}", "default.transport.idle_conn_timeout", "must be >= 0"},
		{"dial_timeout negative", "default: {transport: {dial_timeout: -1s}}", "default.transport.dial_timeout", "must be >= 0"},
		{"keep_alive negative", "default: {transport: {keep_alive: -1s}}", "default.transport.keep_alive", "must be >= 0"},
		{"tls_handshake_timeout negative", "default: {transport: {tls_handshake_timeout: -1s}}", "default.transport.tls_handshake_timeout", "must be >= 0"},
		{"tls min_version", `default: {tls: {min_version: "1.1"}}`, "default.tls.min_version", `must be "1.2" or "1.3"`},
		{"tls max_version", `default: {tls: {max_version: "2"}}`, "default.tls.max_version", `must be "1.2" or "1.3"`},
		{"rate negative", "default: {rate_limit: {rate: -1}}", "default.rate_limit.rate", "must be >= 0"},
		{"per negative", "default: {rate_limit: {per: -1s}}", "default.rate_limit.per", "must be > 0"},
		{"burst negative", "default: {rate_limit: {burst: -1}}", "default.rate_limit.burst", "must be >= 0"},
		{"max_wait negative", "default: {rate_limit: {max_wait: -1s}}", "default.rate_limit.max_wait", "must be >= 0"},
		{"failure_ratio over 1", "default: {circuit_breaker: {failure_ratio: 1.5}}", "default.circuit_breaker.failure_ratio", "must be <= 1"},
		{"half_open_requests negative", "default: {circuit_breaker: {half_open_requests: -1}}", "default.circuit_breaker.half_open_requests", "must be >= 1"},
		{"breaker that could never open", "default: {circuit_breaker: {consecutive_failures: -1, failure_ratio: -1}}", "default.circuit_breaker", "could never open"},
		{"recovery_timeout negative", "default: {circuit_breaker: {recovery_timeout: -1s}}", "default.circuit_breaker.recovery_timeout", "must be > 0"},
		{"fallback on default", "default: {fallback: x.com}\nendpoints: {x.com: {}}", "default.fallback", "only an endpoint"},
		{"fallback names nothing", "endpoints: {a.com: {fallback: b.com}}", `endpoints["a.com"].fallback`, "names no endpoint"},
		{"fallback not a key", "endpoints: {a.com: {fallback: 'http://b.com'}}", `endpoints["a.com"].fallback`, "not a URL"},
		{"fallback cycle", "endpoints: {a.com: {fallback: b.com}, b.com: {fallback: a.com}}", `endpoints["a.com"].fallback`, "fallback cycle"},
		{"empty key", `endpoints: {"": {}}`, `endpoints[""]`, "must not be empty"},
		{"URL as key", `endpoints: {"https://a.com": {}}`, `endpoints["https://a.com"]`, "not a URL"},
		{"bad wildcard", `endpoints: {"*.": {}}`, `endpoints["*."]`, "wildcard key"},
		{"star inside", `endpoints: {"a.*.com": {}}`, `endpoints["a.*.com"]`, "first label"},
		{"port without host", `endpoints: {":80": {}}`, `endpoints[":80"]`, "host and a port"},
		{"bare IPv6 with port", `endpoints: {"::1:80x": {}}`, `endpoints["::1:80x"]`, "bracketed"},
		{"default as key", `endpoints: {default: {}}`, `endpoints["default"]`, "reserved"},
		{"same key twice, case aside", `endpoints: {A.com: {}, a.com: {}}`, `endpoints["A.com"]`, "case-insensitive"},
		{"bad redact header", `redact: {headers: ["a b"]}`, "redact.headers[0]", "not a valid header name"},
		{"empty redact query key", `redact: {query_keys: [" "]}`, "redact.query_keys[0]", "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseYAML(t, tt.src+"\n", nil)
			if err == nil {
				t.Fatal("no error")
			}
			wantProblem(t, err, 0, tt.path, tt.want)
		})
	}
}

func TestParseConfigListsEveryProblem(t *testing.T) {
	src := `default:
  retry: {max_attempts: -1, max_retry_after: -1s}
  transport: {dial_timeout: -1s}
endpoints:
  a.com: {rate_limit: {rate: -1, burst: -1}}
  b.com: {circuit_breaker: {min_requests: -1}}
`
	_, err := parseYAML(t, src, nil)
	if n := len(problemsOf(t, err)); n != 6 {
		t.Errorf("got %d problems, want 6:\n%v", n, err)
	}
	// Structural problems are listed together too.
	_, err = parseYAML(t, "default:\n  timout: 1s\n  retry: {max_attempts: 1.5}\nendpoints:\n  a.com: {fallbak: x}\n  b.com: {timeout: 3}\n", nil)
	if n := len(problemsOf(t, err)); n != 4 {
		t.Errorf("got %d problems, want 4:\n%v", n, err)
	}
	// Both kinds together, and a field with a problem is not blamed twice
	// (the unexpanded fallback would also name no endpoint).
	_, err = parseYAML(t, "default:\n  timout: 1s\nendpoints:\n  a.com: {fallback: '${MISSING}', retry: {max_attempts: -1}}\n", nil)
	ps := problemsOf(t, err)
	if len(ps) != 3 {
		t.Errorf("got %d problems, want 3:\n%v", len(ps), err)
	}
	wantProblem(t, err, 2, "default.timout", "unknown key")
	wantProblem(t, err, 4, `endpoints["a.com"].fallback`, "MISSING is not set")
	wantProblem(t, err, 4, `endpoints["a.com"].retry.max_attempts`, "must be >= 1")
}

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{
		"TOKEN":   "s3cr3t",
		"EMPTY":   "",
		"N":       "7",
		"D":       "250ms",
		"HOST":    "api.example.com",
		"NL":      "a\nb",
		"YAMLISH": "{bearer_token: x}",
		"NULLISH": "null",
		"DOLLAR":  "a$b${c",
		"BADUTF8": "\xff\xfe",
		"HUGE":    strings.Repeat("x", maxEnvValueSize+1),
		"HALF":    strings.Repeat("x", maxEnvValueSize/2+1),
	}
	ok := []struct {
		name, value string
		want        string
	}{
		{"plain", "${TOKEN}", "s3cr3t"},
		{"inside text", "Bearer-${TOKEN}-x", "Bearer-s3cr3t-x"},
		{"default unused", "${TOKEN:-d}", "s3cr3t"},
		{"default for unset", "${UNSET:-d}", "d"},
		{"default for empty", "${EMPTY:-d}", "d"},
		{"empty default", "${UNSET:-}", ""},
		{"set but empty", "x${EMPTY}y", "xy"},
		{"nested default", "${UNSET:-${ALSO_UNSET:-${TOKEN}}}", "s3cr3t"},
		{"default with colon and dash", "${UNSET:-a:-b}", "a:-b"},
		{"escaped", "$${TOKEN}", "${TOKEN}"},
		{"lone dollar", "cost $5 $", "cost $5 $"},
		{"$VAR is not expanded", "$TOKEN", "$TOKEN"},
		{"value keeps its dollars", "${DOLLAR}", "a$b${c"},
		{"structure stays a string", "${YAMLISH}", "{bearer_token: x}"},
		{"null stays a string", "${NULLISH}", "null"},
		{"two variables", "${HOST}/${N}", "api.example.com/7"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseYAML(t, "default:\n  headers:\n    X-V: '"+tt.value+"'\n", env)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Default.Headers["X-V"]; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	bad := []struct {
		name, value string
		want        []string
	}{
		{"unset without default", "${MISSING}", []string{"environment variable MISSING is not set", "${MISSING:-default}"}},
		{"control characters", "${NL}", []string{"environment variable NL contains control characters"}},
		{"invalid UTF-8", "${BADUTF8}", []string{"BADUTF8 is not valid UTF-8"}},
		{"too long", "${HUGE}", []string{"HUGE is longer than 64 KiB"}},
		{"too long after expansion", "${HALF}${HALF}", []string{"longer than 64 KiB after expansion"}},
		{"unclosed", "${TOKEN", []string{"unclosed ${"}},
		{"bad name", "${1X}", []string{`"1X" is not a variable name`}},
		{"unsupported operator", "${X:?oops}", []string{"is not a variable name"}},
		{"empty name", "${}", []string{`"" is not a variable name`}},
		{"too deep", strings.Repeat("${U:-", 10) + "x" + strings.Repeat("}", 10), []string{"nested too deeply"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseYAML(t, "default:\n  headers:\n    X-V: '"+tt.value+"'\n", env)
			wantProblem(t, err, 3, `default.headers["X-V"]`, tt.want...)
		})
	}

	t.Run("every missing variable is named", func(t *testing.T) {
		_, err := parseYAML(t, "default:\n  auth: {bearer_token: '${A1}${A2}'}\nendpoints:\n  x.com: {fallback: '${A3}'}\n", env)
		for _, v := range []string{"A1", "A2", "A3"} {
			if !strings.Contains(err.Error(), "environment variable "+v+" is not set") {
				t.Errorf("%s not named in %v", v, err)
			}
		}
	})
	t.Run("typed as if unquoted", func(t *testing.T) {
		cfg, err := parseYAML(t, "default:\n  timeout: \"${D}\"\n  retry: {max_attempts: '${N}'}\n  transport: {disable_http2: '${B:-true}'}\n", env)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Default.Timeout != 250*time.Millisecond || cfg.Default.Retry.MaxAttempts != 7 || !*cfg.Default.Transport.DisableHTTP2 {
			t.Errorf("got %+v", cfg.Default)
		}
		cfg, err = parseConfig([]byte(`{"default": {"retry": {"max_attempts": "${N:-3}"}}}`), "json", "f", "", fakeEnv(env))
		if err != nil || cfg.Default.Retry.MaxAttempts != 7 {
			t.Errorf("json: max_attempts = %d, err = %v", cfg.Default.Retry.MaxAttempts, err)
		}
	})
	t.Run("values from the environment are not quoted in errors", func(t *testing.T) {
		_, err := parseYAML(t, "default:\n  retry: {max_attempts: '${TOKEN}', max_backoff: 1}\n  timeout: ${TOKEN}\n  headers: ${TOKEN}\n", env)
		if err == nil || strings.Contains(err.Error(), "s3cr3") {
			t.Errorf("err = %v: it must fail without quoting the value", err)
		}
		wantProblem(t, err, 2, "default.retry.max_attempts", "a value from the environment")
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		cfg, err := parseYAML(t, "default:\n  headers:\n    $X: v\n", env)
		if err != nil || cfg.Default.Headers["$X"] != "v" {
			t.Errorf("cfg = %+v, err = %v", cfg.Default.Headers, err)
		}
	})
	t.Run("a value cannot add structure", func(t *testing.T) {
		// With text expansion before parsing this would set a second
		// key; here it is one string, which then fails validation as a
		// header value would.
		env := map[string]string{"UA": "x\n  auth: {bearer_token: stolen}"}
		cfg, err := parseYAML(t, "default:\n  headers: {User-Agent: '${UA}'}\n", env)
		if err == nil || cfg.Default.Auth.BearerToken != "" {
			t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
		}
		env = map[string]string{"UA": "x, auth: {bearer_token: stolen}"}
		cfg, err = parseYAML(t, "default:\n  headers:\n    User-Agent: ${UA}\n", env)
		if err != nil || cfg.Default.Auth.BearerToken != "" || cfg.Default.Headers["User-Agent"] != env["UA"] {
			t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
		}
	})
	t.Run("anchored value expanded once", func(t *testing.T) {
		env := map[string]string{"V": "$${NOT}"}
		cfg, err := parseYAML(t, "default:\n  headers: {X-A: &v '${V}'}\nendpoints:\n  a.com: {headers: {X-B: *v}}\n", env)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Endpoints["a.com"].Headers["X-B"]; got != "$${NOT}" {
			t.Errorf("alias value = %q, want the variable's value as it is", got)
		}
	})
}

func TestParentPath(t *testing.T) {
	tests := map[string]string{
		`endpoints["a.b.com"].retry.max_attempts`: `endpoints["a.b.com"].retry`,
		`endpoints["a.b.com"].retry`:              `endpoints["a.b.com"]`,
		`endpoints["a.b.com"]`:                    `endpoints`,
		`endpoints`:                               ``,
		`default.retry.retry_on[2]`:               `default.retry.retry_on`,
		`default.headers["X.Y[1]"]`:               `default.headers`,
		`endpoints["a\"].b"].timeout`:             `endpoints["a\"].b"]`,
	}
	for in, want := range tests {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestParseConfigPublic(t *testing.T) {
	cfg, err := ParseConfig([]byte("default: {timeout: 1s}"), "yaml")
	if err != nil || cfg.Default.Timeout != time.Second {
		t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
	}
	cfg, err = ParseConfig([]byte(`{"default": {"timeout": "2s"}}`), "json")
	if err != nil || cfg.Default.Timeout != 2*time.Second {
		t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
	}
}

// TestParseConfigMergeBomb: merge keys that each merge the previous
// mapping twice would make a naive walk exponential.
func TestParseConfigMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("endpoints:\n  m0: &m0 {timeout: 1s}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("default:\n  <<: *m40\n")
	start := time.Now()
	_, _ = parseYAML(t, b.String(), nil) // the YAML decoder refuses the aliasing; that is fine
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestParseConfigEnvAppliesOverrides(t *testing.T) {
	t.Setenv("PCE_TEST_DEFAULT__TIMEOUT", "3s")
	cfg, err := ParseConfigEnv([]byte("default: {timeout: 1s}"), "yaml", "PCE_TEST_")
	if err != nil || cfg.Default.Timeout != 3*time.Second {
		t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
	}
}
