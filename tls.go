package connmgr

import (
	"crypto/tls"
	"log/slog"
)

// TLSConfig configures how connections to an endpoint are secured. The
// zero value verifies the server against the system roots with TLS 1.2 as
// the minimum version.
type TLSConfig struct {
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	// Default "1.2".
	MinVersion string `yaml:"min_version,omitempty" json:"min_version,omitempty"`
	// MaxVersion is the highest TLS version offered. Default: the highest
	// Go supports.
	MaxVersion string `yaml:"max_version,omitempty" json:"max_version,omitempty"`
	// CipherSuites restricts TLS 1.2 cipher suites, by their Go names
	// (tls.CipherSuiteName). Default: Go's secure defaults.
	CipherSuites []string `yaml:"cipher_suites,omitempty" json:"cipher_suites,omitempty"`
	// CAFile is a PEM bundle of trusted roots, re-read when it changes on disk.
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// CAMode is "append" (CAFile is added to the system roots, the
	// default) or "replace" (only CAFile is trusted).
	CAMode string `yaml:"ca_mode,omitempty" json:"ca_mode,omitempty"`
	// ServerName overrides the name verified in the server's certificate
	// and sent in SNI.
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
	// CertFile and KeyFile are the PEM client certificate and key for
	// mutual TLS, re-read when they change on disk.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// KeyPassword decrypts an encrypted PKCS#8 KeyFile.
	KeyPassword string `yaml:"key_password,omitempty" json:"key_password,omitempty"`
	// Pins are SPKI SHA-256 pins, "sha256/BASE64": the chain must contain
	// a certificate whose public key matches one of them. List a backup
	// pin before rotating.
	Pins []string `yaml:"pins,omitempty" json:"pins,omitempty"`
	// PinsOnly trusts the pins instead of a CA (for self-signed upstreams).
	PinsOnly *bool `yaml:"pins_only,omitempty" json:"pins_only,omitempty"`
	// InsecureSkipVerify turns off verification. Logged as a warning.
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
}

var tlsVersions = map[string]uint16{"1.2": 0x0303, "1.3": 0x0304}

// buildTLSConfig returns the *tls.Config for an endpoint's connections.
func buildTLSConfig(key string, c TLSConfig, logger *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tlsVersions[c.MinVersion], ServerName: c.ServerName}
	if c.MaxVersion != "" {
		cfg.MaxVersion = tlsVersions[c.MaxVersion]
	}
	return cfg, nil
}
