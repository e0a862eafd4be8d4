package connmgr

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
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

// validateTLS checks a TLS block's own fields. Like every validation
// message, its problems never quote a string the user wrote: it may be a
// secret from the environment put in the wrong place.
func validateTLS(p *problems, path string, c TLSConfig) {
	for _, v := range []struct{ field, value string }{{"min_version", c.MinVersion}, {"max_version", c.MaxVersion}} {
		if v.value == "" {
			continue
		}
		if _, ok := tlsVersions[v.value]; !ok {
			p.add(path+"."+v.field, `must be "1.2" or "1.3"`)
		}
	}
	for i, name := range c.CipherSuites {
		if _, problem := cipherSuiteID(name); problem != "" {
			p.add(fmt.Sprintf("%s.cipher_suites[%d]", path, i), "%s", problem)
		}
	}
	if c.CAMode != "" && c.CAMode != "append" && c.CAMode != "replace" {
		p.add(path+".ca_mode", `must be "append" or "replace"`)
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
// Only a name Go knows is quoted back.
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
	return 0, "unknown cipher suite " + quoteSuiteName(name) + "; known: " + strings.Join(known, ", ")
}

// quoteSuiteName quotes a name that is shaped like a cipher suite's
// ("TLS_" and upper-case letters, digits and underscores), so that a
// typo or a suite this Go does not know is named in the error. Anything
// else may be a secret put in the wrong place (a ${VAR} or an alias): it
// is described, not quoted.
func quoteSuiteName(name string) string {
	rest, ok := strings.CutPrefix(name, "TLS_")
	shaped := ok && rest != "" && len(name) <= 80
	for _, r := range rest {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			shaped = false
			break
		}
	}
	if shaped {
		return strconv.Quote(name)
	}
	return fmt.Sprintf("(a value of %d bytes, not quoted: it does not look like a suite name)", len(name))
}

// pin is an SPKI SHA-256 hash.
type pin [sha256.Size]byte

const pinPrefix = "sha256/"

// parsePin reads a pin in "sha256/BASE64" form. Its errors do not quote
// s, which may be a secret put in the wrong place.
func parsePin(s string) (pin, error) {
	var p pin
	rest, ok := strings.CutPrefix(s, pinPrefix)
	if !ok {
		return p, errors.New(`must be "sha256/" followed by the base64 SHA-256 of the SubjectPublicKeyInfo`)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil {
		return p, fmt.Errorf("not valid base64 (standard alphabet, with padding): %v", err)
	}
	if len(b) != sha256.Size {
		return p, fmt.Errorf("a SHA-256 pin is %d bytes (44 base64 characters), got %d bytes", sha256.Size, len(b))
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
// Config.Endpoints). As with the config's fields, an endpoint without its
// own base inherits the default's. c is cloned when the option is made
// and again for each connection pool, and never modified.
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
//     its own), with keys scoped by endpoint, client certificate and CA,
//     so that endpoints sharing it never resume each other's sessions
//     (and so each other's client identity), and a rotated certificate
//     or CA starts new sessions (see docs/tls.md).
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

// checkTLSOptions refuses WithTLSConfig with WithTransport: the given
// transport makes its own TLS connections. Its keys are resolved with
// those of every option keyed by endpoint (endpoint_keys.go).
func checkTLSOptions(o *options) error {
	if len(o.tlsConfigs) > 0 && o.transport != nil {
		return errors.New("connmgr: WithTLSConfig and WithTransport cannot be combined: the given transport makes its own TLS connections")
	}
	return nil
}

// tlsBase is the WithTLSConfig base of an endpoint: its own, else the
// default's, else nil.
func (o *options) tlsBase(key string) *tls.Config {
	if c, ok := o.tlsConfigs[key]; ok {
		return c
	}
	return o.tlsConfigs[defaultKey]
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
