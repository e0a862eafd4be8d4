package connmgr

import (
	"container/heap"
	"math/rand/v2"
	"sync/atomic"
)

// roundRobin is the round_robin balancer: each upstream in turn. Its
// counter lives in the builder, so a rebuilt picker carries on where the
// last one stopped.
type roundRobin struct {
	env  *lbEnv
	next atomic.Uint64
}

func (b *roundRobin) Build(ups []*Upstream) Picker {
	return &rrPicker{ups: ups, next: &b.next, env: b.env, ramp: b.env.ramping(ups)}
}

type rrPicker struct {
	ups  []*Upstream
	next *atomic.Uint64
	env  *lbEnv
	ramp bool
}

func (p *rrPicker) Pick(info PickInfo) (PickResult, error) {
	n := uint64(len(p.ups))
	if n == 0 {
		return PickResult{}, ErrNoHealthyUpstream
	}
	i := p.next.Add(1) - 1
	u := p.ups[i%n]
	if p.ramp && !p.env.admitRamp(u) {
		i = p.next.Add(1) - 1
		u = p.ups[i%n]
	}
	if len(info.Tried) > 0 && tried(info.Tried, u) {
		u = firstUntried(p.ups, int(i%n), info.Tried)
	}
	return PickResult{Upstream: u}, nil
}

// randomBalancer is the random balancer: uniform, ignoring weights.
type randomBalancer struct{ env *lbEnv }

func (b *randomBalancer) Build(ups []*Upstream) Picker {
	return &randomPicker{ups: ups, env: b.env, ramp: b.env.ramping(ups)}
}

type randomPicker struct {
	ups  []*Upstream
	env  *lbEnv
	ramp bool
}

func (p *randomPicker) Pick(info PickInfo) (PickResult, error) {
	n := len(p.ups)
	if n == 0 {
		return PickResult{}, ErrNoHealthyUpstream
	}
	i := rand.IntN(n)
	u := p.ups[i]
	if p.ramp && !p.env.admitRamp(u) {
		i = rand.IntN(n)
		u = p.ups[i]
	}
	if len(info.Tried) > 0 && tried(info.Tried, u) {
		u = firstUntried(p.ups, i, info.Tried)
	}
	return PickResult{Upstream: u}, nil
}

// maxSchedule bounds the weighted round-robin schedule; larger weight
// totals are scaled down to it (each upstream keeps at least 1).
const maxSchedule = 1 << 16

// weightedRoundRobin is the weighted_round_robin balancer. Build lays
// out one period of an earliest-deadline-first schedule (Envoy's EDF,
// as smooth as nginx's: the heaviest upstream's turns are spread out,
// never bunched); Pick walks it with one atomic counter, so a pick is
// O(1) however many upstreams there are.
type weightedRoundRobin struct {
	env  *lbEnv
	next atomic.Uint64
}

func (b *weightedRoundRobin) Build(ups []*Upstream) Picker {
	return &wrrPicker{ups: ups, sched: edfSchedule(ups), next: &b.next, env: b.env, ramp: b.env.ramping(ups)}
}

type wrrPicker struct {
	ups   []*Upstream
	sched []uint32 // indexes into ups, one period
	next  *atomic.Uint64
	env   *lbEnv
	ramp  bool
}

func (p *wrrPicker) Pick(info PickInfo) (PickResult, error) {
	n := uint64(len(p.sched))
	if n == 0 {
		return PickResult{}, ErrNoHealthyUpstream
	}
	i := p.sched[(p.next.Add(1)-1)%n]
	u := p.ups[i]
	if p.ramp && !p.env.admitRamp(u) {
		i = p.sched[(p.next.Add(1)-1)%n]
		u = p.ups[i]
	}
	if len(info.Tried) > 0 && tried(info.Tried, u) {
		u = firstUntried(p.ups, int(i), info.Tried)
	}
	return PickResult{Upstream: u}, nil
}

// edfSchedule returns one period of the EDF order of ups by weight:
// upstream i appears w_i times (weights divided by their greatest common
// divisor, and scaled to maxSchedule in all when larger).
func edfSchedule(ups []*Upstream) []uint32 {
	if len(ups) == 0 {
		return nil
	}
	w := make([]int, len(ups))
	g, total := 0, 0
	for i, u := range ups {
		w[i] = max(u.Weight, 1)
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxSchedule {
		scaled := 0
		for i := range w {
			w[i] = max(int(int64(w[i])*maxSchedule/int64(total)), 1)
			scaled += w[i]
		}
		total = scaled
	}
	h := make(edfHeap, len(ups))
	for i := range h {
		h[i] = edfEntry{idx: uint32(i), weight: w[i], turn: 1, deadline: 1 / float64(w[i])}
	}
	heap.Init(&h)
	out := make([]uint32, 0, total)
	for len(out) < total {
		e := &h[0]
		out = append(out, e.idx)
		e.turn++
		e.deadline = float64(e.turn) / float64(e.weight)
		heap.Fix(&h, 0)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type edfEntry struct {
	idx      uint32
	weight   int
	turn     int
	deadline float64
}

type edfHeap []edfEntry

func (h edfHeap) Len() int { return len(h) }
func (h edfHeap) Less(i, j int) bool {
	if h[i].deadline != h[j].deadline {
		return h[i].deadline < h[j].deadline
	}
	return h[i].idx < h[j].idx
}
func (h edfHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *edfHeap) Push(x any)   { *h = append(*h, x.(edfEntry)) }
func (h *edfHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
