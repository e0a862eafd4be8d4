package connmgr

import (
	"context"
	"time"
)

// Limit is a token-bucket rate: Rate tokens per second, up to Burst
// saved.
type Limit struct {
	Rate  float64
	Burst int
}

// Reservation is one token reserved from a RateLimitStore.
type Reservation struct {
	// OK is false when the token could not be had within the maximum wait.
	OK bool
	// Delay is how long to wait before sending (0: now).
	Delay time.Duration
	// RetryIn, when OK is false, is how long until a token would be free.
	RetryIn time.Duration
	// Token identifies the reservation to Cancel; its meaning is the
	// store's own.
	Token int64
}

// RateLimitStore keeps rate-limit state that may be shared by a fleet of
// Managers (redisstore implements it on Redis). The in-memory default is
// each Manager's own token buckets. Every call has a short deadline in
// ctx; an error makes the Manager apply the endpoint's failure policy.
type RateLimitStore interface {
	// Reserve takes one token for key at limit, waiting at most maxWait.
	Reserve(ctx context.Context, key string, limit Limit, maxWait time.Duration) (Reservation, error)
	// Cancel gives back a reservation that was not used (the caller gave
	// up while waiting).
	Cancel(ctx context.Context, key string, limit Limit, r Reservation) error
	// Pause stops admissions for key until until (a 429's Retry-After).
	Pause(ctx context.Context, key string, until time.Time) error
}

// BreakerSignal is a breaker state change shared by a fleet.
type BreakerSignal struct {
	Endpoint string
	Upstream string
	State    BreakerState
	// Until is when an open breaker lets probes through.
	Until time.Time
	// Origin identifies the Manager that published it, so that a signal
	// received is never published back.
	Origin string
}

// BreakerStore shares breaker state with a fleet (redisstore implements
// it on Redis). Admission never calls it: a closed breaker stays a local
// atomic read. The in-memory default shares nothing.
type BreakerStore interface {
	// Publish announces a local breaker's change.
	Publish(ctx context.Context, s BreakerSignal) error
	// Subscribe calls fn for every signal from other Managers until stop
	// is called. fn must not block.
	Subscribe(fn func(BreakerSignal)) (stop func())
	// AcquireProbe takes one of max half-open probe slots shared by the
	// fleet for the window starting at the breaker's Until.
	AcquireProbe(ctx context.Context, endpoint, upstream string, window time.Duration, max int) (bool, error)
}

// WithRateLimitStore puts rate limits with `scope: fleet` on store.
func WithRateLimitStore(store RateLimitStore) Option {
	return optionFunc(func(o *options) { o.rateStore = store })
}

// WithBreakerStore shares breaker signals through store.
func WithBreakerStore(store BreakerStore) Option {
	return optionFunc(func(o *options) { o.breakerStore = store })
}
