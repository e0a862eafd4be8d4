package connmgr

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RateLimitConfig throttles the attempts sent to an endpoint: Rate tokens
// per Per, bursting to Burst. Each attempt, retries included, takes one
// token, since the upstream counts retries too. Off when Rate is 0.
//
// An attempt that finds no token waits for one up to MaxWait, never past
// the call's deadline; when the wait would be longer it fails at once
// with ErrRateLimited. A wait the caller cancels gives its token back.
//
// With Key set, each distinct key (say, each user) gets its own bucket of
// Rate per Per; requests without the key share the endpoint's bucket. At
// most MaxKeys buckets are kept, the least recently used dropped first.
//
// A 429 response with Retry-After pauses the bucket the attempt drew from
// for that long (at most retry.max_retry_after). Adaptive lowers and
// raises the rate from the upstream's answers.
//
// An endpoint that inherits a rate limit from default gets a bucket of its
// own: limits are per endpoint, never shared between endpoints.
type RateLimitConfig struct {
	// Rate is the number of attempts allowed per Per. 0 inherits; default off.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Per is the period Rate is counted over. Default 1s.
	Per time.Duration `yaml:"per,omitempty" json:"per,omitempty"`
	// Burst is how many attempts may go at once after a quiet period.
	// Default: Rate per second, rounded up, at least 1.
	Burst int `yaml:"burst,omitempty" json:"burst,omitempty"`
	// MaxWait is how long an attempt may wait for a token before it fails
	// with ErrRateLimited. Default 0: fail at once.
	MaxWait time.Duration `yaml:"max_wait,omitempty" json:"max_wait,omitempty"`
	// Key gives each distinct value its own bucket. The only form is
	// "header:NAME" (for example "header:X-User-ID"); WithRateLimitKey
	// sets a function instead. Default "": one bucket for the endpoint.
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// MaxKeys bounds the per-key buckets kept; the least recently used is
	// dropped (its key starts afresh with a full burst). Default 10000.
	MaxKeys int `yaml:"max_keys,omitempty" json:"max_keys,omitempty"`
	// Adaptive lowers the rate when the upstream pushes back and raises it
	// again when it copes. Off by default.
	Adaptive AdaptiveConfig `yaml:"adaptive,omitempty" json:"adaptive,omitempty"`
	// Scope says where the buckets live: "local" (each Manager its own)
	// or "fleet" (shared through the RateLimitStore given with
	// WithRateLimitStore, or the one a redis block provides; New fails
	// when there is none). Default "": local.
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// Disabled switches an inherited limit off for this endpoint.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// AdaptiveConfig makes a rate limit follow the upstream (additive
// increase, multiplicative decrease). The current rate starts at Rate and
// stays within MinRate..Rate. It is multiplied by DecreaseFactor when a
// response has a status in DecreaseOn (429 and 503 by default), or when
// the moving average of latency rises above LatencyTarget; it grows by
// IncreaseStep after good responses. Each bucket (each key) adapts on its
// own, at most once per Interval.
//
// With Headers on, the upstream's quota headers slow the rate down before
// the upstream says no: the IETF RateLimit and RateLimit-Policy fields
// (both the structured-field form `"default";r=50;t=30` and the older
// `limit=, remaining=, reset=` and RateLimit-Remaining/-Reset forms), and
// the common X-RateLimit-Remaining and X-RateLimit-Reset. With R requests
// remaining for T seconds the rate is held at most at R/T until the reset
// (never below MinRate); none remaining pauses the bucket until the
// reset. A policy (quota Q per window W) caps the rate at Q/W.
type AdaptiveConfig struct {
	// Enabled turns adaptation on. Default false.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// MinRate is the floor, in attempts per Per. Default Rate/10.
	MinRate float64 `yaml:"min_rate,omitempty" json:"min_rate,omitempty"`
	// LatencyTarget lowers the rate when the moving average of response
	// latency exceeds it. Default 0: latency is not watched.
	LatencyTarget time.Duration `yaml:"latency_target,omitempty" json:"latency_target,omitempty"`
	// DecreaseFactor multiplies the rate on push-back (0 < f < 1). Default 0.5.
	DecreaseFactor float64 `yaml:"decrease_factor,omitempty" json:"decrease_factor,omitempty"`
	// IncreaseStep is added to the rate, in attempts per Per, after good
	// responses. Default Rate/10.
	IncreaseStep float64 `yaml:"increase_step,omitempty" json:"increase_step,omitempty"`
	// Interval is the least time between two changes of the rate, so that
	// a burst of 429s counts as one signal. Default 1s.
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// DecreaseOn lists the statuses that lower the rate. Default 429, 503.
	DecreaseOn []int `yaml:"decrease_on,omitempty" json:"decrease_on,omitempty"`
	// Headers reads the upstream's rate-limit headers. Default true.
	Headers *bool `yaml:"headers,omitempty" json:"headers,omitempty"`
}

func rateLimitDefaults() RateLimitConfig {
	return RateLimitConfig{
		Per:     time.Second,
		MaxKeys: 10000,
		Adaptive: AdaptiveConfig{
			Enabled:        Bool(false),
			DecreaseFactor: 0.5,
			Interval:       time.Second,
			DecreaseOn:     []int{http.StatusTooManyRequests, http.StatusServiceUnavailable},
			Headers:        Bool(true),
		},
		Disabled: Bool(false),
	}
}

// validateRateLimit checks a rate_limit block's own fields.
func validateRateLimit(p *problems, path string, c RateLimitConfig) {
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		p.add(path+".rate", "must be >= 0, got %g", c.Rate)
	}
	if c.Per < 0 {
		p.add(path+".per", "must be > 0, got %v", c.Per)
	}
	if c.Burst < 0 {
		p.add(path+".burst", "must be >= 0, got %d", c.Burst)
	}
	if c.MaxWait < 0 {
		p.add(path+".max_wait", "must be >= 0, got %v", c.MaxWait)
	}
	if c.Key != "" {
		if name, ok := strings.CutPrefix(c.Key, "header:"); !ok || !validHeaderName(name) {
			p.add(path+".key", `must be "header:NAME" with a valid header name`)
		}
	}
	if c.MaxKeys < 0 {
		p.add(path+".max_keys", "must be >= 1, got %d", c.MaxKeys)
	}
	validateScope(p, path+".scope", c.Scope)
	a, ap := c.Adaptive, path+".adaptive"
	if a.MinRate < 0 || math.IsNaN(a.MinRate) {
		p.add(ap+".min_rate", "must be >= 0, got %g", a.MinRate)
	}
	nonNegative(p, ap+".latency_target", a.LatencyTarget)
	if a.DecreaseFactor < 0 || a.DecreaseFactor >= 1 || math.IsNaN(a.DecreaseFactor) {
		p.add(ap+".decrease_factor", "must be between 0 and 1 (exclusive), got %g", a.DecreaseFactor)
	}
	if a.IncreaseStep < 0 || math.IsNaN(a.IncreaseStep) {
		p.add(ap+".increase_step", "must be >= 0, got %g", a.IncreaseStep)
	}
	nonNegative(p, ap+".interval", a.Interval)
	checkStatuses(p, ap+".decrease_on", a.DecreaseOn)
}

// checkResolvedRateLimit checks rules that involve several fields, after
// inheritance.
func checkResolvedRateLimit(p *problems, path string, c RateLimitConfig) {
	if !rateLimitOn(c) {
		return
	}
	if c.Adaptive.MinRate > c.Rate {
		p.add(path+".adaptive.min_rate", "must be <= rate (%g), got %g", c.Rate, c.Adaptive.MinRate)
	}
}

func rateLimitOn(c RateLimitConfig) bool {
	return c.Rate > 0 && (c.Disabled == nil || !*c.Disabled)
}

// KeyFunc returns the rate-limit key of a request: requests with the same
// key share a bucket; "" means the endpoint's shared bucket. It must not
// modify the request.
type KeyFunc func(req *http.Request) string

// WithRateLimitKey keys the rate limit of the endpoint named endpoint
// ("default" for the default) by fn instead of its rate_limit.key. The
// endpoint must have a rate limit for it to matter; New fails if no such
// endpoint is configured. The key is read as the config's keys are
// (" API.test" is "api.test", "[::1]" is "::1").
func WithRateLimitKey(endpoint string, fn KeyFunc) Option {
	return optionFunc(func(o *options) {
		if o.keyFuncs == nil {
			o.keyFuncs = map[string]KeyFunc{}
		}
		o.keyFuncs[endpoint] = fn
	})
}

// RateLimitError is the cause of an ErrRateLimited failure.
// errors.Is(err, ErrRateLimited) holds for it.
type RateLimitError struct {
	// Endpoint is the endpoint key.
	Endpoint string
	// RetryIn estimates when a token will be free.
	RetryIn time.Duration
	// Paused is true when the bucket was paused by the upstream
	// (Retry-After, or no quota remaining).
	Paused bool
}

func (e *RateLimitError) Error() string {
	s := "connmgr: rate limited"
	if e.Paused {
		s += " (paused by upstream)"
	}
	return s + ", next token in " + e.RetryIn.Round(time.Millisecond).String()
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// RateLimitStats describes an endpoint's rate limit.
type RateLimitStats struct {
	// Rate and Per are the configured limit: Rate attempts per Per.
	Rate float64       `json:"rate"`
	Per  time.Duration `json:"per"`
	// CurrentRate is the endpoint bucket's rate now, per Per: below Rate
	// when adaptation or the upstream's quota headers slowed it down.
	CurrentRate float64 `json:"current_rate"`
	// Burst is the bucket size.
	Burst int `json:"burst"`
	// Adaptive tells whether adaptation is on.
	Adaptive bool `json:"adaptive"`
	// PausedFor is how long the endpoint bucket stays paused.
	PausedFor time.Duration `json:"paused_for"`
	// Allowed counts attempts that got a token, Waited those among them
	// that had to wait, Rejected those that failed with ErrRateLimited.
	Allowed  uint64 `json:"allowed"`
	Waited   uint64 `json:"waited"`
	Rejected uint64 `json:"rejected"`
	// Keys is the number of per-key buckets held; KeysEvicted counts the
	// ones dropped to stay within max_keys.
	Keys        int    `json:"keys"`
	KeysEvicted uint64 `json:"keys_evicted"`
	// Decreases and Increases count adaptive changes of the rate.
	Decreases uint64 `json:"decreases"`
	Increases uint64 `json:"increases"`
}

// limiter is an endpoint's compiled rate limit with its buckets.
type limiter struct {
	cfg      RateLimitConfig
	perSec   float64 // configured rate, per second
	perUnit  float64 // seconds per Per: converts per-second rates back
	burst    int
	maxWait  time.Duration
	keyName  string // canonical header name, when keyed by header
	keyFunc  KeyFunc
	maxKeys  int
	adaptive *adaptivePolicy // nil: off
	pauseCap time.Duration   // longest pause from a Retry-After or reset
	fleet    *fleetLimiter   // scope: fleet; nil: local buckets only

	shared bucket

	// mu guards keys and the LRU list (head is the most recent).
	mu         sync.Mutex
	keys       map[string]*keyedBucket
	head, tail *keyedBucket

	allowed, waited, rejected, evicted atomic.Uint64
	decreases, increases               atomic.Uint64
}

// bucket is one token bucket, with the pause the upstream asked for and
// its adaptive state.
type bucket struct {
	lim    *rate.Limiter
	origin time.Time
	// pausedUntil is nanoseconds since origin before which no token is
	// given; 0 when never paused.
	pausedUntil atomic.Int64
	adapt       *adaptiveState
}

type keyedBucket struct {
	bucket
	key        string
	prev, next *keyedBucket
}

func newLimiter(c RateLimitConfig, keyFunc KeyFunc, pauseCap time.Duration, now time.Time) *limiter {
	per := c.Per
	if per <= 0 {
		per = time.Second
	}
	l := &limiter{
		cfg:      c,
		perSec:   c.Rate / per.Seconds(),
		perUnit:  per.Seconds(),
		burst:    c.Burst,
		maxWait:  c.MaxWait,
		keyFunc:  keyFunc,
		maxKeys:  c.MaxKeys,
		pauseCap: pauseCap,
	}
	if l.burst <= 0 {
		l.burst = max(int(math.Ceil(l.perSec)), 1)
	}
	if l.maxKeys <= 0 {
		l.maxKeys = 10000
	}
	if name, ok := strings.CutPrefix(c.Key, "header:"); ok && keyFunc == nil {
		l.keyName = http.CanonicalHeaderKey(name)
	}
	if l.keyName != "" || l.keyFunc != nil {
		l.keys = map[string]*keyedBucket{}
	}
	if a := c.Adaptive; a.Enabled != nil && *a.Enabled {
		l.adaptive = newAdaptivePolicy(c, l.perSec)
	}
	l.initBucket(&l.shared, now)
	return l
}

func (l *limiter) initBucket(b *bucket, now time.Time) {
	b.lim = rate.NewLimiter(rate.Limit(l.perSec), l.burst)
	b.lim.SetLimitAt(now, rate.Limit(l.perSec)) // anchors the bucket at now, full
	b.origin = now
	if l.adaptive != nil {
		b.adapt = &adaptiveState{cur: l.perSec, ceiling: l.perSec}
	}
}

// bucketFor returns the bucket a request draws from.
func (l *limiter) bucketFor(req *http.Request, clock func() time.Time) *bucket {
	if l.keys == nil {
		return &l.shared
	}
	return l.bucketByKey(l.keyOf(req), clock)
}

// keyOf returns the rate-limit key of req ("" for the shared bucket). It
// calls the endpoint's KeyFunc, which is user code: the pipeline calls it
// under the recovery helper.
func (l *limiter) keyOf(req *http.Request) string {
	if l.keys == nil {
		return ""
	}
	if l.keyFunc != nil {
		return l.keyFunc(req)
	}
	if v := req.Header[l.keyName]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// bucketByKey returns the bucket of key ("" for the shared bucket).
func (l *limiter) bucketByKey(key string, clock func() time.Time) *bucket {
	if key == "" || l.keys == nil {
		return &l.shared
	}
	l.mu.Lock()
	kb := l.keys[key]
	if kb != nil {
		l.moveToFront(kb)
	} else {
		kb = &keyedBucket{key: key}
		l.initBucket(&kb.bucket, clock())
		if len(l.keys) >= l.maxKeys {
			old := l.tail
			l.unlink(old)
			delete(l.keys, old.key)
			l.evicted.Add(1)
		}
		l.keys[key] = kb
		l.pushFront(kb)
	}
	l.mu.Unlock()
	return &kb.bucket
}

// moveToFront, pushFront and unlink maintain the LRU list. Require mu.
func (l *limiter) moveToFront(kb *keyedBucket) {
	if l.head == kb {
		return
	}
	l.unlink(kb)
	l.pushFront(kb)
}

func (l *limiter) pushFront(kb *keyedBucket) {
	kb.prev, kb.next = nil, l.head
	if l.head != nil {
		l.head.prev = kb
	}
	l.head = kb
	if l.tail == nil {
		l.tail = kb
	}
}

func (l *limiter) unlink(kb *keyedBucket) {
	if kb.prev != nil {
		kb.prev.next = kb.next
	} else {
		l.head = kb.next
	}
	if kb.next != nil {
		kb.next.prev = kb.prev
	} else {
		l.tail = kb.prev
	}
	kb.prev, kb.next = nil, nil
}

// errNoWait marks a take that failed because the wait was too long.
var errNoWait = errors.New("no token within max_wait or before the deadline")

// take gets one token from b for an attempt: at once, or after waiting up
// to maxWait but never past deadline (zero: none). A wait that cannot end
// in time fails at once with a *RateLimitError; a wait that ctx cancels
// gives the token back and returns ctx's cause.
func (l *limiter) take(ctx context.Context, b *bucket, endpoint string, deadline time.Time, clock func() time.Time) error {
	now := clock()
	if b.pausedUntil.Load() == 0 && b.lim.AllowN(now, 1) {
		l.allowed.Add(1)
		return nil
	}
	waitUntil := now.Add(l.maxWait)
	if !deadline.IsZero() && deadline.Before(waitUntil) {
		waitUntil = deadline
	}
	for {
		if until := b.pausedUntil.Load(); until != 0 {
			end := b.origin.Add(time.Duration(until))
			if now.Before(end) {
				if end.After(waitUntil) {
					l.rejected.Add(1)
					return &RateLimitError{Endpoint: endpoint, RetryIn: end.Sub(now), Paused: true}
				}
				if err := sleepCtx(ctx, end.Sub(now)); err != nil {
					return err
				}
				now = clock()
				continue // paused again meanwhile?
			}
			b.pausedUntil.CompareAndSwap(until, 0)
		}
		if b.lim.AllowN(now, 1) {
			l.allowed.Add(1)
			return nil
		}
		if !now.Before(waitUntil) {
			l.rejected.Add(1)
			return &RateLimitError{Endpoint: endpoint, RetryIn: l.tokenDelay(b, now)}
		}
		r := b.lim.ReserveN(now, 1)
		d := r.DelayFrom(now)
		if !r.OK() || now.Add(d).After(waitUntil) {
			r.CancelAt(now)
			l.rejected.Add(1)
			return &RateLimitError{Endpoint: endpoint, RetryIn: d}
		}
		if err := sleepCtx(ctx, d); err != nil {
			r.CancelAt(clock()) // give the token back
			return err
		}
		l.waited.Add(1)
		l.allowed.Add(1)
		return nil
	}
}

// tokenDelay estimates how long until b has a token.
func (l *limiter) tokenDelay(b *bucket, now time.Time) time.Duration {
	lim := float64(b.lim.Limit())
	missing := 1 - b.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	if lim <= 0 {
		return maxDuration
	}
	return time.Duration(missing / lim * float64(time.Second))
}

// pause stops b giving tokens until now+d (extending, never shortening,
// a pause already set).
func (l *limiter) pause(b *bucket, d time.Duration, now time.Time) {
	if d <= 0 {
		return
	}
	if l.pauseCap > 0 && d > l.pauseCap {
		d = l.pauseCap
	}
	until := int64(now.Add(d).Sub(b.origin))
	if until <= 0 {
		return
	}
	for {
		cur := b.pausedUntil.Load()
		if cur >= until || b.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// feedback lets the limiter learn from an attempt's answer: a 429 with
// Retry-After pauses the bucket; with adaptation on, the status, latency
// and quota headers move the rate. resp is nil for a transport error.
func (l *limiter) feedback(b *bucket, resp *http.Response, latency time.Duration, now time.Time) {
	if resp == nil {
		return
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		if v := resp.Header["Retry-After"]; len(v) > 0 {
			if d, ok := parseRetryAfter(v[0], now); ok {
				l.pause(b, d, now)
			}
		}
	}
	if l.adaptive != nil {
		l.adapt(b, resp, latency, now)
	}
}

func (l *limiter) snapshot(now time.Time) RateLimitStats {
	s := RateLimitStats{
		Rate:        l.cfg.Rate,
		Per:         l.cfg.Per,
		CurrentRate: float64(l.shared.lim.Limit()) * l.perUnit,
		Burst:       l.burst,
		Adaptive:    l.adaptive != nil,
		Allowed:     l.allowed.Load(),
		Waited:      l.waited.Load(),
		Rejected:    l.rejected.Load(),
		KeysEvicted: l.evicted.Load(),
		Decreases:   l.decreases.Load(),
		Increases:   l.increases.Load(),
	}
	if until := l.shared.pausedUntil.Load(); until != 0 {
		if d := l.shared.origin.Add(time.Duration(until)).Sub(now); d > 0 {
			s.PausedFor = d
		}
	}
	if l.keys != nil {
		l.mu.Lock()
		s.Keys = len(l.keys)
		l.mu.Unlock()
	}
	return s
}
