package connmgr

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connmgr/connmgr/internal/testpki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLSSessionsNotSharedBetweenEndpoints: two endpoints with different
// client certificates and one ClientSessionCache (a WithTLSConfig base)
// reach the same server name. The second used to resume the first's
// session, and so reached the server with the first's identity.
func TestTLSSessionsNotSharedBetweenEndpoints(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := newTestPKI(t)
			leaf := p.issue(testpki.Options{DNSNames: []string{"srv.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
			srv := startTLSServer(t, leaf, func(c *tls.Config) {
				requireClientAuth(p.ca)(c)
				c.MaxVersion = version
			})
			_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
			require.NoError(t, err)
			a, aCert, aKey := p.clientFiles("svc-a", testpki.PKCS8, "")
			b, bCert, bKey := p.clientFiles("svc-b", testpki.PKCS8, "")
			shared := &tls.Config{RootCAs: p.ca.Pool(), ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			cfg := Config{Endpoints: map[string]EndpointConfig{
				"127.0.0.1": {TLS: TLSConfig{ServerName: "srv.test", CertFile: aCert, KeyFile: aKey}},
				"localhost": {TLS: TLSConfig{ServerName: "srv.test", CertFile: bCert, KeyFile: bKey}},
			}}
			m := newTestManager(t, cfg, WithTLSConfig("default", shared))
			callOK(t, m, srv.URL)
			require.Equal(t, a.Cert.SerialNumber.String(), srv.lastClient())
			m.CloseIdleConnections()
			callOK(t, m, "https://localhost:"+port)
			assert.Equal(t, b.Cert.SerialNumber.String(), srv.lastClient(), "endpoint localhost reached the server as svc-a")
			resumed, _, _ := srv.last()
			assert.False(t, resumed, "endpoint localhost resumed endpoint 127.0.0.1's session")

			// Each endpoint still resumes its own sessions.
			m.CloseIdleConnections()
			callOK(t, m, srv.URL)
			resumed, _, _ = srv.last()
			assert.True(t, resumed, "endpoint 127.0.0.1 did not resume its own session")
		})
	}
}

// recordingCache is a ClientSessionCache that records the keys it is
// given.
type recordingCache struct {
	mu   sync.Mutex // guards puts and m
	puts []string
	m    map[string]*tls.ClientSessionState
}

func (c *recordingCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.m[key]
	return cs, ok
}

func (c *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts = append(c.puts, key)
	c.m[key] = cs
}

func (c *recordingCache) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.puts...)
}

// TestTLSSessionScope: a connection's scope (the certificate it presents,
// the CA it trusts) is fixed when its handshake starts, and a ticket that
// arrives after a rotation (TLS 1.3 tickets come after the handshake) is
// filed under the identity the connection used.
func TestTLSSessionScope(t *testing.T) {
	p := newTestPKI(t)
	a, certFile, keyFile := p.clientFiles("client", testpki.PKCS8, "")
	caFile := p.caFile("ca")
	rec := &recordingCache{m: map[string]*tls.ClientSessionState{}}
	et, err := newEndpointTLS("api.test", TLSConfig{CertFile: certFile, KeyFile: keyFile, CAFile: caFile},
		&tls.Config{ClientSessionCache: rec}, slog.New(slog.DiscardHandler), &tlsCounters{})
	require.NoError(t, err)
	fingerprint := func(c *testpki.Leaf) string {
		sum := sha256.Sum256(c.Cert.Raw)
		return "cert:" + hex.EncodeToString(sum[:16])
	}

	conn := &connSessions{s: et.sessions}
	_, _ = conn.Get("srv.test") // the handshake starts
	presented, err := conn.getClientCertificate(nil)
	require.NoError(t, err)
	require.Equal(t, a.Cert.Raw, presented.Leaf.Raw)

	// The client certificate is rotated while the connection is open.
	b := p.issue(testpki.Options{Client: true, CommonName: "client b"})
	keyB, err := b.KeyPEM(testpki.PKCS8, "")
	require.NoError(t, err)
	writeAndBump(t, keyFile, keyB)
	writeAndBump(t, certFile, b.CertPEM())

	conn.Put("srv.test", &tls.ClientSessionState{}) // its ticket arrives
	presented, err = conn.getClientCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, a.Cert.Raw, presented.Leaf.Raw, "a connection presents the certificate of its scope")

	next := &connSessions{s: et.sessions}
	_, found := next.Get("srv.test")
	assert.False(t, found, "a connection made after the rotation found the session made with the old certificate")
	presented, err = next.getClientCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, b.Cert.Raw, presented.Leaf.Raw)

	keys := rec.keys()
	require.Len(t, keys, 1)
	assert.Contains(t, keys[0], "api.test|")
	assert.Contains(t, keys[0], fingerprint(a), "the ticket is filed under the certificate the connection presented")
	assert.True(t, strings.HasSuffix(keys[0], "|srv.test"), "key %q", keys[0])

	// net/http's own connections (through a proxy) use the shared cache:
	// right after a rotation it cannot tell which identity a ticket
	// belongs to, and drops it.
	et.sessions.Put("srv.test", &tls.ClientSessionState{})
	assert.Len(t, rec.keys(), 1, "a ticket filed through the shared path right after a rotation")

	// A rotated CA is a new scope too.
	other, err := testpki.NewCA("other root")
	require.NoError(t, err)
	_, scopeBefore := et.sessions.scope()
	writeAndBump(t, caFile, other.CertPEM())
	_, scopeAfter := et.sessions.scope()
	assert.NotEqual(t, scopeBefore, scopeAfter)
}

// TestTLSHandshakeTimeout: the endpoint's dialer bounds the handshake by
// transport.tls_handshake_timeout, and says so as net/http does.
func TestTLSHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() { // accepts, and never answers the ClientHello
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	cfg := Config{Default: EndpointConfig{Retry: RetryConfig{MaxAttempts: 1}, Transport: TransportConfig{TLSHandshakeTimeout: 100 * time.Millisecond}}}
	m := newTestManager(t, cfg)
	start := time.Now()
	_, err = get(t, m, "https://"+ln.Addr().String()+"/")
	require.Error(t, err)
	var te tlsHandshakeTimeoutError
	assert.True(t, errors.As(err, &te) && te.Timeout(), "err = %v, want a handshake timeout", err)
	assert.Contains(t, err.Error(), "TLS handshake timeout")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestTLSHTTP2ThroughTheDialer: connections made by the endpoint's dialer
// still negotiate HTTP/2, unless it is turned off.
func TestTLSHTTP2ThroughTheDialer(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	base := &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	for _, tc := range []struct {
		disable *bool
		want    string
	}{{nil, "HTTP/2.0"}, {Bool(true), "HTTP/1.1"}} {
		m := newTestManager(t, Config{Default: EndpointConfig{Transport: TransportConfig{DisableHTTP2: tc.disable}}}, WithTLSConfig("default", base))
		assert.Equal(t, tc.want, callOK(t, m, srv.URL))
	}
}
