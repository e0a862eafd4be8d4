package connmgr

import (
	"net/http"
	"net/url"
	"time"
)

// Outcome is what one attempt told about the upstream it went to. It is
// reported exactly once for every permit and every pick: on success,
// error, panic, the caller's cancel and connmgr's own cancel.
type Outcome struct {
	// Err is nil for a success; for a failing status it is a *StatusError.
	Err error
	// StatusCode is 0 when no response arrived.
	StatusCode int
	// Latency is from sending the request to the response headers.
	Latency time.Duration
	// Ignored marks an attempt that says nothing about the upstream: the
	// caller gave up, or connmgr cancelled it (a losing hedge). It is
	// neither a failure nor a latency sample.
	Ignored bool
}

// Upstream is one address behind a logical endpoint. A Picker chooses
// among them. Its fields are read-only; the Manager keeps the upstream's
// breaker, health and load with it.
type Upstream struct {
	// URL is the upstream's scheme and authority ("https://10.0.0.5:8443").
	URL *url.URL
	// Weight is the upstream's share for weighted balancers (1 when unset).
	Weight int

	load  upstreamLoad
	guard upstreamGuard // its circuit breaker (upstream.go)
}

// PickInfo is what a Picker is asked with.
type PickInfo struct {
	// Request is the attempt's request; a Picker must not change it.
	Request *http.Request
	// Endpoint is the logical endpoint's key.
	Endpoint string
	// Tried lists the upstreams this call already tried; a Picker should
	// prefer one not in it.
	Tried []*Upstream
}

// PickResult is a Picker's answer. Done, when not nil, is called once
// with the attempt's outcome (grpc-go's PickResult.Done).
type PickResult struct {
	Upstream *Upstream
	Done     func(Outcome)
}

// Picker chooses the upstream for one attempt among the upstreams it was
// built with. It is called concurrently and must be fast: it runs on
// every attempt. An error (ErrNoHealthyUpstream or one wrapping it)
// refuses the attempt.
type Picker interface {
	Pick(info PickInfo) (PickResult, error)
}

// PickerFunc adapts a function to a Picker.
type PickerFunc func(info PickInfo) (PickResult, error)

// Pick calls f.
func (f PickerFunc) Pick(info PickInfo) (PickResult, error) { return f(info) }

// BalancerBuilder builds a Picker over the upstreams that can take calls
// now (healthy, not ejected). The Manager builds a new Picker whenever
// that set changes and swaps it in atomically; a builder may keep state
// across builds (as bufbuild/httplb's pickers do).
type BalancerBuilder interface {
	Build(upstreams []*Upstream) Picker
}

// BalancerBuilderFunc adapts a function to a BalancerBuilder.
type BalancerBuilderFunc func(upstreams []*Upstream) Picker

// Build calls f.
func (f BalancerBuilderFunc) Build(upstreams []*Upstream) Picker { return f(upstreams) }

// WithBalancer registers a balancer under name, for use as
// `balancer: name` in the config. It may not replace a built-in name.
func WithBalancer(name string, b BalancerBuilder) Option {
	return optionFunc(func(o *options) {
		if o.balancers == nil {
			o.balancers = map[string]BalancerBuilder{}
		}
		o.balancers[name] = b
	})
}
