package connmgr

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamSet is the live state of one logical endpoint's upstreams:
// who they are (fixed, or as discovery last found them), which can take
// calls (health, ejection), and the Picker built over those. Pickers are
// immutable snapshots swapped in atomically whenever the usable set
// changes; a pick reads one without a lock.
type upstreamSet struct {
	endpoint string
	env      *lbEnv
	builder  BalancerBuilder
	custom   bool // builder is the user's: calls into it are guarded
	outlier  outlierPolicy
	panicPct int // <= 0: never panic
	logger   *slog.Logger
	// guard, when set, gives a new upstream its circuit breaker.
	guard func(*Upstream)
	// recoverer recovers the panics of a user's balancer (the Manager's,
	// when it has one).
	recoverer recoverer

	picker atomic.Pointer[pickerState]
	// ready is closed when the first discovery round is done; nil for
	// fixed upstreams.
	ready chan struct{}

	mu sync.Mutex // guards the fields below and every member's outlier and health state
	// all are the members, in config (or resolution) order.
	all    []*Upstream
	gen    uint64 // bumped by every change of the usable set
	closed bool
	// discoveryErr is the last resolution problem ("" when the last round
	// worked); the set then keeps the last good members.
	discoveryErr string
}

// pickerState is one built picker and the view it was built from.
type pickerState struct {
	p      Picker
	ups    []*Upstream // what p was built over
	panic  bool        // built over all members: too few were usable
	usable int
	total  int
}

// memberSpec is one upstream as configuration or discovery gives it.
type memberSpec struct {
	url    *url.URL
	weight int
	host   string // logical host for discovered addresses
}

// newUpstreamSet makes the set for endpoint with resolved config c. Its
// balancer is custom when not nil (a builder registered with
// WithBalancer), else the built-in one c.Balancer names.
func newUpstreamSet(endpoint string, c EndpointConfig, custom BalancerBuilder, clk clock, logger *slog.Logger) *upstreamSet {
	slow := c.SlowStart
	if slow < 0 {
		slow = 0
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &upstreamSet{
		endpoint: endpoint,
		env:      newLBEnv(clk, slow),
		builder:  custom,
		custom:   custom != nil,
		outlier:  newOutlierPolicy(c.OutlierDetection),
		panicPct: c.PanicThreshold,
		logger:   logger,
	}
	s.recoverer = recoverer{logger: logger}
	if custom == nil {
		key, _ := parseHashKey(c.HashKey) // validated
		s.builder = builtinBuilder(c.Balancer, key, s.env)
		if s.builder == nil {
			s.builder = builtinBuilder(BalancerRoundRobin, key, s.env)
		}
	}
	return s
}

// builtinBuilder returns the built-in balancer called name, or nil.
func builtinBuilder(name string, key hashKey, env *lbEnv) BalancerBuilder {
	switch name {
	case "", BalancerRoundRobin:
		return &roundRobin{env: env}
	case BalancerWeightedRoundRobin:
		return &weightedRoundRobin{env: env}
	case BalancerRandom:
		return &randomBalancer{env: env}
	case BalancerLeastRequest:
		return &leastRequest{env: env}
	case BalancerP2CEWMA:
		return &p2cEWMA{env: env}
	case BalancerConsistentHash:
		return &consistentHash{env: env, key: key}
	}
	return nil
}

// members returns the current members (a copy).
func (s *upstreamSet) members() []*Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Upstream(nil), s.all...)
}

// usableLocked reports whether u can take calls now (requires s.mu).
func usableLocked(u *Upstream) bool {
	return !u.load.outlier.ejected && u.load.health.status != HealthUnhealthy
}

// changedLocked rebuilds the picker after a change (requires s.mu; it
// unlocks s.mu). The builder runs outside the lock; a build overtaken by
// a later change is dropped.
func (s *upstreamSet) changedLocked() {
	s.gen++
	gen := s.gen
	total := len(s.all)
	usable := make([]*Upstream, 0, total)
	for _, u := range s.all {
		if usableLocked(u) {
			usable = append(usable, u)
		}
	}
	st := &pickerState{usable: len(usable), total: total}
	build := usable
	if total > 0 && s.panicPct > 0 && len(usable)*100 < s.panicPct*total {
		build, st.panic = append([]*Upstream(nil), s.all...), true
	}
	s.mu.Unlock()

	if len(build) > 0 {
		st.p, st.ups = s.build(build), build
	}
	s.mu.Lock()
	if gen == s.gen && !s.closed {
		s.picker.Store(st)
	}
	s.mu.Unlock()
}

// build calls the builder, guarding a user's against panics.
func (s *upstreamSet) build(ups []*Upstream) (p Picker) {
	if !s.custom {
		return s.builder.Build(ups)
	}
	defer s.recoverer.recovered("BalancerBuilder.Build", s.endpoint, nil, func(any) { p = nil })
	return s.builder.Build(ups)
}

// Pick makes the set the endpoint's Picker: it picks with the balancer,
// counts the attempt in flight, and returns a Done that settles it (the
// upstream's own, made once, so a pick allocates nothing).
func (s *upstreamSet) Pick(info PickInfo) (PickResult, error) {
	res, err := s.pick(info)
	if err != nil {
		return res, err
	}
	if res.Done == nil {
		res.Done = res.Upstream.load.settle
		return res, nil
	}
	inner, u := res.Done, res.Upstream
	res.Done = func(o Outcome) { s.done(PickResult{Upstream: u, Done: inner}, o) }
	return res, nil
}

// pick chooses the upstream for one attempt and counts it in flight.
// The caller reports the attempt's outcome to done exactly once.
func (s *upstreamSet) pick(info PickInfo) (PickResult, error) {
	if s.ready != nil {
		if err := s.waitReady(info); err != nil {
			return PickResult{}, err
		}
	}
	st := s.picker.Load()
	if st == nil || st.p == nil {
		return PickResult{}, s.noUpstream(nil)
	}
	var res PickResult
	var err error
	if s.custom {
		res, err = s.customPick(st.p, info)
	} else {
		res, err = st.p.Pick(info)
	}
	if err != nil || res.Upstream == nil {
		if res.Done != nil {
			s.callDone(res.Done, Outcome{Ignored: true})
		}
		return PickResult{}, s.noUpstream(err)
	}
	u := res.Upstream
	if b := u.guard.b; b != nil && BreakerState(b.stateGen.Load()&3) != BreakerClosed {
		// Its breaker would refuse the attempt (and end the call): take
		// another upstream whose breaker admits it.
		if alt := s.admitting(st.ups, u, info.Tried); alt != u {
			if res.Done != nil {
				s.callDone(res.Done, Outcome{Ignored: true})
			}
			if alt == nil {
				return PickResult{}, s.noUpstream(nil)
			}
			res, u = PickResult{Upstream: alt}, alt
		}
	}
	u.load.inFlight.Add(1)
	u.load.requests.Add(1)
	s.env.inFlight.Add(1)
	return res, nil
}

// admitting returns u when its breaker admits an attempt now, else
// another of ups whose breaker does (one the call has not tried first),
// or nil when none does.
func (s *upstreamSet) admitting(ups []*Upstream, u *Upstream, triedList []*Upstream) *Upstream {
	now := s.env.clk.Now()
	if refused, _ := breakerRefuses(u, now); !refused {
		return u
	}
	n := len(ups)
	if n == 0 {
		return nil
	}
	start := rand.IntN(n)
	var triedOK *Upstream
	for i := 0; i < n; i++ {
		c := ups[(start+i)%n]
		if c == u {
			continue
		}
		if refused, _ := breakerRefuses(c, now); refused {
			continue
		}
		if !tried(triedList, c) {
			return c
		}
		if triedOK == nil {
			triedOK = c
		}
	}
	return triedOK
}

func (s *upstreamSet) waitReady(info PickInfo) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	if info.Request == nil {
		<-s.ready
		return nil
	}
	select {
	case <-s.ready:
		return nil
	case <-info.Request.Context().Done():
		return info.Request.Context().Err()
	}
}

func (s *upstreamSet) customPick(p Picker, info PickInfo) (res PickResult, err error) {
	defer s.recoverer.recovered("Picker", s.endpoint, nil, func(any) { res, err = PickResult{}, errors.New("balancer panicked") })
	return p.Pick(info)
}

// done settles one pick: in flight, counts, latency, outlier detection,
// and the picker's own Done.
func (s *upstreamSet) done(res PickResult, o Outcome) {
	u := res.Upstream
	if u == nil {
		return
	}
	u.load.inFlight.Add(-1)
	s.env.inFlight.Add(-1)
	if res.Done != nil {
		s.callDone(res.Done, o)
	}
	if o.Ignored {
		return
	}
	failed := o.Err != nil || o.StatusCode >= 500
	if failed {
		u.load.failures.Add(1)
	}
	now := s.env.now()
	s.env.observe(now)
	switch {
	case o.StatusCode > 0:
		u.load.observeLatency(now, o.Latency)
	case o.Err != nil:
		// A fast failure must not make the upstream look fast.
		u.load.observeLatency(now, max(o.Latency, 2*u.load.ewma(), 10*time.Millisecond))
	}
	if s.outlier.record(&u.load.outlier, o) {
		s.eject(u)
	}
}

func (s *upstreamSet) callDone(f func(Outcome), o Outcome) {
	if !s.custom {
		f(o)
		return
	}
	defer s.recoverer.recovered("PickResult.Done", s.endpoint, nil)
	f(o)
}

// eject takes u out for its ejection time, unless it is out already,
// gone, or max_ejection_percent of the members are out.
func (s *upstreamSet) eject(u *Upstream) {
	now := s.env.clk.Now()
	s.mu.Lock()
	st := &u.load.outlier
	if s.closed || st.ejected || !s.isMemberLocked(u) {
		s.mu.Unlock()
		return
	}
	ejected := 0
	for _, m := range s.all {
		if m.load.outlier.ejected {
			ejected++
		}
	}
	if ejected >= s.outlier.maxEjected(len(s.all)) {
		s.mu.Unlock()
		return
	}
	d := s.outlier.ejectionTime(st, now)
	st.ejected, st.until = true, now.Add(d)
	st.ejections++
	st.consec5xx.Store(0)
	st.consecGateway.Store(0)
	n := st.ejections
	s.armReturnLocked(u, d)
	s.changedLocked()
	s.log(slog.LevelWarn, "connmgr: upstream ejected", slog.String("endpoint", s.endpoint),
		slog.String("upstream", u.load.key), slog.Duration("for", d), slog.Uint64("ejections", n))
}

func (s *upstreamSet) isMemberLocked(u *Upstream) bool {
	for _, m := range s.all {
		if m == u {
			return true
		}
	}
	return false
}

// armReturnLocked schedules u's return from ejection (requires s.mu).
func (s *upstreamSet) armReturnLocked(u *Upstream, d time.Duration) {
	if u.load.outlier.timer != nil {
		u.load.outlier.timer.Stop()
	}
	u.load.outlier.timer = s.env.clk.AfterFunc(d, func() { s.unEject(u) })
}

// unEject brings u back when its ejection is over.
func (s *upstreamSet) unEject(u *Upstream) {
	now := s.env.clk.Now()
	s.mu.Lock()
	st := &u.load.outlier
	if s.closed || !st.ejected || now.Before(st.until) {
		s.mu.Unlock()
		return
	}
	st.ejected, st.returned, st.timer = false, now, nil
	if s.env.slowStart > 0 {
		u.load.slowStartFrom.Store(s.env.now() | 1)
	}
	s.changedLocked()
	s.log(slog.LevelInfo, "connmgr: upstream back from ejection", slog.String("endpoint", s.endpoint), slog.String("upstream", u.load.key))
}

// reportHealth folds one health check of u into its status.
func (s *upstreamSet) reportHealth(u *Upstream, hp *healthPolicy, ok bool, errText string) {
	now := s.env.clk.Now()
	s.mu.Lock()
	if s.closed || !s.isMemberLocked(u) {
		s.mu.Unlock()
		return
	}
	from := u.load.health.status
	changed := hp.observe(&u.load.health, ok, errText, now)
	to := u.load.health.status
	if !changed {
		s.mu.Unlock()
		s.logHealth(u, from, to, errText)
		return
	}
	if ok && s.env.slowStart > 0 {
		u.load.slowStartFrom.Store(s.env.now() | 1)
	}
	s.changedLocked()
	s.logHealth(u, from, to, errText)
}

// logHealth logs a change of u's health status: Warn when it turns
// unhealthy (out of the balancer), Info when it returns from unhealthy,
// Debug for the rest (unknown to healthy, healthy to degraded and back).
// A status changes at most once per check interval, so these are rare.
func (s *upstreamSet) logHealth(u *Upstream, from, to HealthStatus, errText string) {
	if from == to {
		return
	}
	level := slog.LevelDebug
	switch {
	case to == HealthUnhealthy:
		level = slog.LevelWarn
	case from == HealthUnhealthy:
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("endpoint", s.endpoint), slog.String("upstream", u.load.key),
		slog.String("from", from.String()), slog.String("to", to.String())}
	if errText != "" {
		attrs = append(attrs, slog.String("error", errText))
	}
	s.log(level, "connmgr: upstream health changed", attrs...)
}

// log writes one line, unless the logger does not take level. A handler
// that panics is user code: its panic is dropped.
func (s *upstreamSet) log(level slog.Level, msg string, attrs ...slog.Attr) {
	defer s.recoverer.recovered("logger", s.endpoint, nil)
	if !s.logger.Enabled(context.Background(), level) {
		return
	}
	s.logger.LogAttrs(context.Background(), level, msg, attrs...)
}

// setDiscoveryErr records the last discovery problem ("" for none) and
// reports whether it changed.
func (s *upstreamSet) setDiscoveryErr(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.discoveryErr != msg
	s.discoveryErr = msg
	return changed
}

// close stops the ejection timers; the set takes no more changes.
func (s *upstreamSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, u := range s.all {
		if u.load.outlier.timer != nil {
			u.load.outlier.timer.Stop()
			u.load.outlier.timer = nil
		}
	}
}
