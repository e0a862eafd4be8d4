package connmgr

import "net/http"

// wrappedEndpoint is an endpoint's middleware chain (WithMiddleware,
// WithEndpointMiddleware, MiddlewarePlugin), built for one hook chain.
type wrappedEndpoint struct {
	chain *hookChain
	rt    http.RoundTripper // nil: no middleware
}

// wrapped returns ep's middleware chain around the call, or nil when ep
// has none: the Manager's middleware outermost (first given first), then
// the endpoint's, then the plugins' WrapCall in chain order, then the
// call itself. It is built on first use and again when the plugins change.
func (m *Manager) wrapped(ep *endpoint) http.RoundTripper {
	chain := m.chain.Load()
	if len(m.opts.middleware) == 0 && len(ep.middleware) == 0 && len(chain.wrappers) == 0 {
		return nil
	}
	if w := ep.mw.Load(); w != nil && w.chain == chain {
		return w.rt
	}
	var rt http.RoundTripper = RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return m.startCall(ep, r, 0)
	})
	for i := len(chain.wrappers) - 1; i >= 0; i-- {
		rt = m.wrapPlugin(chain.wrappers[i], rt)
	}
	for i := len(ep.middleware) - 1; i >= 0; i-- {
		rt = ep.middleware[i](rt)
	}
	for i := len(m.opts.middleware) - 1; i >= 0; i-- {
		rt = m.opts.middleware[i](rt)
	}
	ep.mw.Store(&wrappedEndpoint{chain: chain, rt: rt})
	return rt
}

// wrapPlugin calls a plugin's WrapCall under the recovery helper; a
// plugin that panics there is left out of the chain.
func (m *Manager) wrapPlugin(p MiddlewarePlugin, next http.RoundTripper) (rt http.RoundTripper) {
	rt = next
	defer m.recovered("plugin WrapCall", safeName(p), nil)
	if w := p.WrapCall(next); w != nil {
		rt = w
	}
	return rt
}
