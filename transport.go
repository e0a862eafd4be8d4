package connmgr

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// newHTTPTransport builds the connection pool for one endpoint. et is
// the endpoint's TLS side (never shared between endpoints): it makes the
// pool's TLS connections (see endpointTLS.dialTLS), and its config is
// the one net/http uses for those it makes itself, through a proxy. A nil
// et means Go's defaults with TLS 1.2 as the minimum.
func newHTTPTransport(c TransportConfig, et *endpointTLS) *http.Transport {
	dialer := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: c.KeepAlive}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if et != nil {
		tlsConfig = et.config
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   c.TLSHandshakeTimeout,
		MaxIdleConns:          0, // no global cap: MaxIdleConnsPerHost bounds each host
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
		MaxConnsPerHost:       c.MaxConnsPerHost,
		IdleConnTimeout:       c.IdleConnTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		ForceAttemptHTTP2:     c.DisableHTTP2 == nil || !*c.DisableHTTP2,
	}
	if et != nil {
		t.DialTLSContext = et.dialTLS(dialer.DialContext, c.TLSHandshakeTimeout)
	}
	if !t.ForceAttemptHTTP2 {
		// A non-nil, empty map turns HTTP/2 off (net/http documents this).
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t
}
