package connmgr

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLookupOrder(t *testing.T) {
	cfg := Config{Endpoints: map[string]EndpointConfig{
		"api.example.com:8443":   {Timeout: 1 * time.Second},
		"api.example.com":        {Timeout: 2 * time.Second},
		"*.example.com":          {Timeout: 3 * time.Second},
		"*.eu.example.com":       {Timeout: 4 * time.Second},
		"secure.example.org:443": {Timeout: 5 * time.Second},
		"plain.example.org:80":   {Timeout: 6 * time.Second},
		"[::1]:9000":             {Timeout: 7 * time.Second},
		"10.0.0.1":               {Timeout: 8 * time.Second},
	}}
	m := newTestManager(t, cfg)
	tests := []struct {
		url  string
		want string
	}{
		{"https://api.example.com:8443/x", "api.example.com:8443"},
		{"https://api.example.com/x", "api.example.com"},
		{"https://API.Example.COM/x", "api.example.com"},
		{"https://api.example.com:9999/x", "api.example.com"},
		{"https://www.example.com/", "*.example.com"},
		{"https://a.b.example.com/", "*.example.com"},
		{"https://x.eu.example.com/", "*.eu.example.com"},
		{"https://example.com/", "default"},
		{"https://notexample.com/", "default"},
		{"https://secure.example.org/", "secure.example.org:443"},
		{"http://secure.example.org/", "default"},
		{"http://plain.example.org/", "plain.example.org:80"},
		{"http://[::1]:9000/", "[::1]:9000"},
		{"http://10.0.0.1:1234/", "10.0.0.1"},
		{"http://other/", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			require.NoError(t, err)
			got := m.table.Load().lookup(u)
			assert.Equal(t, tt.want, got.key)
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	cfg := Config{Endpoints: map[string]EndpointConfig{
		"api.example.com": {}, "*.example.com": {}, "svc.example.org:443": {},
	}}
	m := newTestManager(t, cfg)
	tbl := m.table.Load()
	urls := []*url.URL{
		{Scheme: "https", Host: "api.example.com"},
		{Scheme: "https", Host: "a.b.example.com:8443"},
		{Scheme: "https", Host: "svc.example.org"},
		{Scheme: "https", Host: "nomatch.test"},
	}
	for _, u := range urls {
		allocs := testing.AllocsPerRun(100, func() { tbl.lookup(u) })
		assert.Zero(t, allocs, "lookup(%s)", u)
	}
}

func TestInheritance(t *testing.T) {
	cfg := Config{
		Default: EndpointConfig{
			Timeout: 5 * time.Second,
			Retry:   RetryConfig{MaxAttempts: 4, NonIdempotent: Bool(true)},
			Headers: map[string]string{"X-Team": "payments", "X-Env": "prod"},
		},
		Endpoints: map[string]EndpointConfig{
			"a.example.com": {
				Retry:   RetryConfig{InitialBackoff: time.Second, NonIdempotent: Bool(false)},
				Headers: map[string]string{"X-Env": "staging"},
			},
		},
	}
	cc, err := compile(cfg)
	require.NoError(t, err)
	a := cc.endpoints["a.example.com"].cfg
	assert.Equal(t, 5*time.Second, a.Timeout, "timeout inherited from default")
	assert.Equal(t, 30*time.Second, a.TotalTimeout, "total timeout from built-in default")
	assert.Equal(t, 4, a.Retry.MaxAttempts, "max_attempts inherited")
	assert.Equal(t, time.Second, a.Retry.InitialBackoff, "own value kept")
	assert.Equal(t, 5*time.Second, a.Retry.MaxBackoff)
	assert.False(t, *a.Retry.NonIdempotent, "explicit false overrides inherited true")
	assert.Equal(t, map[string]string{"X-Team": "payments", "X-Env": "staging"}, a.Headers, "maps merge key by key")
	assert.Equal(t, []int{408, 429, 500, 502, 503, 504}, a.Retry.RetryOn)
	// The caller's maps are untouched.
	assert.Equal(t, map[string]string{"X-Env": "staging"}, cfg.Endpoints["a.example.com"].Headers)
}

func TestEmptyRetryOnIsKept(t *testing.T) {
	cc, err := compile(Config{Endpoints: map[string]EndpointConfig{"a": {Retry: RetryConfig{RetryOn: []int{}}}}})
	require.NoError(t, err)
	assert.Empty(t, cc.endpoints["a"].cfg.Retry.RetryOn)
	assert.NotNil(t, cc.endpoints["a"].cfg.Retry.RetryOn)
}

func TestValidationNamesEveryProblem(t *testing.T) {
	cfg := Config{
		Default: EndpointConfig{Retry: RetryConfig{MaxAttempts: -1}},
		Endpoints: map[string]EndpointConfig{
			"api.example.com": {
				Retry: RetryConfig{RetryOn: []int{503, 42}, InitialBackoff: 2 * time.Second, MaxBackoff: time.Second},
				Auth:  AuthConfig{BearerToken: "t", APIKey: "k"},
			},
			"https://bad.example.com/path": {},
			"API.example.com":              {},
			"b.example.com":                {Headers: map[string]string{"Bad Header": "x\r\ny"}, Fallback: "nowhere"},
			"c.example.com":                {Fallback: "d.example.com"},
			"d.example.com":                {Fallback: "c.example.com"},
			"*":                            {},
			"e.example.com":                {TLS: TLSConfig{MinVersion: "1.0"}},
		},
	}
	err := cfg.Validate()
	require.Error(t, err)
	var ce *ConfigError
	require.True(t, errors.As(err, &ce))
	msg := err.Error()
	for _, want := range []string{
		`default.retry.max_attempts: must be >= 1, got -1`,
		`endpoints["api.example.com"].retry.retry_on[1]: must be an HTTP status 100..599, got 42`,
		`endpoints["api.example.com"].retry.max_backoff: must be >= initial_backoff`,
		`endpoints["api.example.com"].auth: set only one of`,
		`endpoints["https://bad.example.com/path"]: key must be`,
		`same endpoint as "api.example.com"`,
		`endpoints["b.example.com"].headers["Bad Header"]: not a valid header name`,
		`endpoints["b.example.com"].headers["Bad Header"]: value must not contain control characters`,
		`endpoints["b.example.com"].fallback: names no endpoint`,
		`endpoints["c.example.com"].fallback: fallback cycle`,
		`endpoints["*"]: "*" is only allowed`,
		`endpoints["e.example.com"].tls.min_version: must be "1.2" or "1.3"`,
	} {
		assert.Contains(t, msg, want)
	}
	assert.GreaterOrEqual(t, len(ce.Problems), 12)

	_, err = New(cfg)
	require.Error(t, err, "New validates too")
}

func TestNormalizeKey(t *testing.T) {
	tests := []struct {
		in      string
		key     string
		kind    endpointKind
		problem string
	}{
		{"api.example.com", "api.example.com", kindHost, ""},
		{" API.Example.com ", "api.example.com", kindHost, ""},
		{"api.example.com:8080", "api.example.com:8080", kindHostPort, ""},
		{"*.example.com", "*.example.com", kindWildcard, ""},
		{"[::1]:80", "[::1]:80", kindHostPort, ""},
		{"[::1]", "::1", kindHost, ""},
		{"", "", 0, "empty"},
		{"http://x", "", 0, "not a URL"},
		{"a/b", "", 0, "not a URL"},
		{"*.", "", 0, "wildcard"},
		{"a.*.com", "", 0, "first label"},
		{"::1:80", "", 0, "bracketed"},
		{"host:", "", 0, "host and a port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			key, kind, problem := normalizeKey(tt.in)
			if tt.problem != "" {
				assert.Contains(t, problem, tt.problem)
				return
			}
			assert.Empty(t, problem)
			assert.Equal(t, tt.key, key)
			assert.Equal(t, tt.kind, kind)
		})
	}
}

func FuzzNew(f *testing.F) {
	f.Add("api.example.com", int64(time.Second), 3, 503, "Bearer")
	f.Add("*.x", int64(-1), -5, 0, "")
	f.Add("http://[::1", int64(0), 1000, 99999, "\r\n")
	f.Fuzz(func(t *testing.T, key string, d int64, attempts, status int, header string) {
		cfg := Config{Endpoints: map[string]EndpointConfig{key: {
			Timeout: time.Duration(d),
			Retry:   RetryConfig{MaxAttempts: attempts, RetryOn: []int{status}, MaxBackoff: time.Duration(d)},
			Headers: map[string]string{header: header},
		}}}
		m, err := New(cfg)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 || !strings.HasPrefix(err.Error(), "connmgr: ") {
				t.Fatalf("New error is not a ConfigError with problems: %v", err)
			}
			return
		}
		_ = m.Close()
	})
}
