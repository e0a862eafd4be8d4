package connmgr

import (
	"errors"
	"sort"
	"strings"
	"time"
)

// UpstreamProblem says why one upstream could not take a call.
type UpstreamProblem struct {
	// Upstream is the upstream's scheme and authority.
	Upstream string `json:"upstream"`
	// Reason is "ejected until ...", "unhealthy: ...", "circuit open", ...
	Reason string `json:"reason"`
}

// NoHealthyUpstreamError is returned when no upstream of a logical
// endpoint can take a call and it has no fallback. It matches
// ErrNoHealthyUpstream with errors.Is.
type NoHealthyUpstreamError struct {
	Endpoint string
	// Upstreams says why each one is out; empty when there are none
	// (discovery found nothing).
	Upstreams []UpstreamProblem
	// Detail is the balancer's own error, or the discovery problem.
	Detail string
}

func (e *NoHealthyUpstreamError) Error() string {
	var b strings.Builder
	b.WriteString("connmgr: no healthy upstream for ")
	b.WriteString(e.Endpoint)
	if len(e.Upstreams) == 0 {
		b.WriteString(": no upstreams")
	}
	for i, p := range e.Upstreams {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.Upstream)
		b.WriteString(" ")
		b.WriteString(p.Reason)
	}
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoHealthyUpstream) hold.
func (e *NoHealthyUpstreamError) Is(target error) bool { return target == ErrNoHealthyUpstream }

// noUpstream builds the error for a call no upstream could take.
func (s *upstreamSet) noUpstream(cause error) error {
	now := s.env.clk.Now()
	e := &NoHealthyUpstreamError{Endpoint: s.endpoint}
	s.mu.Lock()
	for _, u := range s.all {
		e.Upstreams = append(e.Upstreams, UpstreamProblem{Upstream: u.load.key, Reason: reasonLocked(u, now)})
	}
	e.Detail = s.discoveryErr
	s.mu.Unlock()
	if cause != nil && !errors.Is(cause, ErrNoHealthyUpstream) {
		e.Detail = safeString(cause)
	}
	sort.SliceStable(e.Upstreams, func(i, j int) bool { return e.Upstreams[i].Upstream < e.Upstreams[j].Upstream })
	return e
}

// reasonLocked says why u is out, or that it is usable (requires s.mu).
func reasonLocked(u *Upstream, now time.Time) string {
	switch {
	case u.load.outlier.ejected:
		return "ejected for " + u.load.outlier.until.Sub(now).Round(time.Millisecond).String()
	case u.load.health.status == HealthUnhealthy:
		r := "unhealthy"
		if u.load.health.lastErr != "" {
			r += " (" + u.load.health.lastErr + ")"
		}
		return r
	}
	if refused, wait := breakerRefuses(u, now); refused {
		if wait > 0 {
			return "circuit open (next probe in " + wait.Round(time.Millisecond).String() + ")"
		}
		return "circuit half-open (every probe taken)"
	}
	return "available"
}
