package connmgr

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRateLimitKeyIsNormalisedAsEndpointKeys: a WithRateLimitKey key that
// names an endpoint only once normalised ("[::1]", " API.test") is
// applied to that endpoint. Before, New accepted them and the key
// function was never called.
func TestRateLimitKeyIsNormalisedAsEndpointKeys(t *testing.T) {
	tests := []struct{ configKey, optionKey, host string }{
		{"[::1]", "[::1]", "[::1]"},
		{"[::1]:8080", "[::1]:8080", "[::1]:8080"},
		{"api.test", " API.test", "api.test"},
		{"api.test", "API.TEST ", "api.test"},
		{"*.svc.test", "*.SVC.test", "a.svc.test"},
	}
	for _, tt := range tests {
		t.Run(tt.optionKey, func(t *testing.T) {
			tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
			cfg := Config{Endpoints: map[string]EndpointConfig{tt.configKey: {RateLimit: RateLimitConfig{Rate: 1, Per: time.Hour, Burst: 1}}}}
			calls := 0
			m := newTestManager(t, cfg, WithTransport(tr), WithRateLimitKey(tt.optionKey, func(r *http.Request) string {
				calls++
				return r.URL.Query().Get("tenant")
			}))
			for _, tenant := range []string{"a", "b"} {
				resp, err := get(t, m, "http://"+tt.host+"/?tenant="+tenant)
				require.NoError(t, err, "tenant %s has its own bucket", tenant)
				readAll(t, resp)
			}
			assert.Equal(t, 2, calls, "the key function ran for each call")
			_, err := get(t, m, "http://"+tt.host+"/?tenant=a")
			require.ErrorIs(t, err, ErrRateLimited)
		})
	}
}

// TestEndpointKeyedOptionsAreChecked: every option keyed by endpoint is
// normalised as the config's keys are, and New names the option and the
// key when the key is not one, or names no endpoint.
func TestEndpointKeyedOptionsAreChecked(t *testing.T) {
	cfg := Config{Endpoints: map[string]EndpointConfig{"api.test": {}, "[::1]:8443": {}, "*.svc.test": {}}}
	keyFn := func(*http.Request) string { return "" }
	mw := func(next http.RoundTripper) http.RoundTripper { return next }
	policy := func(context.Context, *http.Response, error) (bool, error) { return false, nil }
	backoff := func(min, max time.Duration, attempt int, resp *http.Response) time.Duration { return min }
	options := map[string]func(key string) Option{
		"WithRateLimitKey":       func(k string) Option { return WithRateLimitKey(k, keyFn) },
		"WithTLSConfig":          func(k string) Option { return WithTLSConfig(k, &tls.Config{}) },
		"WithEndpointMiddleware": func(k string) Option { return WithEndpointMiddleware(k, mw) },
		"WithRetryPolicy":        func(k string) Option { return WithRetryPolicy(policy, k) },
		"WithBackoff":            func(k string) Option { return WithBackoff(backoff, k) },
	}
	for name, opt := range options {
		t.Run(name, func(t *testing.T) {
			for _, ok := range []string{"api.test", " API.Test", "[::1]:8443", "*.SVC.test", "default", "Default"} {
				m, err := New(cfg, opt(ok))
				if assert.NoError(t, err, "%s(%q)", name, ok) {
					require.NoError(t, m.Close())
				}
			}
			for key, want := range map[string]string{
				"nope.test":        name + `("nope.test"): no such endpoint in the config`,
				"[::1]":            name + `("[::1]"): no such endpoint in the config (read as "::1")`,
				" API.test:80":     name + `(" API.test:80"): no such endpoint in the config (read as "api.test:80")`,
				"https://api.test": name + `("https://api.test"): key must be "host", "host:port" or "*.domain", not a URL`,
				"":                 name + `(""): key must not be empty`,
				"a*.test":          name + `("a*.test"): "*" is only allowed as the first label`,
			} {
				_, err := New(cfg, opt(key))
				assert.ErrorContains(t, err, want)
			}
			_, err := New(cfg, opt("api.test"), opt(" API.TEST"))
			assert.ErrorContains(t, err, name+`(" API.TEST") and `+name+`("api.test") name the same endpoint "api.test": give it once`)
		})
	}
}

// TestEndpointKeyedOptionsAreFoundUnderTheEndpointsKey: the option maps
// are rewritten under the key the endpoint has, which is what the
// pipeline looks up.
func TestEndpointKeyedOptionsAreFoundUnderTheEndpointsKey(t *testing.T) {
	mw := func(next http.RoundTripper) http.RoundTripper { return next }
	policy := func(context.Context, *http.Response, error) (bool, error) { return false, nil }
	backoff := func(min, max time.Duration, attempt int, resp *http.Response) time.Duration { return min }
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"[::1]:8443": {}, "api.test": {}}},
		WithEndpointMiddleware(" [::1]:8443", mw), WithRetryPolicy(policy, "API.test"), WithBackoff(backoff, "API.test", "[::1]:8443"),
		WithTLSConfig("Default", &tls.Config{ServerName: "x"}))
	table := m.table.Load()
	ep6, api := table.byKey["[::1]:8443"], table.byKey["api.test"]
	require.NotNil(t, ep6)
	require.NotNil(t, api)
	assert.Contains(t, m.opts.endpointMiddleware, ep6.key)
	assert.Contains(t, m.opts.endpointRetryPolicy, api.key)
	assert.Contains(t, m.opts.endpointBackoff, api.key)
	assert.Contains(t, m.opts.endpointBackoff, ep6.key)
	assert.Equal(t, "x", m.opts.tlsBase(api.key).ServerName, "the default's base, given as \"Default\"")
}

// TestReloadChecksEndpointKeyedOptions: Reload runs New's check, so a
// config that drops an endpoint an option names is refused and the old
// one keeps running.
func TestReloadChecksEndpointKeyedOptions(t *testing.T) {
	tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"api.test": {}, "b.test": {}}},
		WithTransport(tr), WithRateLimitKey(" API.test", func(*http.Request) string { return "" }))
	err := m.Reload(Config{Endpoints: map[string]EndpointConfig{"b.test": {}}})
	require.ErrorContains(t, err, `WithRateLimitKey(" API.test"): no such endpoint in the config (read as "api.test")`)
	assert.Contains(t, m.table.Load().byKey, "api.test", "the old config still runs")
	require.NoError(t, m.Reload(Config{Endpoints: map[string]EndpointConfig{"api.test": {Timeout: time.Second}}}))
}

func TestRateLimitKeyNilFunc(t *testing.T) {
	_, err := New(Config{}, WithRateLimitKey("default", nil))
	require.ErrorContains(t, err, `WithRateLimitKey("default"): nil KeyFunc`)
}
