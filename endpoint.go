package connmgr

import (
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// EndpointConfig is the policy for one endpoint: how long to wait, when to
// retry, how to authenticate, and how to connect. Every zero field
// inherits (see Config); the default named in each field's doc applies
// when nothing sets it.
type EndpointConfig struct {
	// Timeout bounds one attempt, from sending the request until the
	// caller closes the response body. Default 10s; negative means none.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// TotalTimeout bounds the whole call: every attempt and every backoff
	// between them. Default 30s; negative means none. The caller's context
	// deadline applies as well, whichever comes first.
	TotalTimeout time.Duration `yaml:"total_timeout,omitempty" json:"total_timeout,omitempty"`
	// Retry says when and how often a failed attempt is tried again.
	Retry RetryConfig `yaml:"retry,omitempty" json:"retry,omitempty"`
	// Auth adds credentials to every request that does not carry its own.
	Auth AuthConfig `yaml:"auth,omitempty" json:"auth,omitempty"`
	// Headers are set on every request that does not already set them.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Transport sizes the connection pool and bounds connection set-up.
	Transport TransportConfig `yaml:"transport,omitempty" json:"transport,omitempty"`
	// TLS configures certificate verification, client certificates and pins.
	TLS TLSConfig `yaml:"tls,omitempty" json:"tls,omitempty"`
	// RateLimit throttles attempts to this endpoint. Off by default.
	RateLimit RateLimitConfig `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	// CircuitBreaker stops calling an upstream that keeps failing. On by default.
	CircuitBreaker BreakerConfig `yaml:"circuit_breaker,omitempty" json:"circuit_breaker,omitempty"`
	// MaxConcurrent caps the calls in flight to this endpoint (a
	// bulkhead); a call over the cap waits in the queue (MaxQueue) or
	// fails with ErrConcurrencyLimit. A call holds its slot until its
	// response body is closed or read to the end. 0 inherits; default off;
	// negative means off.
	MaxConcurrent int `yaml:"max_concurrent,omitempty" json:"max_concurrent,omitempty"`
	// MaxQueue is how many calls over MaxConcurrent may wait for a slot,
	// first come first served. 0 inherits; default 0: none wait; negative
	// means none.
	MaxQueue int `yaml:"max_queue,omitempty" json:"max_queue,omitempty"`
	// MaxQueueWait bounds a queued call's wait, after which it fails with
	// ErrConcurrencyLimit; the caller's context bounds it too. 0 inherits;
	// default: TotalTimeout.
	MaxQueueWait time.Duration `yaml:"max_queue_wait,omitempty" json:"max_queue_wait,omitempty"`
	// Fallback names another endpoint ("host" or "host:port" key) that
	// takes the call, with its own policies, when this one cannot: its
	// circuit breaker is open, its concurrency cap is full, or it has no
	// healthy upstream. The request goes to the fallback's host, path and
	// query unchanged. Fallbacks may chain; cycles are rejected. Default
	// none; Default cannot have one.
	Fallback string `yaml:"fallback,omitempty" json:"fallback,omitempty"`

	// Upstreams makes the key a logical service: a request whose host is
	// the key ("http://payments/v1/x") goes to one of these, chosen by
	// Balancer. Default none (requests go to the host they name); Default
	// cannot have any. See UpstreamConfig for DNS discovery.
	Upstreams []UpstreamConfig `yaml:"upstreams,omitempty" json:"upstreams,omitempty"`
	// Balancer chooses among Upstreams: round_robin, weighted_round_robin,
	// random, least_request, p2c_ewma, consistent_hash, or a name
	// registered with WithBalancer. Default round_robin.
	Balancer string `yaml:"balancer,omitempty" json:"balancer,omitempty"`
	// HashKey is what consistent_hash hashes: "header:X-User-ID",
	// "cookie:session", "query:user" or "path". Default path.
	HashKey string `yaml:"hash_key,omitempty" json:"hash_key,omitempty"`
	// HealthCheck probes every upstream in the background. Off unless a
	// path is set.
	HealthCheck HealthCheckConfig `yaml:"health_check,omitempty" json:"health_check,omitempty"`
	// OutlierDetection ejects upstreams that keep failing. On by default
	// for endpoints with upstreams.
	OutlierDetection OutlierConfig `yaml:"outlier_detection,omitempty" json:"outlier_detection,omitempty"`
	// PanicThreshold is the percentage of usable (healthy, not ejected)
	// upstreams below which the balancer uses all of them, as Envoy's
	// panic mode: better some errors than none served. 0 inherits;
	// default 50; negative never panics.
	PanicThreshold int `yaml:"panic_threshold,omitempty" json:"panic_threshold,omitempty"`
	// SlowStart ramps the share of an upstream that returns (from
	// ejection, ill health, or discovery) from 10% to its full share over
	// this window. 0 inherits; default off; negative means off.
	SlowStart time.Duration `yaml:"slow_start,omitempty" json:"slow_start,omitempty"`
	// Discovery sets how often dns:/// upstreams are resolved again.
	Discovery DiscoveryConfig `yaml:"discovery,omitempty" json:"discovery,omitempty"`
	// Cache holds this endpoint's settings for the HTTP cache plugin
	// (package cache); it does nothing without one. See CacheConfig.
	Cache CacheConfig `yaml:"cache,omitempty" json:"cache,omitempty"`
}

// AuthConfig adds one kind of credential to each request. Set at most one
// of BearerToken, APIKey, or Username and Password. A header the caller
// set on the request wins over the configured one.
type AuthConfig struct {
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string `yaml:"bearer_token,omitempty" json:"bearer_token,omitempty"`
	// APIKey is sent in the APIKeyHeader header.
	APIKey string `yaml:"api_key,omitempty" json:"api_key,omitempty"`
	// APIKeyHeader names the header that carries APIKey. Default X-API-Key.
	// It is redacted wherever headers are reported.
	APIKeyHeader string `yaml:"api_key_header,omitempty" json:"api_key_header,omitempty"`
	// Username and Password are sent as HTTP basic authentication.
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
}

// TransportConfig sizes the connection pool and bounds connection set-up.
// Endpoints with different transport or TLS settings never share
// connections. It is ignored when WithTransport supplies the transport.
type TransportConfig struct {
	// MaxIdleConnsPerHost is the number of idle connections kept per host. Default 64.
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host,omitempty" json:"max_idle_conns_per_host,omitempty"`
	// MaxConnsPerHost caps all connections per host, busy or idle. Default 0 (no cap).
	MaxConnsPerHost int `yaml:"max_conns_per_host,omitempty" json:"max_conns_per_host,omitempty"`
	// IdleConnTimeout closes connections idle this long. Default 90s.
	IdleConnTimeout time.Duration `yaml:"idle_conn_timeout,omitempty" json:"idle_conn_timeout,omitempty"`
	// DialTimeout bounds establishing a TCP connection. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout,omitempty" json:"dial_timeout,omitempty"`
	// KeepAlive is the TCP keep-alive period. Default 30s.
	KeepAlive time.Duration `yaml:"keep_alive,omitempty" json:"keep_alive,omitempty"`
	// TLSHandshakeTimeout bounds the TLS handshake. Default 10s.
	TLSHandshakeTimeout time.Duration `yaml:"tls_handshake_timeout,omitempty" json:"tls_handshake_timeout,omitempty"`
	// DisableHTTP2 turns HTTP/2 off. Default false: HTTP/2 is negotiated
	// over TLS when the server offers it.
	DisableHTTP2 *bool `yaml:"disable_http2,omitempty" json:"disable_http2,omitempty"`
}

// builtinDefaults is what applies when neither an endpoint nor
// Config.Default sets a field.
func builtinDefaults() EndpointConfig {
	return EndpointConfig{
		Timeout:      10 * time.Second,
		TotalTimeout: 30 * time.Second,
		Retry: RetryConfig{
			MaxAttempts:     3,
			InitialBackoff:  100 * time.Millisecond,
			MaxBackoff:      5 * time.Second,
			RetryOn:         []int{408, 429, 500, 502, 503, 504},
			MaxRetryAfter:   30 * time.Second,
			NonIdempotent:   Bool(false),
			MaxBufferedBody: 1 << 20,
			Budget: RetryBudgetConfig{
				Ratio:        0.2,
				MinPerSecond: 10,
				Disabled:     Bool(false),
			},
		},
		Auth: AuthConfig{APIKeyHeader: "X-API-Key"},
		Transport: TransportConfig{
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			DialTimeout:         10 * time.Second,
			KeepAlive:           30 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableHTTP2:        Bool(false),
		},
		TLS:            tlsDefaults(),
		RateLimit:      rateLimitDefaults(),
		CircuitBreaker: breakerDefaults(),

		Balancer:         BalancerRoundRobin,
		HashKey:          "path",
		HealthCheck:      healthCheckDefaults(),
		OutlierDetection: outlierDefaults(),
		PanicThreshold:   50,
		Discovery:        DiscoveryConfig{Refresh: 30 * time.Second},
	}
}

// inherit returns child with every zero field taken from parent: structs
// field by field, maps key by key (child wins), nil slices and nil
// pointers replaced. It never modifies its arguments' maps or slices.
func inherit(child, parent EndpointConfig) EndpointConfig {
	out := child
	mergeValue(reflect.ValueOf(&out).Elem(), reflect.ValueOf(parent))
	return out
}

func mergeValue(dst, parent reflect.Value) {
	switch dst.Kind() {
	case reflect.Struct:
		for i := 0; i < dst.NumField(); i++ {
			mergeValue(dst.Field(i), parent.Field(i))
		}
	case reflect.Map:
		if parent.Len() == 0 {
			return
		}
		merged := reflect.MakeMapWithSize(dst.Type(), dst.Len()+parent.Len())
		iter := parent.MapRange()
		for iter.Next() {
			merged.SetMapIndex(iter.Key(), iter.Value())
		}
		iter = dst.MapRange()
		for iter.Next() {
			merged.SetMapIndex(iter.Key(), iter.Value())
		}
		dst.Set(merged)
	default:
		if dst.IsZero() {
			dst.Set(parent)
		}
	}
}

// endpointKind tells how an endpoint key matches a request's authority.
type endpointKind int

const (
	kindHostPort endpointKind = iota // "host:port"
	kindHost                         // "host"
	kindWildcard                     // "*.example.com"
)

// normalizeKey lower-cases key and tells what kind of key it is, or
// returns a problem description.
func normalizeKey(key string) (string, endpointKind, string) {
	k := strings.ToLower(strings.TrimSpace(key))
	switch {
	case k == "":
		return "", 0, "key must not be empty"
	case strings.Contains(k, "://") || strings.ContainsAny(k, "/?#@ "):
		return "", 0, `key must be "host", "host:port" or "*.domain", not a URL`
	case strings.HasPrefix(k, "*."):
		rest := k[2:]
		if rest == "" || strings.ContainsAny(rest, "*:") {
			return "", 0, `wildcard key must look like "*.example.com"`
		}
		return k, kindWildcard, ""
	case strings.Contains(k, "*"):
		return "", 0, `"*" is only allowed as the first label, as in "*.example.com"`
	}
	if host, port, err := net.SplitHostPort(k); err == nil {
		if host == "" || port == "" {
			return "", 0, "key must name a host and a port"
		}
		return k, kindHostPort, ""
	}
	if strings.Count(k, ":") > 1 && !strings.HasPrefix(k, "[") {
		return "", 0, `an IPv6 key with a port must be bracketed, as in "[::1]:8080"`
	}
	return strings.Trim(k, "[]"), kindHost, ""
}

// endpointTable is an immutable snapshot of the endpoints, read without
// locks by every request. Reload builds a new one and swaps it in.
type endpointTable struct {
	hostPort map[string]*endpoint // "host:port"
	// implied80 and implied443 hold host:port keys with port 80 or 443 by
	// host alone, for URLs that leave the port implied by their scheme.
	implied80  map[string]*endpoint
	implied443 map[string]*endpoint
	host       map[string]*endpoint // "host"
	wildcard   map[string]*endpoint // ".example.com" for "*.example.com"
	byKey      map[string]*endpoint // every configured key, for fallbacks and Stats
	def        *endpoint
	groups     map[string]*breakerSet // shared breaker sets by circuit_breaker.group
}

// lookup returns the endpoint for a request URL: exact host:port, then
// host, then the longest wildcard, then the default. It does not allocate
// for lower-case hosts.
//
// Its cost does not grow with the number of endpoints: one scan of the
// authority and at most one probe of each non-empty map (most are
// empty, which costs a length check); with no endpoint configured it
// returns the default at once.
func (t *endpointTable) lookup(u *url.URL) *endpoint {
	if len(t.byKey) == 0 {
		return t.def // only the default: every URL is its
	}
	authority := u.Host
	host, port, upper := scanAuthority(authority)
	if upper {
		authority = strings.ToLower(authority)
		host, port = splitAuthority(authority)
	}
	if port != "" {
		if ep := t.hostPort[authority]; ep != nil {
			return ep
		}
	} else if len(t.implied80) > 0 || len(t.implied443) > 0 {
		if ep := t.impliedPort(u.Scheme)[host]; ep != nil {
			return ep
		}
	}
	if ep := t.host[host]; ep != nil {
		return ep
	}
	if len(t.wildcard) > 0 {
		for i := 0; i < len(host); i++ {
			if host[i] == '.' {
				if ep := t.wildcard[host[i:]]; ep != nil {
					return ep
				}
			}
		}
	}
	return t.def
}

// impliedPort returns the host-keyed table for the port a scheme implies.
func (t *endpointTable) impliedPort(scheme string) map[string]*endpoint {
	switch scheme {
	case "https", "wss":
		return t.implied443
	case "http", "ws":
		return t.implied80
	}
	return nil
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// scanAuthority is splitAuthority and hasUpper in one pass over a.
func scanAuthority(a string) (host, port string, upper bool) {
	if len(a) > 0 && a[0] == '[' {
		host, port = splitAuthority(a)
		return host, port, hasUpper(a)
	}
	colon, colons := -1, 0
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case c == ':':
			colon, colons = i, colons+1
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if colons == 1 {
		return a[:colon], a[colon+1:], upper
	}
	return a, "", upper
}

// splitAuthority splits "host:port", "[v6]:port", "host" or "[v6]"
// without allocating.
func splitAuthority(a string) (host, port string) {
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return a, ""
		}
		host = a[1:end]
		if len(a) > end+1 && a[end+1] == ':' {
			port = a[end+2:]
		}
		return host, port
	}
	if i := strings.LastIndexByte(a, ':'); i >= 0 && strings.IndexByte(a, ':') == i {
		return a[:i], a[i+1:]
	}
	return a, ""
}

// isIdempotent reports whether a request with this method may be sent
// twice without changing the outcome (RFC 9110 section 9.2.2).
func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete, "":
		return true
	}
	return false
}

// configInterner shares one copy of a resolved endpoint config among the
// endpoints of a table whose configs are equal (most often all of them:
// endpoints that only inherit), so an idle endpoint does not hold a
// kilobyte of config of its own. It compares with the few configs it
// kept last, which bounds its cost per endpoint.
type configInterner struct {
	recent [4]*EndpointConfig
	next   int
}

func (in *configInterner) intern(cfg EndpointConfig) *EndpointConfig {
	for _, c := range in.recent {
		if c != nil && reflect.DeepEqual(*c, cfg) {
			return c
		}
	}
	c := &cfg
	in.recent[in.next%len(in.recent)] = c
	in.next++
	return c
}
