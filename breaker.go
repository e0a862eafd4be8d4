package connmgr

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BreakerConfig configures the circuit breakers of an endpoint: one per
// upstream (URL authority, host[:port]) the endpoint sends to, created on
// first use and dropped after IdleTimeout without calls.
//
// A closed breaker lets every call through and counts outcomes. It opens
// when ConsecutiveFailures calls in a row failed, or when at least
// MinRequests calls finished within Window and FailureRatio of them
// failed. An open breaker fails calls at once with ErrCircuitOpen, without
// touching the network. After RecoveryTimeout it is half-open: it admits
// HalfOpenRequests probe calls; SuccessThreshold successful probes close
// it, and one failed probe opens it again.
//
// A failure is a transport error, a timeout, a status in FailureStatuses
// (every 5xx by default), or, with SlowCall set, a call slower than
// SlowCall. The caller's own cancellation and 4xx statuses are not
// failures. Every zero field inherits, then takes the default in its doc.
type BreakerConfig struct {
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row. Default 5; negative switches this rule off.
	ConsecutiveFailures int `yaml:"consecutive_failures,omitempty" json:"consecutive_failures,omitempty"`
	// FailureRatio opens the breaker when at least this fraction of the
	// calls in Window failed (0 < ratio <= 1). Default 0.5; negative
	// switches this rule off.
	FailureRatio float64 `yaml:"failure_ratio,omitempty" json:"failure_ratio,omitempty"`
	// MinRequests is how many calls Window must hold before FailureRatio
	// is judged. Default 20.
	MinRequests int `yaml:"min_requests,omitempty" json:"min_requests,omitempty"`
	// Window is the rolling window FailureRatio is computed over, kept in
	// 10 buckets of Window/10. Default 60s.
	Window time.Duration `yaml:"window,omitempty" json:"window,omitempty"`
	// SlowCall, when positive, counts a call whose response headers took
	// longer than this as a failure. Default 0: off.
	SlowCall time.Duration `yaml:"slow_call,omitempty" json:"slow_call,omitempty"`
	// FailureStatuses lists the response statuses that count as failures.
	// Default nil: every 5xx. An empty, non-nil list counts none.
	FailureStatuses []int `yaml:"failure_statuses,omitempty" json:"failure_statuses,omitempty"`
	// RecoveryTimeout is how long the breaker stays open before it lets
	// probes through. Default 30s.
	RecoveryTimeout time.Duration `yaml:"recovery_timeout,omitempty" json:"recovery_timeout,omitempty"`
	// HalfOpenRequests is how many probe calls a half-open breaker admits.
	// A probe the caller cancels gives its slot back. Default 3.
	HalfOpenRequests int `yaml:"half_open_requests,omitempty" json:"half_open_requests,omitempty"`
	// SuccessThreshold is how many probes must succeed to close the
	// breaker; at most HalfOpenRequests. Default: HalfOpenRequests.
	SuccessThreshold int `yaml:"success_threshold,omitempty" json:"success_threshold,omitempty"`
	// IdleTimeout drops the breaker of an upstream that had no calls for
	// this long (it starts closed when calls come back). Default 10m.
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
	// Group shares breakers between endpoints: endpoints with the same
	// non-empty Group share one breaker per upstream (their
	// circuit_breaker settings must then be equal). Default "": each
	// endpoint has its own, even for the same upstream.
	Group string `yaml:"group,omitempty" json:"group,omitempty"`
	// Scope says whether breaker state is shared with the fleet through
	// a BreakerStore (WithBreakerStore, or a redis block): open signals
	// and half-open probes. "local" keeps it in this Manager; "fleet"
	// requires a store (New fails without one). Default "": fleet when a
	// store is configured, else local.
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// Disabled switches the breaker off for this endpoint. Default false.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

func breakerDefaults() BreakerConfig {
	return BreakerConfig{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              60 * time.Second,
		RecoveryTimeout:     30 * time.Second,
		HalfOpenRequests:    3,
		IdleTimeout:         10 * time.Minute,
		Disabled:            Bool(false),
	}
}

// validateBreaker checks a circuit_breaker block's own fields.
func validateBreaker(p *problems, path string, c BreakerConfig) {
	if c.FailureRatio > 1 {
		p.add(path+".failure_ratio", "must be <= 1 (negative switches it off), got %g", c.FailureRatio)
	}
	if c.MinRequests < 0 {
		p.add(path+".min_requests", "must be >= 1, got %d", c.MinRequests)
	}
	nonNegative(p, path+".window", c.Window)
	nonNegative(p, path+".slow_call", c.SlowCall)
	if c.RecoveryTimeout < 0 {
		p.add(path+".recovery_timeout", "must be > 0, got %v", c.RecoveryTimeout)
	}
	if c.HalfOpenRequests < 0 {
		p.add(path+".half_open_requests", "must be >= 1, got %d", c.HalfOpenRequests)
	}
	if c.SuccessThreshold < 0 {
		p.add(path+".success_threshold", "must be >= 1, got %d", c.SuccessThreshold)
	}
	nonNegative(p, path+".idle_timeout", c.IdleTimeout)
	validateScope(p, path+".scope", c.Scope)
	checkStatuses(p, path+".failure_statuses", c.FailureStatuses)
}

// checkResolvedBreaker checks rules that involve several fields, after
// inheritance.
func checkResolvedBreaker(p *problems, path string, c BreakerConfig) {
	if c.Disabled != nil && *c.Disabled {
		return
	}
	if c.ConsecutiveFailures < 0 && c.FailureRatio < 0 {
		p.add(path, "consecutive_failures and failure_ratio are both off: the breaker could never open (set disabled: true instead)")
	}
	if c.SuccessThreshold > c.HalfOpenRequests {
		p.add(path+".success_threshold", "must be <= half_open_requests (%d), got %d", c.HalfOpenRequests, c.SuccessThreshold)
	}
}

// Scopes of a rate limit or a breaker.
const (
	scopeLocal = "local"
	scopeFleet = "fleet"
)

func validateScope(p *problems, path, scope string) {
	if scope != "" && scope != scopeLocal && scope != scopeFleet {
		p.add(path, `must be "local" or "fleet"`)
	}
}

// BreakerState is the state of one upstream's circuit breaker.
type BreakerState int32

const (
	// BreakerClosed: calls go through and their outcomes are counted.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: a few probe calls go through to test recovery.
	BreakerHalfOpen
	// BreakerOpen: calls fail at once with ErrCircuitOpen.
	BreakerOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "BreakerState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the state as its name ("closed", "half-open", "open").
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state name.
func (s *BreakerState) UnmarshalText(b []byte) error {
	switch string(b) {
	case "closed":
		*s = BreakerClosed
	case "half-open":
		*s = BreakerHalfOpen
	case "open":
		*s = BreakerOpen
	default:
		return fmt.Errorf("connmgr: unknown breaker state %q", b)
	}
	return nil
}

// CircuitOpenError is the cause of an ErrCircuitOpen failure: which
// upstream's breaker refused the call and when it lets the next probe
// through. errors.Is(err, ErrCircuitOpen) holds for it.
type CircuitOpenError struct {
	// Endpoint is the endpoint key; Upstream the authority (host[:port]).
	Endpoint string
	Upstream string
	// State is BreakerOpen, or BreakerHalfOpen when every probe slot is taken.
	State BreakerState
	// RetryIn is the time until the breaker turns half-open; 0 when it is
	// half-open and waiting for its probes to finish.
	RetryIn time.Duration
	// LastErr is the failure that opened the breaker, if known.
	LastErr error
}

func (e *CircuitOpenError) Error() string {
	s := "connmgr: circuit breaker for " + e.Upstream + " is " + e.State.String()
	if e.State == BreakerOpen {
		s += ", next probe in " + e.RetryIn.Round(time.Millisecond).String()
	} else {
		s += ", probes in flight"
	}
	return s
}

// Is reports whether target is ErrCircuitOpen.
func (e *CircuitOpenError) Is(target error) bool { return target == ErrCircuitOpen }

// Unwrap returns the failure that opened the breaker.
func (e *CircuitOpenError) Unwrap() error { return e.LastErr }

// SlowCallError is the failure a breaker records for a call slower than
// its slow_call setting.
type SlowCallError struct {
	Took, Limit time.Duration
}

func (e *SlowCallError) Error() string {
	return "connmgr: slow call: took " + e.Took.String() + ", limit " + e.Limit.String()
}

// StateChange is one transition of a circuit breaker, as listeners (see
// WithStateListener and StateListener) receive it.
type StateChange struct {
	// Endpoint is the endpoint key whose call (or Stats read) made the
	// transition; Upstream is the authority (host[:port]) the breaker is for.
	Endpoint string
	Upstream string
	// From and To are the old and the new state.
	From, To BreakerState
	// Err is the failure that caused the transition to open; nil otherwise.
	Err error
	// At is when the transition happened.
	At time.Time

	until  time.Time // when an open breaker lets probes through
	remote bool      // applied from a fleet signal: never published back
}

// StateListener is implemented by plugins that want breaker state
// changes, in addition to their hooks.
type StateListener interface {
	OnStateChange(StateChange)
}

// WithStateListener registers f to receive every breaker state change of
// every endpoint. Listeners run outside any lock, one change at a time,
// in the order the changes happened; they may call the Manager (Stats,
// even Do). A listener should return quickly: the call that made the
// transition delivers it.
func WithStateListener(f func(StateChange)) Option {
	return optionFunc(func(o *options) {
		if f != nil {
			o.stateListeners = append(o.stateListeners, f)
		}
	})
}

// BreakerStats describes one upstream's breaker, or (as
// EndpointStats.Breaker) all of an endpoint's breakers together.
type BreakerStats struct {
	// Upstream is the authority; "" in an endpoint's aggregate.
	Upstream string `json:"upstream,omitempty"`
	// State is the state; in an aggregate the worst of all upstreams
	// (open, then half-open, then closed).
	State BreakerState `json:"state"`
	// Requests, Failures and SlowCalls count the calls finished in the
	// rolling window (closed state only).
	Requests  uint64 `json:"requests"`
	Failures  uint64 `json:"failures"`
	SlowCalls uint64 `json:"slow_calls"`
	// ConsecutiveFailures is the current run of failures.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// LastFailure and LastError describe the latest failure.
	LastFailure time.Time `json:"last_failure,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	// HalfOpenIn is the time until an open breaker turns half-open (the
	// soonest, in an aggregate); 0 unless open.
	HalfOpenIn time.Duration `json:"half_open_in"`
	// Opens counts transitions to open; Rejected counts calls refused.
	Opens    uint64 `json:"opens"`
	Rejected uint64 `json:"rejected"`
	// Upstreams is the number of breakers in an aggregate.
	Upstreams int `json:"upstreams,omitempty"`
}

// breakerPolicy is a compiled BreakerConfig, shared by the breakers of a set.
type breakerPolicy struct {
	cfg              BreakerConfig // what it was compiled from
	consecutive      int           // 0: rule off
	ratio            float64       // 0: rule off
	minRequests      int
	bucket           time.Duration // Window / breakerBuckets
	slowCall         time.Duration // 0: off
	failStatus       statusSet
	recovery         time.Duration
	halfOpen         int
	successThreshold int
	idle             time.Duration
}

const breakerBuckets = 10

func newBreakerPolicy(c BreakerConfig) *breakerPolicy {
	p := &breakerPolicy{
		cfg:              c,
		consecutive:      max(c.ConsecutiveFailures, 0),
		ratio:            max(c.FailureRatio, 0),
		minRequests:      max(c.MinRequests, 1),
		bucket:           c.Window / breakerBuckets,
		slowCall:         c.SlowCall,
		recovery:         c.RecoveryTimeout,
		halfOpen:         max(c.HalfOpenRequests, 1),
		successThreshold: c.SuccessThreshold,
		idle:             c.IdleTimeout,
	}
	if p.bucket <= 0 {
		p.bucket = time.Second
	}
	if p.successThreshold <= 0 || p.successThreshold > p.halfOpen {
		p.successThreshold = p.halfOpen
	}
	if c.FailureStatuses == nil {
		for s := 500; s <= 599; s++ { // every isServerError status
			p.failStatus.add(s)
		}
	} else {
		for _, s := range c.FailureStatuses {
			p.failStatus.add(s)
		}
	}
	return p
}

// outcome is what an admitted call reports to its breaker.
type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeSlow    // a failure because the call was slow
	outcomeIgnored // neither: the caller cancelled; a probe gives its slot back
)

// breaker is the state machine of one upstream. Its shape follows
// gobreaker: a generation counter drops stale outcomes, open turns into
// half-open lazily when read (no timers), and transitions are handed to
// the dispatcher under the lock but delivered to listeners after it.
//
// The closed-state admission is one atomic load, and a closed-state
// success a few more (the window's buckets and the consecutive-failure
// count are atomics); everything else takes mu. None of it allocates.
type breaker struct {
	policy   *breakerPolicy
	events   *dispatcher
	fleet    *breakerFleet // nil: local only
	upstream string
	origin   time.Time // bucket numbers count Window/10 periods from here

	// stateGen mirrors gen<<2 | state, for lock-free admission while closed.
	stateGen atomic.Uint64
	// buckets and consecutive are updated lock-free by closed-state
	// successes; failures, rolls and resets take mu.
	buckets     [breakerBuckets]breakerBucket
	consecutive atomic.Int64

	// mu guards every field below.
	mu          sync.Mutex
	state       BreakerState
	gen         uint64
	openUntil   time.Time // when open: when it turns half-open
	probes      int       // half-open: admitted probes not failed or cancelled
	probeOK     int       // half-open: probes that succeeded
	lastUsed    time.Time
	lastFailure time.Time
	lastErr     error
	opens       uint64
	rejected    uint64
	evicted     bool
}

type breakerBucket struct {
	n                    atomic.Int64 // absolute bucket number; stale when not current
	total, failed, slows atomic.Uint32
}

func newBreaker(p *breakerPolicy, d *dispatcher, upstream string, now time.Time) *breaker {
	b := &breaker{policy: p, events: d, upstream: upstream, origin: now, lastUsed: now}
	b.clearWindow()
	return b
}

// clearWindow empties the rolling window. Requires mu (or exclusive use).
func (b *breaker) clearWindow() {
	for i := range b.buckets {
		bk := &b.buckets[i]
		bk.n.Store(math.MinInt64)
		bk.total.Store(0)
		bk.failed.Store(0)
		bk.slows.Store(0)
	}
}

// permit is an admission: the breaker and generation the call's outcome
// goes to. The zero permit (no breaker) accepts and ignores outcomes.
type permit struct {
	b     *breaker
	gen   uint64
	probe bool
}

// allow admits a call or reports why not. It returns a zero permit and a
// *CircuitOpenError when the breaker refuses. clock is only read when the
// breaker is not closed.
func (b *breaker) allow(endpoint string, clock func() time.Time) (permit, *CircuitOpenError) {
	if v := b.stateGen.Load(); BreakerState(v&3) == BreakerClosed {
		return permit{b: b, gen: v >> 2}, nil
	}
	return b.allowAt(endpoint, clock())
}

func (b *breaker) allowAt(endpoint string, now time.Time) (permit, *CircuitOpenError) {
	b.mu.Lock()
	moved := b.refresh(endpoint, now)
	var p permit
	var refused *CircuitOpenError
	switch b.state {
	case BreakerClosed:
		p = permit{b: b, gen: b.gen}
	case BreakerHalfOpen:
		if b.probes < b.policy.halfOpen {
			b.probes++
			p = permit{b: b, gen: b.gen, probe: true}
		} else {
			b.rejected++
			refused = &CircuitOpenError{Endpoint: endpoint, Upstream: b.upstream, State: BreakerHalfOpen, LastErr: b.lastErr}
		}
	case BreakerOpen:
		b.rejected++
		refused = &CircuitOpenError{Endpoint: endpoint, Upstream: b.upstream, State: BreakerOpen,
			RetryIn: b.openUntil.Sub(now), LastErr: b.lastErr}
	}
	b.mu.Unlock()
	if moved {
		b.events.flush()
	}
	if p.probe && b.fleet != nil && !b.fleet.acquireProbe(endpoint, b.upstream, b.policy.recovery, b.policy.halfOpen) {
		// The fleet's probes are taken: give the local slot back.
		p.done(endpoint, outcomeIgnored, nil, now)
		return permit{}, &CircuitOpenError{Endpoint: endpoint, Upstream: b.upstream, State: BreakerHalfOpen}
	}
	return p, refused
}

// done reports the outcome of the call p admitted. Every permit must be
// done exactly once; the zero permit ignores it. err describes a failure.
func (p permit) done(endpoint string, o outcome, err error, now time.Time) {
	b := p.b
	if b == nil {
		return
	}
	if o == outcomeSuccess && !p.probe && b.stateGen.Load() == p.gen<<2|uint64(BreakerClosed) {
		// The common case, lock-free: a success while closed resets the
		// run of failures and counts in the current bucket.
		if b.consecutive.Load() != 0 {
			b.consecutive.Store(0)
		}
		n := b.bucketNum(now)
		if bk := &b.buckets[uint64(n)%breakerBuckets]; bk.n.Load() == n {
			bk.total.Add(1)
			return
		}
	}
	b.mu.Lock()
	b.lastUsed = now
	if p.gen != b.gen {
		b.mu.Unlock() // the state changed since: a stale outcome
		return
	}
	moved := false
	switch b.state {
	case BreakerClosed:
		if o == outcomeIgnored {
			break
		}
		bk := b.bucketAt(now)
		bk.total.Add(1)
		if o == outcomeSuccess {
			b.consecutive.Store(0)
			break
		}
		bk.failed.Add(1)
		if o == outcomeSlow {
			bk.slows.Add(1)
		}
		b.consecutive.Add(1)
		b.lastFailure, b.lastErr = now, err
		if b.tripped(now) {
			b.setState(endpoint, BreakerOpen, err, now)
			moved = true
		}
	case BreakerHalfOpen:
		switch o {
		case outcomeIgnored:
			b.probes--
		case outcomeSuccess:
			b.probeOK++
			if b.probeOK >= b.policy.successThreshold {
				b.setState(endpoint, BreakerClosed, nil, now)
				moved = true
			}
		default:
			b.lastFailure, b.lastErr = now, err
			b.setState(endpoint, BreakerOpen, err, now)
			moved = true
		}
	}
	b.mu.Unlock()
	if moved {
		b.events.flush()
	}
}

// bucketNum is the number of the bucket that counts calls at now.
func (b *breaker) bucketNum(now time.Time) int64 {
	return int64(now.Sub(b.origin) / b.policy.bucket)
}

// bucketAt returns the bucket counting calls at now, reset if it last
// counted an older period. Requires mu. (A lock-free success racing with
// the reset may land in either period: one count, harmless.)
func (b *breaker) bucketAt(now time.Time) *breakerBucket {
	n := b.bucketNum(now)
	bk := &b.buckets[uint64(n)%breakerBuckets]
	if bk.n.Load() != n {
		bk.total.Store(0)
		bk.failed.Store(0)
		bk.slows.Store(0)
		bk.n.Store(n)
	}
	return bk
}

// lastUse is when the breaker was last used: the latest of lastUsed
// (set under mu) and the newest bucket a lock-free success counted in.
// Requires mu.
func (b *breaker) lastUse() time.Time {
	last := b.lastUsed
	for i := range b.buckets {
		if n := b.buckets[i].n.Load(); n != math.MinInt64 {
			if t := b.origin.Add(time.Duration(n) * b.policy.bucket); t.After(last) {
				last = t
			}
		}
	}
	return last
}

// window sums the buckets still inside the rolling window at now.
// Requires mu.
func (b *breaker) window(now time.Time) (total, failed, slows uint64) {
	n := b.bucketNum(now)
	for i := range b.buckets {
		bk := &b.buckets[i]
		if bn := bk.n.Load(); bn <= n && bn > n-breakerBuckets {
			total += uint64(bk.total.Load())
			failed += uint64(bk.failed.Load())
			slows += uint64(bk.slows.Load())
		}
	}
	return total, failed, slows
}

// tripped reports whether a closed breaker must open. Requires mu.
func (b *breaker) tripped(now time.Time) bool {
	p := b.policy
	if p.consecutive > 0 && b.consecutive.Load() >= int64(p.consecutive) {
		return true
	}
	if p.ratio > 0 {
		total, failed, _ := b.window(now)
		if total >= uint64(p.minRequests) && float64(failed) >= p.ratio*float64(total) {
			return true
		}
	}
	return false
}

// refresh turns an open breaker whose recovery timeout has passed
// half-open. It reports whether the state changed. Requires mu.
func (b *breaker) refresh(endpoint string, now time.Time) bool {
	if b.state == BreakerOpen && !now.Before(b.openUntil) {
		b.setState(endpoint, BreakerHalfOpen, nil, now)
		return true
	}
	return false
}

// setState moves to a new state and generation and queues the change for
// the listeners. Requires mu.
func (b *breaker) setState(endpoint string, to BreakerState, err error, now time.Time) {
	from := b.state
	b.state = to
	b.gen++
	b.probes, b.probeOK = 0, 0
	switch to {
	case BreakerOpen:
		b.opens++
		b.openUntil = now.Add(b.policy.recovery)
	case BreakerClosed:
		b.consecutive.Store(0)
		b.clearWindow()
	}
	b.stateGen.Store(b.gen<<2 | uint64(to))
	b.events.enqueue(StateChange{Endpoint: endpoint, Upstream: b.upstream, From: from, To: to, Err: err, At: now, until: b.openUntil})
}

// snapshot returns the breaker's stats at now, turning it half-open first
// if its time has come.
func (b *breaker) snapshot(endpoint string, now time.Time) BreakerStats {
	b.mu.Lock()
	moved := b.refresh(endpoint, now)
	total, failed, slows := uint64(0), uint64(0), uint64(0)
	if b.state == BreakerClosed {
		total, failed, slows = b.window(now)
	}
	s := BreakerStats{
		Upstream:            b.upstream,
		State:               b.state,
		Requests:            total,
		Failures:            failed,
		SlowCalls:           slows,
		ConsecutiveFailures: int(b.consecutive.Load()),
		LastFailure:         b.lastFailure,
		Opens:               b.opens,
		Rejected:            b.rejected,
	}
	if b.lastErr != nil {
		s.LastError = b.lastErr.Error()
	}
	if b.state == BreakerOpen {
		s.HalfOpenIn = b.openUntil.Sub(now)
	}
	b.mu.Unlock()
	if moved {
		b.events.flush()
	}
	return s
}

// breakerSet holds an endpoint's (or a group's) upstreams, each with its
// breaker, created on first use. The lookup is lock-free and flat in the
// number of upstreams (a sync.Map, read-mostly); only creation takes mu.
// Idle upstreams are dropped when a new one is made, so a client that
// calls many hosts keeps bounded state.
type breakerSet struct {
	policy  *breakerPolicy // shared by sets with equal settings
	events  *dispatcher
	factory BreakerFactory // nil: the built-in breaker
	fleet   *breakerFleet  // nil: breaker state stays local

	// last is the upstream most recently created: the common endpoint
	// has one upstream and finds it here with one atomic load. It is
	// never written on lookup, so many goroutines reading many hosts do
	// not contend on it.
	last       atomic.Pointer[Upstream]
	byUpstream sync.Map // authority (lower case) -> *Upstream

	// mu serializes creation and sweeping, and guards lastSweep.
	mu        sync.Mutex
	lastSweep time.Time
}

func newBreakerSet(cfg BreakerConfig, d *dispatcher) *breakerSet {
	return &breakerSet{policy: newBreakerPolicy(cfg), events: d}
}

// upstream returns the upstream for authority (any case), creating it,
// and its breaker, on first use. endpoint names the endpoint for a
// BreakerFactory.
func (s *breakerSet) upstream(endpoint, authority string, clock func() time.Time) *Upstream {
	if u := s.last.Load(); u != nil && u.guard.key == authority {
		return u
	}
	if hasUpper(authority) {
		authority = strings.ToLower(authority)
	}
	if v, ok := s.byUpstream.Load(authority); ok {
		return v.(*Upstream)
	}
	return s.create(endpoint, authority, clock())
}

// create makes the upstream for authority unless another call just did.
func (s *breakerSet) create(endpoint, authority string, now time.Time) *Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.byUpstream.Load(authority); ok {
		return v.(*Upstream)
	}
	if s.policy.idle > 0 && now.Sub(s.lastSweep) >= s.policy.idle/4 {
		s.sweep(now)
	}
	u := &Upstream{URL: &url.URL{Host: authority}, Weight: 1}
	u.guard.key = authority
	if s.factory != nil {
		u.guard.custom = s.factory(endpoint, authority)
	}
	if u.guard.custom == nil {
		u.guard.b = newBreaker(s.policy, s.events, authority, now)
		u.guard.b.fleet = s.fleet
	}
	s.byUpstream.Store(authority, u)
	s.last.Store(u)
	return u
}

// get returns the built-in breaker of upstream (nil under a factory).
func (s *breakerSet) get(upstream string, clock func() time.Time) *breaker {
	return s.upstream("", upstream, clock).guard.b
}

// sweep drops built-in breakers idle for the idle timeout whose probes
// are not in flight. A call still holding a permit of a dropped breaker
// reports to it harmlessly. Requires s.mu.
func (s *breakerSet) sweep(now time.Time) {
	s.lastSweep = now
	s.byUpstream.Range(func(k, v any) bool {
		u := v.(*Upstream)
		b := u.guard.b
		if b == nil {
			return true
		}
		b.mu.Lock()
		idle := now.Sub(b.lastUse()) >= s.policy.idle && b.probes == 0
		if idle {
			b.evicted = true
		}
		b.mu.Unlock()
		if idle {
			s.byUpstream.Delete(k)
			s.last.CompareAndSwap(u, nil)
		}
		return true
	})
}

// breakers lists the built-in breakers of the set.
func (s *breakerSet) breakers() []*breaker {
	var list []*breaker
	s.byUpstream.Range(func(_, v any) bool {
		if b := v.(*Upstream).guard.b; b != nil {
			list = append(list, b)
		}
		return true
	})
	return list
}

// snapshot returns per-upstream stats and their aggregate.
func (s *breakerSet) snapshot(endpoint string, now time.Time) (BreakerStats, map[string]BreakerStats) {
	list := s.breakers()
	agg := BreakerStats{Upstreams: len(list)}
	per := make(map[string]BreakerStats, len(list))
	for _, b := range list {
		bs := b.snapshot(endpoint, now)
		per[bs.Upstream] = bs
		if severity(bs.State) > severity(agg.State) {
			agg.State = bs.State
		}
		agg.Requests += bs.Requests
		agg.Failures += bs.Failures
		agg.SlowCalls += bs.SlowCalls
		agg.ConsecutiveFailures = max(agg.ConsecutiveFailures, bs.ConsecutiveFailures)
		if bs.LastFailure.After(agg.LastFailure) {
			agg.LastFailure, agg.LastError = bs.LastFailure, bs.LastError
		}
		if bs.State == BreakerOpen && (agg.HalfOpenIn == 0 || bs.HalfOpenIn < agg.HalfOpenIn) {
			agg.HalfOpenIn = bs.HalfOpenIn
		}
		agg.Opens += bs.Opens
		agg.Rejected += bs.Rejected
	}
	return agg, per
}

func severity(s BreakerState) int {
	switch s {
	case BreakerOpen:
		return 2
	case BreakerHalfOpen:
		return 1
	}
	return 0
}

// dispatcher delivers breaker state changes to the listeners in the
// order they happened, outside every lock, without a goroutine of its
// own: the call that queued a change delivers the queue, unless another
// call is already delivering, in which case that one delivers it too.
type dispatcher struct {
	deliver func(StateChange)

	// mu guards queue and running.
	mu      sync.Mutex
	queue   []StateChange
	spare   []StateChange
	running bool
}

// enqueue adds a change. It is called under a breaker's lock, which is
// what keeps each breaker's changes in order.
func (d *dispatcher) enqueue(c StateChange) {
	d.mu.Lock()
	d.queue = append(d.queue, c)
	d.mu.Unlock()
}

// flush delivers queued changes unless another goroutine is already
// doing so. It must be called with no lock held.
func (d *dispatcher) flush() {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return
	}
	d.running = true
	// A deliver that panics past its own recovery (it should not) must
	// not leave the dispatcher running for good.
	completed := false
	defer func() {
		if !completed {
			d.mu.Lock()
			d.running = false
			d.mu.Unlock()
		}
	}()
	for len(d.queue) > 0 {
		batch := d.queue
		d.queue, d.spare = d.spare[:0], nil
		d.mu.Unlock()
		for i := range batch {
			d.deliver(batch[i])
			batch[i] = StateChange{}
		}
		d.mu.Lock()
		d.spare = batch[:0]
	}
	d.running = false
	completed = true
	d.mu.Unlock()
}

// errBreakerPanic is what a breaker records for a call whose transport panicked.
var errBreakerPanic = errors.New("connmgr: transport panicked")
