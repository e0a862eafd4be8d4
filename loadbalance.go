package connmgr

import (
	"math"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Built-in balancer names, for EndpointConfig.Balancer.
const (
	BalancerRoundRobin         = "round_robin"
	BalancerWeightedRoundRobin = "weighted_round_robin"
	BalancerRandom             = "random"
	BalancerLeastRequest       = "least_request"
	BalancerP2CEWMA            = "p2c_ewma"
	BalancerConsistentHash     = "consistent_hash"
)

// builtinBalancers lists the names WithBalancer may not take.
var builtinBalancers = []string{
	BalancerRoundRobin, BalancerWeightedRoundRobin, BalancerRandom,
	BalancerLeastRequest, BalancerP2CEWMA, BalancerConsistentHash,
}

func isBuiltinBalancer(name string) bool {
	for _, b := range builtinBalancers {
		if b == name {
			return true
		}
	}
	return false
}

// ewmaDecay is the time over which a peak-EWMA latency sample loses
// most of its weight (Finagle's default decay time).
const ewmaDecay = 10 * time.Second

// ewmaPenalty is the cost of an upstream with requests in flight and no
// latency sample yet: it is tried once, not flooded (Finagle's Penalty).
const ewmaPenalty = float64(math.MaxInt64 >> 16)

// upstreamLoad is what the Manager tracks of an upstream for balancers,
// outlier detection, health and stats. Counters are atomics read without
// locks by pickers; the rest is guarded by the owning upstreamSet's mu.
type upstreamLoad struct {
	inFlight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
	ejected  atomic.Bool // out of the picker's set: ejected or unhealthy

	// ewmaMu serializes latency updates; ewmaBits (a float64 of
	// nanoseconds) and ewmaStamp (the clock's nanoseconds at the last
	// update) are read by pickers without it.
	ewmaMu    sync.Mutex
	ewmaBits  atomic.Uint64
	ewmaStamp atomic.Int64

	// slowStartFrom is when the upstream (re)joined, in clock
	// nanoseconds; 0 when it is not ramping up.
	slowStartFrom atomic.Int64

	// host is the logical host the request names (Host header, TLS
	// server name) when the upstream's URL holds a resolved address;
	// "" to use the URL's own host.
	host string
	// tlsName is the name a discovered address's certificate is
	// verified against: the logical host ("" for an upstream named by
	// its URL, verified against the URL's host).
	tlsName string
	// key identifies the upstream across reloads and discovery rounds:
	// scheme://authority.
	key string

	// settle is the Done of the set's picks of this upstream, made once.
	settle func(Outcome)

	// Guarded by upstreamSet.mu.
	outlier outlierState
	health  healthState
}

// observeLatency folds one latency sample into the peak EWMA: a sample
// above the current value replaces it at once (peak), a lower one is
// averaged in with a weight that grows with the time since the last
// sample (Finagle's PeakEwma).
func (l *upstreamLoad) observeLatency(now int64, rtt time.Duration) {
	l.ewmaMu.Lock()
	defer l.ewmaMu.Unlock()
	cur := math.Float64frombits(l.ewmaBits.Load())
	x := float64(rtt)
	if x <= 0 {
		x = 1
	}
	if x > cur {
		cur = x
	} else {
		td := float64(max(now-l.ewmaStamp.Load(), 0))
		w := decay(td / float64(ewmaDecay))
		cur = cur*w + x*(1-w)
	}
	l.ewmaBits.Store(math.Float64bits(cur))
	l.ewmaStamp.Store(now)
}

// ewmaCost is the peak-EWMA cost of sending one more request to the
// upstream now: its latency, decayed toward zero while it is idle (so a
// slow upstream is probed again in time), times its requests in flight
// plus one.
func (l *upstreamLoad) ewmaCost(now int64) float64 {
	cur := math.Float64frombits(l.ewmaBits.Load())
	pending := float64(l.inFlight.Load())
	if cur == 0 {
		if pending > 0 {
			return ewmaPenalty + pending
		}
		return 0
	}
	if td := now - l.ewmaStamp.Load(); td > int64(time.Millisecond) {
		cur *= decay(float64(td) / float64(ewmaDecay))
	}
	return cur * (pending + 1)
}

// ewma returns the latency estimate without decay, for Stats.
func (l *upstreamLoad) ewma() time.Duration {
	return time.Duration(math.Float64frombits(l.ewmaBits.Load()))
}

// newUpstream makes an Upstream for u (scheme and authority only) with
// weight w; host is the logical host for discovered addresses, or "".
func newUpstream(u *url.URL, w int, host string) *Upstream {
	if w <= 0 {
		w = 1
	}
	up := &Upstream{URL: &url.URL{Scheme: u.Scheme, Host: u.Host}, Weight: w}
	up.load.host = host
	if host != "" {
		up.load.tlsName, _ = splitAuthority(host)
	}
	up.load.key = u.Host
	if u.Scheme != "" {
		up.load.key = u.Scheme + "://" + u.Host
	}
	return up
}

// tried reports whether u is in the call's tried list (a few entries).
func tried(list []*Upstream, u *Upstream) bool {
	for _, t := range list {
		if t == u {
			return true
		}
	}
	return false
}

// firstUntried scans ups from start for one not tried yet; it returns
// the upstream at start when every one was tried.
func firstUntried(ups []*Upstream, start int, list []*Upstream) *Upstream {
	n := len(ups)
	for i := 0; i < n; i++ {
		if u := ups[(start+i)%n]; !tried(list, u) {
			return u
		}
	}
	return ups[start%n]
}

// clock is the time source of the load-balancing machinery: real time
// in production, a fake one in tests.
type clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine after d, unless stopped.
	AfterFunc(d time.Duration, f func()) stopper
}

type stopper interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                              { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

// monoNanos returns a monotonic reading in nanoseconds from clk, as
// pickers and latency samples use it.
func monoNanos(clk clock, base time.Time) int64 { return int64(clk.Now().Sub(base)) }

// lbEnv is what the built-in pickers of one endpoint share: the clock,
// the slow-start window and the endpoint's total requests in flight.
type lbEnv struct {
	clk       clock
	base      time.Time // monotonic origin of now()
	slowStart time.Duration
	inFlight  atomic.Int64 // all upstreams of the endpoint
	// seen is the latest now() a settled attempt read: pickers use it
	// instead of reading the clock, which would cost more than the rest
	// of a pick. It lags real time by at most one response while calls
	// flow (and decay only matters over seconds).
	seen atomic.Int64
}

// observe records now as the latest time seen.
func (e *lbEnv) observe(now int64) {
	if now > e.seen.Load() {
		e.seen.Store(now)
	}
}

func newLBEnv(clk clock, slowStart time.Duration) *lbEnv {
	if clk == nil {
		clk = realClock{}
	}
	return &lbEnv{clk: clk, base: clk.Now(), slowStart: slowStart}
}

func (e *lbEnv) now() int64 { return int64(e.clk.Now().Sub(e.base)) }

// ramping reports whether any of ups is in its slow-start window, so a
// picker built over them checks admitRamp.
func (e *lbEnv) ramping(ups []*Upstream) bool {
	if e.slowStart <= 0 {
		return false
	}
	for _, u := range ups {
		if u.load.slowStartFrom.Load() != 0 {
			return true
		}
	}
	return false
}

// admitRamp decides whether a pick of u stands while u ramps up after
// joining: with probability elapsed/window (at least 10%), as Envoy's
// slow start scales a host's weight.
func (e *lbEnv) admitRamp(u *Upstream) bool {
	from := u.load.slowStartFrom.Load()
	if from == 0 {
		return true
	}
	el := e.now() - from
	if el >= int64(e.slowStart) {
		u.load.slowStartFrom.CompareAndSwap(from, 0)
		return true
	}
	f := max(float64(el)/float64(e.slowStart), 0.1)
	return rand.Float64() < f
}

// decay approximates exp(-x) for x >= 0 from its Taylor series (the
// reciprocal of the first four terms): a pick evaluates it twice, and
// math.Exp would cost more than the rest of the pick.
func decay(x float64) float64 {
	return 1 / (1 + x*(1+x*(0.5+x/6)))
}
