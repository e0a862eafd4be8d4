package connmgr

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// MarshalConfig round trips, Effective and Redacted.

func TestMarshalConfigRoundTrips(t *testing.T) {
	sample, err := parseConfig([]byte(SampleConfig()), "yaml", "sample.yaml", "", fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	full := fullConfig()
	full.Default.Headers["X-Literal"] = "${NOT_A_VAR} and $${ too"
	full.Default.Retry.Budget.Ratio = 1e-7
	for name, cfg := range map[string]Config{"full": full, "sample": sample, "zero": {}} {
		for _, format := range []string{"yaml", "json"} {
			data, err := MarshalConfig(cfg, format)
			if err != nil {
				t.Fatalf("%s %s: %v", name, format, err)
			}
			got, err := parseConfig(data, format, "out", "", fakeEnv(nil))
			if err != nil {
				t.Fatalf("%s %s: reading back:\n%s\n%v", name, format, data, err)
			}
			if !reflect.DeepEqual(got, cfg) {
				t.Errorf("%s %s: round trip changed the config:\n%s\n got %+v\nwant %+v", name, format, data, got, cfg)
			}
		}
	}
	if _, err := MarshalConfig(Config{}, "toml"); err == nil {
		t.Error("unknown format: no error")
	}
}

func TestMarshalConfigKeepsEmptyLists(t *testing.T) {
	cfg := Config{Endpoints: map[string]EndpointConfig{"a.com": {Retry: RetryConfig{RetryOn: []int{}}}, "b.com": {}}}
	data, err := MarshalConfig(cfg, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "retry_on: []") || !strings.Contains(string(data), "b.com: {}") {
		t.Errorf("output:\n%s", data)
	}
}

func TestEffectiveAndRedacted(t *testing.T) {
	cfg := Config{
		Default: EndpointConfig{Timeout: 3 * time.Second, Headers: map[string]string{"Cookie": "c=1", "X-Plain": "p"}},
		Endpoints: map[string]EndpointConfig{
			"API.Example.com": {
				Auth:    AuthConfig{APIKey: "key", APIKeyHeader: "X-Key"},
				Headers: map[string]string{"X-Key": "also-secret", "X-Session": "s"},
				TLS:     TLSConfig{CertFile: "c.pem", KeyFile: "k.pem", KeyPassword: "pw"},
			},
			"b.com": {Auth: AuthConfig{Username: "u", Password: "pw"}},
			"c.com": {Auth: AuthConfig{BearerToken: "tok"}},
			// A lone user name is the whole credential for Stripe-style APIs.
			"d.com": {Auth: AuthConfig{Username: "sk_live_secret"}},
		},
		Redact: RedactConfig{Headers: []string{"X-Session"}},
	}
	eff, err := cfg.Effective()
	if err != nil {
		t.Fatal(err)
	}
	api, ok := eff.Endpoints["api.example.com"]
	if !ok {
		t.Fatalf("keys = %v, want the normalized key", eff.Endpoints)
	}
	if api.Timeout != 3*time.Second || api.Retry.MaxAttempts != 3 || api.Headers["X-Plain"] != "p" {
		t.Errorf("effective endpoint = %+v", api)
	}
	if eff.Default.TotalTimeout != 30*time.Second {
		t.Errorf("effective default = %+v", eff.Default)
	}
	r := eff.Redacted()
	ra := r.Endpoints["api.example.com"]
	for what, got := range map[string]string{
		"api_key": ra.Auth.APIKey, "api key header": ra.Headers["X-Key"], "redact.headers": ra.Headers["X-Session"],
		"Cookie": ra.Headers["Cookie"], "key_password": ra.TLS.KeyPassword,
		"password": r.Endpoints["b.com"].Auth.Password, "bearer_token": r.Endpoints["c.com"].Auth.BearerToken,
		"username": r.Endpoints["b.com"].Auth.Username, "lone username": r.Endpoints["d.com"].Auth.Username,
		"default Cookie": r.Default.Headers["Cookie"],
	} {
		if got != "REDACTED" {
			t.Errorf("%s = %q, want REDACTED", what, got)
		}
	}
	if ra.Headers["X-Plain"] != "p" {
		t.Errorf("redacted too much: %+v", ra.Headers)
	}
	if eff.Endpoints["c.com"].Auth.BearerToken != "tok" || eff.Endpoints["api.example.com"].Headers["X-Key"] != "also-secret" {
		t.Error("Redacted changed the config it was called on")
	}
	if _, err := (Config{Default: EndpointConfig{Timeout: -1, Retry: RetryConfig{MaxAttempts: -1}}}).Effective(); err == nil {
		t.Error("Effective of an invalid config: no error")
	}
}
