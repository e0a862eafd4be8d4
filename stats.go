package connmgr

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats is a point-in-time snapshot of a Manager, plain data for logging,
// JSON status endpoints and tests. Nothing secret is in it.
type Stats struct {
	// InFlight is the number of calls started and not yet finished (a call
	// finishes when its response body is closed or read to the end).
	InFlight int64 `json:"in_flight"`
	// Endpoints maps each configured endpoint key, and "default", to its
	// numbers.
	Endpoints map[string]EndpointStats `json:"endpoints"`
	// Reload counts config reloads, from Reload and from Watch.
	Reload ReloadStats `json:"reload"`
	// Fleet is the health of the fleet store (fleet.go), when the store
	// reports one; nil without a fleet.
	Fleet *FleetStats `json:"fleet,omitempty"`
	// Plugins holds the numbers of each plugin that reports some (a
	// StatsPlugin, such as the cache), by plugin name.
	Plugins map[string]any `json:"plugins,omitempty"`

	// Started is when the Manager was created.
	Started time.Time `json:"started"`
}

// EndpointStats are the numbers for one endpoint since the Manager
// started. Counters survive reloads.
type EndpointStats struct {
	// Requests counts calls; Successes and Failures split the finished
	// ones. A call fails when it ends in an error or in a status the retry
	// policy counts as a failure, or a 5xx.
	Requests  uint64 `json:"requests"`
	Successes uint64 `json:"successes"`
	Failures  uint64 `json:"failures"`
	// Retries counts attempts after the first.
	Retries uint64 `json:"retries"`
	// RetryBudgetExhausted counts retries refused by the retry budget.
	RetryBudgetExhausted uint64 `json:"retry_budget_exhausted"`
	// InFlight counts this endpoint's unfinished calls.
	InFlight int64 `json:"in_flight"`
	// StatusCodes counts the final status of each call that got a response.
	StatusCodes map[int]uint64 `json:"status_codes"`
	// P50, P95 and P99 are latency percentiles of calls, from start to
	// response headers, within about 12%. In JSON they are nanoseconds.
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	P99 time.Duration `json:"p99_ns"`
	// HookPanics counts hooks that panicked (each was turned into an error).
	HookPanics uint64 `json:"hook_panics"`
	// TLS reports file reloads, pin failures and the client certificate's
	// expiry; nil when the endpoint has no TLS files or pins.
	TLS *TLSStats `json:"tls,omitempty"`
	// Fallbacks counts calls handed to the fallback endpoint (they are
	// counted again there, and not as successes or failures here).
	Fallbacks uint64 `json:"fallbacks"`
	// Breaker sums up the endpoint's circuit breakers (the worst state,
	// summed counts); nil when the breaker is off. Breakers has each
	// upstream's breaker by authority.
	Breaker  *BreakerStats           `json:"breaker,omitempty"`
	Breakers map[string]BreakerStats `json:"breakers,omitempty"`
	// RateLimit describes the rate limit; nil when there is none.
	RateLimit *RateLimitStats `json:"rate_limit,omitempty"`
	// Concurrency describes the concurrency cap; nil when there is none.
	Concurrency *ConcurrencyStats `json:"concurrency,omitempty"`
	// Upstreams has each upstream's share of the traffic, health and
	// ejections, in config order; nil for an endpoint without upstreams.
	Upstreams []UpstreamStats `json:"upstreams,omitempty"`
	// Window has the numbers of the last minute; nil before the first call.
	Window *WindowStats `json:"last_minute,omitempty"`
}

// endpointStats holds an endpoint's counters: fixed memory, updated with
// atomics, no allocation per call. The status-code counts and the latency
// histogram (7 KB together) are made on the endpoint's first finished
// call, so an endpoint that is configured but idle costs little.
type endpointStats struct {
	requests, successes, failures, retries, budgetExhausted, hookPanics atomic.Uint64
	fallbacks                                                           atomic.Uint64
	inFlight                                                            atomic.Int64
	dist                                                                atomic.Pointer[callDistribution]
	tls                                                                 tlsCounters
	// win is the last minute (stats_window.go), made on first use; now is
	// the Manager's clock for it.
	win atomic.Pointer[callWindow]
	now func() time.Time
}

func (s *endpointStats) snapshot() EndpointStats {
	out := EndpointStats{
		Requests:             s.requests.Load(),
		Successes:            s.successes.Load(),
		Failures:             s.failures.Load(),
		Retries:              s.retries.Load(),
		RetryBudgetExhausted: s.budgetExhausted.Load(),
		InFlight:             s.inFlight.Load(),
		HookPanics:           s.hookPanics.Load(),
		Fallbacks:            s.fallbacks.Load(),
		StatusCodes:          map[int]uint64{},
		TLS:                  s.tls.snapshot(),
	}
	if d := s.dist.Load(); d != nil {
		for code := range d.statusCodes {
			if n := d.statusCodes[code].Load(); n > 0 {
				out.StatusCodes[code] = n
			}
		}
		out.P50, out.P95, out.P99 = d.latency.quantiles(0.50, 0.95, 0.99)
	}
	return out
}

// record counts a finished call (the headers are in, or it failed) at
// the Manager's clock's now.
func (s *endpointStats) record(status int, failed bool, d time.Duration) {
	sec := int64(0)
	if s.now != nil {
		sec = s.now().Unix()
	}
	s.recordAt(status, failed, d, sec)
}

// recordEnd counts a call that started at start and took d: it ends at
// start+d, whose second the window takes without reading the clock again.
func (s *endpointStats) recordEnd(status int, failed bool, start time.Time, d time.Duration) {
	sec := int64(0)
	if s.now != nil {
		sec = endSecond(start, d)
	}
	s.recordAt(status, failed, d, sec)
}

// endSecond is the unix second of start+d.
func endSecond(start time.Time, d time.Duration) int64 {
	return start.Unix() + (int64(start.Nanosecond())+int64(max(d, 0)))/int64(time.Second)
}

// recordAt counts a finished call; sec is the unix second it ended
// (unused without a clock: no window then).
func (s *endpointStats) recordAt(status int, failed bool, d time.Duration, sec int64) {
	if failed {
		s.failures.Add(1)
	} else {
		s.successes.Add(1)
	}
	dist := s.dist.Load()
	if dist == nil {
		dist = s.makeDist()
	}
	if status > 0 && status < len(dist.statusCodes) {
		dist.statusCodes[status].Add(1)
	}
	idx := histIndex(max(d, 0)) // one bucket for both histograms
	dist.latency.counts[idx].Add(1)
	if s.now != nil {
		s.recordWindow(sec, failed, idx)
	}
}

// callDistribution is what endpointStats makes on first use.
type callDistribution struct {
	statusCodes [600]atomic.Uint64
	latency     histogram
}

func (s *endpointStats) makeDist() *callDistribution {
	d := &callDistribution{}
	if s.dist.CompareAndSwap(nil, d) {
		return d
	}
	return s.dist.Load()
}

// histogram is a log-linear latency histogram: for each power of two of
// microseconds, 8 linear sub-buckets, so any quantile is within 12.5%.
// It covers 1µs to about 2^40µs (12 days) in fixed memory.
type histogram struct {
	counts [histBuckets]atomic.Uint64
}

const (
	histSubBits = 3
	histSub     = 1 << histSubBits
	histBuckets = 41 * histSub
)

func histIndex(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // us in [2^exp, 2^(exp+1))
	sub := (us >> (exp - histSubBits)) & (histSub - 1)
	i := (exp-histSubBits+1)*histSub + int(sub)
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histUpper is the upper bound of bucket i, as a duration.
func histUpper(i int) time.Duration {
	if i < histSub {
		return time.Duration(i+1) * time.Microsecond
	}
	exp := i/histSub + histSubBits - 1
	sub := uint64(i % histSub)
	us := (uint64(histSub) + sub + 1) << (exp - histSubBits)
	return time.Duration(us) * time.Microsecond
}

func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(d)].Add(1)
}

// quantiles returns the upper bounds of the buckets holding the
// requested quantiles (0 when empty).
func (h *histogram) quantiles(qs ...float64) (p50, p95, p99 time.Duration) {
	var counts [histBuckets]uint64
	var total uint64
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0, 0, 0
	}
	out := make([]time.Duration, len(qs))
	for qi, q := range qs {
		rank := uint64(q*float64(total) + 0.5)
		if rank < 1 {
			rank = 1
		}
		var cum uint64
		for i, c := range counts {
			cum += c
			if cum >= rank {
				out[qi] = histUpper(i)
				break
			}
		}
	}
	return out[0], out[1], out[2]
}

// Stats returns a snapshot of the Manager's counters.
func (m *Manager) Stats() Stats {
	t := m.table.Load()
	s := Stats{InFlight: m.inflight.Load(), Endpoints: make(map[string]EndpointStats, len(t.byKey)+1)}
	now := m.now()
	for key, ep := range t.byKey {
		s.Endpoints[key] = ep.snapshot(now)
	}
	s.Endpoints[defaultKey] = t.def.snapshot(now)
	s.Reload = m.reloadStats()
	s.Fleet = m.fleetStats()
	s.Plugins = m.pluginStats(m.chain.Load().plugins)

	m.fillWindows(&s, t, now)
	return s
}

// snapshot is the endpoint's stats with its limits' sections.
func (ep *endpoint) snapshot(now time.Time) EndpointStats {
	s := ep.stats.snapshot()
	if ep.breakers != nil {
		agg, per := ep.breakers.snapshot(ep.key, now)
		s.Breaker, s.Breakers = &agg, per
	}
	if ep.limiter != nil {
		rs := ep.limiter.snapshot(now)
		s.RateLimit = &rs
	}
	if ep.bulkhead != nil {
		cs := ep.bulkhead.snapshot()
		s.Concurrency = &cs
	}
	s.Upstreams = ep.upstreamStats()
	return s
}
