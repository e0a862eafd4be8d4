package connmgr

import "time"

// setMembers makes specs the members. An upstream that stays (same
// scheme and authority, weight and host) keeps its object and state; one
// that joins after the first round ramps up under slow start; one that
// leaves has its timer stopped. carry, when not nil, is the set this one
// replaces on Reload: its upstreams' history (counts, latency, ejection,
// health) is carried over. Calls are serialized by the caller (the build,
// then the discoverer's goroutine).
func (s *upstreamSet) setMembers(specs []memberSpec, carry *upstreamSet) {
	var prev map[string]carried
	if carry != nil {
		prev = carry.export()
	}
	current := s.snapshotByKey()
	// New upstream objects are made, and given their breakers (which may
	// call a user's BreakerFactory), outside the lock.
	fresh := make([]*Upstream, len(specs))
	for i, sp := range specs {
		u := newUpstream(sp.url, sp.weight, sp.host)
		if o := current[u.load.key]; o != nil && o.Weight == u.Weight && o.load.host == u.load.host {
			continue
		}
		u.load.settle = func(o Outcome) { s.done(PickResult{Upstream: u}, o) }
		if s.guard != nil {
			s.guard(u)
		}
		fresh[i] = u
	}

	now := s.env.clk.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	old := make(map[string]*Upstream, len(s.all))
	for _, u := range s.all {
		old[u.load.key] = u
	}
	initial := len(s.all) == 0 && s.gen == 0
	next := make([]*Upstream, 0, len(specs))
	for i, sp := range specs {
		u := fresh[i]
		if u == nil {
			key := newUpstream(sp.url, sp.weight, sp.host).load.key
			u = old[key]
			delete(old, key)
			next = append(next, u)
			continue
		}
		if o := old[u.load.key]; o != nil {
			s.carryLocked(u, o.load.exportLocked(), now)
			delete(old, u.load.key)
		} else if p, ok := prev[u.load.key]; ok {
			s.carryLocked(u, p, now)
		} else if !initial && s.env.slowStart > 0 {
			u.load.slowStartFrom.Store(s.env.now() | 1)
		}
		next = append(next, u)
	}
	for _, u := range old {
		if u.load.outlier.timer != nil {
			u.load.outlier.timer.Stop()
		}
	}
	s.all = next
	s.changedLocked()
}

// snapshotByKey returns the members by key.
func (s *upstreamSet) snapshotByKey() map[string]*Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]*Upstream, len(s.all))
	for _, u := range s.all {
		m[u.load.key] = u
	}
	return m
}

// carried is the history of an upstream, handed from one set to the
// next on Reload.
type carried struct {
	requests, failures   uint64
	ewmaBits             uint64
	ewmaStamp, slowStart int64
	health               healthState
	consec5xx, consecGw  int32
	times                int
	returned, until      time.Time
	ejections            uint64
	ejected              bool
}

// export returns the members' history by key.
func (s *upstreamSet) export() map[string]carried {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]carried, len(s.all))
	for _, u := range s.all {
		m[u.load.key] = u.load.exportLocked()
	}
	return m
}

// exportLocked returns l's history (requires the owning set's mu).
func (l *upstreamLoad) exportLocked() carried {
	o := &l.outlier
	return carried{
		requests: l.requests.Load(), failures: l.failures.Load(),
		ewmaBits: l.ewmaBits.Load(), ewmaStamp: l.ewmaStamp.Load(), slowStart: l.slowStartFrom.Load(),
		health: l.health, consec5xx: o.consec5xx.Load(), consecGw: o.consecGateway.Load(),
		times: o.times, returned: o.returned, until: o.until, ejections: o.ejections, ejected: o.ejected,
	}
}

// carryLocked gives u the history c (requires s.mu). Requests in flight
// stay counted where they started, and settle there.
func (s *upstreamSet) carryLocked(u *Upstream, c carried, now time.Time) {
	u.load.requests.Store(c.requests)
	u.load.failures.Store(c.failures)
	u.load.ewmaBits.Store(c.ewmaBits)
	u.load.ewmaStamp.Store(c.ewmaStamp)
	u.load.slowStartFrom.Store(c.slowStart)
	u.load.health = c.health
	uo := &u.load.outlier
	uo.consec5xx.Store(c.consec5xx)
	uo.consecGateway.Store(c.consecGw)
	uo.times, uo.returned, uo.ejections = c.times, c.returned, c.ejections
	if c.ejected && c.until.After(now) {
		uo.ejected, uo.until = true, c.until
		s.armReturnLocked(u, c.until.Sub(now))
	}
}
