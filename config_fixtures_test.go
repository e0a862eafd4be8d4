package connmgr

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Fixtures and helpers shared by the config tests.

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

// timeLimit is d, scaled for the race detector, which makes the parser
// about ten times slower.
func timeLimit(d time.Duration) time.Duration {
	if raceEnabled {
		return 10 * d
	}
	return d
}
