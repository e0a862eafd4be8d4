package connmgr

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/connmgr/connmgr/internal/testpki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitHealth polls m.Health() for endpoint key until ok says so (5s at most).
func waitHealth(t *testing.T, m *Manager, key string, ok func(EndpointHealth) bool) EndpointHealth {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h := m.Health().Endpoints[key]
		if ok(h) || time.Now().After(deadline) {
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealthChecksUseTheEndpointsMTLS(t *testing.T) {
	p := newTestPKI(t)
	srv := startTLSServer(t, p.issue(testpki.Options{}), requireClientAuth(p.ca))
	leaf, certFile, keyFile := p.clientFiles("client", testpki.PKCS8, "")
	check := HealthCheckConfig{Path: "/health", Interval: time.Second, UnhealthyThreshold: 1}
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"with-cert": {Upstreams: []UpstreamConfig{{URL: srv.URL}}, HealthCheck: check,
			TLS: TLSConfig{CAFile: p.caFile("ca"), CertFile: certFile, KeyFile: keyFile}},
		"without-cert": {Upstreams: []UpstreamConfig{{URL: srv.URL}}, HealthCheck: check,
			TLS: TLSConfig{CAFile: p.caFile("ca")}},
	}})
	h := waitHealth(t, m, "with-cert", func(h EndpointHealth) bool { return h.Upstreams[0].Status != HealthUnknown })
	assert.Equal(t, HealthHealthy, h.Upstreams[0].Status, h.Upstreams[0].LastError)
	assert.False(t, h.Upstreams[0].LastCheck.IsZero())
	assert.Equal(t, leaf.Cert.SerialNumber.String(), srv.lastClient(), "the check presented the client certificate")
	before := srv.requestCount()
	assert.Equal(t, "ok", callOK(t, m, "http://with-cert/pay"), "a call goes over the upstream's https with the certificate")
	assert.Equal(t, before+1, srv.requestCount())

	h = waitHealth(t, m, "without-cert", func(h EndpointHealth) bool { return h.Upstreams[0].Status != HealthUnknown })
	assert.Equal(t, HealthUnhealthy, h.Upstreams[0].Status)
	assert.NotEmpty(t, h.Upstreams[0].LastError)
	assert.Equal(t, HealthUnhealthy, m.Health().Overall)
}

// staticResolver resolves every name to 127.0.0.1.
type staticResolver map[string][]string

func (r staticResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestDiscoveredUpstreamKeepsTheLogicalHost(t *testing.T) {
	p := newTestPKI(t)
	// The certificate names pay.internal only: the address alone would
	// not verify.
	srv := startTLSServer(t, p.issue(testpki.Options{DNSNames: []string{"pay.internal"}, IPs: []net.IP{}}), nil)
	var hosts []string
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host)
		inner.ServeHTTP(w, r)
	})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"payments": {Upstreams: []UpstreamConfig{{URL: "dns:///pay.internal:" + port}}, TLS: TLSConfig{CAFile: p.caFile("ca")}},
	}}, WithResolver(staticResolver{"pay.internal": {"127.0.0.1"}}))
	resp, err := get(t, m, "https://payments/v1/x")
	require.NoError(t, err)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Equal(t, "127.0.0.1:"+port, resp.Request.URL.Host, "the connection went to the address")
	assert.Equal(t, []string{"pay.internal:" + port}, hosts, "the Host header is the logical host")
	h := m.Health().Endpoints["payments"]
	require.Len(t, h.Upstreams, 1)
	assert.Equal(t, "pay.internal:"+port, h.Upstreams[0].Host)
}

func TestDiscoveryThatFindsNothingFailsCleanly(t *testing.T) {
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"payments": {Upstreams: []UpstreamConfig{{URL: "dns:///nowhere.internal:443"}}},
	}}, WithResolver(staticResolver{}))
	_, err := get(t, m, "http://payments/")
	require.ErrorIs(t, err, ErrNoHealthyUpstream)
	assert.Contains(t, err.Error(), "resolving nowhere.internal: no such host")
	assert.Equal(t, "resolving nowhere.internal: no such host; keeping the last good set", m.Health().Endpoints["payments"].Discovery)
}
