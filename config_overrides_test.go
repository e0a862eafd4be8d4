package connmgr

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Overrides from PREFIX... environment variables (LoadConfigEnv).

const overrideBase = `default:
  timeout: 10s
endpoints:
  api.example.com:
    retry: {max_attempts: 2}
  "*.internal.example.com": {}
  "localhost:8080": {}
`

func parseWithOverrides(t *testing.T, src string, env map[string]string) (Config, error) {
	t.Helper()
	return parseConfig([]byte(src), "yaml", "test.yaml", "CM_", fakeEnv(env))
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := parseWithOverrides(t, overrideBase, map[string]string{
		"CM_DEFAULT__TIMEOUT":                                      "5s",
		"CM_DEFAULT__RETRY__MAX_ATTEMPTS":                          "4",
		"CM_DEFAULT__RETRY__RETRY_ON":                              "502, 503",
		"CM_DEFAULT__TRANSPORT__DISABLE_HTTP2":                     "true",
		"CM_DEFAULT__AUTH__BEARER_TOKEN":                           "tok: {not: yaml}",
		"CM_ENDPOINTS__API_EXAMPLE_COM__RETRY__MAX_ATTEMPTS":       "6",
		"CM_ENDPOINTS__API_EXAMPLE_COM__RATE_LIMIT__RATE":          "2.5",
		"CM_ENDPOINTS____INTERNAL_EXAMPLE_COM__TLS__PINS":          "sha256/ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=,sha256/PiPoFgA5WUoziU9lZOGxNIu9egCI1CxKy3PurtWcAJ0=",
		"CM_ENDPOINTS__LOCALHOST_8080__RETRY__RETRY_ON":            "[]",
		"cm_endpoints__localhost_8080__max_concurrent":             "3", // wrong case: not the prefix
		"CM_endpoints__localhost_8080__max_concurrent":             "9", // names are case-insensitive after the prefix
		"CM_REDACT__QUERY_KEYS":                                    "sess,sig",
		"CM_CONFIG":                                                "/etc/x.yaml", // not an override
		"CM_DEFAULT__FALLBACK":                                     "",            // empty: changes nothing
		"OTHER_DEFAULT__TIMEOUT":                                   "1s",
		"CM_ENDPOINTS__API_EXAMPLE_COM__CIRCUIT_BREAKER__DISABLED": "yes",
	})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Default
	if d.Timeout != 5*time.Second || d.Retry.MaxAttempts != 4 || !reflect.DeepEqual(d.Retry.RetryOn, []int{502, 503}) ||
		!*d.Transport.DisableHTTP2 || d.Auth.BearerToken != "tok: {not: yaml}" {
		t.Errorf("default = %+v", d)
	}
	api := cfg.Endpoints["api.example.com"]
	if api.Retry.MaxAttempts != 6 || api.RateLimit.Rate != 2.5 || !*api.CircuitBreaker.Disabled {
		t.Errorf("api.example.com = %+v", api)
	}
	if got := cfg.Endpoints["*.internal.example.com"].TLS.Pins; !reflect.DeepEqual(got, []string{"sha256/ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=", "sha256/PiPoFgA5WUoziU9lZOGxNIu9egCI1CxKy3PurtWcAJ0="}) {
		t.Errorf("pins = %q", got)
	}
	lh := cfg.Endpoints["localhost:8080"]
	if lh.Retry.RetryOn == nil || len(lh.Retry.RetryOn) != 0 || lh.MaxConcurrent != 9 {
		t.Errorf("localhost:8080 = %+v", lh)
	}
	if !reflect.DeepEqual(cfg.Redact.QueryKeys, []string{"sess", "sig"}) {
		t.Errorf("redact = %+v", cfg.Redact)
	}
}

func TestEnvOverrideErrors(t *testing.T) {
	tests := []struct {
		name, variable, value string
		want                  []string
	}{
		{"unknown section", "CM_DEFAULTS__TIMEOUT", "1s", []string{`"DEFAULTS" is not a section`}},
		{"unknown field", "CM_DEFAULT__TIMOUT", "1s", []string{`default has no key "timout"`, `did you mean "timeout"?`}},
		{"field of a scalar", "CM_DEFAULT__TIMEOUT__X", "1s", []string{`default.timeout has no field "x"`}},
		{"a block", "CM_DEFAULT__RETRY", "3", []string{"default.retry is a block"}},
		{"a map", "CM_DEFAULT__HEADERS__X_A", "v", []string{"default.headers is a map", "${VAR}"}},
		{"no such endpoint", "CM_ENDPOINTS__NOPE_COM__TIMEOUT", "1s", []string{"names no endpoint of the file"}},
		{"duration without unit", "CM_DEFAULT__TIMEOUT", "5", []string{"default.timeout: a duration needs a unit"}},
		{"not a number", "CM_DEFAULT__RETRY__MAX_ATTEMPTS", "many", []string{"default.retry.max_attempts: must be a whole number"}},
		{"bad list item", "CM_DEFAULT__RETRY__RETRY_ON", "503,x", []string{"default.retry.retry_on: must be a whole number"}},
		{"control characters", "CM_DEFAULT__AUTH__BEARER_TOKEN", "a\r\nb", []string{"value contains control characters"}},
		{"huge", "CM_DEFAULT__AUTH__BEARER_TOKEN", strings.Repeat("a", maxEnvValueSize+1), []string{"longer than 64 KiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseWithOverrides(t, overrideBase, map[string]string{tt.variable: tt.value})
			wantProblem(t, err, 0, "$"+tt.variable, tt.want...)
		})
	}

	t.Run("validation names the variable", func(t *testing.T) {
		_, err := parseWithOverrides(t, overrideBase, map[string]string{"CM_ENDPOINTS__API_EXAMPLE_COM__RETRY__MAX_ATTEMPTS": "-3"})
		wantProblem(t, err, 0, `endpoints["api.example.com"].retry.max_attempts`, "must be >= 1", "(set by $CM_ENDPOINTS__API_EXAMPLE_COM__RETRY__MAX_ATTEMPTS)")
	})
	t.Run("ambiguous endpoint", func(t *testing.T) {
		src := "endpoints:\n  a.b.com: {}\n  a-b.com: {}\n"
		_, err := parseWithOverrides(t, src, map[string]string{"CM_ENDPOINTS__A_B_COM__TIMEOUT": "1s"})
		wantProblem(t, err, 0, "$CM_ENDPOINTS__A_B_COM__TIMEOUT", `"a-b.com", "a.b.com"`)
	})
	t.Run("longest key wins", func(t *testing.T) {
		src := "endpoints:\n  a.com: {}\n  a.com.b: {}\n"
		cfg, err := parseWithOverrides(t, src, map[string]string{"CM_ENDPOINTS__A_COM_B__TIMEOUT": "1s"})
		if err != nil || cfg.Endpoints["a.com.b"].Timeout != time.Second || cfg.Endpoints["a.com"].Timeout != 0 {
			t.Errorf("cfg = %+v, err = %v", cfg.Endpoints, err)
		}
	})
}

func TestLoadConfigEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(overrideBase), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMTEST_DEFAULT__TIMEOUT", "7s")
	cfg, err := LoadConfigEnv(p, "CMTEST_")
	if err != nil || cfg.Default.Timeout != 7*time.Second {
		t.Errorf("timeout = %v, err = %v", cfg.Default.Timeout, err)
	}
	// LoadConfig applies no overrides.
	cfg, err = LoadConfig(p)
	if err != nil || cfg.Default.Timeout != 10*time.Second {
		t.Errorf("timeout = %v, err = %v", cfg.Default.Timeout, err)
	}
}

func TestParseConfigEnvAppliesOverrides(t *testing.T) {
	t.Setenv("PCE_TEST_DEFAULT__TIMEOUT", "3s")
	cfg, err := ParseConfigEnv([]byte("default: {timeout: 1s}"), "yaml", "PCE_TEST_")
	if err != nil || cfg.Default.Timeout != 3*time.Second {
		t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
	}
}
