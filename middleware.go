package connmgr

import "net/http"

// Middleware wraps a whole call, outside the retry loop: next runs the
// rest of the call for the matched endpoint (concurrency cap, deadline,
// attempts). Use it for what a per-attempt hook cannot do well: request
// coalescing, stale-while-revalidate, otelhttp-style wrapping, while the
// Manager keeps its per-endpoint transports and TLS. A middleware must
// not change the request it is given: clone it first.
type Middleware func(next http.RoundTripper) http.RoundTripper

// MiddlewarePlugin is a Plugin that also wraps every call (the cache
// plugin's coalescing). Its WrapCall runs inside the Manager's and the
// endpoint's middleware.
type MiddlewarePlugin interface {
	Plugin
	WrapCall(next http.RoundTripper) http.RoundTripper
}

// WithMiddleware wraps every call, first given outermost.
func WithMiddleware(mw ...Middleware) Option {
	return optionFunc(func(o *options) { o.middleware = append(o.middleware, mw...) })
}

// WithEndpointMiddleware wraps the calls of one endpoint (its key as in
// the config), inside the Manager-wide middleware. New fails when the key
// names no configured endpoint.
func WithEndpointMiddleware(endpoint string, mw ...Middleware) Option {
	return optionFunc(func(o *options) {
		if o.endpointMiddleware == nil {
			o.endpointMiddleware = map[string][]Middleware{}
		}
		o.endpointMiddleware[endpoint] = append(o.endpointMiddleware[endpoint], mw...)
	})
}

// RoundTripperFunc adapts a function to an http.RoundTripper.
type RoundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f RoundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
