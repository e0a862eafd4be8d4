package connmgr

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/youmark/pkcs8"
)

// watchedFiles holds material loaded from files (a client key pair, a CA
// pool) and reloads it when one of the files changes on disk. The check
// is a stat of each file, made when a connection is set up; there is no
// background goroutine.
type watchedFiles[T any] struct {
	what   string
	fields []string // the settings naming the files: "cert_file", ...
	paths  []string
	load   func() (T, error)

	cur atomic.Pointer[loadedFiles[T]]

	// mu serializes reloads and guards failed and failedStat.
	mu sync.Mutex
	// failed are the stamps of the version of the files that last failed
	// to load, and failedStat the text of the last stat error, so that one
	// bad version is reported once, not on every handshake.
	failed     []os.FileInfo
	failedStat string
}

type loadedFiles[T any] struct {
	value  T
	stamps []os.FileInfo
}

// reloadResult is what current found: the value to use, and whether it
// was just reloaded or a reload just failed.
type reloadResult[T any] struct {
	value   T
	changed bool
	err     error
}

// newWatchedFiles follows the files of the given settings (fields[i]
// names paths[i]).
func newWatchedFiles[T any](what string, fields, paths []string, load func() (T, error)) *watchedFiles[T] {
	return &watchedFiles[T]{what: what, fields: fields, paths: paths, load: load}
}

func (w *watchedFiles[T]) describe() string { return w.what }

// init loads the files for the first time.
func (w *watchedFiles[T]) init() (T, error) {
	var zero T
	stamps, err := w.stat()
	if err != nil {
		return zero, err
	}
	v, err := w.load()
	if err != nil {
		return zero, err
	}
	w.cur.Store(&loadedFiles[T]{value: v, stamps: stamps})
	return v, nil
}

// current returns the material to use now, reloading it first if a file
// changed. A change that cannot be loaded keeps the previous material and
// is reported (err set) once per version of the files.
func (w *watchedFiles[T]) current() reloadResult[T] {
	cur := w.cur.Load()
	stamps, statErr := w.stat()
	if statErr == nil && sameStamps(stamps, cur.stamps) {
		return reloadResult[T]{value: cur.value}
	}
	if !w.mu.TryLock() {
		// Another handshake is reloading; this one uses what is there.
		return reloadResult[T]{value: cur.value}
	}
	defer w.mu.Unlock()
	cur = w.cur.Load()
	if statErr != nil {
		if statErr.Error() == w.failedStat {
			return reloadResult[T]{value: cur.value}
		}
		w.failedStat = statErr.Error()
		return reloadResult[T]{value: cur.value, err: statErr}
	}
	w.failedStat = ""
	if sameStamps(stamps, cur.stamps) || sameStamps(stamps, w.failed) {
		return reloadResult[T]{value: cur.value}
	}
	v, err := w.load()
	if err != nil {
		w.failed = stamps
		return reloadResult[T]{value: cur.value, err: err}
	}
	w.failed = nil
	w.cur.Store(&loadedFiles[T]{value: v, stamps: stamps})
	return reloadResult[T]{value: v, changed: true}
}

func (w *watchedFiles[T]) stat() ([]os.FileInfo, error) {
	out := make([]os.FileInfo, len(w.paths))
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.fields[i], err)
		}
		out[i] = fi
	}
	return out, nil
}

// sameStamps reports whether two stats of the same files show no change:
// same file (not renamed over), same modification time, same size.
func sameStamps(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] == nil || b[i] == nil || !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}

// loadKeyPair reads a client certificate chain and its key. now is used
// to refuse an expired certificate.
func loadKeyPair(certFile, keyFile, password string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file: %w", err)
	}
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cert_file %q: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	block, err := decodeKeyPEM(keyPEM, password)
	if err != nil {
		return nil, fmt.Errorf("key_file %q: %w", keyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(block))
	if err != nil {
		return nil, fmt.Errorf("cert_file %q and key_file %q: %w", certFile, keyFile, err)
	}
	pair.Leaf = certs[0]
	if now.After(pair.Leaf.NotAfter) {
		return nil, fmt.Errorf("cert_file %q: the certificate expired at %s", certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}

// errLegacyPEMEncryption explains why RFC 1423 encrypted keys are refused.
var errLegacyPEMEncryption = errors.New(`the key is encrypted with legacy PEM encryption (RFC 1423, "Proc-Type: 4,ENCRYPTED"), ` +
	`which is insecure by design (a weak MD5-based key derivation and no integrity check, so a wrong password can go unnoticed) ` +
	`and not supported: convert it to encrypted PKCS#8, for example with ` +
	`"openssl pkcs8 -topk8 -v2 aes-256-cbc -in old-key.pem -out key.pem"`)

// decodeKeyPEM finds the private key in a PEM file and returns it as a
// PEM block tls.X509KeyPair reads, decrypting encrypted PKCS#8 with
// password.
func decodeKeyPEM(data []byte, password string) (*pem.Block, error) {
	rest := data
	sawPEM := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		if block.Headers["Proc-Type"] != "" || block.Headers["DEK-Info"] != "" {
			return nil, errLegacyPEMEncryption
		}
		switch block.Type {
		case "CERTIFICATE", "EC PARAMETERS":
			continue // a combined file, or "openssl ecparam -genkey" output
		case "ENCRYPTED PRIVATE KEY":
			if password == "" {
				return nil, errors.New("the key is encrypted (ENCRYPTED PRIVATE KEY): set key_password")
			}
			der, err := decryptPKCS8(block.Bytes, password)
			if err != nil {
				return nil, fmt.Errorf("cannot decrypt the key: wrong key_password, or an encryption scheme other than PKCS#5 v2 (PBES2): %w", err)
			}
			return &pem.Block{Type: "PRIVATE KEY", Bytes: der}, nil
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if password != "" {
				return nil, fmt.Errorf("key_password is set but the key is not encrypted (%s)", block.Type)
			}
			return block, nil
		default:
			return nil, fmt.Errorf("unsupported PEM block %q: want PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY", block.Type)
		}
	}
	if !sawPEM {
		return nil, errors.New("no PEM data found")
	}
	return nil, errors.New("no private key found: want a PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY block")
}

// decryptPKCS8 decrypts an encrypted PKCS#8 key and returns it as
// unencrypted PKCS#8 DER.
func decryptPKCS8(der []byte, password string) (out []byte, err error) {
	defer func() {
		// The decoder is a third-party parser fed a file from disk: a
		// malformed file must be an error, never a crash.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("malformed encrypted key: %v", r)
		}
	}()
	key, err := pkcs8.ParsePKCS8PrivateKey(der, []byte(password))
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(key)
}

// parseCertificates reads every CERTIFICATE block of a PEM file.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// trustRoots is a pool of trusted roots loaded from a CA file, and a
// digest of what it was built from, which TLS sessions are filed under.
type trustRoots struct {
	pool   *x509.CertPool
	digest string
}

// loadRoots builds the pool of trusted roots from a CA file: added to
// base (or to the system roots when base is nil), or alone when replace.
func loadRoots(caFile string, base *x509.CertPool, replace bool) (*trustRoots, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:16])
	if replace {
		digest = "replace:" + digest
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("ca_file %q: %w", caFile, err)
	}
	var pool *x509.CertPool
	switch {
	case replace:
		pool = x509.NewCertPool()
	case base != nil:
		pool = base.Clone()
	default:
		if pool, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("ca_mode append: cannot load the system roots (%v): use ca_mode replace to trust only ca_file", err)
		}
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &trustRoots{pool: pool, digest: digest}, nil
}

// TLSStats is the TLS section of EndpointStats, present when the endpoint
// has TLS files or pins.
type TLSStats struct {
	// Reloads counts certificate, key and CA files re-read after they
	// changed on disk.
	Reloads uint64 `json:"reloads"`
	// ReloadErrors counts changed files that could not be used; the
	// previous material stayed in use.
	ReloadErrors uint64 `json:"reload_errors"`
	// LastReloadError says what was wrong with the last files that could
	// not be used (never their content), and LastReloadErrorAt when; both
	// are cleared by the next successful reload.
	LastReloadError   string    `json:"last_reload_error,omitempty"`
	LastReloadErrorAt time.Time `json:"last_reload_error_at,omitzero"`
	// PinFailures counts connections refused because no pin matched.
	PinFailures uint64 `json:"pin_failures"`
	// ClientCertNotAfter is when the client certificate in use from
	// cert_file expires; zero without one.
	ClientCertNotAfter time.Time `json:"client_cert_not_after,omitzero"`
}

// tlsCounters are an endpoint key's TLS numbers; they survive reloads.
type tlsCounters struct {
	active                             atomic.Bool
	reloads, reloadErrors, pinFailures atomic.Uint64
	lastErr                            atomic.Pointer[reloadFailure]
	certNotAfter                       atomic.Int64 // Unix nanoseconds; 0 for none
}

type reloadFailure struct {
	msg string
	at  time.Time
}

func (c *tlsCounters) snapshot() *TLSStats {
	if !c.active.Load() {
		return nil
	}
	s := &TLSStats{
		Reloads:      c.reloads.Load(),
		ReloadErrors: c.reloadErrors.Load(),
		PinFailures:  c.pinFailures.Load(),
	}
	if f := c.lastErr.Load(); f != nil {
		s.LastReloadError, s.LastReloadErrorAt = f.msg, f.at
	}
	if n := c.certNotAfter.Load(); n != 0 {
		s.ClientCertNotAfter = time.Unix(0, n)
	}
	return s
}
