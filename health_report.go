package connmgr

import "time"

// HealthReport is the health of every load-balanced endpoint of a
// Manager (m.Health()), as the Go seed's monitor gives it
// (GetAllStatus, GetOverallHealth).
type HealthReport struct {
	// Overall is healthy when every endpoint is, unhealthy when one has
	// no upstream that can take calls, degraded otherwise, and unknown
	// when nothing has been checked yet (or there are no upstreams).
	Overall HealthStatus `json:"overall"`
	// Endpoints maps each endpoint with upstreams to its health.
	Endpoints map[string]EndpointHealth `json:"endpoints"`
}

// EndpointHealth is one logical endpoint's health.
type EndpointHealth struct {
	// Status is healthy when every upstream can take calls and the
	// checked ones passed, unhealthy when none can, degraded otherwise.
	Status HealthStatus `json:"status"`
	// Usable counts the upstreams that can take calls (not ejected, not
	// unhealthy); Total counts them all.
	Usable int `json:"usable"`
	Total  int `json:"total"`
	// Panic is set while too few are usable (below panic_threshold) and
	// the balancer uses them all.
	Panic bool `json:"panic"`
	// Discovery is the last DNS discovery problem ("" when fine); the
	// last good set is kept meanwhile.
	Discovery string `json:"discovery,omitempty"`
	// Upstreams are in config (or resolution) order.
	Upstreams []UpstreamHealth `json:"upstreams"`
}

// UpstreamHealth is one upstream's health.
type UpstreamHealth struct {
	// Upstream is the scheme and authority; Host the logical host a
	// discovered address serves ("" otherwise).
	Upstream string `json:"upstream"`
	Host     string `json:"host,omitempty"`
	// Status is from the active health check (unknown without one).
	Status HealthStatus `json:"status"`
	// LastCheck and LastError are from the last health check.
	LastCheck time.Time `json:"last_check,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Ejected is set while outlier detection holds it out, until
	// EjectedUntil.
	Ejected      bool      `json:"ejected"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
}

// UpstreamStats is one upstream's share of an endpoint's traffic, in
// EndpointStats.Upstreams.
type UpstreamStats struct {
	Upstream string `json:"upstream"`
	// Requests are the attempts sent to it; Failures those that failed
	// (transport errors and 5xx); InFlight those not settled yet.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	InFlight int64  `json:"in_flight"`
	// Latency is the peak-EWMA latency estimate (nanoseconds in JSON).
	Latency time.Duration `json:"latency_ewma_ns"`
	// Health is the active check's verdict; Ejected and Ejections are
	// outlier detection's.
	Health    HealthStatus `json:"health"`
	Ejected   bool         `json:"ejected"`
	Ejections uint64       `json:"ejections"`
	// Breaker is the state of its circuit breaker ("" when off).
	Breaker string `json:"breaker,omitempty"`
}

// report returns the set's health.
func (s *upstreamSet) report() EndpointHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	eh := EndpointHealth{Total: len(s.all), Discovery: s.discoveryErr, Upstreams: make([]UpstreamHealth, 0, len(s.all))}
	if st := s.picker.Load(); st != nil {
		eh.Panic = st.panic
	}
	allHealthy, anyKnown := true, false
	for _, u := range s.all {
		h := u.load.health
		o := &u.load.outlier
		uh := UpstreamHealth{Upstream: u.load.key, Host: u.load.host, Status: h.status, LastCheck: h.lastCheck,
			LastError: h.lastErr, Ejected: o.ejected}
		if o.ejected {
			uh.EjectedUntil = o.until
		}
		eh.Upstreams = append(eh.Upstreams, uh)
		if usableLocked(u) {
			eh.Usable++
		}
		if h.status != HealthUnknown {
			anyKnown = true
		}
		if o.ejected || (h.status != HealthHealthy && h.status != HealthUnknown) {
			allHealthy = false
		}
	}
	switch {
	case eh.Usable == 0:
		eh.Status = HealthUnhealthy
	case !allHealthy || s.discoveryErr != "":
		eh.Status = HealthDegraded
	case anyKnown:
		eh.Status = HealthHealthy
	default:
		eh.Status = HealthUnknown
	}
	return eh
}

// overallHealth combines the endpoints' statuses: the worst wins, and
// unknown only when nothing is known.
func overallHealth(eps map[string]EndpointHealth) HealthStatus {
	out := HealthUnknown
	for _, e := range eps {
		switch {
		case e.Status == HealthUnhealthy:
			return HealthUnhealthy
		case e.Status == HealthDegraded:
			out = HealthDegraded
		case e.Status == HealthHealthy && out == HealthUnknown:
			out = HealthHealthy
		}
	}
	return out
}

// stats returns each upstream's counters. breaker names a member's
// breaker state ("" when it has none).
func (s *upstreamSet) stats(breaker func(*Upstream) string) []UpstreamStats {
	s.mu.Lock()
	ups := append([]*Upstream(nil), s.all...)
	out := make([]UpstreamStats, len(ups))
	for i, u := range ups {
		out[i] = UpstreamStats{
			Upstream: u.load.key, Requests: u.load.requests.Load(), Failures: u.load.failures.Load(),
			InFlight: u.load.inFlight.Load(), Latency: u.load.ewma(), Health: u.load.health.status,
			Ejected: u.load.outlier.ejected, Ejections: u.load.outlier.ejections,
		}
	}
	s.mu.Unlock()
	if breaker != nil {
		for i, u := range ups {
			out[i].Breaker = breaker(u)
		}
	}
	return out
}
