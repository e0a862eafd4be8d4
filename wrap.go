package connmgr

import (
	"errors"
	"net/http"
)

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
		rt = m.applyMiddleware(ep, ep.middleware[i], rt)
	}
	for i := len(m.opts.middleware) - 1; i >= 0; i-- {
		rt = m.applyMiddleware(ep, m.opts.middleware[i], rt)
	}
	ep.mw.Store(&wrappedEndpoint{chain: chain, rt: rt})
	return rt
}

// applyMiddleware builds one layer of the chain. A middleware that panics
// while building, or returns nil, fails every call it would have wrapped
// (it may be what signs or authorises them: leaving it out is not safe).
func (m *Manager) applyMiddleware(ep *endpoint, mw Middleware, next http.RoundTripper) (rt http.RoundTripper) {
	var perr error
	func() {
		defer m.recovered("middleware", ep.key, &perr)
		rt = mw(next)
	}()
	if perr == nil && rt == nil {
		perr = errors.New("connmgr: middleware returned a nil RoundTripper")
	}
	if perr != nil {
		return RoundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, perr })
	}
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

// errMiddlewareNil: a middleware broke the RoundTripper contract.
var errMiddlewareNil = errors.New("connmgr: middleware returned neither a response nor an error")

// middlewareRoundTrip runs a call through its middleware chain, which is
// user code: a panic in it is an error, and a chain that breaks the
// RoundTripper contract gets one too, so RoundTrip never panics nor
// returns (nil, nil). On every error the request body is closed (again,
// when the call already closed it: the chain may have failed first).
func (m *Manager) middlewareRoundTrip(ep *endpoint, rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	resp, err, perr := m.runMiddleware(ep, rt, req)
	switch {
	case perr != nil:
		closeRequestBody(req.Body)
		return nil, m.callError(ep, req, 0, 0, nil, perr)
	case err != nil:
		// The chain may have failed before the call took the body.
		closeRequestBody(req.Body)
		if resp != nil {
			drainAndClose(resp.Body)
		}
		return nil, err
	case resp == nil:
		closeRequestBody(req.Body)
		return nil, m.callError(ep, req, 0, 0, nil, errMiddlewareNil)
	}
	return resp, err
}

func (m *Manager) runMiddleware(ep *endpoint, rt http.RoundTripper, req *http.Request) (resp *http.Response, err, perr error) {
	defer m.recovered("middleware", ep.key, &perr)
	resp, err = rt.RoundTrip(req)
	return resp, err, nil
}
