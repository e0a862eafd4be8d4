package connmgr

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// sessionCache files an endpoint's TLS sessions under a scope that says
// what the session was made with:
//
//   - the endpoint, in this build of it (its key and a random id), so
//     that endpoints sharing a ClientSessionCache (a WithTLSConfig base)
//     never resume each other's sessions and so each other's client
//     identities, and a Reload that changes the endpoint starts afresh;
//   - the client certificate presented (a SHA-256 of its leaf), so that a
//     rotated certificate is presented, not resumed past;
//   - the trusted roots (a digest of the CA file), so that a rotated CA
//     is not bypassed;
//   - a generation that a resumed session failing verification advances;
//   - the server name, which is the key crypto/tls gives.
//
// Each connection made by the endpoint's dialer fixes its scope when its
// handshake starts (connSessions), presents the certificate of that scope,
// and files the tickets it receives under it, even when they arrive after
// a rotation (TLS 1.3 tickets come after the handshake). Connections
// that net/http sets up itself (HTTPS through a proxy) use the
// sessionCache directly, with the scope as it is at each call.
type sessionCache struct {
	t      *endpointTLS
	inner  tls.ClientSessionCache
	prefix string // endpoint key and build id
	gen    atomic.Uint64
	// changed is when the scope last changed (Unix nanoseconds), and
	// last the scope then: a ticket filed through the shared path that
	// soon after a change may belong to a connection made before it, and
	// is dropped.
	changed atomic.Int64
	last    atomic.Pointer[string]
}

// sessionChangeGrace is how long after a rotation the shared path drops
// the tickets it is given: a connection's tickets arrive right after its
// handshake, which the handshake timeout bounds.
const sessionChangeGrace = time.Minute

func newSessionCache(t *endpointTLS, inner tls.ClientSessionCache) *sessionCache {
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand documents it)
	return &sessionCache{t: t, inner: inner, prefix: t.key + "|" + hex.EncodeToString(id[:])}
}

// scope picks up changed certificate and CA files, and returns the client
// certificate to present (nil when none is configured by file) and the
// scope sessions made with it are filed under.
func (s *sessionCache) scope() (*tls.Certificate, string) {
	t := s.t
	var cert *tls.Certificate
	identity := t.baseIdentity
	if t.clientCert != nil {
		cert = t.current(t.clientCert)
		sum := sha256.Sum256(cert.Leaf.Raw)
		identity = "cert:" + hex.EncodeToString(sum[:16])
	}
	roots := "-"
	if t.roots != nil {
		roots = t.currentRoots().digest
	}
	scope := s.prefix + "|" + identity + "|" + roots + "|" + strconv.FormatUint(s.gen.Load(), 10) + "|"
	if last := s.last.Load(); last == nil || *last != scope {
		if s.last.Swap(&scope) != nil {
			s.changed.Store(s.t.now().UnixNano())
		}
	}
	return cert, scope
}

// invalidate stops the sessions in the cache from being resumed: one of
// them no longer verifies.
func (s *sessionCache) invalidate() {
	s.gen.Add(1)
	s.changed.Store(s.t.now().UnixNano())
}

// Get and Put serve connections net/http sets up itself.
func (s *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	_, scope := s.scope()
	return s.inner.Get(scope + key)
}

func (s *sessionCache) Put(key string, cs *tls.ClientSessionState) {
	_, scope := s.scope()
	if s.t.now().Sub(time.Unix(0, s.changed.Load())) < sessionChangeGrace {
		// Which identity made this connection cannot be told here; its
		// tickets are not worth the doubt.
		return
	}
	s.inner.Put(scope+key, cs)
}

// connSessions is the session cache, and the client certificate, of one
// connection made by the endpoint's dialer: both are fixed when the
// handshake starts.
type connSessions struct {
	s *sessionCache
	// mu guards the fields below: the handshake looks a session up, and
	// the connection's reader files the tickets that come later.
	mu       sync.Mutex
	captured bool
	cert     *tls.Certificate
	scope    string
}

func (c *connSessions) capture() (*tls.Certificate, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.captured {
		c.cert, c.scope = c.s.scope()
		c.captured = true
	}
	return c.cert, c.scope
}

func (c *connSessions) Get(key string) (*tls.ClientSessionState, bool) {
	_, scope := c.capture()
	return c.s.inner.Get(scope + key)
}

func (c *connSessions) Put(key string, cs *tls.ClientSessionState) {
	_, scope := c.capture()
	c.s.inner.Put(scope+key, cs)
}

// getClientCertificate presents the certificate of the connection's scope.
func (c *connSessions) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert, _ := c.capture()
	return cert, nil
}

// tlsHandshakeTimeoutError is the error of a handshake that took longer
// than transport.tls_handshake_timeout, as net/http reports it.
type tlsHandshakeTimeoutError struct{}

func (tlsHandshakeTimeoutError) Timeout() bool   { return true }
func (tlsHandshakeTimeoutError) Temporary() bool { return true }
func (tlsHandshakeTimeoutError) Error() string   { return "net/http: TLS handshake timeout" }

// dialTLS returns the endpoint's DialTLSContext for net/http: dial, then
// a handshake with the endpoint's tls.Config, given its own session cache
// (connSessions), within timeout (0: none). net/http uses it for every
// HTTPS connection it does not make through a proxy.
func (t *endpointTLS) dialTLS(dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Cloned now, not when the endpoint is built: net/http adds "h2"
		// to the config's NextProtos on its first request.
		cfg := t.config.Clone()
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		if name, ok := ctx.Value(serverNameKey{}).(string); ok && name != "" {
			// A discovered address of a logical endpoint: the
			// certificate names the logical host, not the address.
			host = name
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		// The certificate is verified against the host dialled (an IP
		// address against its IP SANs), as crypto/tls does: the
		// handshake's own record of the name is empty for an IP address.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return t.verifyConnectionTo(host, cs) }
		cs := &connSessions{s: t.sessions}
		cfg.ClientSessionCache = cs
		if t.clientCert != nil {
			cfg.GetClientCertificate = cs.getClientCertificate
		}
		conn := tls.Client(raw, cfg)
		hctx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if err := conn.HandshakeContext(hctx); err != nil {
			_ = raw.Close()
			if ctx.Err() == nil && hctx.Err() != nil {
				return nil, tlsHandshakeTimeoutError{}
			}
			return nil, err
		}
		return conn, nil
	}
}

// serverNameKey marks a request context with the TLS server name to
// verify for a discovered address of a logical endpoint (dns:///
// upstreams): the logical host.
type serverNameKey struct{}
