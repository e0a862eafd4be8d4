package connmgr

import (
	"fmt"
	"net/http"
)

// endpointPool is an endpoint's connection pool and the RoundTripper
// (with its TLS side) that sends through it.
type endpointPool struct {
	rt  http.RoundTripper
	own *http.Transport
}

// newPool builds ep's pool from its transport and TLS settings.
func (m *Manager) newPool(ep *endpoint) (*endpointPool, error) {
	et, err := newEndpointTLS(ep.key, ep.cfg.TLS, m.opts.tlsBase(ep.key), m.logger, &ep.stats.tls)
	if err != nil {
		return nil, fmt.Errorf("connmgr: %s.tls: %w", endpointPath(ep.key), err)
	}
	own := newHTTPTransport(ep.cfg.Transport, et)
	return &endpointPool{rt: &tlsTransport{rt: own, tls: et}, own: own}, nil
}

// roundTripper returns the transport an attempt on ep is sent through,
// building the endpoint's pool on its first call.
func (ep *endpoint) roundTripper() http.RoundTripper {
	if ep.transport != nil {
		return ep.transport
	}
	if p := ep.lazy.Load(); p != nil {
		return p.rt
	}
	return ep.buildLazy().rt
}

func (ep *endpoint) buildLazy() *endpointPool {
	ep.lazyMu.Lock()
	defer ep.lazyMu.Unlock()
	if p := ep.lazy.Load(); p != nil {
		return p
	}
	p, err := ep.m.newPool(ep)
	if err != nil {
		// Settings that can fail are built at New; this cannot happen,
		// but a call must still fail cleanly if it does.
		p = &endpointPool{rt: RoundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, err })}
	}
	ep.lazy.Store(p)
	return p
}

// pool returns ep's connection pool if it has one yet (nil under
// WithTransport, or before a lazy endpoint's first call).
func (ep *endpoint) pool() *http.Transport {
	if ep.ownTransport != nil {
		return ep.ownTransport
	}
	if p := ep.lazy.Load(); p != nil {
		return p.own
	}
	return nil
}
