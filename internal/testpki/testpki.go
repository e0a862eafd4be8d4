// Package testpki generates throw-away certificate authorities and
// certificates for connmgr's tests and examples: a CA, intermediates,
// server and client certificates (valid, expired, for the wrong name),
// and their keys in every PEM form connmgr reads. Nothing here is fit
// for production use.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/youmark/pkcs8"
)

// KeyType selects the algorithm of a generated key.
type KeyType int

const (
	ECDSA   KeyType = iota // P-256, the default
	RSA                    // 2048 bits
	Ed25519                // Ed25519
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is the CA certificate followed by its issuers up to the root
	// (just the CA certificate for a root).
	Chain []*x509.Certificate
}

// caTemplate is the certificate template of a CA named name, valid from
// an hour ago for a day.
func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"connmgr test PKI"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// NewCA returns a self-signed root CA named name.
func NewCA(name string) (*CA, error) {
	key, err := newKey(ECDSA)
	if err != nil {
		return nil, err
	}
	tmpl := caTemplate(name)
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, Chain: []*x509.Certificate{cert}}, nil
}

// Intermediate returns an intermediate CA issued by ca.
func (ca *CA) Intermediate(name string) (*CA, error) {
	key, err := newKey(ECDSA)
	if err != nil {
		return nil, err
	}
	tmpl := caTemplate(name)
	tmpl.MaxPathLenZero = true
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, Chain: append([]*x509.Certificate{cert}, ca.Chain...)}, nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return certPEM(ca.Cert) }

// Pool is a pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Options describe a certificate to issue. The zero value is a server
// certificate for 127.0.0.1 and localhost, valid from an hour ago for a
// day, with an ECDSA key.
type Options struct {
	// CommonName defaults to the first DNS name, else "test".
	CommonName string
	// DNSNames and IPs are the subject alternative names. Both nil means
	// localhost and 127.0.0.1.
	DNSNames []string
	IPs      []net.IP
	// Client makes a client certificate (ExtKeyUsageClientAuth) instead
	// of a server one.
	Client bool
	// NotBefore and NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
	// Key selects the key algorithm.
	Key KeyType
}

// Leaf is an issued certificate and its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is the leaf followed by the issuing CA's chain without the
	// root, as a server sends it.
	Chain []*x509.Certificate
}

// Issue returns a certificate signed by ca.
func (ca *CA) Issue(o Options) (*Leaf, error) {
	key, err := newKey(o.Key)
	if err != nil {
		return nil, err
	}
	return ca.issue(o, key, ca.Cert, ca.Key)
}

// SelfSigned returns a certificate signed by its own key, trusted by no CA.
func SelfSigned(o Options) (*Leaf, error) {
	key, err := newKey(o.Key)
	if err != nil {
		return nil, err
	}
	return (&CA{}).issue(o, key, nil, key)
}

func (ca *CA) issue(o Options, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) (*Leaf, error) {
	if o.DNSNames == nil && o.IPs == nil {
		o.DNSNames = []string{"localhost"}
		o.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if o.CommonName == "" {
		o.CommonName = "test"
		if len(o.DNSNames) > 0 {
			o.CommonName = o.DNSNames[0]
		}
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.CommonName},
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     ku,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if parent == nil {
		parent = tmpl
	}
	cert, err := sign(tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	chain := []*x509.Certificate{cert}
	if len(ca.Chain) > 1 {
		chain = append(chain, ca.Chain[:len(ca.Chain)-1]...) // intermediates, not the root
	}
	return &Leaf{Cert: cert, Key: key, Chain: chain}, nil
}

// TLS returns the certificate (with its intermediates) and key for a
// tls.Config.
func (l *Leaf) TLS() tls.Certificate {
	c := tls.Certificate{PrivateKey: l.Key, Leaf: l.Cert}
	for _, x := range l.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// CertPEM is the leaf and its intermediates in PEM.
func (l *Leaf) CertPEM() []byte {
	var out []byte
	for _, c := range l.Chain {
		out = append(out, certPEM(c)...)
	}
	return out
}

// KeyFormat is a PEM encoding of a private key.
type KeyFormat int

const (
	PKCS8          KeyFormat = iota // "PRIVATE KEY"
	PKCS1                           // "RSA PRIVATE KEY" (RSA keys only)
	SEC1                            // "EC PRIVATE KEY" (ECDSA keys only)
	EncryptedPKCS8                  // "ENCRYPTED PRIVATE KEY" (PBES2), needs a password
)

// KeyPEM encodes the key in format; password is used by EncryptedPKCS8.
func (l *Leaf) KeyPEM(format KeyFormat, password string) ([]byte, error) {
	var block *pem.Block
	switch format {
	case PKCS8:
		der, err := x509.MarshalPKCS8PrivateKey(l.Key)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case PKCS1:
		k, ok := l.Key.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("testpki: PKCS#1 needs an RSA key")
		}
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	case SEC1:
		k, ok := l.Key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errors.New("testpki: SEC 1 needs an ECDSA key")
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case EncryptedPKCS8:
		if password == "" {
			return nil, errors.New("testpki: encrypted PKCS#8 needs a password")
		}
		der, err := pkcs8.MarshalPrivateKey(l.Key, []byte(password), nil)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}
	default:
		return nil, fmt.Errorf("testpki: unknown key format %d", format)
	}
	return pem.EncodeToMemory(block), nil
}

// WriteFiles writes the leaf's certificate chain to dir/name.pem and its
// key, in format, to dir/name-key.pem, and returns both paths.
func (l *Leaf) WriteFiles(dir, name string, format KeyFormat, password string) (certFile, keyFile string, err error) {
	key, err := l.KeyPEM(format, password)
	if err != nil {
		return "", "", err
	}
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, l.CertPEM(), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// WriteCA writes the CA certificate to dir/name.pem and returns the path.
func (ca *CA) WriteCA(dir, name string) (string, error) {
	path := filepath.Join(dir, name+".pem")
	return path, os.WriteFile(path, ca.CertPEM(), 0o600)
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case RSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
