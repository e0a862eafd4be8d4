package connmgr

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// newHTTPTransport builds the connection pool for one endpoint. tlsConfig
// is the endpoint's own (never shared between endpoints with different
// settings); nil means Go's defaults with TLS 1.2 as the minimum.
func newHTTPTransport(c TransportConfig, tlsConfig *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: c.KeepAlive}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
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
	if !t.ForceAttemptHTTP2 {
		// A non-nil, empty map turns HTTP/2 off (net/http documents this).
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t
}
