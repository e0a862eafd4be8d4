package connmgr

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr/internal/testpki"
	"github.com/stretchr/testify/require"
)

// testPKI is a CA and a directory to write certificate files into.
type testPKI struct {
	t   *testing.T
	dir string
	ca  *testpki.CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := testpki.NewCA("connmgr test root")
	require.NoError(t, err)
	return &testPKI{t: t, dir: t.TempDir(), ca: ca}
}

func (p *testPKI) issue(o testpki.Options) *testpki.Leaf {
	p.t.Helper()
	l, err := p.ca.Issue(o)
	require.NoError(p.t, err)
	return l
}

// caFile writes the CA certificate and returns its path.
func (p *testPKI) caFile(name string) string {
	p.t.Helper()
	path, err := p.ca.WriteCA(p.dir, name)
	require.NoError(p.t, err)
	return path
}

// clientFiles issues a client certificate and writes it and its key.
func (p *testPKI) clientFiles(name string, format testpki.KeyFormat, password string) (leaf *testpki.Leaf, certFile, keyFile string) {
	p.t.Helper()
	leaf = p.issue(testpki.Options{Client: true, CommonName: name})
	certFile, keyFile, err := leaf.WriteFiles(p.dir, name, format, password)
	require.NoError(p.t, err)
	return leaf, certFile, keyFile
}

// tlsServer is an HTTPS server on 127.0.0.1 that records what it saw of
// each request's connection.
type tlsServer struct {
	*httptest.Server
	// fullHandshakes and resumptions count the server's handshakes; a
	// resumption is counted even when the client then aborts it.
	fullHandshakes, resumptions atomic.Int32

	mu       sync.Mutex // guards the fields below
	requests int
	clients  []string // serial of the client certificate, "" for none
	resumed  []bool
	versions []uint16
	ciphers  []uint16
}

// startTLSServer serves with leaf; tweak may change the server's
// tls.Config before it starts.
func startTLSServer(t *testing.T, leaf *testpki.Leaf, tweak func(*tls.Config)) *tlsServer {
	t.Helper()
	return startTLSServerOn(t, nil, leaf, tweak)
}

// listenIPv6Loopback listens on [::1], or skips the test (loudly) when
// this machine has no IPv6 loopback.
func listenIPv6Loopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("SKIP: no IPv6 loopback on this machine: %v", err)
	}
	return l
}

// startTLSServerOn is startTLSServer on the listener l (nil: 127.0.0.1).
func startTLSServerOn(t *testing.T, l net.Listener, leaf *testpki.Leaf, tweak func(*tls.Config)) *tlsServer {
	t.Helper()
	s := &tlsServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		serial := ""
		if len(r.TLS.PeerCertificates) > 0 {
			serial = r.TLS.PeerCertificates[0].SerialNumber.String()
		}
		s.clients = append(s.clients, serial)
		s.resumed = append(s.resumed, r.TLS.DidResume)
		s.versions = append(s.versions, r.TLS.Version)
		s.ciphers = append(s.ciphers, r.TLS.CipherSuite)
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point of many tests
	cert := leaf.TLS()
	s.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.DidResume {
				s.resumptions.Add(1)
			} else {
				s.fullHandshakes.Add(1)
			}
			return nil
		},
	}
	if tweak != nil {
		tweak(s.TLS)
	}
	if l != nil {
		_ = s.Listener.Close()
		s.Listener = l
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *tlsServer) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *tlsServer) lastClient() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) == 0 {
		return "<no request>"
	}
	return s.clients[len(s.clients)-1]
}

func (s *tlsServer) last() (resumed bool, version, cipher uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.resumed) - 1
	return s.resumed[n], s.versions[n], s.ciphers[n]
}

func requireClientAuth(ca *testpki.CA) func(*tls.Config) {
	return func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = ca.Pool()
	}
}

// tlsConfigFor is a Config whose endpoint "127.0.0.1" (every port) has
// the given TLS settings and up to 3 attempts, so that tests can see that
// TLS failures are not retried.
func tlsConfigFor(c TLSConfig) Config {
	return Config{
		Default:   fastRetries(3),
		Endpoints: map[string]EndpointConfig{"127.0.0.1": {TLS: c}},
	}
}

// callOK makes a GET that must succeed and returns the body.
func callOK(t *testing.T, m *Manager, url string) string {
	t.Helper()
	resp, err := get(t, m, url)
	require.NoError(t, err)
	return readAll(t, resp)
}

// callTLSFail makes a GET that must fail with a TLS error of kind after a
// single attempt, and returns the error.
func callTLSFail(t *testing.T, m *Manager, url string, kind TLSErrorKind) error {
	t.Helper()
	resp, err := get(t, m, url)
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err)
	var te *TLSError
	require.True(t, errors.As(err, &te), "want a *TLSError in %v", err)
	require.Equal(t, kind, te.Kind, "error: %v", err)
	require.Equal(t, kind, ClassifyTLSError(err))
	var ce *Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, 1, ce.Attempts, "TLS failures are not retried: %v", err)
	return err
}

// writeAndBump writes data to path and moves its modification time
// forward, so that a change is seen even on file systems with coarse
// timestamps.
func writeAndBump(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
	bumpMtime(t, path)
}

var mtimeSeq atomic.Int64

func bumpMtime(t *testing.T, path string) {
	t.Helper()
	at := time.Now().Add(time.Duration(mtimeSeq.Add(1)) * time.Second)
	require.NoError(t, os.Chtimes(path, at, at))
}

// replaceFile writes data to a temporary file next to path and renames
// it over path, as certificate tooling does.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
