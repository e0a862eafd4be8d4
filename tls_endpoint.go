package connmgr

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// endpointTLS is the TLS side of one endpoint's connection pool: the
// *tls.Config its transport uses, and the files it follows. It is built
// once per endpoint and immutable, apart from the material it reloads.
type endpointTLS struct {
	key    string
	config *tls.Config // handed to the http.Transport

	serverName string // configured override, or ""
	keyIP      string // the endpoint key's host when it is an IP address
	pins       []pin
	pinsOnly   bool
	insecure   bool
	// ownVerify: connmgr verifies the chain itself, against roots (the
	// CA file as it is now), because Go's verifier reads a fixed pool.
	ownVerify     bool
	roots         *watchedFiles[*trustRoots]
	clientCert    *watchedFiles[*tls.Certificate]
	hasClientCert bool
	// baseIdentity names the client certificate of the WithTLSConfig
	// base, for session scopes, when there is no cert_file.
	baseIdentity string
	// certRequested is when a server last asked for a client certificate
	// that was not configured (Unix nanoseconds).
	certRequested atomic.Int64
	sessions      *sessionCache

	userVerifyConnection func(tls.ConnectionState) error
	userVerifyPeer       func([][]byte, [][]*x509.Certificate) error

	now    func() time.Time
	logger *slog.Logger
	stats  *tlsCounters
}

// newEndpointTLS builds an endpoint's TLS configuration from its resolved
// settings c on top of base (a WithTLSConfig config, or nil), reading the
// files c names. An error names the setting at fault.
func newEndpointTLS(key string, c TLSConfig, base *tls.Config, logger *slog.Logger, stats *tlsCounters) (*endpointTLS, error) {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	t := &endpointTLS{
		key:                  key,
		config:               cfg,
		serverName:           c.ServerName,
		pinsOnly:             c.PinsOnly != nil && *c.PinsOnly,
		insecure:             (c.InsecureSkipVerify != nil && *c.InsecureSkipVerify) || cfg.InsecureSkipVerify,
		userVerifyConnection: cfg.VerifyConnection,
		userVerifyPeer:       cfg.VerifyPeerCertificate,
		now:                  time.Now,
		logger:               logger,
		stats:                stats,
	}
	if cfg.Time != nil {
		t.now = cfg.Time
	}
	if host, _ := splitAuthority(key); key != defaultKey && net.ParseIP(host) != nil {
		t.keyIP = host
	}

	minVersion := tlsVersions[c.MinVersion]
	if minVersion == 0 {
		minVersion = tls.VersionTLS12
	}
	if cfg.MinVersion < minVersion {
		cfg.MinVersion = minVersion
	}
	if c.MaxVersion != "" {
		cfg.MaxVersion = tlsVersions[c.MaxVersion]
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < cfg.MinVersion {
		return nil, fmt.Errorf("max_version %s is below min_version %s", tlsVersionName(cfg.MaxVersion), tlsVersionName(cfg.MinVersion))
	}
	if len(c.CipherSuites) > 0 {
		cfg.CipherSuites = make([]uint16, 0, len(c.CipherSuites))
		for i, name := range c.CipherSuites {
			id, problem := cipherSuiteID(name)
			if problem != "" {
				return nil, fmt.Errorf("cipher_suites[%d]: %s", i, problem)
			}
			cfg.CipherSuites = append(cfg.CipherSuites, id)
		}
	}
	if c.ServerName != "" {
		cfg.ServerName = c.ServerName
	} else {
		t.serverName = cfg.ServerName
	}
	for i, s := range c.Pins {
		p, err := parsePin(s)
		if err != nil {
			return nil, fmt.Errorf("pins[%d]: %w", i, err)
		}
		t.pins = append(t.pins, p)
	}
	switch {
	case t.insecure && len(t.pins) > 0:
		return nil, errors.New("insecure_skip_verify (or InsecureSkipVerify in the WithTLSConfig base) turns verification off, so pins would not be checked: use pins_only to trust a pinned certificate")
	case t.pinsOnly && len(t.pins) == 0:
		return nil, errors.New("pins_only needs pins")
	}

	var certNotAfter int64
	if c.CertFile != "" {
		t.clientCert = newWatchedFiles("client certificate", []string{"cert_file", "key_file"}, []string{c.CertFile, c.KeyFile}, func() (*tls.Certificate, error) {
			return loadKeyPair(c.CertFile, c.KeyFile, c.KeyPassword, t.now())
		})
		cert, err := t.clientCert.init()
		if err != nil {
			return nil, err
		}
		t.hasClientCert = true
		certNotAfter = cert.Leaf.NotAfter.UnixNano()
		cfg.Certificates = nil
		cfg.GetClientCertificate = t.getClientCertificate
	} else {
		t.hasClientCert = len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil
		switch {
		case cfg.GetClientCertificate != nil:
			t.baseIdentity = "callback" // chosen per handshake by the base's callback
		case len(cfg.Certificates) > 0 && len(cfg.Certificates[0].Certificate) > 0:
			sum := sha256.Sum256(cfg.Certificates[0].Certificate[0])
			t.baseIdentity = "base:" + hex.EncodeToString(sum[:16])
		default:
			t.baseIdentity = "none"
			cfg.GetClientCertificate = t.noClientCertificate
		}
	}

	switch {
	case t.insecure:
		cfg.InsecureSkipVerify = true
		logger.Warn("connmgr: TLS verification is off (insecure_skip_verify): any certificate is accepted and connections can be intercepted",
			slog.String("endpoint", key))
	case t.pinsOnly:
		// The pins are the trust: VerifyConnection checks the leaf.
		cfg.InsecureSkipVerify = true
	case c.CAFile != "":
		// Go's verifier reads cfg.RootCAs, fixed for the life of the
		// transport; to follow the CA file, verify in VerifyConnection
		// against the pool as it is now, with exactly the checks Go makes.
		baseRoots := cfg.RootCAs
		replace := c.CAMode == "replace"
		t.roots = newWatchedFiles("CA file", []string{"ca_file"}, []string{c.CAFile}, func() (*trustRoots, error) {
			return loadRoots(c.CAFile, baseRoots, replace)
		})
		if _, err := t.roots.init(); err != nil {
			return nil, err
		}
		t.ownVerify = true
		cfg.InsecureSkipVerify = true
		cfg.RootCAs = nil
		cfg.VerifyPeerCertificate = nil // called from verifyConnection, with the verified chains
	}
	cfg.VerifyConnection = t.verifyConnection

	inner := cfg.ClientSessionCache
	if inner == nil {
		inner = tls.NewLRUClientSessionCache(0)
	}
	t.sessions = newSessionCache(t, inner)
	cfg.ClientSessionCache = t.sessions

	// Only now that nothing can fail: a failed Reload leaves the stats of
	// the endpoint still in use alone.
	stats.certNotAfter.Store(certNotAfter)
	stats.active.Store(c.CAFile != "" || c.CertFile != "" || len(t.pins) > 0)
	return t, nil
}

func (t *endpointTLS) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return t.current(t.clientCert), nil
}

// noClientCertificate answers a server's request for a client
// certificate when none is configured: with none, as crypto/tls would,
// but noting when, so that a TLS 1.2 server's handshake_failure alert
// (which is how TLS 1.2 says "certificate required") can be explained.
func (t *endpointTLS) noClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	t.certRequested.Store(t.now().UnixNano())
	return &tls.Certificate{}, nil
}

// currentRoots returns the trusted roots to use now, re-reading the CA
// file if it changed, and reports the outcome.
func (t *endpointTLS) currentRoots() *trustRoots {
	r := t.roots.current()
	if r.err != nil {
		t.reportReloadError(t.roots, r.err)
	}
	if r.changed {
		t.reportReload(t.roots, nil)
	}
	return r.value
}

// current returns the client certificate to use now, re-reading the
// files if they changed, and reports the outcome.
func (t *endpointTLS) current(w *watchedFiles[*tls.Certificate]) *tls.Certificate {
	r := w.current()
	if r.err != nil {
		t.reportReloadError(w, r.err)
	}
	if r.changed {
		t.stats.certNotAfter.Store(r.value.Leaf.NotAfter.UnixNano())
		t.reportReload(w, &r.value.Leaf.NotAfter)
	}
	return r.value
}

func (t *endpointTLS) reportReload(w interface{ describe() string }, notAfter *time.Time) {
	// Sessions made with the old material are not resumed: they are filed
	// under the old certificate's and CA's digests (see sessionCache).
	t.stats.reloads.Add(1)
	t.stats.lastErr.Store(nil)
	attrs := []any{slog.String("endpoint", t.key), slog.String("what", w.describe())}
	if notAfter != nil {
		attrs = append(attrs, slog.Time("not_after", *notAfter))
	}
	t.logger.Info("connmgr: TLS material reloaded from disk", attrs...)
}

func (t *endpointTLS) reportReloadError(w interface{ describe() string }, err error) {
	t.stats.reloadErrors.Add(1)
	t.stats.lastErr.Store(&reloadFailure{msg: err.Error(), at: t.now()})
	t.logger.Warn("connmgr: TLS files changed but cannot be used; keeping the previous material",
		slog.String("endpoint", t.key), slog.String("what", w.describe()), slog.String("error", err.Error()))
}

// verifyConnection is the VerifyConnection of the endpoint's shared
// tls.Config, which net/http uses for the connections it makes itself
// (through a proxy): the address dialled is not known there, only the
// server name the handshake sent (none for an IP address).
func (t *endpointTLS) verifyConnection(cs tls.ConnectionState) error {
	return t.verifyConnectionTo("", cs)
}

// verifyConnectionTo runs for every handshake, full or resumed: chain
// verification (when connmgr does it), then the pins, then the base
// config's own VerifyPeerCertificate and VerifyConnection. dialled is the
// host the connection was made to ("" when unknown): the name or address
// the certificate must be valid for unless server_name says otherwise,
// as crypto/tls verifies it (an IP address against the IP SANs).
func (t *endpointTLS) verifyConnectionTo(dialled string, cs tls.ConnectionState) error {
	if t.ownVerify {
		chains, err := t.verifyChain(dialled, cs)
		if err != nil {
			if cs.DidResume {
				// A session that no longer verifies (the certificate
				// expired) must not be offered again.
				t.sessions.invalidate()
			}
			return err
		}
		cs.VerifiedChains = chains
		if t.userVerifyPeer != nil && !cs.DidResume {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			if err := t.userVerifyPeer(raw, chains); err != nil {
				return err
			}
		}
	}
	if len(t.pins) > 0 {
		if err := t.checkPins(dialled, cs); err != nil {
			t.stats.pinFailures.Add(1)
			return err
		}
	}
	if t.userVerifyConnection != nil {
		return t.userVerifyConnection(cs)
	}
	return nil
}

// verifyChain verifies the server's certificates exactly as crypto/tls
// does when InsecureSkipVerify is false (handshake_client.go,
// verifyServerCertificate), but against the CA pool as it is now.
func (t *endpointTLS) verifyChain(dialled string, cs tls.ConnectionState) ([][]*x509.Certificate, error) {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("connmgr: tls: the server sent no certificate")
	}
	name := t.verifyName(dialled, cs)
	if name == "" {
		// Only on a connection net/http made itself, through a proxy, to
		// an IP address: it sends no SNI and does not say where it went.
		return nil, fmt.Errorf("connmgr: tls: endpoint %s verifies against ca_file but cannot tell which IP address the certificate must name "+
			"(a connection through a proxy to an IP address): set tls.server_name, or configure the address as its own endpoint", endpointPath(t.key))
	}
	opts := x509.VerifyOptions{
		Roots:         t.currentRoots().pool,
		CurrentTime:   t.now(),
		DNSName:       name,
		Intermediates: x509.NewCertPool(),
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return nil, &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return chains, nil
}

// checkPins requires a pinned key in the verified chains, or, in
// pins_only mode, as the server's own certificate. Certificates the
// server sent that are not part of a verified chain never count: anyone
// can append a pinned (public) certificate to their own chain.
func (t *endpointTLS) checkPins(dialled string, cs tls.ConnectionState) error {
	if t.pinsOnly {
		if len(cs.PeerCertificates) > 0 && t.pinned(spkiPin(cs.PeerCertificates[0])) {
			return nil
		}
	} else {
		for _, chain := range cs.VerifiedChains {
			for _, c := range chain {
				if t.pinned(spkiPin(c)) {
					return nil
				}
			}
		}
	}
	e := &PinError{Host: t.verifyName(dialled, cs), Configured: len(t.pins)}
	for _, c := range cs.PeerCertificates {
		e.Presented = append(e.Presented, SPKIPin(c))
	}
	return e
}

// verifyName is the name or IP address the server's certificate must be
// valid for: server_name when set (or the ServerName of a WithTLSConfig
// base), else the host dialled, else the server name sent in SNI, else
// the endpoint key's IP address. "" when none is known.
func (t *endpointTLS) verifyName(dialled string, cs tls.ConnectionState) string {
	switch {
	case t.serverName != "":
		return t.serverName
	case dialled != "":
		return dialled
	case cs.ServerName != "":
		return cs.ServerName // the request's host; empty for an IP address
	}
	return t.keyIP
}

func (t *endpointTLS) pinned(p pin) bool {
	for _, q := range t.pins {
		if p == q {
			return true
		}
	}
	return false
}
