package redact

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestURL(t *testing.T) {
	r := New(nil, []string{"session"})
	tests := []struct {
		in, want string
	}{
		{"https://api.example.com/v1/items?page=2", "https://api.example.com/v1/items?page=2"},
		{"https://user:pass@api.example.com/", "https://REDACTED@api.example.com/"},
		{"https://tokenonly@api.example.com/", "https://REDACTED@api.example.com/"},
		{"https://h/?api_key=abc&page=2", "https://h/?api_key=REDACTED&page=2"},
		{"https://h/?API_KEY=abc", "https://h/?API_KEY=REDACTED"},
		{"https://h/?session=s1&x=1", "https://h/?session=REDACTED&x=1"},
		{"https://h/?to%6Ben=abc", "https://h/?to%6Ben=REDACTED"},
		{"https://h/?token", "https://h/?token"},
		{"https://h/p#access_token=abc", "https://h/p"},
		{"https://h/?a=1&&token=x&", "https://h/?a=1&&token=REDACTED&"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := url.Parse(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, r.URL(u))
			assert.Equal(t, tt.want, r.String(tt.in))
		})
	}
	assert.Equal(t, "", r.URL(nil))
	assert.Equal(t, Mask, r.String("http://[::1"), "what cannot be parsed cannot be shown")
}

func TestURLDoesNotModifyItsArgument(t *testing.T) {
	r := New(nil, nil)
	u, _ := url.Parse("https://u:p@h/?token=t#f")
	before := *u
	_ = r.URL(u)
	assert.Equal(t, before, *u)
	assert.Equal(t, "p", func() string { p, _ := u.User.Password(); return p }())
}

func TestHeader(t *testing.T) {
	r := New([]string{"x-signature"}, nil)
	h := http.Header{
		"Authorization":       {"Bearer t"},
		"Cookie":              {"a=b", "c=d"},
		"Set-Cookie":          {"s=1"},
		"Proxy-Authorization": {"Basic x"},
		"X-Api-Key":           {"k"},
		"X-Auth-Token":        {"gitlab-or-openstack-token"},
		"X-Vault-Token":       {"hvs.token"},
		"X-Signature":         {"sig"},
		"Accept":              {"application/json"},
	}
	got := r.Header(h)
	for _, k := range []string{"Authorization", "Proxy-Authorization", "Set-Cookie", "X-Api-Key", "X-Auth-Token", "X-Vault-Token", "X-Signature"} {
		assert.Equal(t, []string{Mask}, got[k], k)
	}
	assert.Equal(t, []string{Mask, Mask}, got["Cookie"])
	assert.Equal(t, []string{"application/json"}, got["Accept"])
	assert.Equal(t, "Bearer t", h.Get("Authorization"), "the input is not modified")
	assert.True(t, r.SecretHeader("x-SIGNATURE"))
	assert.False(t, r.SecretHeader("Accept"))
	assert.Contains(t, r.Headers(), "X-Signature")
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/?token=t", "http://h/?a=%zz&token=1", "//x?key=1", "h?sig=1#a"} {
		f.Add(s)
	}
	r := New(nil, nil)
	f.Fuzz(func(t *testing.T, s string) {
		out := r.String(s)
		u, err := url.Parse(s)
		if err != nil {
			if out != Mask {
				t.Fatalf("unparseable %q gave %q", s, out)
			}
			return
		}
		if u.User == nil {
			return
		}
		back, err := url.Parse(out)
		if err != nil {
			t.Fatalf("redacted form %q of %q does not parse: %v", out, s, err)
		}
		if _, hasPassword := back.User.Password(); hasPassword || back.User.Username() != Mask {
			t.Fatalf("userinfo of %q survived in %q", s, out)
		}
	})
}
