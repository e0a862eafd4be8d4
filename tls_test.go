package connmgr

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connmgr/connmgr/internal/testpki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTLSConfigValidation(t *testing.T) {
	goodPin := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		name string
		tls  TLSConfig
		want []string // problems, each "path: text fragment"
	}{
		{"unknown cipher suite", TLSConfig{CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_NOPE"}},
			[]string{`endpoints["api.example.com"].tls.cipher_suites[1]: unknown cipher suite "TLS_NOPE"; known: TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, `}},
		{"insecure cipher suite", TLSConfig{CipherSuites: []string{"TLS_RSA_WITH_RC4_128_SHA"}},
			[]string{`tls.cipher_suites[0]: "TLS_RSA_WITH_RC4_128_SHA" is insecure`}},
		{"TLS 1.3 cipher suite", TLSConfig{CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}},
			[]string{`tls.cipher_suites[0]: "TLS_AES_128_GCM_SHA256" is a TLS 1.3 suite`}},
		{"version below 1.2", TLSConfig{MinVersion: "1.1"}, []string{`tls.min_version: must be "1.2" or "1.3"`}},
		{"max below min", TLSConfig{MinVersion: "1.3", MaxVersion: "1.2"}, []string{`tls.max_version: must be >= min_version (1.3)`}},
		{"bad ca_mode", TLSConfig{CAFile: "ca.pem", CAMode: "merge"}, []string{`tls.ca_mode: must be "append" or "replace"`}},
		{"replace without a CA", TLSConfig{CAMode: "replace"}, []string{`tls.ca_mode: "replace" needs ca_file`}},
		{"cert without key", TLSConfig{CertFile: "c.pem"}, []string{`tls.key_file: must be set when cert_file is set`}},
		{"key without cert", TLSConfig{KeyFile: "k.pem"}, []string{`tls.cert_file: must be set when key_file is set`}},
		{"password without key", TLSConfig{KeyPassword: "x"}, []string{`tls.key_password: is set but key_file is not`}},
		{"pin without prefix", TLSConfig{Pins: []string{goodPin, "AAAA"}}, []string{`tls.pins[1]: must be "sha256/"`}},
		{"pin not base64", TLSConfig{Pins: []string{"sha256/not base64!"}}, []string{`tls.pins[0]: not valid base64`}},
		{"pin of the wrong length", TLSConfig{Pins: []string{"sha256/AAAA"}}, []string{`tls.pins[0]: a SHA-256 pin is 32 bytes (44 base64 characters), got 3 bytes`}},
		{"pins_only without pins", TLSConfig{PinsOnly: Bool(true)}, []string{`tls.pins_only: needs pins`}},
		{"insecure with pins", TLSConfig{InsecureSkipVerify: Bool(true), Pins: []string{goodPin}},
			[]string{`tls.insecure_skip_verify: turns verification off, so pins would not be checked: use pins_only`}},
		{"blank file name", TLSConfig{CAFile: " "}, []string{`tls.ca_file: must not be blank`}},
		{"valid", TLSConfig{MinVersion: "1.2", MaxVersion: "1.3", CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
			Pins: []string{goodPin}, PinsOnly: Bool(true)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Endpoints: map[string]EndpointConfig{"api.example.com": {TLS: tt.tls}}}.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "got %v, want a *ConfigError", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestTLSFileProblemsFailNew(t *testing.T) {
	p := newTestPKI(t)
	_, certFile, keyFile := p.clientFiles("client", testpki.PKCS8, "")
	_, encCert, encKey := p.clientFiles("enc", testpki.EncryptedPKCS8, "s3cret-pass")
	other, _, otherKey := p.clientFiles("other", testpki.PKCS8, "")
	_ = other
	expired := p.issue(testpki.Options{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	expiredCert, expiredKey, err := expired.WriteFiles(p.dir, "expired", testpki.PKCS8, "")
	require.NoError(t, err)
	write := func(name, content string) string {
		path := filepath.Join(p.dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	garbage := write("garbage.pem", "not PEM at all")
	notCert := write("notcert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	legacy := write("legacy.pem", string(pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   []byte("ciphertext"),
	})))
	missing := filepath.Join(p.dir, "missing.pem")

	tests := []struct {
		name string
		tls  TLSConfig
		want []string
	}{
		{"missing CA file", TLSConfig{CAFile: missing}, []string{`endpoints["127.0.0.1"].tls: ca_file: stat `, "no such file"}},
		{"CA file without certificates", TLSConfig{CAFile: garbage}, []string{`ca_file "` + garbage + `": no PEM CERTIFICATE block found`}},
		{"CA file with a broken certificate", TLSConfig{CAFile: notCert}, []string{`ca_file "` + notCert + `": certificate 1:`}},
		{"missing cert file", TLSConfig{CertFile: missing, KeyFile: keyFile}, []string{"cert_file: stat ", "no such file"}},
		{"missing key file", TLSConfig{CertFile: certFile, KeyFile: missing}, []string{"key_file: stat ", "no such file"}},
		{"key file without PEM", TLSConfig{CertFile: certFile, KeyFile: garbage}, []string{`key_file "` + garbage + `": no PEM data found`}},
		{"key of another certificate", TLSConfig{CertFile: certFile, KeyFile: otherKey}, []string{"private key does not match public key"}},
		{"encrypted key without password", TLSConfig{CertFile: encCert, KeyFile: encKey}, []string{`key_file "` + encKey + `": the key is encrypted (ENCRYPTED PRIVATE KEY): set key_password`}},
		{"wrong password", TLSConfig{CertFile: encCert, KeyFile: encKey, KeyPassword: "wrong"}, []string{`key_file "` + encKey + `": cannot decrypt the key: wrong key_password`}},
		{"password for a plain key", TLSConfig{CertFile: certFile, KeyFile: keyFile, KeyPassword: "x"}, []string{"key_password is set but the key is not encrypted (PRIVATE KEY)"}},
		{"legacy encrypted PEM is refused, with the reason", TLSConfig{CertFile: certFile, KeyFile: legacy, KeyPassword: "x"},
			[]string{"legacy PEM encryption (RFC 1423", "insecure by design", "openssl pkcs8 -topk8"}},
		{"expired client certificate", TLSConfig{CertFile: expiredCert, KeyFile: expiredKey}, []string{"the certificate expired at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tlsConfigFor(tt.tls))
			if m != nil {
				_ = m.Close()
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "s3cret-pass", "the password never appears in errors")
		})
	}
}

func TestTLSReloadWithBadFilesChangesNothing(t *testing.T) {
	p := newTestPKI(t)
	srv := startTLSServer(t, p.issue(testpki.Options{}), requireClientAuth(p.ca))
	leaf, certFile, keyFile := p.clientFiles("client", testpki.PKCS8, "")
	good := tlsConfigFor(TLSConfig{CAFile: p.caFile("ca"), CertFile: certFile, KeyFile: keyFile})
	m := newTestManager(t, good)
	callOK(t, m, srv.URL)
	before := m.Stats().Endpoints["127.0.0.1"].TLS

	// No client certificate and a CA file that is not there: the build
	// fails after deciding there is no client certificate.
	bad := tlsConfigFor(TLSConfig{CAFile: filepath.Join(p.dir, "missing.pem")})
	err := m.Reload(bad)
	require.ErrorContains(t, err, `endpoints["127.0.0.1"].tls: ca_file: stat `)
	callOK(t, m, srv.URL)
	assert.Equal(t, leaf.Cert.SerialNumber.String(), srv.lastClient())
	assert.Equal(t, before, m.Stats().Endpoints["127.0.0.1"].TLS, "a failed reload leaves the TLS stats alone")
}

func TestTLSClientKeyFormats(t *testing.T) {
	p := newTestPKI(t)
	srv := startTLSServer(t, p.issue(testpki.Options{}), requireClientAuth(p.ca))
	tests := []struct {
		name     string
		key      testpki.KeyType
		format   testpki.KeyFormat
		password string
	}{
		{"RSA PKCS#1", testpki.RSA, testpki.PKCS1, ""},
		{"RSA PKCS#8", testpki.RSA, testpki.PKCS8, ""},
		{"ECDSA SEC 1", testpki.ECDSA, testpki.SEC1, ""},
		{"ECDSA PKCS#8", testpki.ECDSA, testpki.PKCS8, ""},
		{"Ed25519 PKCS#8", testpki.Ed25519, testpki.PKCS8, ""},
		{"ECDSA encrypted PKCS#8", testpki.ECDSA, testpki.EncryptedPKCS8, "correct horse"},
		{"RSA encrypted PKCS#8", testpki.RSA, testpki.EncryptedPKCS8, "battery staple"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := p.issue(testpki.Options{Client: true, Key: tt.key})
			certFile, keyFile, err := leaf.WriteFiles(p.dir, "client"+string(rune('a'+i)), tt.format, tt.password)
			require.NoError(t, err)
			m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: p.caFile("ca"), CertFile: certFile, KeyFile: keyFile, KeyPassword: tt.password}))
			assert.Equal(t, "ok", callOK(t, m, srv.URL))
			assert.Equal(t, leaf.Cert.SerialNumber.String(), srv.lastClient(), "the server saw this client certificate")
			st := m.Stats().Endpoints["127.0.0.1"].TLS
			require.NotNil(t, st)
			assert.WithinDuration(t, leaf.Cert.NotAfter, st.ClientCertNotAfter, time.Second)
		})
	}
}

// verificationCases are servers that Go's verification accepts or
// refuses; connmgr's own verification (used with ca_file) must decide
// exactly the same.
func verificationCases(t *testing.T, p *testPKI) []struct {
	name       string
	leaf       *testpki.Leaf
	serverName string
	want       TLSErrorKind // "" for success
} {
	other, err := testpki.NewCA("someone else")
	require.NoError(t, err)
	inter, err := p.ca.Intermediate("intermediate")
	require.NoError(t, err)
	fromInter, err := inter.Issue(testpki.Options{})
	require.NoError(t, err)
	untrusted, err := other.Issue(testpki.Options{})
	require.NoError(t, err)
	return []struct {
		name       string
		leaf       *testpki.Leaf
		serverName string
		want       TLSErrorKind
	}{
		{"valid", p.issue(testpki.Options{}), "", ""},
		{"valid through an intermediate", fromInter, "", ""},
		{"unknown authority", untrusted, "", TLSUnknownAuthority},
		{"wrong name", p.issue(testpki.Options{DNSNames: []string{"elsewhere.test"}, IPs: []net.IP{}}), "", TLSNameMismatch},
		{"wrong IP", p.issue(testpki.Options{IPs: []net.IP{net.IPv4(10, 9, 8, 7)}}), "", TLSNameMismatch},
		{"expired", p.issue(testpki.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}), "", TLSExpired},
		{"not yet valid", p.issue(testpki.Options{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}), "", TLSExpired},
		{"client certificate used as server certificate", p.issue(testpki.Options{Client: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}), "", TLSInvalidCertificate},
		{"server_name honoured", p.issue(testpki.Options{DNSNames: []string{"api.internal.test"}, IPs: []net.IP{}}), "api.internal.test", ""},
		{"server_name checked", p.issue(testpki.Options{}), "api.internal.test", TLSNameMismatch},
	}
}

func TestTLSVerificationIsAsStrictAsGo(t *testing.T) {
	p := newTestPKI(t)
	caFile := p.caFile("ca")
	modes := []struct {
		name string
		make func(t *testing.T, serverName string) *Manager
	}{
		{"Go's verifier (RootCAs from WithTLSConfig)", func(t *testing.T, serverName string) *Manager {
			return newTestManager(t, tlsConfigFor(TLSConfig{ServerName: serverName}), WithTLSConfig("127.0.0.1", &tls.Config{RootCAs: p.ca.Pool()}))
		}},
		{"connmgr's verifier (ca_file, replace)", func(t *testing.T, serverName string) *Manager {
			return newTestManager(t, tlsConfigFor(TLSConfig{ServerName: serverName, CAFile: caFile, CAMode: "replace"}))
		}},
		{"connmgr's verifier (ca_file, append)", func(t *testing.T, serverName string) *Manager {
			return newTestManager(t, tlsConfigFor(TLSConfig{ServerName: serverName, CAFile: caFile}))
		}},
	}
	for _, tc := range verificationCases(t, p) {
		srv := startTLSServer(t, tc.leaf, nil)
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				m := mode.make(t, tc.serverName)
				if tc.want == "" {
					assert.Equal(t, "ok", callOK(t, m, srv.URL))
					return
				}
				before := srv.requestCount()
				err := callTLSFail(t, m, srv.URL, tc.want)
				assert.Equal(t, before, srv.requestCount(), "no request reached the server")
				var cve *tls.CertificateVerificationError
				assert.True(t, errors.As(err, &cve), "unwraps to crypto/tls's error: %v", err)
			})
		}
	}
}

func TestTLSCAMode(t *testing.T) {
	p := newTestPKI(t)
	second, err := testpki.NewCA("second root")
	require.NoError(t, err)
	secondFile, err := second.WriteCA(p.dir, "second")
	require.NoError(t, err)
	byFirst := startTLSServer(t, p.issue(testpki.Options{}), nil)
	secondLeaf, err := second.Issue(testpki.Options{})
	require.NoError(t, err)
	bySecond := startTLSServer(t, secondLeaf, nil)

	base := WithTLSConfig("127.0.0.1", &tls.Config{RootCAs: p.ca.Pool()}) // stands in for the system roots
	appendMode := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: secondFile, CAMode: "append"}), base)
	assert.Equal(t, "ok", callOK(t, appendMode, byFirst.URL), "append keeps the base roots")
	assert.Equal(t, "ok", callOK(t, appendMode, bySecond.URL), "append adds ca_file")

	replaceMode := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: secondFile, CAMode: "replace"}), base)
	callTLSFail(t, replaceMode, byFirst.URL, TLSUnknownAuthority)
	assert.Equal(t, "ok", callOK(t, replaceMode, bySecond.URL))
}

func TestTLSVersionsAndCipherSuites(t *testing.T) {
	p := newTestPKI(t)
	caFile := p.caFile("ca")
	leaf := p.issue(testpki.Options{})
	any := startTLSServer(t, leaf, nil)
	only12 := startTLSServer(t, leaf, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
	only13 := startTLSServer(t, leaf, func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 })
	oneSuite := startTLSServer(t, leaf, func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	})

	t.Run("min_version 1.3 negotiates 1.3", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MinVersion: "1.3"}))
		callOK(t, m, any.URL)
		_, v, _ := any.last()
		assert.Equal(t, tls.VersionName(tls.VersionTLS13), tls.VersionName(v))
	})
	t.Run("max_version 1.2 negotiates 1.2 with the configured suite", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MaxVersion: "1.2",
			CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}}))
		callOK(t, m, any.URL)
		_, v, c := any.last()
		assert.Equal(t, tls.VersionName(tls.VersionTLS12), tls.VersionName(v))
		assert.Equal(t, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", tls.CipherSuiteName(c))
	})
	t.Run("client 1.3 only, server 1.2 only", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MinVersion: "1.3"}))
		callTLSFail(t, m, only12.URL, TLSProtocolVersion)
	})
	t.Run("client 1.2 only, server 1.3 only", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MaxVersion: "1.2"}))
		callTLSFail(t, m, only13.URL, TLSProtocolVersion)
	})
	t.Run("no common cipher suite", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MaxVersion: "1.2",
			CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}))
		callTLSFail(t, m, oneSuite.URL, TLSHandshakeFailure)
	})
	t.Run("the default minimum is TLS 1.2", func(t *testing.T) {
		m := newTestManager(t, Config{}, WithTLSConfig("default", &tls.Config{MinVersion: tls.VersionTLS10, RootCAs: p.ca.Pool()}))
		tr := m.table.Load().def.ownTransport
		assert.Equal(t, uint16(tls.VersionTLS12), tr.TLSClientConfig.MinVersion, "a lower MinVersion in code is raised to the floor")
	})
}

func TestTLSClientCertificateErrors(t *testing.T) {
	p := newTestPKI(t)
	caFile := p.caFile("ca")
	stranger, err := testpki.NewCA("stranger")
	require.NoError(t, err)
	strangerLeaf, err := stranger.Issue(testpki.Options{Client: true})
	require.NoError(t, err)
	strangerCert, strangerKey, err := strangerLeaf.WriteFiles(p.dir, "stranger", testpki.PKCS8, "")
	require.NoError(t, err)
	for _, version := range []string{"1.2", "1.3"} {
		srv := startTLSServer(t, p.issue(testpki.Options{}), requireClientAuth(p.ca))
		t.Run("no client certificate/TLS "+version, func(t *testing.T) {
			m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MinVersion: version, MaxVersion: version}))
			callTLSFail(t, m, srv.URL, TLSClientCertificateRequired)
			assert.Zero(t, srv.requestCount())
		})
		t.Run("client certificate from an untrusted CA/TLS "+version, func(t *testing.T) {
			m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, MinVersion: version, MaxVersion: version,
				CertFile: strangerCert, KeyFile: strangerKey}))
			callTLSFail(t, m, srv.URL, TLSClientCertificateRejected)
			assert.Zero(t, srv.requestCount())
		})
	}
}

func TestTLSNotTLS(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(plain.Close)
	plain.Config.ErrorLog = log.New(io.Discard, "", 0)
	m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: newTestPKI(t).caFile("ca")}))
	callTLSFail(t, m, strings.Replace(plain.URL, "http://", "https://", 1), TLSNotTLS)
}

func TestTLSPins(t *testing.T) {
	p := newTestPKI(t)
	inter, err := p.ca.Intermediate("intermediate")
	require.NoError(t, err)
	leaf, err := inter.Issue(testpki.Options{})
	require.NoError(t, err)
	srv := startTLSServer(t, leaf, nil)
	caFile := p.caFile("ca")
	unrelated := SPKIPin(p.issue(testpki.Options{}).Cert)
	tests := []struct {
		name string
		pins []string
		ok   bool
	}{
		{"leaf pin", []string{SPKIPin(leaf.Cert)}, true},
		{"backup pin listed first", []string{unrelated, SPKIPin(leaf.Cert)}, true},
		{"intermediate pin", []string{SPKIPin(inter.Cert)}, true},
		{"root pin (in the verified chain, not sent)", []string{SPKIPin(p.ca.Cert)}, true},
		{"no pin matches", []string{unrelated}, false},
	}
	for _, tt := range tests {
		for _, own := range []bool{false, true} {
			name := tt.name + "/Go's verifier"
			cfg := tlsConfigFor(TLSConfig{Pins: tt.pins})
			opts := []Option{WithTLSConfig("127.0.0.1", &tls.Config{RootCAs: p.ca.Pool()})}
			if own {
				name = tt.name + "/ca_file"
				cfg = tlsConfigFor(TLSConfig{Pins: tt.pins, CAFile: caFile})
				opts = nil
			}
			t.Run(name, func(t *testing.T) {
				m := newTestManager(t, cfg, opts...)
				if tt.ok {
					assert.Equal(t, "ok", callOK(t, m, srv.URL))
					assert.Zero(t, m.Stats().Endpoints["127.0.0.1"].TLS.PinFailures)
					return
				}
				err := callTLSFail(t, m, srv.URL, TLSPinMismatch)
				assert.ErrorIs(t, err, ErrCertificatePin)
				var pe *PinError
				require.True(t, errors.As(err, &pe))
				assert.Equal(t, "127.0.0.1", pe.Host)
				assert.Equal(t, []string{SPKIPin(leaf.Cert), SPKIPin(inter.Cert)}, pe.Presented, "what the server sent, its own first")
				assert.Contains(t, err.Error(), SPKIPin(leaf.Cert), "the error shows the pin to configure")
				assert.Contains(t, err.Error(), `"127.0.0.1"`)
				assert.EqualValues(t, 1, m.Stats().Endpoints["127.0.0.1"].TLS.PinFailures)
			})
		}
	}
	t.Run("over HTTP/2", func(t *testing.T) {
		h2 := startTLSServer(t, leaf, func(c *tls.Config) { c.NextProtos = []string{"h2", "http/1.1"} })
		ok := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, Pins: []string{SPKIPin(inter.Cert)}}))
		resp, err := get(t, ok, h2.URL)
		require.NoError(t, err)
		assert.Equal(t, 2, resp.ProtoMajor)
		readAll(t, resp)
		bad := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, Pins: []string{unrelated}}))
		callTLSFail(t, bad, h2.URL, TLSPinMismatch)
	})
	t.Run("a pin does not replace chain verification", func(t *testing.T) {
		self, err := testpki.SelfSigned(testpki.Options{})
		require.NoError(t, err)
		selfSrv := startTLSServer(t, self, nil)
		m := newTestManager(t, tlsConfigFor(TLSConfig{Pins: []string{SPKIPin(self.Cert)}, CAFile: caFile}))
		callTLSFail(t, m, selfSrv.URL, TLSUnknownAuthority)
	})
}

func TestTLSPinsOnly(t *testing.T) {
	self, err := testpki.SelfSigned(testpki.Options{DNSNames: []string{"not-this-host.test"}, IPs: []net.IP{}})
	require.NoError(t, err)
	srv := startTLSServer(t, self, nil)
	pinned := SPKIPin(self.Cert)

	t.Run("a pinned self-signed server is trusted", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{Pins: []string{pinned}, PinsOnly: Bool(true)}))
		assert.Equal(t, "ok", callOK(t, m, srv.URL))
	})
	t.Run("another key is refused", func(t *testing.T) {
		other, err := testpki.SelfSigned(testpki.Options{})
		require.NoError(t, err)
		m := newTestManager(t, tlsConfigFor(TLSConfig{Pins: []string{SPKIPin(other.Cert)}, PinsOnly: Bool(true)}))
		err = callTLSFail(t, m, srv.URL, TLSPinMismatch)
		assert.ErrorIs(t, err, ErrCertificatePin)
	})
	t.Run("only the server's own certificate counts", func(t *testing.T) {
		// An impostor appends the pinned (public) certificate to its own
		// chain; it does not hold the pinned key.
		impostor, err := testpki.SelfSigned(testpki.Options{})
		require.NoError(t, err)
		cert := impostor.TLS()
		cert.Certificate = append(cert.Certificate, self.Cert.Raw)
		imp := startTLSServer(t, impostor, func(c *tls.Config) { c.Certificates = []tls.Certificate{cert} })
		m := newTestManager(t, tlsConfigFor(TLSConfig{Pins: []string{pinned}, PinsOnly: Bool(true)}))
		callTLSFail(t, m, imp.URL, TLSPinMismatch)
	})
}

func TestTLSPinCheckedOnResumedSession(t *testing.T) {
	// An endpoint's second connection resumes its first's session. Then
	// the endpoint's pins are changed in place (what a resumed session
	// made before a pin change would meet): the resumed handshake must
	// fail, which only a check in VerifyConnection does
	// (VerifyPeerCertificate does not run on resumption).
	for _, tc := range []struct {
		version uint16
		caFile  bool
	}{{tls.VersionTLS12, false}, {tls.VersionTLS13, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		version := tc.version
		name := tls.VersionName(version) + "/Go's verifier"
		if tc.caFile {
			name = tls.VersionName(version) + "/ca_file"
		}
		t.Run(name, func(t *testing.T) {
			p := newTestPKI(t)
			leaf := p.issue(testpki.Options{DNSNames: []string{"srv.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
			srv := startTLSServer(t, leaf, func(c *tls.Config) { c.MaxVersion = version })
			base := &tls.Config{RootCAs: p.ca.Pool()}
			caFile := ""
			if tc.caFile {
				base.RootCAs = nil
				caFile = p.caFile("ca")
			}
			cfg := tlsConfigFor(TLSConfig{ServerName: "srv.test", CAFile: caFile, Pins: []string{SPKIPin(leaf.Cert)}})
			m := newTestManager(t, cfg, WithTLSConfig("default", base))
			callOK(t, m, srv.URL)
			m.CloseIdleConnections()
			full := srv.fullHandshakes.Load()
			callOK(t, m, srv.URL)
			didResume, _, _ := srv.last()
			require.True(t, didResume, "the second connection resumed the session")
			require.Equal(t, full, srv.fullHandshakes.Load())

			bad, err := parsePin(SPKIPin(p.issue(testpki.Options{}).Cert))
			require.NoError(t, err)
			endpointTLSOf(t, m, "127.0.0.1").pins = []pin{bad}
			m.CloseIdleConnections()
			resumed := srv.resumptions.Load()
			err = callTLSFail(t, m, srv.URL, TLSPinMismatch)
			assert.ErrorIs(t, err, ErrCertificatePin)
			// The server counts the resumption in its own goroutine,
			// which may run after the client has given up.
			assert.Eventually(t, func() bool { return srv.resumptions.Load() == resumed+1 }, 5*time.Second, time.Millisecond,
				"the failing handshake was a resumption")
			assert.Equal(t, full, srv.fullHandshakes.Load(), "no full handshake")
		})
	}
}

// endpointTLSOf returns the TLS side of an endpoint of m.
func endpointTLSOf(t *testing.T, m *Manager, key string) *endpointTLS {
	t.Helper()
	ep := m.table.Load().byKey[key]
	require.NotNil(t, ep, "no endpoint %q", key)
	tt, ok := ep.transport.(*tlsTransport)
	require.True(t, ok, "endpoint %q has no TLS transport", key)
	return tt.tls
}

func TestTLSClientCertificateRotation(t *testing.T) {
	for _, version := range []string{"1.2", "1.3"} {
		t.Run("TLS "+version, func(t *testing.T) {
			p := newTestPKI(t)
			srv := startTLSServer(t, p.issue(testpki.Options{}), requireClientAuth(p.ca))
			a, certFile, keyFile := p.clientFiles("client", testpki.EncryptedPKCS8, "pw")
			logs := &logBuffer{}
			m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: p.caFile("ca"), CertFile: certFile, KeyFile: keyFile, KeyPassword: "pw",
				MinVersion: version, MaxVersion: version}), WithLogger(newTestLogger(logs)))

			callOK(t, m, srv.URL)
			require.Equal(t, a.Cert.SerialNumber.String(), srv.lastClient())

			// Rotate: key first, then the certificate, in place.
			b := p.issue(testpki.Options{Client: true, CommonName: "client b"})
			keyB, err := b.KeyPEM(testpki.EncryptedPKCS8, "pw")
			require.NoError(t, err)
			writeAndBump(t, keyFile, keyB)
			writeAndBump(t, certFile, b.CertPEM())
			m.CloseIdleConnections()
			callOK(t, m, srv.URL)
			assert.Equal(t, b.Cert.SerialNumber.String(), srv.lastClient(), "the server sees the new certificate")
			st := m.Stats().Endpoints["127.0.0.1"].TLS
			assert.EqualValues(t, 1, st.Reloads)
			assert.WithinDuration(t, b.Cert.NotAfter, st.ClientCertNotAfter, time.Second)
			assert.Contains(t, logs.String(), "TLS material reloaded")

			// A bad new file keeps B in use and is reported once.
			writeAndBump(t, certFile, []byte("garbage"))
			for i := 0; i < 3; i++ {
				m.CloseIdleConnections()
				callOK(t, m, srv.URL)
				assert.Equal(t, b.Cert.SerialNumber.String(), srv.lastClient(), "the previous certificate stays in use")
			}
			st = m.Stats().Endpoints["127.0.0.1"].TLS
			assert.EqualValues(t, 1, st.ReloadErrors)
			assert.Contains(t, st.LastReloadError, certFile)
			assert.Contains(t, st.LastReloadError, "no PEM CERTIFICATE block found")
			assert.False(t, st.LastReloadErrorAt.IsZero())
			assert.Contains(t, logs.String(), "level=WARN")
			assert.Contains(t, logs.String(), "keeping the previous material")
			assert.NotContains(t, logs.String(), "pw\"", "the password is not logged")

			// A good file again, renamed into place.
			c := p.issue(testpki.Options{Client: true, CommonName: "client c"})
			keyC, err := c.KeyPEM(testpki.EncryptedPKCS8, "pw")
			require.NoError(t, err)
			replaceFile(t, keyFile, keyC)
			replaceFile(t, certFile, c.CertPEM())
			m.CloseIdleConnections()
			callOK(t, m, srv.URL)
			assert.Equal(t, c.Cert.SerialNumber.String(), srv.lastClient())
			st = m.Stats().Endpoints["127.0.0.1"].TLS
			assert.EqualValues(t, 2, st.Reloads)
			assert.Empty(t, st.LastReloadError, "cleared by the successful reload")
		})
	}
}

func TestTLSCARotation(t *testing.T) {
	first := newTestPKI(t)
	second, err := testpki.NewCA("second root")
	require.NoError(t, err)
	caFile := first.caFile("ca")
	srvFirst := startTLSServer(t, first.issue(testpki.Options{}), nil)
	secondLeaf, err := second.Issue(testpki.Options{})
	require.NoError(t, err)
	srvSecond := startTLSServer(t, secondLeaf, nil)
	logs := &logBuffer{}
	m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: caFile, CAMode: "replace"}), WithLogger(newTestLogger(logs)))

	callOK(t, m, srvFirst.URL)
	callTLSFail(t, m, srvSecond.URL, TLSUnknownAuthority)

	replaceFile(t, caFile, second.CertPEM())
	m.CloseIdleConnections()
	callOK(t, m, srvSecond.URL)
	callTLSFail(t, m, srvFirst.URL, TLSUnknownAuthority) // even though a session with it could be resumed

	writeAndBump(t, caFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	m.CloseIdleConnections()
	callOK(t, m, srvSecond.URL)
	st := m.Stats().Endpoints["127.0.0.1"].TLS
	assert.EqualValues(t, 1, st.Reloads)
	assert.EqualValues(t, 1, st.ReloadErrors)
	assert.Contains(t, st.LastReloadError, "ca_file")
	assert.Contains(t, logs.String(), "keeping the previous material")

	require.NoError(t, os.Remove(caFile))
	m.CloseIdleConnections()
	callOK(t, m, srvSecond.URL)
	assert.EqualValues(t, 2, m.Stats().Endpoints["127.0.0.1"].TLS.ReloadErrors, "a vanished file is reported too")
}

func TestTLSInsecureSkipVerify(t *testing.T) {
	self, err := testpki.SelfSigned(testpki.Options{})
	require.NoError(t, err)
	srv := startTLSServer(t, self, nil)
	logs := &logBuffer{}
	m := newTestManager(t, tlsConfigFor(TLSConfig{InsecureSkipVerify: Bool(true)}), WithLogger(newTestLogger(logs)))
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "TLS verification is off")
	assert.Contains(t, logs.String(), "endpoint=127.0.0.1")
	assert.Equal(t, "ok", callOK(t, m, srv.URL))

	strict := newTestManager(t, tlsConfigFor(TLSConfig{}))
	callTLSFail(t, strict, srv.URL, TLSUnknownAuthority)
}

func TestWithTLSConfig(t *testing.T) {
	p := newTestPKI(t)
	srv := startTLSServer(t, p.issue(testpki.Options{}), nil)

	t.Run("cloned, never modified, its hooks still run", func(t *testing.T) {
		var sawChains int
		given := &tls.Config{
			RootCAs: p.ca.Pool(),
			VerifyConnection: func(cs tls.ConnectionState) error {
				sawChains = len(cs.VerifiedChains)
				return nil
			},
		}
		snapshot := given.Clone()
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: p.caFile("ca"), Pins: []string{SPKIPin(p.ca.Cert)}}),
			WithTLSConfig("127.0.0.1", given))
		given.RootCAs = x509.NewCertPool() // changing it afterwards has no effect
		callOK(t, m, srv.URL)
		assert.Equal(t, 1, sawChains, "the base VerifyConnection ran, with the verified chain")
		assert.Nil(t, given.NextProtos)
		assert.Nil(t, given.ClientSessionCache)
		assert.False(t, given.InsecureSkipVerify)
		assert.Equal(t, snapshot.MinVersion, given.MinVersion)
	})
	t.Run("cloned when the option is made", func(t *testing.T) {
		given := &tls.Config{RootCAs: p.ca.Pool()}
		opt := WithTLSConfig("127.0.0.1", given)
		given.RootCAs = x509.NewCertPool()
		given.InsecureSkipVerify = true
		m := newTestManager(t, tlsConfigFor(TLSConfig{}), opt)
		callOK(t, m, srv.URL)
		assert.False(t, m.table.Load().byKey["127.0.0.1"].ownTransport.TLSClientConfig.InsecureSkipVerify)
	})
	t.Run("each build starts from the base, not from the last build", func(t *testing.T) {
		// With ca_file connmgr verifies in VerifyConnection and sets
		// InsecureSkipVerify internally; after a reload without ca_file,
		// Go's verifier must be back on.
		untrusted, err := testpki.SelfSigned(testpki.Options{})
		require.NoError(t, err)
		untrustedSrv := startTLSServer(t, untrusted, nil)
		logs := &logBuffer{}
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: p.caFile("ca")}), WithTLSConfig("127.0.0.1", &tls.Config{RootCAs: p.ca.Pool()}),
			WithLogger(newTestLogger(logs)))
		callOK(t, m, srv.URL)
		callTLSFail(t, m, untrustedSrv.URL, TLSUnknownAuthority)
		require.NoError(t, m.Reload(tlsConfigFor(TLSConfig{MinVersion: "1.2"})))
		callOK(t, m, srv.URL)
		callTLSFail(t, m, untrustedSrv.URL, TLSUnknownAuthority)
		tc := m.table.Load().byKey["127.0.0.1"].ownTransport.TLSClientConfig
		assert.False(t, tc.InsecureSkipVerify, "Go's verifier is on again")
		assert.NotNil(t, tc.RootCAs, "the base RootCAs are back")
		assert.NotContains(t, logs.String(), "verification is off")
	})
	t.Run("a failing base VerifyConnection fails the connection", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{}), WithTLSConfig("127.0.0.1", &tls.Config{
			RootCAs:          p.ca.Pool(),
			VerifyConnection: func(tls.ConnectionState) error { return errors.New("policy says no") },
		}))
		_, err := get(t, m, srv.URL)
		assert.ErrorContains(t, err, "policy says no")
	})
	t.Run("the base VerifyPeerCertificate gets verified chains with ca_file", func(t *testing.T) {
		var chains int
		m := newTestManager(t, tlsConfigFor(TLSConfig{CAFile: p.caFile("ca")}), WithTLSConfig("127.0.0.1", &tls.Config{
			VerifyPeerCertificate: func(_ [][]byte, verified [][]*x509.Certificate) error {
				chains = len(verified)
				return nil
			},
		}))
		callOK(t, m, srv.URL)
		assert.Equal(t, 1, chains)
	})
	t.Run("endpoints inherit the default's base", func(t *testing.T) {
		m := newTestManager(t, tlsConfigFor(TLSConfig{Pins: []string{SPKIPin(p.ca.Cert)}}),
			WithTLSConfig("default", &tls.Config{RootCAs: p.ca.Pool()}))
		callOK(t, m, srv.URL) // trusted through the inherited RootCAs
		own := newTestManager(t, tlsConfigFor(TLSConfig{}),
			WithTLSConfig("default", &tls.Config{RootCAs: p.ca.Pool()}), WithTLSConfig("127.0.0.1", &tls.Config{}))
		callTLSFail(t, own, srv.URL, TLSUnknownAuthority) // its own base wins
	})
	t.Run("unknown endpoint key", func(t *testing.T) {
		_, err := New(Config{}, WithTLSConfig("nowhere.test", &tls.Config{}))
		assert.ErrorContains(t, err, `WithTLSConfig("nowhere.test"): no such endpoint`)
	})
	t.Run("keys match like config keys", func(t *testing.T) {
		m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"API.example.com": {}}},
			WithTLSConfig("api.EXAMPLE.com", &tls.Config{ServerName: "x.test"}))
		assert.Equal(t, "x.test", m.table.Load().byKey["api.example.com"].ownTransport.TLSClientConfig.ServerName)
	})
	t.Run("cannot be combined with WithTransport", func(t *testing.T) {
		_, err := New(Config{}, WithTLSConfig("default", &tls.Config{}), WithTransport(&fakeTransport{}))
		assert.ErrorContains(t, err, "WithTLSConfig and WithTransport cannot be combined")
	})
	t.Run("TLS settings under WithTransport are refused, naming the endpoint", func(t *testing.T) {
		// Issue 8 changed this contract: the settings were dropped with a
		// log line; pins silently not checked are worse than an error.
		_, err := New(tlsConfigFor(TLSConfig{Pins: []string{SPKIPin(p.ca.Cert)}}), WithTransport(&fakeTransport{}))
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, err.Error(), `endpoints["127.0.0.1"].tls: has no effect with WithTransport`)
	})
}

func TestTLSSettingsNeverShareConnections(t *testing.T) {
	p := newTestPKI(t)
	srv := startTLSServer(t, p.issue(testpki.Options{}), requireClientAuth(p.ca))
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	caFile := p.caFile("ca")
	a, aCert, aKey := p.clientFiles("a", testpki.PKCS8, "")
	b, bCert, bKey := p.clientFiles("b", testpki.PKCS8, "")
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		"127.0.0.1": {TLS: TLSConfig{CAFile: caFile, CertFile: aCert, KeyFile: aKey}},
		"localhost": {TLS: TLSConfig{CAFile: caFile, CertFile: bCert, KeyFile: bKey}},
	}})
	for i := 0; i < 3; i++ {
		callOK(t, m, srv.URL)
		assert.Equal(t, a.Cert.SerialNumber.String(), srv.lastClient())
		callOK(t, m, "https://localhost:"+port)
		assert.Equal(t, b.Cert.SerialNumber.String(), srv.lastClient())
	}
}

func TestTLSStatsOnlyWhenConfigured(t *testing.T) {
	m := newTestManager(t, Config{})
	assert.Nil(t, m.Stats().Endpoints["default"].TLS)
}

func TestClassifyTLSError(t *testing.T) {
	tests := []struct {
		err  error
		want TLSErrorKind
	}{
		{nil, ""},
		{errors.New("tls: something"), ""},
		{x509.HostnameError{}, TLSNameMismatch},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, TLSUnknownAuthority},
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, TLSExpired},
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}}, TLSInvalidCertificate},
		{&PinError{}, TLSPinMismatch},
		{tls.RecordHeaderError{}, TLSNotTLS},
		{tls.AlertError(70), TLSProtocolVersion},
		{tls.AlertError(116), TLSClientCertificateRequired},
		{tls.AlertError(48), TLSClientCertificateRejected},
		{tls.AlertError(40), TLSHandshakeFailure},
		{tls.AlertError(80), ""}, // internal_error may be transient
		{&Error{Err: &TLSError{Kind: TLSExpired, Err: errors.New("x")}}, TLSExpired},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ClassifyTLSError(tt.err), "%#v", tt.err)
	}
}

func TestPinParsing(t *testing.T) {
	self, err := testpki.SelfSigned(testpki.Options{})
	require.NoError(t, err)
	s := SPKIPin(self.Cert)
	p, err := parsePin(s)
	require.NoError(t, err)
	assert.Equal(t, s, p.String())
	assert.Len(t, s, len("sha256/")+44)
}

func FuzzParsePin(f *testing.F) {
	f.Add("sha256/" + strings.Repeat("A", 43) + "=")
	f.Add("sha256/")
	f.Add("sha1/AAAA")
	f.Add("sha256/====")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePin(s)
		if err != nil {
			return
		}
		// A pin that parses prints back as itself.
		if p.String() != s {
			t.Fatalf("parsePin(%q).String() = %q", s, p.String())
		}
	})
}
