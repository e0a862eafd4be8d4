package connmgr

import (
	"log/slog"
	"net/http"
)

// balanced is the load-balancing state of one endpoint with upstreams:
// the upstream set (the endpoint's Picker), its health checker and its
// discoverer. It is started when the endpoint is built and stopped when
// the endpoint is retired or the Manager closes; stop waits for its
// goroutines.
type balanced struct {
	set  *upstreamSet
	hc   *healthChecker
	disc *discoverer
}

// balancedDeps is what starting a balanced endpoint needs besides its config.
type balancedDeps struct {
	custom    BalancerBuilder   // a WithBalancer builder, or nil for the built-in one
	rt        http.RoundTripper // the endpoint's transport, for health checks
	resolver  Resolver          // nil: the system's
	clk       clock             // nil: real time
	logger    *slog.Logger
	guard     func(*Upstream) // gives a new upstream its circuit breaker
	recoverer recoverer       // the Manager's; zero: the set's own, on logger
	prev      *balanced       // the endpoint this one replaces, for its history
}

// startBalanced builds the upstream set for endpoint key from its
// resolved (and validated) config c.
func startBalanced(key string, c EndpointConfig, d balancedDeps) *balanced {
	set := newUpstreamSet(key, c, d.custom, d.clk, d.logger)
	set.guard = d.guard
	if d.recoverer.logger != nil {
		set.recoverer = d.recoverer
	}
	var static []memberSpec
	var dns []upstreamTarget
	for _, uc := range c.Upstreams {
		t, err := parseUpstream(uc)
		if err != nil {
			continue // validated before: cannot happen
		}
		if t.url != nil {
			static = append(static, memberSpec{url: t.url, weight: t.weight})
		} else {
			dns = append(dns, t)
		}
	}
	var carry *upstreamSet
	if d.prev != nil {
		carry = d.prev.set
	}
	b := &balanced{set: set}
	if len(dns) > 0 {
		b.disc = startDiscoverer(set, static, dns, d.resolver, c.Discovery.Refresh, carry)
	} else {
		set.setMembers(static, carry)
	}
	if hp, on := newHealthPolicy(c.HealthCheck); on && d.rt != nil {
		b.hc = startHealthChecker(set, hp, d.rt)
	}
	return b
}

// stop ends the health checks and the discovery, waiting for both, and
// stops the ejection timers.
func (b *balanced) stop() {
	if b == nil {
		return
	}
	if b.hc != nil {
		b.hc.stop()
	}
	if b.disc != nil {
		b.disc.stop()
	}
	b.set.close()
}
