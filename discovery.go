package connmgr

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
// WithResolver replaces the system's for dns:/// upstreams (tests use a
// fake one).
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// discoverer re-resolves an endpoint's dns:/// upstreams every refresh
// (jittered by up to a tenth) in its own goroutine, from the endpoint's
// build until stop. A round that fails or finds nothing keeps the last
// good members and records why.
type discoverer struct {
	set      *upstreamSet
	static   []memberSpec
	targets  []upstreamTarget // dns targets
	resolver Resolver
	refresh  time.Duration
	timeout  time.Duration
	carry    *upstreamSet
	cancel   context.CancelFunc
	done     chan struct{}
}

func startDiscoverer(set *upstreamSet, static []memberSpec, targets []upstreamTarget, r Resolver, refresh time.Duration, carry *upstreamSet) *discoverer {
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &discoverer{set: set, static: static, targets: targets, resolver: r, refresh: refresh,
		timeout: min(refresh, 10*time.Second), carry: carry, cancel: cancel, done: make(chan struct{})}
	if seed := d.carried(); len(seed) > len(static) {
		// On Reload: start from the addresses the replaced endpoint had
		// found, so that calls need not wait for the first lookup.
		set.setMembers(seed, carry)
		d.carry = nil
	} else {
		set.ready = make(chan struct{}) // calls wait for the first lookup
	}
	go d.run(ctx)
	return d
}

// carried returns the static members and the addresses the set being
// replaced had found for the same DNS targets.
func (d *discoverer) carried() []memberSpec {
	seed := append([]memberSpec(nil), d.static...)
	if d.carry == nil {
		return seed
	}
	weight := map[string]int{}
	for _, t := range d.targets {
		weight[t.dnsHost+":"+t.dnsPort] = t.weight
	}
	for _, u := range d.carry.members() {
		if w, ok := weight[u.load.host]; ok && u.load.host != "" {
			seed = append(seed, memberSpec{url: &url.URL{Host: u.URL.Host}, weight: w, host: u.load.host})
		}
	}
	return seed
}

func (d *discoverer) stop() {
	d.cancel()
	<-d.done
}

func (d *discoverer) run(ctx context.Context) {
	defer close(d.done)
	first := d.set.ready != nil
	for {
		d.round(ctx, first)
		if first {
			close(d.set.ready)
			first = false
		}
		wait := d.refresh
		if j := d.refresh / 10; j > 0 {
			wait += rand.N(j)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// round resolves every target once and installs the result.
func (d *discoverer) round(ctx context.Context, first bool) {
	specs := append([]memberSpec(nil), d.static...)
	var problems []string
	for _, t := range d.targets {
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		addrs, err := d.resolver.LookupHost(rctx, t.dnsHost)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			problems = append(problems, "resolving "+t.dnsHost+": "+describeLookupError(err))
			continue
		case len(addrs) == 0:
			problems = append(problems, "resolving "+t.dnsHost+": no addresses")
			continue
		}
		sort.Strings(addrs)
		logical := t.dnsHost + ":" + t.dnsPort
		for _, a := range addrs {
			specs = append(specs, memberSpec{url: &url.URL{Host: net.JoinHostPort(a, t.dnsPort)}, weight: t.weight, host: logical})
		}
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ") + "; keeping the last good set"
		if d.set.setDiscoveryErr(msg) {
			d.set.logger.Warn("connmgr: upstream discovery failed", slog.String("endpoint", d.set.endpoint), slog.String("error", msg))
		}
		if !first {
			return
		}
	} else if d.set.setDiscoveryErr("") {
		d.set.logger.Info("connmgr: upstream discovery works again", slog.String("endpoint", d.set.endpoint))
	}
	carry := d.carry
	d.carry = nil
	d.set.setMembers(specs, carry)
}

func describeLookupError(err error) string {
	var de *net.DNSError
	if ok := asDNSError(err, &de); ok {
		if de.IsNotFound {
			return "no such host"
		}
		if de.IsTimeout {
			return "timed out"
		}
		return de.Err
	}
	return safeString(err)
}

func asDNSError(err error, de **net.DNSError) bool { return errors.As(err, de) }
