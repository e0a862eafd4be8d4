package connmgr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// PinError is the error of a connection refused because no certificate
// of the server's verified chain (or, in pins_only mode, the server's own
// certificate) matched a configured pin. errors.Is(err, ErrCertificatePin)
// holds for it. Presented lists the pins of the certificates the server
// sent, its own first, so that an operator who has checked the new key
// out of band can update the pins.
type PinError struct {
	// Host is the server name the connection was for ("" if unknown).
	Host string
	// Presented are the "sha256/BASE64" pins of the certificates the
	// server sent, in order.
	Presented []string
	// Configured is the number of pins configured for the endpoint.
	Configured int
}

func (e *PinError) Error() string {
	host := e.Host
	if host == "" {
		host = "the server"
	} else {
		host = strconv.Quote(host)
	}
	return fmt.Sprintf("connmgr: certificate pin mismatch: %s presented %s; none matches the %d configured pins",
		host, strings.Join(e.Presented, ", "), e.Configured)
}

// Is reports whether target is ErrCertificatePin.
func (e *PinError) Is(target error) bool { return target == ErrCertificatePin }

// TLSErrorKind names what went wrong in a TLS connection, for branching
// and for metrics. The values are stable.
type TLSErrorKind string

const (
	// TLSUnknownAuthority: the server's certificate does not chain to a
	// trusted root (check ca_file and ca_mode).
	TLSUnknownAuthority TLSErrorKind = "unknown_authority"
	// TLSNameMismatch: the server's certificate is not valid for the name
	// connected to (check the URL host or server_name).
	TLSNameMismatch TLSErrorKind = "name_mismatch"
	// TLSExpired: the server's certificate (or one of its chain) has
	// expired or is not yet valid (check it, and this machine's clock).
	TLSExpired TLSErrorKind = "expired"
	// TLSInvalidCertificate: the chain is invalid for another reason
	// (wrong key usage, name constraints, path length...).
	TLSInvalidCertificate TLSErrorKind = "invalid_certificate"
	// TLSPinMismatch: no pin matched; the error unwraps to a *PinError.
	TLSPinMismatch TLSErrorKind = "pin_mismatch"
	// TLSProtocolVersion: client and server share no TLS version.
	TLSProtocolVersion TLSErrorKind = "protocol_version"
	// TLSClientCertificateRequired: the server requires a client
	// certificate and none was sent (set cert_file and key_file).
	TLSClientCertificateRequired TLSErrorKind = "client_certificate_required"
	// TLSClientCertificateRejected: the server refused the client
	// certificate that was sent (unknown CA, expired, revoked...).
	TLSClientCertificateRejected TLSErrorKind = "client_certificate_rejected"
	// TLSHandshakeFailure: the server ended the handshake for another
	// reason, such as no common cipher suite.
	TLSHandshakeFailure TLSErrorKind = "handshake_failure"
	// TLSNotTLS: the server did not answer with TLS (a plain HTTP port?).
	TLSNotTLS TLSErrorKind = "not_tls"
)

// TLSError is a TLS connection failure, classified so that it says what
// the operator should check. The errors connmgr returns wrap it (in an
// *Error) when a connection fails this way; it unwraps to the crypto/tls
// or crypto/x509 error, so errors.As still reaches those. TLS failures
// are never retried: another attempt would fail the same way.
type TLSError struct {
	// Kind is what failed.
	Kind TLSErrorKind
	// Host is the server connected to.
	Host string
	// Err is the underlying error.
	Err error
}

func (e *TLSError) Error() string {
	var hint string
	switch e.Kind {
	case TLSUnknownAuthority:
		hint = "the server's certificate is not signed by a trusted authority (check ca_file and ca_mode)"
	case TLSNameMismatch:
		hint = "the server's certificate is not valid for this name (check the URL host or tls.server_name)"
	case TLSExpired:
		hint = "the server's certificate has expired or is not yet valid (check it, and this machine's clock)"
	case TLSInvalidCertificate:
		hint = "the server's certificate chain is not valid"
	case TLSPinMismatch:
		hint = "the server's key matches none of the pins (check tls.pins)"
	case TLSProtocolVersion:
		hint = "client and server share no TLS version (check tls.min_version and tls.max_version)"
	case TLSClientCertificateRequired:
		hint = "the server requires a client certificate (set tls.cert_file and tls.key_file)"
	case TLSClientCertificateRejected:
		hint = "the server rejected the client certificate (check that the server trusts its CA and that it is valid)"
	case TLSHandshakeFailure:
		hint = "the server ended the handshake (no common cipher suite or signature algorithm?)"
	case TLSNotTLS:
		hint = "the server did not answer with TLS (is it a plain HTTP port?)"
	default:
		hint = "TLS failed"
	}
	host := ""
	if e.Host != "" {
		host = " " + strconv.Quote(e.Host)
	}
	return "connmgr: tls " + string(e.Kind) + host + ": " + hint + ": " + strings.TrimPrefix(e.Err.Error(), "connmgr: ")
}

func (e *TLSError) Unwrap() error { return e.Err }

// ClassifyTLSError tells what kind of TLS failure err is, looking through
// its whole chain with errors.As for the crypto/tls and crypto/x509 error
// types (and a *TLSError), or returns "" when it is not a TLS failure.
// It is for errors from transports connmgr did not build (WithTransport);
// errors from connmgr's own transports already carry a *TLSError.
func ClassifyTLSError(err error) TLSErrorKind {
	kind, _ := classifyTLS(err)
	return kind
}

// isTLSFailure reports whether err is a TLS failure that another attempt
// would meet again. It is the retry decision's only view of TLS, so that
// what is retried and what is reported as a *TLSError never disagree:
// an alert such as internal_error is neither.
func isTLSFailure(err error) bool {
	kind, _ := classifyTLS(err)
	return kind != ""
}

// classifyTLS returns the kind of a TLS failure and, for an alert the
// server sent, the alert. It is the one classifier of TLS errors:
// ClassifyTLSError, endpointTLS.explain and the retry decision
// (isTLSFailure) all use it.
func classifyTLS(err error) (TLSErrorKind, tls.AlertError) {
	if err == nil {
		return "", 0
	}
	var (
		done     *TLSError
		pinErr   *PinError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &done):
		return done.Kind, 0
	case errors.As(err, &pinErr), errors.Is(err, ErrCertificatePin):
		return TLSPinMismatch, 0
	case errors.As(err, &hostname):
		return TLSNameMismatch, 0
	case errors.As(err, &unknown):
		return TLSUnknownAuthority, 0
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return TLSExpired, 0
		}
		return TLSInvalidCertificate, 0
	case errors.As(err, &verify):
		return TLSInvalidCertificate, 0
	case errors.As(err, &header):
		return TLSNotTLS, 0
	}
	if a, ok := remoteAlert(err); ok {
		switch a {
		case alertProtocolVersion:
			return TLSProtocolVersion, a
		case alertCertificateRequired:
			return TLSClientCertificateRequired, a
		case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked,
			alertCertificateExpired, alertCertificateUnknown, alertUnknownCA, alertAccessDenied:
			return TLSClientCertificateRejected, a
		case alertHandshakeFailure, alertIllegalParameter, alertDecodeError, alertDecryptError,
			alertInsufficientSecurity, alertUnrecognizedName, alertNoApplicationProtocol:
			return TLSHandshakeFailure, a
		}
		// Other alerts (internal_error, user_canceled...) may be
		// transient: they are left unclassified, and so retryable.
	}
	return "", 0
}

// TLS alert numbers (RFC 8446 section 6).
const (
	alertHandshakeFailure       tls.AlertError = 40
	alertBadCertificate         tls.AlertError = 42
	alertUnsupportedCertificate tls.AlertError = 43
	alertCertificateRevoked     tls.AlertError = 44
	alertCertificateExpired     tls.AlertError = 45
	alertCertificateUnknown     tls.AlertError = 46
	alertUnknownCA              tls.AlertError = 48
	alertAccessDenied           tls.AlertError = 49
	alertIllegalParameter       tls.AlertError = 47
	alertDecodeError            tls.AlertError = 50
	alertDecryptError           tls.AlertError = 51
	alertProtocolVersion        tls.AlertError = 70
	alertInsufficientSecurity   tls.AlertError = 71
	alertUnrecognizedName       tls.AlertError = 112
	alertCertificateRequired    tls.AlertError = 116
	alertNoApplicationProtocol  tls.AlertError = 120
)

// remoteAlert finds an alert the server sent in err's chain. crypto/tls
// reports one as a *net.OpError with Op "remote error" whose Err is of
// its unexported alert type (a uint8); over QUIC it is a tls.AlertError.
// The alert type is recognized by its package and kind, not by its text.
func remoteAlert(err error) (tls.AlertError, bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return ae, true
	}
	for e := err; e != nil; {
		var op *net.OpError
		if !errors.As(e, &op) {
			return 0, false
		}
		if op.Op == "remote error" && op.Err != nil {
			v := reflect.ValueOf(op.Err)
			if v.Kind() == reflect.Uint8 && v.Type().PkgPath() == "crypto/tls" {
				return tls.AlertError(v.Uint()), true
			}
		}
		e = op.Err
	}
	return 0, false
}

// tlsTransport is an endpoint's connection pool with its TLS failures
// classified into *TLSError, so that they say what to check and are not
// retried.
type tlsTransport struct {
	rt  *http.Transport
	tls *endpointTLS
}

func (t *tlsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		err = t.tls.explain(err, req)
	}
	return resp, err
}

// explain wraps a TLS failure of a request in a *TLSError.
func (t *endpointTLS) explain(err error, req *http.Request) error {
	kind, alert := classifyTLS(err)
	if kind == "" {
		return err
	}
	var done *TLSError
	if errors.As(err, &done) {
		return err
	}
	host := t.serverName
	if host == "" && req.URL != nil {
		host = req.URL.Hostname()
	}
	var pinErr *PinError
	if errors.As(err, &pinErr) && pinErr.Host == "" {
		pinErr.Host = host
	}
	if (alert == alertHandshakeFailure || alert == alertBadCertificate) && !t.hasClientCert {
		// A TLS 1.2 server refuses a missing client certificate with
		// handshake_failure (some with bad_certificate); TLS 1.3 has
		// certificate_required. The alert alone is ambiguous, so it
		// counts only if a server of this endpoint just asked for a
		// certificate (the request and the alert come in one handshake).
		if at := t.certRequested.Load(); at != 0 && t.now().Sub(time.Unix(0, at)) < time.Minute {
			kind = TLSClientCertificateRequired
		}
	}
	return &TLSError{Kind: kind, Host: host, Err: err}
}
