package connmgr

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"runtime/debug"
	"strings"
	"time"
)

// This file joins the rate limiter, the circuit breakers, the
// concurrency cap and fallbacks to the Manager and its pipeline.

// maxFallbackHops bounds a chain of fallbacks. Validation rejects cycles;
// this only guards against a reload swapping tables mid-call.
const maxFallbackHops = 8

// buildLimits gives ep its breaker set, limiter and bulkhead, taking
// prev's (the endpoint being replaced) when their settings are unchanged
// so that their state survives the reload. Requires reloadMu.
func (m *Manager) buildLimits(ep, prev *endpoint, old *endpointTable, groups map[string]*breakerSet) {
	cfg := ep.cfg
	if bc := cfg.CircuitBreaker; bc.Disabled == nil || !*bc.Disabled {
		switch {
		case bc.Group != "":
			if s := groups[bc.Group]; s != nil {
				ep.breakers = s
			} else if old != nil && old.groups[bc.Group] != nil && reflect.DeepEqual(old.groups[bc.Group].cfg, bc) {
				ep.breakers = old.groups[bc.Group]
			} else {
				ep.breakers = newBreakerSet(bc, m.events)
			}
			groups[bc.Group] = ep.breakers
		case prev != nil && prev.breakers != nil && prev.cfg.CircuitBreaker.Group == "" &&
			reflect.DeepEqual(prev.breakers.cfg, bc):
			ep.breakers = prev.breakers
		default:
			ep.breakers = newBreakerSet(bc, m.events)
		}
	}
	if rl := cfg.RateLimit; rateLimitOn(rl) {
		pauseCap := cfg.Retry.MaxRetryAfter
		if prev != nil && prev.limiter != nil && prev.limiter.pauseCap == pauseCap && reflect.DeepEqual(prev.limiter.cfg, rl) {
			ep.limiter = prev.limiter
		} else {
			ep.limiter = newLimiter(rl, m.opts.keyFuncs[ep.key], pauseCap, m.now())
		}
	}
	if cfg.MaxConcurrent > 0 {
		queue := max(cfg.MaxQueue, 0)
		wait := cfg.MaxQueueWait
		if wait <= 0 {
			wait = positive(cfg.TotalTimeout)
		}
		if pb := prevBulkhead(prev); pb != nil && cap(pb.slots) == cfg.MaxConcurrent && pb.maxQueue == int64(queue) && pb.queueWait == wait {
			ep.bulkhead = pb
		} else {
			ep.bulkhead = newBulkhead(cfg.MaxConcurrent, queue, wait)
		}
	}
}

func prevBulkhead(prev *endpoint) *bulkhead {
	if prev == nil {
		return nil
	}
	return prev.bulkhead
}

// fallbackAuthority is the URL authority for a normalized "host" or
// "host:port" key.
func fallbackAuthority(key string, kind endpointKind) string {
	if kind == kindHost && strings.Contains(key, ":") {
		return "[" + key + "]" // a bare IPv6 address
	}
	return key
}

// deliverStateChange hands one breaker state change to the log, the
// WithStateListener listeners and the plugins that are StateListeners,
// in that order. It runs outside every lock; a listener that panics is
// logged and skipped.
func (m *Manager) deliverStateChange(c StateChange) {
	level := slog.LevelInfo
	if c.To == BreakerOpen {
		level = slog.LevelWarn
	}
	if m.logger.Enabled(context.Background(), level) {
		attrs := []slog.Attr{
			slog.String("endpoint", c.Endpoint),
			slog.String("upstream", c.Upstream),
			slog.String("from", c.From.String()),
			slog.String("to", c.To.String()),
		}
		if c.Err != nil {
			attrs = append(attrs, slog.String("error", c.Err.Error()))
		}
		m.logger.LogAttrs(context.Background(), level, "connmgr: circuit breaker state change", attrs...)
	}
	for _, f := range m.opts.stateListeners {
		m.callListener("WithStateListener", f, c)
	}
	for _, p := range m.chain.Load().plugins {
		if l, ok := p.(StateListener); ok {
			m.callListener(p.Name(), l.OnStateChange, c)
		}
	}
}

func (m *Manager) callListener(name string, f func(StateChange), c StateChange) {
	defer func() {
		if p := recover(); p != nil {
			m.logger.Error("connmgr: state listener panicked", slog.String("listener", name), slog.String("panic", panicString(p)))
		}
	}()
	f(c)
}

// admit runs an attempt through the rate limiter, then the circuit
// breaker of its upstream. It returns the breaker permit (report the
// outcome through feedback) and the bucket the token came from, or the
// reason the attempt may not go: a *CircuitOpenError, a *RateLimitError,
// or the context's cause when the caller gave up while waiting.
//
// An open breaker is looked at first, so a call it refuses anyway does
// not spend a token or wait for one.
func (m *Manager) admit(ctx context.Context, ep *endpoint, areq *http.Request, deadline time.Time) (permit, *bucket, error) {
	if ep.limiter == nil {
		// The default: a breaker and no limiter. A closed breaker for the
		// upstream last seen admits with two atomic loads.
		if b := ep.breakers.last.Load(); b != nil && b.upstream == areq.URL.Host {
			if v := b.stateGen.Load(); BreakerState(v&3) == BreakerClosed {
				return permit{b: b, gen: v >> 2}, nil, nil
			}
		}
	}
	var br *breaker
	var p permit
	admitted := false
	if ep.breakers != nil {
		br = ep.breakers.get(areq.URL.Host, m.now)
		if BreakerState(br.stateGen.Load()&3) != BreakerClosed {
			// Open or half-open: take the probe slot (or the refusal)
			// before the limiter, so that a call the breaker refuses never
			// waits for a token or spends one.
			pp, refused := br.allowAt(ep.key, m.now())
			if refused != nil {
				return permit{}, nil, refused
			}
			p, admitted = pp, true
		}
	}
	var bk *bucket
	if ep.limiter != nil {
		bk = ep.limiter.bucketFor(areq, m.now)
		if err := ep.limiter.take(ctx, bk, ep.key, deadline, m.now); err != nil {
			if admitted {
				p.done(ep.key, outcomeIgnored, nil, m.now())
			}
			return permit{}, nil, err
		}
	}
	if br != nil && !admitted {
		pp, refused := br.allow(ep.key, m.now)
		if refused != nil {
			return permit{}, nil, refused
		}
		p = pp
	}
	return p, bk, nil
}

// roundTrip sends an admitted attempt. A transport that panics has its
// panic turned into an error, which then takes the normal failure path
// (the breaker hears of it there); a transport that returns neither a
// response nor an error gets an error; a response returned with an error
// is closed and dropped, as http.Client does. Only runtime.Goexit skips
// the normal path, and then the breaker is told here, so a half-open
// probe slot is never lost.
func (m *Manager) roundTrip(ep *endpoint, p permit, areq *http.Request) (resp *http.Response, err error) {
	returned := false
	defer func() {
		if returned {
			return
		}
		if v := recover(); v != nil {
			m.logger.Error("connmgr: transport panicked",
				slog.String("endpoint", ep.key), slog.String("panic", panicString(v)), slog.String("stack", string(debug.Stack())))
			resp, err = nil, &transportPanicError{value: v}
			return
		}
		if p.b != nil {
			p.done(ep.key, outcomeFailure, errBreakerPanic, m.now())
		}
	}()
	resp, err = ep.transport.RoundTrip(areq)
	returned = true
	switch {
	case err != nil && resp != nil:
		drainAndClose(resp.Body)
		resp = nil
	case err == nil && resp == nil:
		err = errNilResponse
	}
	return resp, err
}

// errNilResponse: the transport broke the RoundTripper contract.
var errNilResponse = errors.New("connmgr: transport returned neither a response nor an error")

// transportPanicError is a panic in the transport, turned into an error.
// It is never retried.
type transportPanicError struct {
	value any
}

func (e *transportPanicError) Error() string {
	return "connmgr: transport panicked: " + panicString(e.value)
}

// feedback reports an attempt's outcome to its breaker (exactly once per
// permit) and its answer to the limiter. ctx is the caller's context;
// sent is when the attempt was sent.
//
// The common case, a success on a closed breaker with nothing else to
// learn from it, reads no clock: it is counted in the rolling window at
// the time it was sent, which is within one attempt of when it finished.
func (m *Manager) feedback(ctx context.Context, ep *endpoint, p permit, bk *bucket, resp *http.Response, err error,
	attemptDeadline, sent time.Time) {
	timed := err != nil || p.probe ||
		(p.b != nil && (p.b.policy.slowCall > 0 || p.b.policy.failStatus.has(resp.StatusCode))) ||
		(bk != nil && (ep.limiter.adaptive != nil || resp.StatusCode == http.StatusTooManyRequests))
	now, latency := sent, time.Duration(0)
	if timed {
		latency = m.since(sent)
		now = sent.Add(latency)
	}
	if p.b != nil {
		o, cause := breakerOutcome(ctx, p.b.policy, resp, err, attemptDeadline, latency)
		p.done(ep.key, o, cause, now)
	}
	if bk != nil && err == nil {
		ep.limiter.feedback(bk, resp, latency, now)
	}
}

// breakerOutcome classifies an attempt for a breaker: transport errors,
// timeouts (per try and total), failure statuses and slow calls fail; the
// caller's own cancellation or deadline is neither a success nor a
// failure. attemptDeadline is the deadline the attempt ran under: when
// the caller's deadline is what set it, its expiry is the caller's, even
// if the attempt's own timer fired first.
func breakerOutcome(ctx context.Context, p *breakerPolicy, resp *http.Response, err error, attemptDeadline time.Time, latency time.Duration) (outcome, error) {
	if err != nil {
		if ctx.Err() != nil {
			return outcomeIgnored, nil
		}
		if d, ok := ctx.Deadline(); ok && !attemptDeadline.Before(d) && errors.Is(err, context.DeadlineExceeded) {
			return outcomeIgnored, nil
		}
		return outcomeFailure, err
	}
	if p.failStatus.has(resp.StatusCode) {
		return outcomeFailure, &StatusError{StatusCode: resp.StatusCode}
	}
	if p.slowCall > 0 && latency > p.slowCall {
		return outcomeSlow, &SlowCallError{Took: latency, Limit: p.slowCall}
	}
	return outcomeSuccess, nil
}

// fallbackFor returns the endpoint ep's calls go to when ep cannot take
// them, or nil.
func (m *Manager) fallbackFor(ep *endpoint, hops int) *endpoint {
	if ep.fallback == "" || hops >= maxFallbackHops {
		return nil
	}
	return m.table.Load().byKey[ep.fallback]
}

// toFallback sends req to fb, the fallback of ep, as a new call under
// fb's own policies. body and getBody are the request body not yet sent
// and how to replay it. release ends the call on ep; toFallback calls it
// while holding the Manager open, so that a Shutdown in progress never
// sees zero calls in flight in the hand-over, and the continuation is
// admitted even though new calls are refused.
func (m *Manager) toFallback(ep, fb *endpoint, req *http.Request, body io.ReadCloser, getBody func() (io.ReadCloser, error),
	hops int, why error, release func(*endpoint)) (*http.Response, error) {
	m.inflight.Add(1)
	release(ep)
	defer m.releaseManager()
	ep.stats.fallbacks.Add(1)
	freq := req.Clone(req.Context())
	freq.URL.Host = ep.fallbackHost
	freq.Host = ""
	freq.Body, freq.GetBody = body, getBody
	if freq.Body == nil {
		freq.Body = http.NoBody
	}
	if m.logger.Enabled(req.Context(), slog.LevelDebug) {
		m.logger.LogAttrs(req.Context(), slog.LevelDebug, "connmgr: using fallback",
			slog.String("endpoint", ep.key), slog.String("fallback", fb.key), slog.String("reason", why.Error()))
	}
	return m.call(fb, freq, hops+1)
}

// call runs one call on ep: the concurrency cap, then the attempt loop.
// hops counts the fallbacks taken to get here.
func (m *Manager) call(ep *endpoint, req *http.Request, hops int) (*http.Response, error) {
	if hops > 0 {
		m.acquireContinuation(ep)
	} else if !m.acquire(ep) {
		closeRequestBody(req.Body)
		return nil, m.callError(ep, req, 0, 0, ErrClosed, nil)
	}
	ep.stats.requests.Add(1)
	if ep.bulkhead != nil {
		if err := ep.bulkhead.acquire(req.Context()); err != nil {
			if err == ErrConcurrencyLimit {
				if fb := m.fallbackFor(ep, hops); fb != nil {
					return m.toFallback(ep, fb, req, req.Body, req.GetBody, hops, err, m.releaseUncapped)
				}
				err = nil
			}
			m.releaseUncapped(ep)
			ep.stats.failures.Add(1)
			closeRequestBody(req.Body)
			if err == nil {
				return nil, m.callError(ep, req, 0, 0, ErrConcurrencyLimit, nil)
			}
			return nil, m.callError(ep, req, 0, 0, nil, err)
		}
	}
	ep.budget.deposit()
	return m.send(ep, req, hops)
}

// withClock replaces the Manager's clock, for tests that step time. It is
// unexported: time is an input of the pure logic, not a user setting.
func withClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.clock = now })
}
