package connmgr

import (
	"crypto/rand"
	"encoding/hex"
	"reflect"
)

// prepare validates cfg and every option that depends on it. New and
// Reload both run it, so a reload is refused for exactly what New
// refuses. Requires reloadMu (it resolves the endpoint-keyed options).
func (m *Manager) prepare(cfg Config) (*compiledConfig, error) {
	cc, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.opts.resolveEndpointKeys(cc); err != nil {
		return nil, err
	}
	var p problems
	m.checkStores(&p, cc)
	m.checkTransportTLS(&p, cc)
	m.checkBalancers(&p, cc)
	if err := p.err(); err != nil {
		return nil, err
	}
	return cc, nil
}

// eachEndpoint calls f with the path and resolved config of the default
// and of every endpoint.
func eachEndpoint(cc *compiledConfig, f func(key, path string, c EndpointConfig)) {
	f(defaultKey, defaultKey, cc.def)
	for key, ce := range cc.endpoints {
		f(key, endpointPath(key), ce.cfg)
	}
}

// checkStores refuses a `scope: fleet` setting with no store to share through.
func (m *Manager) checkStores(p *problems, cc *compiledConfig) {
	eachEndpoint(cc, func(_, path string, c EndpointConfig) {
		if rateLimitOn(c.RateLimit) && c.RateLimit.Scope == scopeFleet && m.opts.rateStore == nil {
			p.add(path+".rate_limit.scope", `"fleet" needs a rate-limit store (WithRateLimitStore, or a redis block)`)
		}
		bc := c.CircuitBreaker
		if (bc.Disabled == nil || !*bc.Disabled) && bc.Scope == scopeFleet && m.opts.breakerStore == nil {
			p.add(path+".circuit_breaker.scope", `"fleet" needs a breaker store (WithBreakerStore, or a redis block)`)
		}
	})
}

// checkTransportTLS refuses TLS settings that WithTransport would
// silently drop: the given transport makes its own TLS connections. An
// endpoint is named only where it sets TLS itself (not where it merely
// inherits the default's).
func (m *Manager) checkTransportTLS(p *problems, cc *compiledConfig) {
	if m.opts.transport == nil {
		return
	}
	defSet := tlsSettingsSet(cc.def.TLS)
	eachEndpoint(cc, func(key, path string, c EndpointConfig) {
		if !tlsSettingsSet(c.TLS) || (key != defaultKey && defSet && reflect.DeepEqual(c.TLS, cc.def.TLS)) {
			return
		}
		p.add(path+".tls", "has no effect with WithTransport (the given transport makes its own TLS connections): remove it, or drop WithTransport")
	})
}

// tlsSettingsSet reports whether a resolved TLS block asks for anything
// beyond the defaults.
func tlsSettingsSet(c TLSConfig) bool {
	d := tlsDefaults()
	return c.CAFile != "" || c.CertFile != "" || len(c.Pins) > 0 || c.ServerName != "" || len(c.CipherSuites) > 0 ||
		c.MinVersion != d.MinVersion || c.MaxVersion != "" || (c.InsecureSkipVerify != nil && *c.InsecureSkipVerify)
}

// applyEndpointOptions gives a new endpoint the options keyed by it.
func (m *Manager) applyEndpointOptions(ep *endpoint) {
	o := &m.opts
	ep.retryPolicy, ep.backoffFunc = o.retryPolicy, o.backoff
	if p, ok := o.endpointRetryPolicy[ep.key]; ok {
		ep.retryPolicy = p
	}
	if b, ok := o.endpointBackoff[ep.key]; ok {
		ep.backoffFunc = b
	}
	ep.middleware = o.endpointMiddleware[ep.key]
}

// newManagerID returns an id for this Manager in fleet signals.
func newManagerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
