package connmgr

import (
	"errors"
	"testing"
)

// FuzzLoadConfig feeds the loader arbitrary bytes as YAML or JSON: it
// must return a Config that validates or a *ConfigError, and never panic
// or hang.
func FuzzLoadConfig(f *testing.F) {
	seeds := []string{
		fullYAML, fullJSON, SampleConfig(), overrideBase,
		"{}", "default: {timeout: 10}", "endpoints: {a.com: {fallback: a.com}}",
		"default: &a {retry: *a}", "a: &a [*a, *a]", "<<: {x: 1}",
		"default:\n  headers: {X: '${V:-${W:-${Z}}}'}", "default: {auth: {bearer_token: '${NL}'}}",
		"default: {timeout: '${D}'}", "$${", "default: {headers: {X: '${'}}",
		`{"default": {"retry": {"max_attempts": "${N:-3}"}}}`, `{"a": [1, 2.5e3, true, null, "x"]}`,
		"---\n---\n", "!!binary aGk=", "default: !!binary aGk=", "? [a]\n: b",
		"endpoints: {p: {upstreams: [http://a, {url: 'dns:///b:1', weight: 2}], balancer: consistent_hash, hash_key: 'cookie:s'}}",
		"endpoints: {p: {upstreams: [[1]], health_check: {path: /h, interval: 1s}}}",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	env := fakeEnv(map[string]string{
		"V": "v", "D": "5s", "N": "4", "NL": "a\nb", "EMPTY": "",
		"FZ_DEFAULT__TIMEOUT":                            "3s",
		"FZ_ENDPOINTS__A_COM__RETRY__MAX_ATTEMPTS":       "2",
		"FZ_ENDPOINTS__API_EXAMPLE_COM__RETRY__RETRY_ON": "500,503",
	})
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		format := "yaml"
		if asJSON {
			format = "json"
		}
		cfg, err := parseConfig(data, format, "fuzz", "FZ_", env)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a *ConfigError with problems", err, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded a config that does not validate: %v", err)
		}
	})
}
