package connmgr

import (
	"testing"
	"time"
)

// The schema walk: unknown and duplicate keys with "did you mean", types,
// syntax errors with their lines, YAML anchors and merge keys.

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
