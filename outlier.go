package connmgr

import (
	"sync/atomic"
	"time"
)

// OutlierConfig is passive outlier detection (Envoy's): an upstream
// whose calls keep failing is ejected from the balancer for a while,
// base_ejection_time × the times it was ejected, capped at
// max_ejection_time. At most max_ejection_percent of the upstreams are
// out at once, and at least one may always be. On by default for
// endpoints with upstreams.
type OutlierConfig struct {
	// Consecutive5xx ejects after this many 5xx answers or transport
	// failures in a row. 0 inherits; default 5; negative turns this
	// check off.
	Consecutive5xx int `yaml:"consecutive_5xx,omitempty" json:"consecutive_5xx,omitempty"`
	// ConsecutiveGatewayFailure ejects after this many 502, 503, 504 or
	// transport failures (refused, reset, timed out) in a row. 0
	// inherits; default 5; negative turns this check off.
	ConsecutiveGatewayFailure int `yaml:"consecutive_gateway_failure,omitempty" json:"consecutive_gateway_failure,omitempty"`
	// BaseEjectionTime is how long a first ejection lasts; the n-th in a
	// row lasts n times as long. 0 inherits; default 30s.
	BaseEjectionTime time.Duration `yaml:"base_ejection_time,omitempty" json:"base_ejection_time,omitempty"`
	// MaxEjectionTime caps one ejection. 0 inherits; default 300s.
	MaxEjectionTime time.Duration `yaml:"max_ejection_time,omitempty" json:"max_ejection_time,omitempty"`
	// MaxEjectionPercent caps the share of upstreams ejected at once; one
	// upstream may always be ejected. 0 inherits; default 10.
	MaxEjectionPercent int `yaml:"max_ejection_percent,omitempty" json:"max_ejection_percent,omitempty"`
	// Disabled switches outlier detection off for this endpoint.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

func outlierDefaults() OutlierConfig {
	return OutlierConfig{
		Consecutive5xx:            5,
		ConsecutiveGatewayFailure: 5,
		BaseEjectionTime:          30 * time.Second,
		MaxEjectionTime:           300 * time.Second,
		MaxEjectionPercent:        10,
		Disabled:                  Bool(false),
	}
}

func validateOutlier(p *problems, path string, c OutlierConfig) {
	nonNegative(p, path+".base_ejection_time", c.BaseEjectionTime)
	nonNegative(p, path+".max_ejection_time", c.MaxEjectionTime)
	if c.MaxEjectionPercent < 0 || c.MaxEjectionPercent > 100 {
		p.add(path+".max_ejection_percent", "must be 0..100, got %d", c.MaxEjectionPercent)
	}
}

// outlierPolicy is an endpoint's resolved OutlierConfig.
type outlierPolicy struct {
	on        bool
	c5xx      int32 // 0: check off
	gateway   int32 // 0: check off
	base, max time.Duration
	percent   int
}

func newOutlierPolicy(c OutlierConfig) outlierPolicy {
	if c.Disabled != nil && *c.Disabled {
		return outlierPolicy{}
	}
	p := outlierPolicy{on: true, base: c.BaseEjectionTime, max: max(c.MaxEjectionTime, c.BaseEjectionTime), percent: c.MaxEjectionPercent}
	if c.Consecutive5xx > 0 {
		p.c5xx = int32(c.Consecutive5xx)
	}
	if c.ConsecutiveGatewayFailure > 0 {
		p.gateway = int32(c.ConsecutiveGatewayFailure)
	}
	p.on = p.c5xx > 0 || p.gateway > 0
	return p
}

// outlierState is one upstream's outlier record. The counters are
// atomics so a success costs no lock; the rest is guarded by the
// upstreamSet's mu.
type outlierState struct {
	consec5xx     atomic.Int32
	consecGateway atomic.Int32

	ejected   bool
	until     time.Time // end of the current ejection
	times     int       // ejections in a row, for the multiplier
	returned  time.Time // when the last ejection ended
	ejections uint64    // all ejections, for Stats
	timer     stopper
}

// record folds one attempt's outcome into st and reports whether the
// upstream crossed a threshold and should be ejected now.
func (p *outlierPolicy) record(st *outlierState, o Outcome) bool {
	if !p.on || o.Ignored {
		return false
	}
	fivexx, gateway := false, false
	switch {
	case o.StatusCode == 0 && o.Err != nil:
		fivexx, gateway = true, true // a locally seen failure counts as a 503
	case o.StatusCode >= 500:
		fivexx = true
		gateway = o.StatusCode == 502 || o.StatusCode == 503 || o.StatusCode == 504
	}
	if !fivexx {
		if st.consec5xx.Load() != 0 {
			st.consec5xx.Store(0)
		}
		if st.consecGateway.Load() != 0 {
			st.consecGateway.Store(0)
		}
		return false
	}
	eject := false
	if n := st.consec5xx.Add(1); p.c5xx > 0 && n >= p.c5xx {
		eject = true
	}
	if gateway {
		if n := st.consecGateway.Add(1); p.gateway > 0 && n >= p.gateway {
			eject = true
		}
	} else if st.consecGateway.Load() != 0 {
		st.consecGateway.Store(0)
	}
	return eject
}

// maxEjected is how many of total upstreams may be ejected at once:
// max_ejection_percent of them, and never fewer than one.
func (p *outlierPolicy) maxEjected(total int) int {
	return max(total*p.percent/100, 1)
}

// ejectionTime returns how long an ejection starting now lasts, and
// counts it in st: base × the times ejected in a row, capped. Each base
// ejection time the upstream stayed in since it last returned takes one
// off the multiplier, so an upstream that recovered for good starts over.
func (p *outlierPolicy) ejectionTime(st *outlierState, now time.Time) time.Duration {
	if st.times > 0 && !st.returned.IsZero() && p.base > 0 {
		st.times -= int(now.Sub(st.returned) / p.base)
		st.times = max(st.times, 0)
	}
	st.times++
	d := time.Duration(st.times) * p.base
	if d > p.max || d < 0 {
		d = p.max
	}
	return d
}
