package connmgr

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedirectRefererKeepsSecretsAtHome: a redirect to another host gets
// only the first URL's origin as Referer, never its query (api keys,
// tokens); a redirect within the origin keeps the whole URL. Through Do
// (Get) and through Client().
func TestRedirectRefererKeepsSecretsAtHome(t *testing.T) {
	other := connmgrtest.NewServer(connmgrtest.Step{Body: "elsewhere"})
	defer other.Close()
	_, otherPort, err := net.SplitHostPort(other.Addr())
	require.NoError(t, err)
	home := connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		switch r.URL.Path {
		case "/cross":
			return connmgrtest.Step{Status: http.StatusFound, Header: http.Header{"Location": {other.URL + "/landing"}}}
		case "/cross-host":
			// Same port number, another host name: still another origin.
			return connmgrtest.Step{Status: http.StatusFound, Header: http.Header{"Location": {"http://localhost:" + otherPort + "/landing"}}}
		case "/same":
			return connmgrtest.Step{Status: http.StatusFound, Header: http.Header{"Location": {"/landing"}}}
		}
		return connmgrtest.Step{Body: "home"}
	})
	defer home.Close()

	m := newTestManager(t, Config{})
	clients := map[string]func(string) (*http.Response, error){
		"Get":      func(u string) (*http.Response, error) { return m.Get(context.Background(), u) },
		"Client()": func(u string) (*http.Response, error) { return m.Client().Get(u) },
	}
	const secret = "api_key=SECRET-KEY&token=SECRET-TOKEN"
	for name, get := range clients {
		t.Run(name+"/to another port", func(t *testing.T) {
			other.Reset()
			resp, err := get(home.URL + "/cross?" + secret)
			require.NoError(t, err)
			assert.Equal(t, "elsewhere", readAll(t, resp))
			got := other.Requests()
			require.Len(t, got, 1)
			assert.Equal(t, home.URL+"/", got[0].Header.Get("Referer"), "only the origin")
		})
		t.Run(name+"/to another host", func(t *testing.T) {
			other.Reset()
			resp, err := get(home.URL + "/cross-host?" + secret)
			require.NoError(t, err)
			assert.Equal(t, "elsewhere", readAll(t, resp))
			got := other.Requests()
			require.Len(t, got, 1)
			assert.Equal(t, home.URL+"/", got[0].Header.Get("Referer"))
		})
		t.Run(name+"/within the origin", func(t *testing.T) {
			home.Reset()
			resp, err := get(home.URL + "/same?" + secret)
			require.NoError(t, err)
			assert.Equal(t, "home", readAll(t, resp))
			got := home.Requests()
			require.Len(t, got, 2)
			assert.Equal(t, home.URL+"/same?"+secret, got[1].Header.Get("Referer"), "the same host saw it already")
		})
	}
}

// TestRedirectRefererDowngrade: from https to http no Referer is sent,
// not even one the caller set.
func TestRedirectRefererDowngrade(t *testing.T) {
	plain := connmgrtest.NewServer(connmgrtest.Step{Body: "plain"})
	defer plain.Close()
	secure := connmgrtest.NewTLSServer(connmgrtest.Step{Status: http.StatusFound, Header: http.Header{"Location": {plain.URL + "/x"}}})
	defer secure.Close()
	m := newTestManager(t, Config{}, WithTLSConfig("default", secure.Client().Transport.(*http.Transport).TLSClientConfig))
	req, err := http.NewRequest(http.MethodGet, secure.URL+"/start?token=SECRET", nil)
	require.NoError(t, err)
	req.Header.Set("Referer", secure.URL+"/page?token=SECRET")
	resp, err := m.Do(req)
	require.NoError(t, err)
	assert.Equal(t, "plain", readAll(t, resp))
	got := plain.Requests()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].Header.Get("Referer"))
}

func TestCheckRedirect(t *testing.T) {
	tests := []struct {
		name, from, to, referer, want string
	}{
		{"cross origin", "https://a.example/p?key=s", "https://b.example/q", "https://a.example/p?key=s", "https://a.example/"},
		{"cross port", "https://a.example/p?key=s", "https://a.example:8443/q", "https://a.example/p?key=s", "https://a.example/"},
		{"cross scheme upgrade", "http://a.example/p?key=s", "https://a.example/q", "http://a.example/p?key=s", "http://a.example/"},
		{"implied port is the same origin", "https://a.example/p?key=s", "https://A.example:443/q", "https://a.example/p?key=s", "https://a.example/p?key=s"},
		{"same origin drops userinfo", "https://a.example/p", "https://a.example/q", "https://u:pw@a.example/p?k=1", "https://a.example/p?k=1"},
		{"cross origin drops userinfo", "https://a.example/p", "https://b.example/q", "https://u:pw@a.example:8443/p", "https://a.example:8443/"},
		{"downgrade", "https://a.example/p", "http://b.example/q", "https://a.example/p", ""},
		{"explicit referer elsewhere", "https://a.example/p", "https://b.example/q", "https://c.example/page?sig=s", "https://c.example/"},
		{"unparsable referer", "https://a.example/p", "https://b.example/q", "::not a url", ""},
		{"relative referer", "https://a.example/p", "https://b.example/q", "/p?sig=s", ""},
		{"no referer", "https://a.example/p", "https://b.example/q", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev, err := http.NewRequest(http.MethodGet, tt.from, nil)
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodGet, tt.to, nil)
			require.NoError(t, err)
			if tt.referer != "" {
				req.Header.Set("Referer", tt.referer)
			}
			require.NoError(t, CheckRedirect(req, []*http.Request{prev}))
			assert.Equal(t, tt.want, req.Header.Get("Referer"))
		})
	}
	t.Run("at most 10 redirects", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "http://a.example/", nil)
		via := make([]*http.Request, 10)
		for i := range via {
			via[i] = req
		}
		assert.EqualError(t, CheckRedirect(req, via), "stopped after 10 redirects")
		assert.NoError(t, CheckRedirect(req, via[:9]))
	})
}

// TestRedirectRefererWithoutCheckRedirect: an *http.Client built around
// the Manager without CheckRedirect is covered by the transport, and
// the request net/http gives it is not changed.
func TestRedirectRefererWithoutCheckRedirect(t *testing.T) {
	other := connmgrtest.NewServer(connmgrtest.Step{Body: "elsewhere"})
	defer other.Close()
	home := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusFound, Header: http.Header{"Location": {other.URL + "/landing"}}})
	defer home.Close()
	m := newTestManager(t, Config{})

	client := &http.Client{Transport: m}
	resp, err := client.Get(home.URL + "/start?api_key=SECRET")
	require.NoError(t, err)
	assert.Equal(t, "elsewhere", readAll(t, resp))
	got := other.Requests()
	require.Len(t, got, 1)
	assert.Equal(t, home.URL+"/", got[0].Header.Get("Referer"))

	other.Reset()
	first, err := http.NewRequest(http.MethodGet, home.URL+"/start?api_key=SECRET", nil)
	require.NoError(t, err)
	hop, err := http.NewRequest(http.MethodGet, other.URL+"/landing", nil)
	require.NoError(t, err)
	hop.Header.Set("Referer", first.URL.String())
	hop.Response = &http.Response{StatusCode: http.StatusFound, Request: first}
	resp, err = m.RoundTrip(hop)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, home.URL+"/", other.Requests()[0].Header.Get("Referer"))
	assert.Equal(t, first.URL.String(), hop.Header.Get("Referer"), "the given request is not changed")
}
