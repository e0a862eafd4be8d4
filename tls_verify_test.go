package connmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/connmgr/connmgr/internal/testpki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withTLS is fastRetries(3) with the given TLS settings, for Default.
func withTLS(c TLSConfig) EndpointConfig {
	e := fastRetries(3)
	e.TLS = c
	return e
}

// TestTLSCAFileVerifiesTheAddressDialled: an endpoint that serves many
// hosts (here the default) verifies a server reached by IP address
// against the certificate's IP SANs, as crypto/tls does, with ca_file
// alone, with pins, with a client certificate, over IPv4 and IPv6.
// Before, every such call failed with "cannot tell which IP address the
// certificate must name".
func TestTLSCAFileVerifiesTheAddressDialled(t *testing.T) {
	p := newTestPKI(t)
	leaf := p.issue(testpki.Options{DNSNames: []string{"srv.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
	_, certFile, keyFile := p.clientFiles("client", testpki.PKCS8, "")
	caFile := p.caFile("ca")
	servers := map[string]func(*testing.T, func(*tls.Config)) *tlsServer{
		"IPv4": func(t *testing.T, tweak func(*tls.Config)) *tlsServer { return startTLSServer(t, leaf, tweak) },
		"IPv6": func(t *testing.T, tweak func(*tls.Config)) *tlsServer {
			return startTLSServerOn(t, listenIPv6Loopback(t), leaf, tweak)
		},
	}
	pin := SPKIPin(leaf.Cert)
	tests := []struct {
		name       string
		tls        TLSConfig
		clientAuth bool
	}{
		{"ca_file", TLSConfig{CAFile: caFile}, false},
		{"ca_file and pins", TLSConfig{CAFile: caFile, Pins: []string{pin}}, false},
		{"ca_file and a client certificate", TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, true},
		{"ca_file, pins and a client certificate", TLSConfig{CAFile: caFile, Pins: []string{pin}, CertFile: certFile, KeyFile: keyFile}, true},
		{"ca_file in replace mode", TLSConfig{CAFile: caFile, CAMode: "replace"}, false},
		{"ca_file and server_name", TLSConfig{CAFile: caFile, ServerName: "srv.test"}, false},
	}
	for family, start := range servers {
		for _, tt := range tests {
			t.Run(family+"/"+tt.name, func(t *testing.T) {
				var tweak func(*tls.Config)
				if tt.clientAuth {
					tweak = requireClientAuth(p.ca)
				}
				srv := start(t, tweak)
				m := newTestManager(t, Config{Default: withTLS(tt.tls)})
				// Twice: a new connection, then a kept-alive or resumed one.
				for i := 0; i < 2; i++ {
					assert.Equal(t, "ok", callOK(t, m, srv.URL))
					m.CloseIdleConnections()
				}
				if tt.clientAuth {
					assert.NotEqual(t, "", srv.lastClient(), "the client certificate was presented")
				}
			})
		}
	}
}

// TestTLSCAFileAddressMustBeInTheCertificate: verifying against the
// address dialled fails closed when the certificate does not name it,
// and server_name, when set, is what must be named.
func TestTLSCAFileAddressMustBeInTheCertificate(t *testing.T) {
	p := newTestPKI(t)
	onlyV4 := p.issue(testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	caFile := p.caFile("ca")

	t.Run("an IPv6 address the certificate does not name", func(t *testing.T) {
		srv := startTLSServerOn(t, listenIPv6Loopback(t), onlyV4, nil)
		m := newTestManager(t, Config{Default: withTLS(TLSConfig{CAFile: caFile})})
		err := callTLSFail(t, m, srv.URL, TLSNameMismatch)
		var te *TLSError
		require.True(t, errors.As(err, &te))
		assert.Equal(t, "::1", te.Host)
	})
	t.Run("an IPv4 address the certificate does not name", func(t *testing.T) {
		other := p.issue(testpki.Options{IPs: []net.IP{net.IPv4(10, 0, 0, 5)}, DNSNames: []string{"localhost"}})
		srv := startTLSServer(t, other, nil)
		m := newTestManager(t, Config{Default: withTLS(TLSConfig{CAFile: caFile})})
		callTLSFail(t, m, srv.URL, TLSNameMismatch)
	})
	t.Run("server_name wins over the address", func(t *testing.T) {
		srv := startTLSServer(t, onlyV4, nil)
		m := newTestManager(t, Config{Default: withTLS(TLSConfig{CAFile: caFile, ServerName: "srv.test"})})
		callTLSFail(t, m, srv.URL, TLSNameMismatch)
	})
	t.Run("a pin mismatch names the address", func(t *testing.T) {
		srv := startTLSServer(t, onlyV4, nil)
		unrelated := SPKIPin(p.issue(testpki.Options{}).Cert)
		m := newTestManager(t, Config{Default: withTLS(TLSConfig{CAFile: caFile, Pins: []string{unrelated}})})
		err := callTLSFail(t, m, srv.URL, TLSPinMismatch)
		var pe *PinError
		require.True(t, errors.As(err, &pe))
		assert.Equal(t, "127.0.0.1", pe.Host)
	})
	t.Run("an endpoint keyed by the IPv6 address", func(t *testing.T) {
		srv := startTLSServerOn(t, listenIPv6Loopback(t), onlyV4, nil)
		m := newTestManager(t, Config{Default: fastRetries(3), Endpoints: map[string]EndpointConfig{"[::1]": {TLS: TLSConfig{CAFile: caFile}}}})
		callTLSFail(t, m, srv.URL, TLSNameMismatch)
	})
}

// TestTLSDialVerifiesTheAddressDialled drives an endpoint's dialer
// directly, with a dial function that sends every address to one test
// server, so that addresses and names other than loopback's (a wildcard
// endpoint's hosts, 10.0.0.5, fd00::5) are what the handshake is for.
func TestTLSDialVerifiesTheAddressDialled(t *testing.T) {
	p := newTestPKI(t)
	leaf := p.issue(testpki.Options{
		DNSNames: []string{"api.internal.test"},
		IPs:      []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("fd00::5")},
	})
	srv := startTLSServer(t, leaf, nil)
	caFile := p.caFile("ca")
	dialServer := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	tests := []struct {
		key, addr, serverName string
		ok                    bool
	}{
		{"*.internal.test", "api.internal.test:443", "", true},
		{"*.internal.test", "web.internal.test:443", "", false},
		{"default", "10.0.0.5:8443", "", true},
		{"default", "[fd00::5]:8443", "", true},
		{"default", "10.0.0.6:8443", "", false},
		{"default", "[fd00::6]:8443", "", false},
		{"default", "10.0.0.6:8443", "api.internal.test", true},
		{"default", "10.0.0.5:8443", "web.internal.test", false},
		{"default", "10.0.0.6:8443", "10.0.0.5", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/server_name=%q", tt.key, tt.addr, tt.serverName), func(t *testing.T) {
			et, err := newEndpointTLS(tt.key, TLSConfig{CAFile: caFile, ServerName: tt.serverName}, nil,
				slog.New(slog.DiscardHandler), &tlsCounters{})
			require.NoError(t, err)
			conn, err := et.dialTLS(dialServer, 5*time.Second)(context.Background(), "tcp", tt.addr)
			if tt.ok {
				require.NoError(t, err)
				require.NoError(t, conn.Close())
				return
			}
			require.Error(t, err)
			var hostname x509.HostnameError
			assert.True(t, errors.As(err, &hostname), "want a name mismatch, got %v", err)
			assert.Equal(t, TLSNameMismatch, ClassifyTLSError(err))
		})
	}
}

// TestTLSOneClassifier: what the retry decision treats as a TLS failure
// (not retried) is exactly what ClassifyTLSError classifies.
func TestTLSOneClassifier(t *testing.T) {
	opErr := func(e error) error { return &net.OpError{Op: "remote error", Net: "tcp", Err: e} }
	errs := []error{
		x509.HostnameError{},
		x509.UnknownAuthorityError{},
		x509.CertificateInvalidError{Reason: x509.Expired},
		&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}},
		tls.RecordHeaderError{},
		&PinError{},
		fmt.Errorf("wrapped: %w", ErrCertificatePin),
		tls.AlertError(40), // handshake_failure
		tls.AlertError(48), // unknown_ca
		tls.AlertError(80), // internal_error: may be transient
		tls.AlertError(90), // user_canceled
		opErr(tls.AlertError(80)),
		&url.Error{Op: "Get", URL: "https://x", Err: tls.AlertError(116)},
		errors.New("connection reset"),
	}
	for _, err := range errs {
		classified := ClassifyTLSError(err) != ""
		notRetried := classifyError(context.Background(), err) == errNotRetryable
		assert.Equal(t, classified, notRetried, "%#v: classified as TLS %v, not retried %v", err, classified, notRetried)
	}
	assert.Equal(t, TLSPinMismatch, ClassifyTLSError(fmt.Errorf("x: %w", ErrCertificatePin)))
	assert.Equal(t, errRetryable, classifyError(context.Background(), tls.AlertError(80)), "internal_error is retried")
	assert.Equal(t, errNotRetryable, classifyError(context.Background(), tls.AlertError(48)), "unknown_ca is not")
}

func TestTLSUnknownCipherSuiteIsNamed(t *testing.T) {
	tests := []struct{ name, want string }{
		{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA999", `unknown cipher suite "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA999"; known: `},
		{"TLS_NOPE", `unknown cipher suite "TLS_NOPE"; known: `},
		// Not shaped like a suite name: it may be a secret in the wrong
		// place, so it is described, not quoted.
		{"tls_ecdhe_rsa", "unknown cipher suite (a value of 13 bytes, not quoted"},
		{"hunter2 s3cr3t", "unknown cipher suite (a value of 14 bytes, not quoted"},
		{"TLS_", "unknown cipher suite (a value of 4 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problem := cipherSuiteID(tt.name)
			assert.Contains(t, problem, tt.want)
			if _, err := New(Config{Default: EndpointConfig{TLS: TLSConfig{CipherSuites: []string{tt.name}}}}); assert.Error(t, err) {
				assert.Contains(t, err.Error(), "default.tls.cipher_suites[0]: "+tt.want)
			}
		})
	}
}
