package connmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// This file builds an endpoint's limits (breaker set, rate limiter,
// concurrency cap) across reloads, delivers breaker state changes, and
// hands refused calls to fallback endpoints.

// maxFallbackHops bounds a chain of fallbacks. Validation rejects cycles;
// this only guards against a reload swapping tables mid-call.
const maxFallbackHops = 8

// buildLimits gives ep its breaker set, limiter and bulkhead, taking
// prev's (the endpoint being replaced) when their settings are unchanged
// so that their state survives the reload. Requires reloadMu.
func (m *Manager) buildLimits(ep, prev *endpoint, old *endpointTable, groups map[string]*breakerSet) {
	cfg := *ep.cfg
	if bc := cfg.CircuitBreaker; bc.Disabled == nil || !*bc.Disabled {
		switch {
		case bc.Group != "":
			if s := groups[bc.Group]; s != nil {
				ep.breakers = s
			} else if old != nil && old.groups[bc.Group] != nil && reflect.DeepEqual(old.groups[bc.Group].policy.cfg, bc) {
				ep.breakers = old.groups[bc.Group]
			} else {
				ep.breakers = m.newBreakerSet(bc)
			}
			groups[bc.Group] = ep.breakers
		case prev != nil && prev.breakers != nil && prev.cfg.CircuitBreaker.Group == "" &&
			reflect.DeepEqual(prev.breakers.policy.cfg, bc):
			ep.breakers = prev.breakers
		default:
			ep.breakers = m.newBreakerSet(bc)
		}
	}
	if rl := cfg.RateLimit; rateLimitOn(rl) {
		pauseCap := cfg.Retry.MaxRetryAfter
		if prev != nil && prev.limiter != nil && prev.limiter.pauseCap == pauseCap && reflect.DeepEqual(prev.limiter.cfg, rl) {
			ep.limiter = prev.limiter
		} else {
			ep.limiter = newLimiter(rl, m.opts.keyFuncs[ep.key], pauseCap, m.now())
			if rl.Scope == scopeFleet && m.opts.rateStore != nil {
				ep.limiter.fleet = &fleetLimiter{store: m.opts.rateStore, limit: Limit{Rate: ep.limiter.perSec, Burst: ep.limiter.burst}, m: m}
			}
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

// newBreakerSet makes a breaker set with the Manager's factory and, unless
// its scope is local, the fleet's store.
func (m *Manager) newBreakerSet(bc BreakerConfig) *breakerSet {
	s := &breakerSet{policy: m.breakerPolicy(bc), events: m.events}
	s.factory = m.opts.breakerFactory
	if bc.Scope != scopeLocal {
		s.fleet = m.fleet
	}
	return s
}

// breakerPolicy compiles bc, sharing the policy of an equal config
// compiled in the same build (most endpoints inherit the default's).
// Requires reloadMu.
func (m *Manager) breakerPolicy(bc BreakerConfig) *breakerPolicy {
	key := fmt.Sprintf("%#v", bc)
	if p := m.policies[key]; p != nil && reflect.DeepEqual(p.cfg, bc) {
		return p
	}
	p := newBreakerPolicy(bc)
	if m.policies != nil {
		m.policies[key] = p
	}
	return p
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
			attrs = append(attrs, slog.String("error", safeString(c.Err)))
		}
		m.logger.LogAttrs(context.Background(), level, "connmgr: circuit breaker state change", attrs...)
	}
	for _, f := range m.opts.stateListeners {
		m.callListener("WithStateListener", f, c)
	}
	for _, p := range m.chain.Load().plugins {
		if l, ok := p.(StateListener); ok {
			m.callListener(safeName(p), l.OnStateChange, c)
		}
	}
	if m.fleet != nil {
		m.fleet.publish(c)
	}
}

func (m *Manager) callListener(name string, f func(StateChange), c StateChange) {
	defer m.recovered("state listener", name, nil)
	f(c)
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
		var invalid *invalidRequestError
		if errors.As(err, &invalid) {
			return outcomeIgnored, nil // the caller's mistake, not the upstream's
		}
		return outcomeFailure, err
	}
	if p == nil {
		return outcomeSuccess, nil
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
			slog.String("endpoint", ep.key), slog.String("fallback", fb.key), slog.String("reason", safeString(why)))
	}
	return m.startCall(fb, freq, hops+1)
}

// withClock replaces the Manager's clock, for tests that step time. It is
// unexported: time is an input of the pure logic, not a user setting.
func withClock(now func() time.Time) Option {
	return optionFunc(func(o *options) { o.clock = now })
}
