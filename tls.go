package connmgr

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// TLSConfig configures how connections to an endpoint are secured. The
// zero value verifies the server against the system roots with TLS 1.2 as
// the minimum version.
//
// Certificate, key and CA files are re-read when they change on disk
// (their modification time, size or identity): the check runs when a new
// connection is set up, so a rotated client certificate or CA bundle is
// used by the next connection, without a restart. A changed file that
// cannot be used (unreadable, bad PEM, wrong password, key not matching
// the certificate, expired certificate) leaves the previous material in
// use; the failure is logged as a warning and counted in
// EndpointStats.TLS. Replace files by renaming a complete new file over
// the old one (as cert-manager, the kubelet and certbot do). See
// docs/tls.md for the verification model, pinning and rotation.
//
// A *tls.Config given with WithTLSConfig is the base: it is cloned, and
// every field set here overrides the matching field of the clone (see
// WithTLSConfig).
type TLSConfig struct {
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	// Default "1.2"; nothing lower is possible.
	MinVersion string `yaml:"min_version,omitempty" json:"min_version,omitempty"`
	// MaxVersion is the highest TLS version offered. Default: the highest
	// Go supports.
	MaxVersion string `yaml:"max_version,omitempty" json:"max_version,omitempty"`
	// CipherSuites restricts the TLS 1.2 cipher suites, by their Go names
	// (tls.CipherSuiteName, for example
	// "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"). Only the suites Go deems
	// secure are accepted; TLS 1.3 suites are not configurable. Default:
	// Go's secure defaults.
	CipherSuites []string `yaml:"cipher_suites,omitempty" json:"cipher_suites,omitempty"`
	// CAFile is a PEM bundle of trusted roots, re-read when it changes on
	// disk. Default: none (the system roots, or the RootCAs of a
	// WithTLSConfig base).
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// CAMode is "append" (CAFile is trusted in addition to the system
	// roots, or to the RootCAs of a WithTLSConfig base; the default) or
	// "replace" (only CAFile is trusted).
	CAMode string `yaml:"ca_mode,omitempty" json:"ca_mode,omitempty"`
	// ServerName overrides the name verified in the server's certificate
	// and sent in SNI. Default: the host of the request URL.
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
	// CertFile and KeyFile are the PEM client certificate (followed by
	// its intermediates) and key for mutual TLS, re-read when they change
	// on disk. The key may be PKCS#1 ("RSA PRIVATE KEY"), SEC 1 ("EC
	// PRIVATE KEY"), PKCS#8 ("PRIVATE KEY") or encrypted PKCS#8
	// ("ENCRYPTED PRIVATE KEY", with KeyPassword). Keys encrypted the
	// legacy OpenSSL way (RFC 1423, "Proc-Type: 4,ENCRYPTED") are refused:
	// that scheme is insecure; convert them with
	// "openssl pkcs8 -topk8 -v2 aes-256-cbc". Set both or neither.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// KeyPassword decrypts an encrypted PKCS#8 KeyFile. Setting it for a
	// key that is not encrypted is an error. Use "${VAR}" in a config
	// file to keep it out of the file.
	KeyPassword string `yaml:"key_password,omitempty" json:"key_password,omitempty"`
	// Pins are SPKI SHA-256 pins, "sha256/BASE64" (the base64 of the
	// SHA-256 of a certificate's SubjectPublicKeyInfo, as SPKIPin
	// computes): after the chain is verified, it must contain a
	// certificate whose public key matches one of them, or the connection
	// fails with ErrCertificatePin. Pins are checked on resumed sessions
	// too. List a backup pin (the key you will rotate to) before rotating.
	Pins []string `yaml:"pins,omitempty" json:"pins,omitempty"`
	// PinsOnly trusts the pins instead of a CA, for self-signed upstreams:
	// the server's own certificate (the first it sends) must match a pin;
	// its chain, name and dates are not checked. Requires Pins; CAFile is
	// then not used. Default false.
	PinsOnly *bool `yaml:"pins_only,omitempty" json:"pins_only,omitempty"`
	// InsecureSkipVerify turns off all verification of the server: any
	// certificate is accepted, so the connection can be intercepted. It
	// is logged as a warning when the endpoint is built, and cannot be
	// combined with Pins (use PinsOnly). Default false.
	InsecureSkipVerify *bool `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}

func tlsDefaults() TLSConfig {
	return TLSConfig{
		MinVersion:         "1.2",
		CAMode:             "append",
		PinsOnly:           Bool(false),
		InsecureSkipVerify: Bool(false),
	}
}

var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	case 0:
		return "any"
	}
	return strings.TrimPrefix(tls.VersionName(v), "TLS ")
}

// validateTLS checks a TLS block's own fields.
func validateTLS(p *problems, path string, c TLSConfig) {
	for _, v := range []struct{ field, value string }{{"min_version", c.MinVersion}, {"max_version", c.MaxVersion}} {
		if v.value == "" {
			continue
		}
		if _, ok := tlsVersions[v.value]; !ok {
			p.add(path+"."+v.field, `must be "1.2" or "1.3", got %q`, v.value)
		}
	}
	for i, name := range c.CipherSuites {
		if _, problem := cipherSuiteID(name); problem != "" {
			p.add(fmt.Sprintf("%s.cipher_suites[%d]", path, i), "%s", problem)
		}
	}
	if c.CAMode != "" && c.CAMode != "append" && c.CAMode != "replace" {
		p.add(path+".ca_mode", `must be "append" or "replace", got %q`, c.CAMode)
	}
	for _, f := range []struct{ field, value string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.value != "" && strings.TrimSpace(f.value) == "" {
			p.add(path+"."+f.field, "must not be blank")
		}
	}
	for i, pin := range c.Pins {
		if _, err := parsePin(pin); err != nil {
			p.add(fmt.Sprintf("%s.pins[%d]", path, i), "%s", err)
		}
	}
}

// checkResolvedTLS checks the rules that involve several TLS fields,
// after inheritance.
func checkResolvedTLS(p *problems, path string, c TLSConfig) {
	if lo, hi := tlsVersions[c.MinVersion], tlsVersions[c.MaxVersion]; lo != 0 && hi != 0 && hi < lo {
		p.add(path+".max_version", "must be >= min_version (%s), got %s", c.MinVersion, c.MaxVersion)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			p.add(path+".cert_file", "must be set when key_file is set")
		} else {
			p.add(path+".key_file", "must be set when cert_file is set")
		}
	}
	if c.KeyPassword != "" && c.KeyFile == "" {
		p.add(path+".key_password", "is set but key_file is not")
	}
	if c.CAMode == "replace" && c.CAFile == "" {
		p.add(path+".ca_mode", `"replace" needs ca_file: it would trust nothing`)
	}
	pinsOnly := c.PinsOnly != nil && *c.PinsOnly
	insecure := c.InsecureSkipVerify != nil && *c.InsecureSkipVerify
	if pinsOnly && len(c.Pins) == 0 {
		p.add(path+".pins_only", "needs pins: it trusts the pins instead of a CA")
	}
	if insecure && len(c.Pins) > 0 {
		p.add(path+".insecure_skip_verify", "turns verification off, so pins would not be checked: use pins_only to trust a pinned certificate")
	}
}

// cipherSuiteID resolves a cipher suite's Go name, or says what is wrong.
func cipherSuiteID(name string) (uint16, string) {
	for _, s := range tls.CipherSuites() {
		if s.Name == name {
			for _, v := range s.SupportedVersions {
				if v == tls.VersionTLS13 && len(s.SupportedVersions) == 1 {
					return 0, fmt.Sprintf("%q is a TLS 1.3 suite; Go does not let TLS 1.3 suites be configured, list TLS 1.2 suites only", name)
				}
			}
			return s.ID, ""
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if s.Name == name {
			return 0, fmt.Sprintf("%q is insecure and not allowed", name)
		}
	}
	var known []string
	for _, s := range tls.CipherSuites() {
		if len(s.SupportedVersions) == 1 && s.SupportedVersions[0] == tls.VersionTLS13 {
			continue
		}
		known = append(known, s.Name)
	}
	sort.Strings(known)
	return 0, fmt.Sprintf("unknown cipher suite %q; known: %s", name, strings.Join(known, ", "))
}

// pin is an SPKI SHA-256 hash.
type pin [sha256.Size]byte

const pinPrefix = "sha256/"

// parsePin reads a pin in "sha256/BASE64" form.
func parsePin(s string) (pin, error) {
	var p pin
	rest, ok := strings.CutPrefix(s, pinPrefix)
	if !ok {
		return p, fmt.Errorf(`must be "sha256/" followed by the base64 SHA-256 of the SubjectPublicKeyInfo, got %q`, s)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil {
		return p, fmt.Errorf("%q: not valid base64 (standard alphabet, with padding): %v", s, err)
	}
	if len(b) != sha256.Size {
		return p, fmt.Errorf("%q: a SHA-256 pin is %d bytes (44 base64 characters), got %d bytes", s, sha256.Size, len(b))
	}
	copy(p[:], b)
	return p, nil
}

func (p pin) String() string { return pinPrefix + base64.StdEncoding.EncodeToString(p[:]) }

func spkiPin(c *x509.Certificate) pin { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

// SPKIPin returns the pin of a certificate's public key in the
// "sha256/BASE64" form TLSConfig.Pins takes. The same value comes from
//
//	openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
//	  openssl dgst -sha256 -binary | base64
func SPKIPin(c *x509.Certificate) string { return spkiPin(c).String() }

// WithTLSConfig makes c the base TLS configuration of the endpoint with
// the given key ("default" for Config.Default; keys are matched as in
// Config.Endpoints). c is cloned when the option is made and again for
// each connection pool, and never modified.
//
// The file settings layer on top of the clone; precedence, field by field:
//   - MinVersion: the higher of c.MinVersion and min_version (so never
//     below TLS 1.2);
//   - MaxVersion, CipherSuites, ServerName: the config's when set, else c's;
//   - RootCAs: with ca_file, the CA file is added to c.RootCAs in "append"
//     mode (to the system roots if c.RootCAs is nil) or replaces them in
//     "replace" mode; without ca_file, c.RootCAs as given;
//   - Certificates, GetClientCertificate: replaced by cert_file/key_file
//     when set, else c's;
//   - InsecureSkipVerify: either one turns verification off (with a
//     warning); it cannot be combined with pins;
//   - VerifyConnection, VerifyPeerCertificate: c's still run, after
//     connmgr's own checks (chain, pins);
//   - ClientSessionCache: c's is used (else connmgr gives each endpoint
//     its own), with keys scoped so that a rotated client certificate or
//     CA starts new sessions.
//
// New fails when key names no endpoint, or when WithTransport is also
// given (the transport would ignore c).
func WithTLSConfig(endpointKey string, c *tls.Config) Option {
	if c != nil {
		c = c.Clone()
	}
	return optionFunc(func(o *options) {
		if o.tlsConfigs == nil {
			o.tlsConfigs = map[string]*tls.Config{}
		}
		o.tlsConfigs[endpointKey] = c
	})
}

// resolveTLSOptions normalizes the keys of WithTLSConfig options and
// checks that each names an endpoint of cc.
func resolveTLSOptions(o *options, cc *compiledConfig) error {
	if len(o.tlsConfigs) == 0 {
		return nil
	}
	if o.transport != nil {
		return errors.New("connmgr: WithTLSConfig and WithTransport cannot be combined: the given transport makes its own TLS connections")
	}
	out := make(map[string]*tls.Config, len(o.tlsConfigs))
	for raw, c := range o.tlsConfigs {
		key, _, problem := normalizeKey(raw)
		if problem != "" {
			return fmt.Errorf("connmgr: WithTLSConfig(%q): %s", raw, problem)
		}
		if _, ok := cc.endpoints[key]; !ok && key != defaultKey {
			return fmt.Errorf("connmgr: WithTLSConfig(%q): no such endpoint in the config", raw)
		}
		if c != nil {
			out[key] = c
		}
	}
	o.tlsConfigs = out
	return nil
}

// warnTLSIgnored logs that an endpoint's TLS settings have no effect
// because WithTransport supplies the transport.
func warnTLSIgnored(logger *slog.Logger, key string, c TLSConfig) {
	d := tlsDefaults()
	if c.CAFile == "" && c.CertFile == "" && len(c.Pins) == 0 && c.ServerName == "" && len(c.CipherSuites) == 0 &&
		c.MinVersion == d.MinVersion && c.MaxVersion == "" && c.InsecureSkipVerify != nil && !*c.InsecureSkipVerify {
		return
	}
	logger.Warn("connmgr: tls settings are ignored: WithTransport supplies the transport", slog.String("endpoint", key))
}

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
	roots         *watchedFiles[*x509.CertPool]
	clientCert    *watchedFiles[*tls.Certificate]
	hasClientCert bool
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
		if !t.hasClientCert {
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
		t.roots = newWatchedFiles("CA file", []string{"ca_file"}, []string{c.CAFile}, func() (*x509.CertPool, error) {
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
	t.sessions = &sessionCache{inner: inner, refresh: t.refresh}
	cfg.ClientSessionCache = t.sessions

	// Only now that nothing can fail: a failed Reload leaves the stats of
	// the endpoint still in use alone.
	stats.certNotAfter.Store(certNotAfter)
	stats.active.Store(c.CAFile != "" || c.CertFile != "" || len(t.pins) > 0)
	return t, nil
}

// refresh picks up changed files before a handshake. It runs when the
// handshake looks up a session to resume, so that a rotated client
// certificate or CA is not bypassed by resuming an older session.
func (t *endpointTLS) refresh() {
	if t.clientCert != nil {
		t.current(t.clientCert)
	}
	if t.roots != nil {
		t.currentRoots()
	}
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

func (t *endpointTLS) currentRoots() *x509.CertPool {
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
	// Sessions made with the old material must not be resumed: the
	// server would go on seeing the old client certificate, or a session
	// verified against the old CA would skip the new one.
	t.sessions.reset()
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

// verifyConnection runs for every handshake, full or resumed: chain
// verification (when connmgr does it), then the pins, then the base
// config's own VerifyPeerCertificate and VerifyConnection.
func (t *endpointTLS) verifyConnection(cs tls.ConnectionState) error {
	if t.ownVerify {
		chains, err := t.verifyChain(cs)
		if err != nil {
			if cs.DidResume {
				// A session that no longer verifies (the CA changed, the
				// certificate expired) must not be offered again.
				t.sessions.reset()
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
		if err := t.checkPins(cs); err != nil {
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
func (t *endpointTLS) verifyChain(cs tls.ConnectionState) ([][]*x509.Certificate, error) {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("connmgr: tls: the server sent no certificate")
	}
	name := t.serverName
	if name == "" {
		name = cs.ServerName // the request's host; empty for an IP address
	}
	if name == "" {
		name = t.keyIP
	}
	if name == "" {
		return nil, fmt.Errorf("connmgr: tls: endpoint %s verifies against ca_file but cannot tell which IP address the certificate must name: "+
			"set tls.server_name, or configure the address as its own endpoint", endpointPath(t.key))
	}
	opts := x509.VerifyOptions{
		Roots:         t.currentRoots(),
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
func (t *endpointTLS) checkPins(cs tls.ConnectionState) error {
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
	host := t.serverName
	if host == "" {
		host = cs.ServerName
	}
	if host == "" {
		host = t.keyIP
	}
	e := &PinError{Host: host, Configured: len(t.pins)}
	for _, c := range cs.PeerCertificates {
		e.Presented = append(e.Presented, SPKIPin(c))
	}
	return e
}

func (t *endpointTLS) pinned(p pin) bool {
	for _, q := range t.pins {
		if p == q {
			return true
		}
	}
	return false
}
