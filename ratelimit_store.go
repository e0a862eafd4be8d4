package connmgr

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"
)

// MemoryRateLimitStore is the in-memory RateLimitStore: one token bucket
// per key, in this process only. It is what a `scope: fleet` limit uses
// when the fleet is one process (tests, a single replica); redisstore
// shares the same buckets between processes. The zero value is not
// usable; make one with NewMemoryRateLimitStore. It is safe for
// concurrent use.
type MemoryRateLimitStore struct {
	now func() time.Time

	// mu guards buckets.
	mu      sync.Mutex
	buckets map[string]*memBucket
}

type memBucket struct {
	tokens float64
	last   time.Time
	paused time.Time
}

// NewMemoryRateLimitStore returns an empty in-memory store.
func NewMemoryRateLimitStore() *MemoryRateLimitStore {
	return &MemoryRateLimitStore{now: time.Now, buckets: map[string]*memBucket{}}
}

var _ RateLimitStore = (*MemoryRateLimitStore)(nil)

// bucket returns key's bucket refilled to now. Requires mu.
func (s *MemoryRateLimitStore) bucket(key string, limit Limit, now time.Time) *memBucket {
	b := s.buckets[key]
	if b == nil {
		b = &memBucket{tokens: float64(limit.Burst), last: now}
		s.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(float64(limit.Burst), b.tokens+el*limit.Rate)
		b.last = now
	}
	return b
}

// Reserve takes one token for key, or reports how long until one would
// be free when that is longer than maxWait.
func (s *MemoryRateLimitStore) Reserve(_ context.Context, key string, limit Limit, maxWait time.Duration) (Reservation, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(key, limit, now)
	if now.Before(b.paused) {
		return Reservation{RetryIn: b.paused.Sub(now)}, nil
	}
	b.tokens--
	if b.tokens >= 0 {
		return Reservation{OK: true, Token: 1}, nil
	}
	delay := maxDuration
	if limit.Rate > 0 {
		delay = time.Duration(-b.tokens / limit.Rate * float64(time.Second))
	}
	if delay > maxWait {
		b.tokens++
		return Reservation{RetryIn: delay}, nil
	}
	return Reservation{OK: true, Delay: delay, Token: 1}, nil
}

// Cancel gives a reserved token back.
func (s *MemoryRateLimitStore) Cancel(_ context.Context, key string, limit Limit, r Reservation) error {
	if !r.OK {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(key, limit, s.now())
	b.tokens = math.Min(float64(limit.Burst), b.tokens+1)
	return nil
}

// Pause refuses tokens for key until until.
func (s *MemoryRateLimitStore) Pause(_ context.Context, key string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil {
		b = &memBucket{last: s.now()}
		s.buckets[key] = b
	}
	if until.After(b.paused) {
		b.paused = until
	}
	return nil
}

// fleetLimiter takes an endpoint's tokens from a RateLimitStore
// (`scope: fleet`). A store that fails falls back to the endpoint's
// local buckets, so a store outage never stops traffic nor lets it
// through unlimited.
type fleetLimiter struct {
	store RateLimitStore
	limit Limit
	m     *Manager
}

// storeKey is the key of an endpoint's bucket (or of one of its keyed
// buckets) in the store.
func storeKey(endpoint, key string) string {
	if key == "" {
		return endpoint
	}
	return endpoint + "\x00" + key
}

// take gets one token for an attempt, as limiter.take does locally.
func (f *fleetLimiter) take(ctx context.Context, l *limiter, endpoint, key string, deadline time.Time) error {
	now := f.m.now()
	maxWait := l.maxWait
	if !deadline.IsZero() {
		maxWait = min(maxWait, deadline.Sub(now))
	}
	sk := storeKey(endpoint, key)
	limit := f.limit
	if l.adaptive != nil {
		// The fleet admits at this Manager's adapted rate (the store may
		// hold a lower one that another Manager shared).
		limit.Rate = math.Min(limit.Rate, float64(l.bucketByKey(key, f.m.now).lim.Limit()))
	}
	r, err := f.reserve(ctx, sk, limit, max(maxWait, 0))
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // the caller gave up: not the store's failure
	}
	if err != nil {
		f.m.logger.Warn("connmgr: rate-limit store failed; using the local limit", "endpoint", endpoint, "error", safeString(err))
		return l.take(ctx, l.bucketByKey(key, f.m.now), endpoint, deadline, f.m.now)
	}
	if !r.OK {
		l.rejected.Add(1)
		return &RateLimitError{Endpoint: endpoint, RetryIn: r.RetryIn}
	}
	if r.Delay > 0 {
		if err := sleepCtx(ctx, r.Delay); err != nil {
			f.cancel(sk, r)
			return err
		}
		l.waited.Add(1)
	}
	l.allowed.Add(1)
	return nil
}

func (f *fleetLimiter) reserve(ctx context.Context, key string, limit Limit, maxWait time.Duration) (r Reservation, err error) {
	defer f.m.recovered("RateLimitStore", "Reserve", &err)
	rctx, cancel := context.WithTimeout(ctx, f.m.storeTimeout())
	defer cancel()
	return f.store.Reserve(rctx, key, limit, maxWait)
}

func (f *fleetLimiter) cancel(key string, r Reservation) {
	defer f.m.recovered("RateLimitStore", "Cancel", nil)
	ctx, cancel := context.WithTimeout(context.Background(), f.m.storeTimeout())
	defer cancel()
	_ = f.store.Cancel(ctx, key, f.limit, r)
}

// feedback pauses the fleet's bucket on a 429 with Retry-After and, with
// adaptive on, adapts this Manager's rate and shares a decrease.
func (f *fleetLimiter) feedback(l *limiter, endpoint, key string, resp *http.Response, latency time.Duration, now time.Time) {
	if resp == nil {
		return
	}
	if l.adaptive != nil {
		f.adapt(l, storeKey(endpoint, key), l.bucketByKey(key, f.m.now), resp, latency, now)
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if !ok || d <= 0 {
		return
	}
	if l.pauseCap > 0 && d > l.pauseCap {
		d = l.pauseCap
	}
	defer f.m.recovered("RateLimitStore", "Pause", nil)
	ctx, cancel := context.WithTimeout(context.Background(), f.m.storeTimeout())
	defer cancel()
	_ = f.store.Pause(ctx, storeKey(endpoint, key), now.Add(d))
}

// adapt moves the rate of this Manager's bucket for key (its adaptive
// state; the fleet's tokens are in the store) and, when it went down and
// the store can share it (FleetRateLowerer), holds the whole fleet at
// the lower rate for as long as this Manager would take to climb back.
func (f *fleetLimiter) adapt(l *limiter, sk string, b *bucket, resp *http.Response, latency time.Duration, now time.Time) {
	before := float64(b.lim.Limit())
	l.adapt(b, resp, latency, now)
	after := float64(b.lim.Limit())
	lw, ok := f.store.(FleetRateLowerer)
	if !ok || !(after < before) {
		return
	}
	p := l.adaptive
	hold := p.interval * time.Duration(math.Ceil((p.max-after)/p.step))
	hold = min(max(hold, time.Second), 5*time.Minute)
	defer f.m.recovered("RateLimitStore", "LowerRate", nil)
	ctx, cancel := context.WithTimeout(context.Background(), f.m.storeTimeout())
	defer cancel()
	_ = lw.LowerRate(ctx, sk, after, now.Add(hold))
}
