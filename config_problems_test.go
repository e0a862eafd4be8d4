package connmgr

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Problems: validation named by field path and pointed at its line,
// every problem listed at once, up to 100.

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

// TestConfigErrorListsAtMost100Problems: every problem is listed, up to
// 100; the rest are counted.
func TestConfigErrorListsAtMost100Problems(t *testing.T) {
	var b strings.Builder
	b.WriteString("endpoints:\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "  h%03d.example.com: {timeout: 5}\n", i)
	}
	inCode := Config{Endpoints: map[string]EndpointConfig{}}
	for i := 0; i < 300; i++ {
		inCode.Endpoints[fmt.Sprintf("h%03d.example.com", i)] = EndpointConfig{Retry: RetryConfig{MaxAttempts: -1}}
	}
	_, fromFile := parseConfig([]byte(b.String()), "yaml", "f.yaml", "", fakeEnv(nil))
	for name, err := range map[string]error{"file": fromFile, "Validate": inCode.Validate()} {
		t.Run(name, func(t *testing.T) {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if len(ce.Problems) != 100 || ce.Omitted != 200 {
				t.Errorf("%d problems listed, %d omitted; want 100 and 200", len(ce.Problems), ce.Omitted)
			}
			msg := err.Error()
			if !strings.Contains(msg, "(300 problems):") || !strings.HasSuffix(msg, "\n  ... and 200 more") {
				t.Errorf("error = %.200s ... %s", msg, msg[max(0, len(msg)-100):])
			}
			if !strings.Contains(msg, `h000.example.com"]`) || strings.Contains(msg, `h299.example.com"]`) {
				t.Errorf("the first problems are not the ones listed:\n%.300s", msg)
			}
		})
	}
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
