package connmgr

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// adaptivePolicy is a compiled AdaptiveConfig; rates are per second.
type adaptivePolicy struct {
	max, min      float64
	factor        float64
	step          float64
	interval      time.Duration
	latencyTarget time.Duration
	decreaseOn    statusSet
	headers       bool
}

func newAdaptivePolicy(c RateLimitConfig, maxPerSec float64) *adaptivePolicy {
	a := c.Adaptive
	perSec := maxPerSec / c.Rate // converts "per Per" to per second
	p := &adaptivePolicy{
		max:           maxPerSec,
		min:           a.MinRate * perSec,
		factor:        a.DecreaseFactor,
		step:          a.IncreaseStep * perSec,
		interval:      a.Interval,
		latencyTarget: a.LatencyTarget,
		headers:       a.Headers == nil || *a.Headers,
	}
	if p.min <= 0 {
		p.min = maxPerSec / 10
	}
	if p.factor <= 0 || p.factor >= 1 {
		p.factor = 0.5
	}
	if p.step <= 0 {
		p.step = maxPerSec / 10
	}
	for _, s := range a.DecreaseOn {
		p.decreaseOn.add(s)
	}
	return p
}

// adaptiveState is one bucket's adaptive rate.
type adaptiveState struct {
	// mu guards every field.
	mu         sync.Mutex
	cur        float64   // the AIMD rate, per second
	ceiling    float64   // cap from RateLimit-Policy, per second
	quota      float64   // cap from remaining/reset, per second, until quotaUntil
	quotaUntil time.Time //
	lastChange time.Time
	ewma       float64 // moving average of latency, seconds; 0 before the first
	applied    float64 // the limit last set on the bucket (0: the initial one)
}

// ewmaWeight is the weight of the newest latency in the moving average.
const ewmaWeight = 0.2

// adapt moves b's rate after an answer. Pure in time: now is given.
func (l *limiter) adapt(b *bucket, resp *http.Response, latency time.Duration, now time.Time) {
	p, s := l.adaptive, b.adapt
	var q quota
	if p.headers && len(resp.Header) > 0 {
		q = readQuota(resp.Header, now)
	}
	if q.pause > 0 {
		l.pause(b, q.pause, now)
	}
	s.mu.Lock()
	if latency > 0 {
		sec := latency.Seconds()
		if s.ewma == 0 {
			s.ewma = sec
		} else {
			s.ewma += ewmaWeight * (sec - s.ewma)
		}
	}
	status := resp.StatusCode
	pushBack := p.decreaseOn.has(status) ||
		(p.latencyTarget > 0 && s.ewma > p.latencyTarget.Seconds())
	mayChange := s.lastChange.IsZero() || now.Sub(s.lastChange) >= p.interval
	switch {
	case pushBack && mayChange && s.cur > p.min:
		s.cur = math.Max(p.min, s.cur*p.factor)
		s.lastChange = now
		l.decreases.Add(1)
	case !pushBack && !isServerError(status) && mayChange && s.cur < p.max:
		s.cur = math.Min(p.max, s.cur+p.step)
		s.lastChange = now
		l.increases.Add(1)
	}
	if q.policy > 0 {
		s.ceiling = math.Max(p.min, math.Min(p.max, q.policy))
	}
	if q.hasRemaining {
		s.quota, s.quotaUntil = q.rate, now.Add(q.reset)
	}
	eff := math.Min(s.cur, s.ceiling)
	if now.Before(s.quotaUntil) && s.quota < eff {
		eff = s.quota
	}
	eff = math.Max(eff, p.min)
	if eff != s.applied && !(s.applied == 0 && eff == p.max) {
		b.lim.SetLimitAt(now, rate.Limit(eff))
		s.applied = eff
	}
	s.mu.Unlock()
}

// quota is what an answer's rate-limit headers say.
type quota struct {
	hasRemaining bool
	rate         float64       // remaining / reset, per second
	reset        time.Duration // until the quota resets
	pause        time.Duration // none remaining: wait this long
	policy       float64       // the policy's quota per second; 0 if none
}

// readQuota reads the IETF RateLimit and RateLimit-Policy fields (the
// structured form of draft 08 and later, the dictionary form and separate
// RateLimit-Remaining/-Reset of earlier drafts) and the common
// X-RateLimit-Remaining/-Reset. It does not allocate.
func readQuota(h http.Header, now time.Time) quota {
	var q quota
	remaining, reset := -1.0, -1.0
	if v := h["Ratelimit"]; len(v) > 0 {
		remaining, reset = parseRateLimitField(v[0])
	}
	if remaining < 0 {
		remaining, reset = headerNumber(h, "Ratelimit-Remaining"), headerNumber(h, "Ratelimit-Reset")
	}
	if remaining < 0 {
		remaining, reset = headerNumber(h, "X-Ratelimit-Remaining"), headerNumber(h, "X-Ratelimit-Reset")
		reset = resetSeconds(reset, now)
	}
	if remaining >= 0 && reset > 0 {
		q.reset = time.Duration(reset * float64(time.Second))
		if remaining == 0 {
			q.pause = q.reset
		} else {
			q.hasRemaining = true
			q.rate = remaining / reset
		}
	}
	if v := h["Ratelimit-Policy"]; len(v) > 0 {
		q.policy = parseRateLimitPolicy(v[0])
	}
	return q
}

// resetSeconds turns an X-RateLimit-Reset value into seconds from now: a
// large value is a Unix time (seconds, or milliseconds), a small one a
// delay.
func resetSeconds(v float64, now time.Time) float64 {
	switch {
	case v < 0:
		return v
	case v >= 1e12: // Unix milliseconds
		return float64(time.UnixMilli(int64(v)).Sub(now)) / float64(time.Second)
	case v >= 1e9: // Unix seconds
		return float64(time.Unix(int64(v), 0).Sub(now)) / float64(time.Second)
	}
	return v
}

func headerNumber(h http.Header, name string) float64 {
	v := h[name]
	if len(v) == 0 {
		return -1
	}
	return parseNumber(v[0])
}

// parseNumber reads a non-negative number, or returns -1.
func parseNumber(s string) float64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return -1
	}
	return f
}

// parseRateLimitField reads a RateLimit field and returns the most
// restrictive remaining/reset pair in it, or -1, -1. It accepts
//
//	"default";r=50;t=30, "burst";r=0;t=1   (draft 08 and later)
//	limit=100, remaining=50, reset=30      (drafts up to 07)
func parseRateLimitField(v string) (remaining, reset float64) {
	remaining, reset = -1, -1
	dictRemaining, dictReset := -1.0, -1.0
	for member := range strings.SplitSeq(v, ",") {
		r, t := -1.0, -1.0
		for param := range strings.SplitSeq(member, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "r":
				r = parseNumber(val)
			case "t":
				t = parseNumber(val)
			case "remaining":
				dictRemaining = parseNumber(val)
			case "reset":
				dictReset = parseNumber(val)
			}
		}
		if r >= 0 && t > 0 && (remaining < 0 || moreRestrictive(r, t, remaining, reset)) {
			remaining, reset = r, t
		}
	}
	if remaining < 0 && dictRemaining >= 0 {
		return dictRemaining, dictReset
	}
	return remaining, reset
}

// moreRestrictive reports whether r per t leaves less room than r0 per t0.
func moreRestrictive(r, t, r0, t0 float64) bool {
	if r == 0 || r0 == 0 {
		return r == 0 && (r0 != 0 || t > t0)
	}
	return r/t < r0/t0
}

// parseRateLimitPolicy reads a RateLimit-Policy field and returns the
// most restrictive quota in it, per second, or 0. It accepts
//
//	"default";q=100;w=60   (draft 08 and later)
//	100;w=60               (earlier drafts)
func parseRateLimitPolicy(v string) float64 {
	best := 0.0
	for member := range strings.SplitSeq(v, ",") {
		q, w := -1.0, -1.0
		for i, param := range enumerate(strings.SplitSeq(member, ";")) {
			param = strings.TrimSpace(param)
			k, val, ok := strings.Cut(param, "=")
			switch {
			case !ok && i == 0:
				q = parseNumber(param) // the older "100;w=60"
			case ok && strings.TrimSpace(k) == "q":
				q = parseNumber(val)
			case ok && strings.TrimSpace(k) == "w":
				w = parseNumber(val)
			}
		}
		if q > 0 && w > 0 && (best == 0 || q/w < best) {
			best = q / w
		}
	}
	return best
}

// enumerate numbers the values of a sequence.
func enumerate(seq func(func(string) bool)) func(func(int, string) bool) {
	return func(yield func(int, string) bool) {
		i := 0
		for v := range seq {
			if !yield(i, v) {
				return
			}
			i++
		}
	}
}
