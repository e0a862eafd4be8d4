package connmgr

import (
	"net/http"
	"net/url"
	"sort"
	"time"
)

// startLB gives an endpoint with upstreams its balancer, health checker
// and discoverer, and plugs the upstream set in as its Picker. prev is
// the endpoint it replaces on Reload (its upstreams' history carries
// over by address). Requires reloadMu.
func (m *Manager) startLB(ep *endpoint, prev *endpoint) {
	if len(ep.cfg.Upstreams) == 0 {
		return
	}
	var custom BalancerBuilder
	if !isBuiltinBalancer(ep.cfg.Balancer) {
		custom = m.opts.balancers[ep.cfg.Balancer]
	}
	var before *balanced
	if prev != nil {
		before = prev.lb
	}
	ep.lb = startBalanced(ep.key, *ep.cfg, balancedDeps{
		custom:    custom,
		rt:        RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return ep.roundTripper().RoundTrip(r) }),
		resolver:  m.opts.resolver,
		logger:    m.logger,
		guard:     m.upstreamGuard(ep),
		recoverer: m.recoverer,
		prev:      before,
	})
	ep.picker.Store(&pickerSlot{picker: ep.lb.set})
}

// upstreamGuard returns the function that gives each new upstream of ep
// its circuit breaker, from the endpoint's breaker set (so that it is
// the same breaker Stats and the fleet see).
func (m *Manager) upstreamGuard(ep *endpoint) func(*Upstream) {
	return func(u *Upstream) {
		if ep.breakers == nil {
			u.guard.key = u.URL.Host
			return
		}
		u.guard = ep.breakers.upstream(ep.key, u.URL.Host, m.now).guard
	}
}

// stopLB stops the load-balancing goroutines of endpoints that are no
// longer in use: those of old that table does not keep (all of them when
// table is nil).
func stopLB(old, table *endpointTable) {
	if old == nil {
		return
	}
	kept := map[*endpoint]bool{}
	if table != nil {
		for _, ep := range table.byKey {
			kept[ep] = true
		}
	}
	for _, ep := range old.byKey {
		if ep.lb != nil && !kept[ep] {
			ep.lb.stop()
		}
	}
}

// checkBalancers refuses a balancer name that is neither built in nor
// registered with WithBalancer, and a WithBalancer that takes a built-in
// name.
func (m *Manager) checkBalancers(p *problems, cc *compiledConfig) {
	eachEndpoint(cc, func(_, path string, c EndpointConfig) {
		checkBalancerKnown(p, path, c.Balancer, m.opts.balancers)
	})
	names := make([]string, 0, len(m.opts.balancers))
	for name := range m.opts.balancers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case isBuiltinBalancer(name):
			p.add("WithBalancer", "%q is a built-in balancer: choose another name", name)
		case !validBalancerName(name):
			p.add("WithBalancer", "%q is not a balancer name: use lower-case letters, digits, '_', '-' and '.'", name)
		case m.opts.balancers[name] == nil:
			p.add("WithBalancer", "%q has a nil builder", name)
		}
	}
}

// WithResolver sets the resolver for dns:/// upstreams (default: the
// system's, net.DefaultResolver).
func WithResolver(r Resolver) Option {
	return optionFunc(func(o *options) { o.resolver = r })
}

// Health reports the health of every endpoint with upstreams: each
// upstream's status (from the active health check), last check and last
// error, whether outlier detection holds it out, each endpoint's status,
// and an overall status (see HealthReport). It is safe to call at any
// time, from any goroutine.
func (m *Manager) Health() HealthReport {
	r := HealthReport{Endpoints: map[string]EndpointHealth{}}
	if t := m.table.Load(); t != nil {
		for key, ep := range t.byKey {
			if ep.lb != nil {
				r.Endpoints[key] = ep.lb.set.report()
			}
		}
	}
	r.Overall = overallHealth(r.Endpoints)
	return r
}

// upstreamStats returns ep's per-upstream stats, or nil.
func (ep *endpoint) upstreamStats() []UpstreamStats {
	if ep.lb == nil {
		return nil
	}
	return ep.lb.set.stats(func(u *Upstream) string {
		if u.guard.b == nil {
			return ""
		}
		return BreakerState(u.guard.b.stateGen.Load() & 3).String()
	})
}

// breakerRefuses reports whether u's built-in breaker would refuse an
// attempt now: open before its recovery time, or half-open with every
// probe out. Lock-free while the breaker is closed.
func breakerRefuses(u *Upstream, now time.Time) (bool, time.Duration) {
	b := u.guard.b
	if b == nil || BreakerState(b.stateGen.Load()&3) == BreakerClosed {
		return false, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		return now.Before(b.openUntil), b.openUntil.Sub(now)
	case BreakerHalfOpen:
		return b.probes >= b.policy.halfOpen, 0
	}
	return false, 0
}

// hostOf returns the host of "host:port" (or host alone).
func hostOf(hostport string) string {
	h, _ := splitAuthority(hostport)
	return h
}

// callLB is what a load-balanced call keeps across its attempts.
type callLB struct {
	tried []*Upstream // picked upstreams, for PickInfo.Tried
	buf   [3]*Upstream
	first url.URL // the first attempt's URL
}

// triedList returns the upstreams the call tried (nil before the first pick).
func (l *callLB) triedList() []*Upstream {
	if l == nil {
		return nil
	}
	return l.tried
}

// url returns the URL for attempt n to point at its upstream: the
// call's own for the first, a new one for each retry (a response of an
// earlier attempt may still hold its URL).
func (l *callLB) url(n int) *url.URL {
	if n == 1 {
		return &l.first
	}
	return new(url.URL)
}
