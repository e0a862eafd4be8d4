package connmgr

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What a config error may show: values cut short, and never a value
// taken from the environment.

// envSecret is a secret held in the fake environment of these tests. It
// is put where it does not belong (a secret in the wrong variable, an
// alias to the wrong field): the error must say what is wrong without it.
const envSecret = "hunter2 s3cr3t/VALUE"

// secretEnv sets envSecret in ${TOKEN} and in an override of every kind
// of field that validation checks.
func secretEnv() environment {
	vars := map[string]string{"TOKEN": envSecret, "TOKEN_HOST": strings.NewReplacer(" ", "-", "/", ".").Replace(envSecret), "NUM": "731"}
	for _, name := range []string{
		"DEFAULT__TIMEOUT", "DEFAULT__RETRY__MAX_ATTEMPTS", "DEFAULT__RETRY__RETRY_ON",
		"DEFAULT__TLS__MIN_VERSION", "DEFAULT__TLS__CA_MODE", "DEFAULT__TLS__PINS", "DEFAULT__TLS__CIPHER_SUITES",
		"DEFAULT__AUTH__API_KEY_HEADER", "DEFAULT__RATE_LIMIT__KEY", "DEFAULT__CIRCUIT_BREAKER__GROUP",
		"DEFAULT__TRANSPORT__DISABLE_HTTP2", "REDACT__HEADERS", "ENDPOINTS__A_COM__FALLBACK",
	} {
		vars["SEC_"+name] = envSecret
	}
	return fakeEnv(vars)
}

// leaksSecret reports whether msg holds envSecret or a piece of it as
// long as the YAML decoder's shortened quotes (7 bytes).
func leaksSecret(msg string) bool {
	for i := 0; i+7 <= len(envSecret); i++ {
		if strings.Contains(msg, envSecret[i:i+7]) {
			return true
		}
	}
	return false
}

func TestConfigErrorsNeverQuoteTheEnvironment(t *testing.T) {
	tests := []struct {
		name, src, prefix, want string
	}{
		{"alias into a duration", "default:\n  auth: {bearer_token: &t \"${TOKEN}\"}\n  timeout: *t\n", "", "a value from the environment"},
		{"alias into an int", "default:\n  auth: {bearer_token: &t \"${TOKEN}\"}\n  retry: {max_attempts: *t}\n", "", "a value from the environment"},
		{"alias into a list", "default:\n  auth: {bearer_token: &t \"${TOKEN}\"}\n  retry: {retry_on: *t}\n", "", "cannot unmarshal !!str (a value from the environment)"},
		{"into a duration", "default: {timeout: \"${TOKEN}\"}\n", "", "got a value from the environment"},
		{"into min_version", "default: {tls: {min_version: \"${TOKEN}\"}}\n", "", `default.tls.min_version: must be "1.2" or "1.3"`},
		{"into ca_mode", "default: {tls: {ca_file: ca.pem, ca_mode: \"${TOKEN}\"}}\n", "", `default.tls.ca_mode: must be "append" or "replace"`},
		{"into fallback", "endpoints: {a.com: {fallback: \"${TOKEN}\"}}\n", "", `endpoints["a.com"].fallback: key must be`},
		{"into fallback, a host", "endpoints: {a.com: {fallback: \"${TOKEN_HOST}\"}}\n", "", `endpoints["a.com"].fallback: names no endpoint`},
		{"into api_key_header", "default: {auth: {api_key: k, api_key_header: \"${TOKEN}\"}}\n", "", "api_key_header: not a valid header name"},
		{"into a pin", "default:\n  tls: {pins: [\"${TOKEN}\"]}\n", "", `default.tls.pins[0]: must be "sha256/"`},
		{"into a cipher suite by alias", "default:\n  headers: {X: &t \"${TOKEN}\"}\n  tls: {cipher_suites: [*t]}\n", "", "cipher_suites[0]: unknown cipher suite"},
		{"into rate_limit.key", "default: {rate_limit: {rate: 1, key: \"${TOKEN}\"}}\n", "", "rate_limit.key: must be"},
		{"into redact.headers", "redact: {headers: [\"${TOKEN}\"]}\n", "", "redact.headers[0]: not a valid header name"},
		{"into a breaker group", "endpoints:\n  a.com: {circuit_breaker: {group: g}}\n  b.com: {circuit_breaker: {group: \"${TOKEN}x\", consecutive_failures: 2}}\n  c.com: {circuit_breaker: {group: \"${TOKEN}x\"}}\n", "", "shares its group"},
		{"number from the environment", "default: {retry: {max_attempts: \"${NUM}\"}}\n", "", "default.retry.max_attempts: must be <= 100"},
		{"overrides of every kind", "endpoints: {a.com: {}}\n", "SEC_", "(set by $SEC_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.src), "yaml", "f.yaml", tt.prefix, secretEnv())
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if leaksSecret(msg) || strings.Contains(msg, "731") {
				t.Errorf("the error quotes a value from the environment:\n%s", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error lacks %q:\n%s", tt.want, msg)
			}
		})
	}
}

// TestWatchLastErrorNeverQuotesTheEnvironment: what Watch logs, passes to
// the listener and keeps in Stats().Reload.LastError.
func TestWatchLastErrorNeverQuotesTheEnvironment(t *testing.T) {
	t.Setenv("CONNMGR_TEST_SECRET", envSecret)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(timeoutYAML("1s")), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m, r := watched(t, path, WithLogger(newTestLogger(&logs)))
	replaceConfig(t, path, "default:\n  tls: {pins: [\"${CONNMGR_TEST_SECRET}\"], min_version: \"${CONNMGR_TEST_SECRET}\"}\n")
	err := r.next(t)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("reload: %v, want a *ConfigError", err)
	}
	lastError := m.Stats().Reload.LastError
	m.Close() // the watcher logs after it tells the listener
	for what, s := range map[string]string{"error": err.Error(), "LastError": lastError, "log": logs.String()} {
		if leaksSecret(s) {
			t.Errorf("%s quotes the secret: %s", what, s)
		}
	}
}

// FuzzConfigNeverQuotesTheEnvironment: whatever the file, an error never
// holds a value that came from the environment (${VAR} or an override).
func FuzzConfigNeverQuotesTheEnvironment(f *testing.F) {
	for _, s := range []string{
		"default: {timeout: \"${TOKEN}\"}", "default: {tls: {pins: [\"${TOKEN}\"]}}",
		"default:\n  headers: {X: &t \"${TOKEN}\"}\n  tls: {cipher_suites: [*t]}\n",
		"default:\n  auth: {bearer_token: &t \"${TOKEN}\"}\n  retry: {max_attempts: *t}\n",
		"endpoints: {a.com: {fallback: \"${TOKEN}\"}}", "endpoints: {a.com: {}}",
		`{"default": {"tls": {"ca_mode": "${TOKEN}", "ca_file": "x"}}}`,
		"default: {rate_limit: {key: \"x${TOKEN}\", rate: 1}, tls: {min_version: \"${X:-${TOKEN}}\"}}",
	} {
		f.Add([]byte(s), false)
	}
	env := secretEnv()
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		// A file that spells part of the secret itself may have it quoted.
		for i := 0; i+4 <= len(envSecret); i++ {
			if bytes.Contains(data, []byte(envSecret[i:i+4])) {
				return
			}
		}
		format := "yaml"
		if asJSON {
			format = "json"
		}
		if _, err := parseConfig(data, format, "fuzz", "SEC_", env); err != nil && leaksSecret(err.Error()) {
			t.Fatalf("the error quotes the secret:\n%v", err)
		}
	})
}

// TestConfigQuotesValuesShort: a value the loader quotes back is cut.
func TestConfigQuotesValuesShort(t *testing.T) {
	long := strings.Repeat("y", 5000)
	for _, src := range []string{
		"default: {timeout: " + long + "}\n",
		"default: {headers: {X: \"${" + long + "}\"}}\n",
	} {
		_, err := parseConfig([]byte(src), "yaml", "f.yaml", "", fakeEnv(nil))
		if err == nil {
			t.Fatal("no error")
		}
		want := `"` + strings.Repeat("y", 40) + `"... (5000 bytes)`
		if msg := err.Error(); len(msg) > 400 || !strings.Contains(msg, want) {
			t.Errorf("error (%d bytes) = %.400s; want it short, with %s", len(msg), msg, want)
		}
	}
}
