package connmgr

import "math/rand/v2"

// leastRequest is the least_request balancer: the power of two choices
// (Mitzenmacher). Two distinct upstreams are drawn at random and the one
// with fewer requests in flight wins: nearly as good as scanning them
// all, at O(1).
type leastRequest struct{ env *lbEnv }

func (b *leastRequest) Build(ups []*Upstream) Picker {
	return &p2cPicker{ups: ups, env: b.env, ramp: b.env.ramping(ups)}
}

// p2cEWMA is the p2c_ewma balancer (Finagle's peak EWMA): two draws, and
// the upstream with the lower latency estimate × (in flight + 1) wins. A
// latency spike counts at once; recovery is averaged in; an idle
// upstream's estimate decays, so a slow one is probed again in time.
type p2cEWMA struct{ env *lbEnv }

func (b *p2cEWMA) Build(ups []*Upstream) Picker {
	return &p2cPicker{ups: ups, env: b.env, ramp: b.env.ramping(ups), ewma: true}
}

type p2cPicker struct {
	ups  []*Upstream
	env  *lbEnv
	ramp bool
	ewma bool
}

func (p *p2cPicker) Pick(info PickInfo) (PickResult, error) {
	n := len(p.ups)
	switch n {
	case 0:
		return PickResult{}, ErrNoHealthyUpstream
	case 1:
		return PickResult{Upstream: p.ups[0]}, nil
	}
	a := rand.IntN(n)
	b := rand.IntN(n - 1)
	if b >= a {
		b++
	}
	ua, ub := p.ups[a], p.ups[b]
	if p.ramp {
		// A ramping upstream takes part in the draw only in its share.
		if !p.env.admitRamp(ua) {
			return p.settle(ub, ua, b, info), nil
		}
		if !p.env.admitRamp(ub) {
			return p.settle(ua, ub, a, info), nil
		}
	}
	if p.better(ub, ua) {
		return p.settle(ub, ua, b, info), nil
	}
	return p.settle(ua, ub, a, info), nil
}

// better reports whether x should win the draw against y.
func (p *p2cPicker) better(x, y *Upstream) bool {
	if p.ewma {
		now := p.env.seen.Load()
		return x.load.ewmaCost(now) < y.load.ewmaCost(now)
	}
	return x.load.inFlight.Load() < y.load.inFlight.Load()
}

// settle returns the winner, or on a retry the loser when only the
// winner was tried, else any upstream not tried yet.
func (p *p2cPicker) settle(win, lose *Upstream, at int, info PickInfo) PickResult {
	if len(info.Tried) == 0 || !tried(info.Tried, win) {
		return PickResult{Upstream: win}
	}
	if !tried(info.Tried, lose) {
		return PickResult{Upstream: lose}
	}
	return PickResult{Upstream: firstUntried(p.ups, at, info.Tried)}
}
