package connmgr

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RetryConfig says when a failed attempt is tried again. An attempt is
// retried only when it is provably safe: the method is idempotent (GET,
// HEAD, OPTIONS, TRACE, PUT, DELETE), the request carries an
// Idempotency-Key header, NonIdempotent opts in, or the connection was
// never made (a dial error). Bodies are replayed through Request.GetBody;
// a body without GetBody is buffered up to MaxBufferedBody, and a larger
// one is sent once, whole, and not retried.
type RetryConfig struct {
	// MaxAttempts is the number of tries, the first included. Default 3;
	// 1 turns retries off.
	MaxAttempts int `yaml:"max_attempts,omitempty" json:"max_attempts,omitempty"`
	// InitialBackoff is the cap of the first backoff; the cap doubles with
	// each retry up to MaxBackoff, and the wait is drawn uniformly below
	// it (full jitter). Default 100ms.
	InitialBackoff time.Duration `yaml:"initial_backoff,omitempty" json:"initial_backoff,omitempty"`
	// MaxBackoff caps the backoff. Default 5s.
	MaxBackoff time.Duration `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
	// RetryOn lists the response statuses that count as failed attempts.
	// Default 408, 429, 500, 502, 503, 504. An empty, non-nil list retries
	// connection errors only.
	RetryOn []int `yaml:"retry_on,omitempty" json:"retry_on,omitempty"`
	// MaxRetryAfter is the longest Retry-After a retry waits for; a
	// response asking for longer is returned as it is. Default 30s.
	MaxRetryAfter time.Duration `yaml:"max_retry_after,omitempty" json:"max_retry_after,omitempty"`
	// NonIdempotent opts non-idempotent methods (POST, PATCH) in to
	// retries. Default false.
	NonIdempotent *bool `yaml:"non_idempotent,omitempty" json:"non_idempotent,omitempty"`
	// MaxBufferedBody is how many bytes of a body without GetBody are
	// buffered so it can be replayed. Default 1 MiB; negative never buffers.
	MaxBufferedBody int64 `yaml:"max_buffered_body,omitempty" json:"max_buffered_body,omitempty"`
	// Budget bounds retries across all calls to the endpoint.
	Budget RetryBudgetConfig `yaml:"budget,omitempty" json:"budget,omitempty"`
}

// RetryBudgetConfig bounds the retries of an endpoint to Ratio of its
// calls plus MinPerSecond, so that during an outage the upstream sees at
// most about (1+Ratio)× the offered load instead of MaxAttempts×. A retry
// the budget cannot pay for ends the call with ErrRetryBudgetExhausted.
type RetryBudgetConfig struct {
	// Ratio of retries to calls. Default 0.2.
	Ratio float64 `yaml:"ratio,omitempty" json:"ratio,omitempty"`
	// MinPerSecond retries are always allowed, however few the calls. Default 10.
	MinPerSecond float64 `yaml:"min_per_second,omitempty" json:"min_per_second,omitempty"`
	// Disabled turns the budget off: every retry the policy allows is made.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// retryPolicy is a compiled RetryConfig.
type retryPolicy struct {
	maxAttempts     int
	initialBackoff  time.Duration
	maxBackoff      time.Duration
	retryOn         statusSet
	maxRetryAfter   time.Duration
	nonIdempotent   bool
	maxBufferedBody int64
}

func newRetryPolicy(c RetryConfig) retryPolicy {
	p := retryPolicy{
		maxAttempts:     c.MaxAttempts,
		initialBackoff:  c.InitialBackoff,
		maxBackoff:      c.MaxBackoff,
		maxRetryAfter:   c.MaxRetryAfter,
		nonIdempotent:   c.NonIdempotent != nil && *c.NonIdempotent,
		maxBufferedBody: c.MaxBufferedBody,
	}
	for _, s := range c.RetryOn {
		p.retryOn.add(s)
	}
	return p
}

// statusSet is a set of HTTP status codes 0..639, tested without allocating.
type statusSet [10]uint64

func (s *statusSet) add(code int) {
	if code >= 0 && code < 640 {
		s[code/64] |= 1 << (code % 64)
	}
}

func (s *statusSet) has(code int) bool {
	return code >= 0 && code < 640 && s[code/64]&(1<<(code%64)) != 0
}

// safeToRetry reports whether the request may be sent again after a
// failure. A dial error is always safe: nothing reached the server.
func (p *retryPolicy) safeToRetry(req *http.Request, dialFailed bool) bool {
	if dialFailed || p.nonIdempotent || isIdempotent(req.Method) {
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// backoff returns the wait before retry number n (1 for the first retry):
// uniform in [0, min(maxBackoff, initialBackoff·2^(n-1))] ("full jitter").
func (p *retryPolicy) backoff(n int) time.Duration {
	ceiling := p.initialBackoff
	for i := 1; i < n && ceiling < p.maxBackoff; i++ {
		ceiling *= 2
	}
	if ceiling > p.maxBackoff {
		ceiling = p.maxBackoff
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// parseRetryAfter reads a Retry-After value in either form of RFC 9110
// section 10.2.3: delay-seconds or an HTTP-date (relative to now). A date
// in the past means no wait. It reports false when v is neither.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return maxDuration, true
			}
			return 0, false
		}
		if secs > uint64(maxDuration/time.Second) {
			return maxDuration, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

const maxDuration = time.Duration(1<<63 - 1)

// errorClass says what a transport error means for retrying.
type errorClass int

const (
	errRetryable    errorClass = iota // a transient failure; retry if safe
	errDial                           // the connection was never made; always safe to retry
	errNotRetryable                   // retrying cannot help (TLS verification, bad request)
	errCallerDone                     // the caller's context ended
)

// classifyError decides what a transport error means. callCtx is the
// call's context (the caller's), so that a per-try timeout (retryable)
// is told apart from the caller giving up (final).
func classifyError(callCtx context.Context, err error) errorClass {
	if callCtx.Err() != nil {
		return errCallerDone
	}
	if isTLSFailure(err) {
		return errNotRetryable
	}
	var panicked *transportPanicError
	if errors.As(err, &panicked) || errors.Is(err, errNilResponse) {
		return errNotRetryable
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return errDial
	}
	return errRetryable
}

// retryBudget lets retries through while they stay under ratio × calls
// plus a floor per second. Each call deposits ratio tokens (capped, so a
// long quiet period cannot bank an unbounded burst); each retry withdraws
// one, or failing that takes one from the per-second floor. Lock-free on
// the deposit path.
type retryBudget struct {
	depositMilli int64        // tokens per call, in thousandths
	balance      atomic.Int64 // thousandths of a token
	floor        *rate.Limiter
}

// budgetCapMilli caps the saved balance at 100 retries.
const budgetCapMilli = 100_000

func newRetryBudget(c RetryBudgetConfig) *retryBudget {
	if c.Disabled != nil && *c.Disabled {
		return nil
	}
	b := &retryBudget{depositMilli: int64(c.Ratio * 1000)}
	if c.MinPerSecond > 0 {
		burst := int(c.MinPerSecond)
		if burst < 1 {
			burst = 1
		}
		b.floor = rate.NewLimiter(rate.Limit(c.MinPerSecond), burst)
	} else {
		b.floor = rate.NewLimiter(0, 0)
	}
	return b
}

// deposit credits one call. A nil budget is unlimited.
func (b *retryBudget) deposit() {
	if b == nil || b.depositMilli == 0 || b.balance.Load() >= budgetCapMilli {
		return // nothing to save, or the savings are full: no shared write
	}
	if n := b.balance.Add(b.depositMilli); n > budgetCapMilli {
		b.balance.CompareAndSwap(n, budgetCapMilli)
	}
}

// retryToken is what withdraw paid a retry with.
type retryToken uint8

const (
	noToken      retryToken = iota // refused
	freeToken                      // no budget: every retry is allowed
	floorToken                     // from the per-second floor
	balanceToken                   // from the calls' deposits
)

// ok reports whether the retry may go.
func (t retryToken) ok() bool { return t != noToken }

// withdraw pays for one retry at time now. A nil budget is unlimited.
//
// The budget allows max(Ratio × calls, MinPerSecond × time), not their
// sum: every retry is charged to both the balance and the per-second
// floor. A retry the floor pays for while the balance is empty leaves
// the balance owing it (down to -budgetCapMilli), and the deposits of
// later calls repay it first. Under a total outage the upstream then
// sees at most (1+Ratio)× the offered load, however short the burst,
// while a trickle of calls still gets MinPerSecond retries.
func (b *retryBudget) withdraw(now time.Time) retryToken {
	if b == nil {
		return freeToken
	}
	for {
		cur := b.balance.Load()
		if cur < 1000 {
			break
		}
		if b.balance.CompareAndSwap(cur, cur-1000) {
			b.floor.AllowN(now, 1) // the floor counts it too
			return balanceToken
		}
	}
	if b.floor.AllowN(now, 1) {
		if n := b.balance.Add(-1000); n < -budgetCapMilli {
			b.balance.CompareAndSwap(n, -budgetCapMilli)
		}
		return floorToken
	}
	return noToken
}

// refund gives back a token taken for a retry that was not made. Only a
// balance token goes back (capped like a deposit); a floor token is spent.
func (b *retryBudget) refund(t retryToken) {
	if b == nil || t != balanceToken {
		return
	}
	if n := b.balance.Add(1000); n > budgetCapMilli {
		b.balance.CompareAndSwap(n, budgetCapMilli)
	}
}
