package connmgr

import (
	"container/heap"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pickN(t testing.TB, p Picker, n int, info PickInfo) map[*Upstream]int {
	got := map[*Upstream]int{}
	for i := 0; i < n; i++ {
		res, err := p.Pick(info)
		require.NoError(t, err)
		got[res.Upstream]++
	}
	return got
}

func TestRoundRobinVisitsEachInTurn(t *testing.T) {
	ups := testUpstreams(3)
	p := (&roundRobin{env: newLBEnv(nil, 0)}).Build(ups)
	for i := 0; i < 9; i++ {
		res, err := p.Pick(PickInfo{})
		require.NoError(t, err)
		assert.Same(t, ups[i%3], res.Upstream, "pick %d", i)
	}
}

func TestWeightedRoundRobinMatchesWeightsAndIsSmooth(t *testing.T) {
	ups := testUpstreams(4)
	weights := []int{5, 3, 1, 1}
	for i, w := range weights {
		ups[i].Weight = w
	}
	p := (&weightedRoundRobin{env: newLBEnv(nil, 0)}).Build(ups)
	const n = 10000
	var seq []*Upstream
	got := map[*Upstream]int{}
	for i := 0; i < n; i++ {
		res, err := p.Pick(PickInfo{})
		require.NoError(t, err)
		got[res.Upstream]++
		seq = append(seq, res.Upstream)
	}
	for i, w := range weights {
		want := float64(n) * float64(w) / 10
		assert.InDelta(t, want, float64(got[ups[i]]), want*0.01, "upstream %d (weight %d)", i, w)
	}
	// Smooth: the heaviest (half the weight) never gets more than two
	// turns in a row.
	run, longest := 0, 0
	for _, u := range seq {
		if u == ups[0] {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	assert.LessOrEqual(t, longest, 2, "longest run of the heaviest upstream")
}

func TestWeightedScheduleScalesLargeTotals(t *testing.T) {
	ups := testUpstreams(1000)
	for i, u := range ups {
		u.Weight = 100 + i%7 // total ~103,000 > maxSchedule
	}
	sched := edfSchedule(ups)
	assert.LessOrEqual(t, len(sched), maxSchedule+len(ups))
	count := make([]int, len(ups))
	for _, i := range sched {
		count[i]++
	}
	for i := range ups {
		assert.Positive(t, count[i], "upstream %d has turns", i)
	}
}

func TestBalancersPreferAnUpstreamNotTried(t *testing.T) {
	for _, name := range builtinBalancers {
		t.Run(name, func(t *testing.T) {
			s := testSet(3, name, EndpointConfig{}, newFakeClock())
			defer s.close()
			ups := s.members()
			req, _ := http.NewRequest("GET", "http://svc/a", nil)
			for i := 0; i < 200; i++ {
				res, err := s.pick(PickInfo{Request: req, Tried: ups[:2]})
				require.NoError(t, err)
				require.Same(t, ups[2], res.Upstream, "pick %d went to a tried upstream", i)
				s.done(res, Outcome{StatusCode: 200, Latency: time.Millisecond})
			}
			// Every upstream tried: a pick still answers.
			res, err := s.pick(PickInfo{Request: req, Tried: ups})
			require.NoError(t, err)
			assert.NotNil(t, res.Upstream)
			s.done(res, Outcome{Ignored: true})
		})
	}
}

func TestLeastRequestAvoidsBusyUpstreams(t *testing.T) {
	ups := testUpstreams(2)
	ups[0].load.inFlight.Store(10)
	got := pickN(t, (&leastRequest{env: newLBEnv(nil, 0)}).Build(ups), 1000, PickInfo{})
	assert.Equal(t, 1000, got[ups[1]])
}

// event is one simulated request finishing.
type simEvent struct {
	at  time.Time
	res PickResult
	lat time.Duration
}

type simQueue []simEvent

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simulate runs picks requests through s with concurrency requests in
// flight, each taking latency(upstream) in fake time, and counts picks.
func simulate(t *testing.T, s *upstreamSet, clk *fakeClock, picks, concurrency int, latency func(*Upstream) time.Duration) map[*Upstream]int {
	got := map[*Upstream]int{}
	var q simQueue
	start := func() {
		res, err := s.pick(PickInfo{})
		require.NoError(t, err)
		got[res.Upstream]++
		lat := latency(res.Upstream)
		heap.Push(&q, simEvent{at: clk.Now().Add(lat), res: res, lat: lat})
	}
	for i := 0; i < concurrency; i++ {
		start()
	}
	for n := concurrency; n < picks; n++ {
		e := heap.Pop(&q).(simEvent)
		clk.Advance(e.at.Sub(clk.Now()))
		s.done(e.res, Outcome{StatusCode: 200, Latency: e.lat})
		start()
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		s.done(e.res, Outcome{StatusCode: 200, Latency: e.lat})
	}
	return got
}

func TestP2CEWMASendsLittleToASlowUpstream(t *testing.T) {
	for _, concurrency := range []int{1, 10, 50} {
		t.Run(strconv.Itoa(concurrency), func(t *testing.T) {
			clk := newFakeClock()
			s := testSet(5, BalancerP2CEWMA, EndpointConfig{}, clk)
			defer s.close()
			slow := s.members()[2]
			got := simulate(t, s, clk, 10000, concurrency, func(u *Upstream) time.Duration {
				if u == slow {
					return 100 * time.Millisecond
				}
				return 10 * time.Millisecond
			})
			share := float64(got[slow]) / 10000
			t.Logf("slow upstream share: %.2f%%", share*100)
			assert.LessOrEqual(t, share, 0.05, "share of a 10x slower upstream")
			assert.Positive(t, got[slow], "the slow upstream is still probed")
		})
	}
}

func TestRoundRobinDoesNotAvoidASlowUpstream(t *testing.T) {
	// The contrast that makes the p2c_ewma test meaningful.
	clk := newFakeClock()
	s := testSet(5, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	slow := s.members()[2]
	got := simulate(t, s, clk, 10000, 10, func(u *Upstream) time.Duration {
		if u == slow {
			return 100 * time.Millisecond
		}
		return 10 * time.Millisecond
	})
	assert.InDelta(t, 2000, got[slow], 10)
}

func hashRequest(key string) *http.Request {
	r, _ := http.NewRequest("GET", "http://svc/x", nil)
	r.Header.Set("X-User-ID", key)
	return r
}

func TestConsistentHashMovesAboutOneNthOfKeys(t *testing.T) {
	const n, keys = 10, 20000
	ups := testUpstreams(n)
	key, err := parseHashKey("header:X-User-ID")
	require.NoError(t, err)
	b := &consistentHash{env: newLBEnv(nil, 0), key: key}
	before := b.Build(ups)
	after := b.Build(append(append([]*Upstream(nil), ups[:3]...), ups[4:]...)) // ups[3] leaves
	moved, held := 0, 0
	for i := 0; i < keys; i++ {
		info := PickInfo{Request: hashRequest("user-" + strconv.Itoa(i))}
		r1, _ := before.Pick(info)
		r2, _ := after.Pick(info)
		if r1.Upstream == ups[3] {
			held++
		}
		if r1.Upstream != r2.Upstream {
			moved++
			assert.Same(t, ups[3], r1.Upstream, "only keys of the upstream that left move")
		}
	}
	frac := float64(moved) / keys
	t.Logf("moved %.2f%% of keys (1/N = %.2f%%)", frac*100, 100.0/n)
	assert.Equal(t, held, moved)
	assert.LessOrEqual(t, frac, 1.3/n)
	// Same key, same upstream.
	r1, _ := after.Pick(PickInfo{Request: hashRequest("alice")})
	r2, _ := after.Pick(PickInfo{Request: hashRequest("alice")})
	assert.Same(t, r1.Upstream, r2.Upstream)
}

func TestConsistentHashBoundedLoad(t *testing.T) {
	// One hot key held in flight: the upstreams it spills to stay within
	// 1.25x the mean in-flight load (rounded up).
	s := testSet(8, BalancerConsistentHash, EndpointConfig{HashKey: "header:X-User-ID"}, newFakeClock())
	defer s.close()
	var held []PickResult
	const inflight = 400
	for i := 0; i < inflight; i++ {
		k := "hot"
		if i%4 == 0 {
			k = "user-" + strconv.Itoa(i)
		}
		res, err := s.pick(PickInfo{Request: hashRequest(k)})
		require.NoError(t, err)
		held = append(held, res)
	}
	mean := float64(inflight) / 8
	for _, u := range s.members() {
		assert.LessOrEqual(t, float64(u.load.inFlight.Load()), math.Ceil(1.25*mean), "in flight on %s", u.load.key)
	}
	for _, r := range held {
		s.done(r, Outcome{StatusCode: 200})
	}
}

func TestHashKeyForms(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://svc/p/q?a=1&user=bob&z=2", nil)
	r.Header.Set("X-User-ID", "u1")
	r.Header.Add("Cookie", "theme=dark; session=abc123")
	for _, tc := range []struct{ spec, want string }{
		{"header:x-user-id", "u1"}, {"cookie:session", "abc123"}, {"query:user", "bob"}, {"path", "/p/q"}, {"", "/p/q"},
	} {
		k, err := parseHashKey(tc.spec)
		require.NoError(t, err, tc.spec)
		got, ok := k.value(r)
		assert.True(t, ok, tc.spec)
		assert.Equal(t, tc.want, got, tc.spec)
	}
	for _, bad := range []string{"header:", "body:x", "cookie", "header:bad name"} {
		_, err := parseHashKey(bad)
		assert.Error(t, err, bad)
	}
	k, _ := parseHashKey("cookie:missing")
	_, ok := k.value(r)
	assert.False(t, ok)
}

func TestPickDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, n := range []int{5, 1000} {
		for _, name := range builtinBalancers {
			s := testSet(n, name, EndpointConfig{HashKey: "header:X-User-ID"}, newFakeClock())
			info := PickInfo{Request: hashRequest("alice")}
			allocs := testing.AllocsPerRun(1000, func() {
				res, _ := s.pick(info)
				s.done(res, Outcome{StatusCode: 200, Latency: time.Millisecond})
			})
			assert.Zero(t, allocs, "%s at %d upstreams", name, n)
			s.close()
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{5, 1000} {
		for _, name := range builtinBalancers {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				s := testSet(n, name, EndpointConfig{HashKey: "header:X-User-ID"}, newFakeClock())
				s.env.clk = realClock{}
				defer s.close()
				p := s.picker.Load().p
				info := PickInfo{Request: hashRequest("alice")}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := p.Pick(info); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

func TestCustomBalancerIsGuarded(t *testing.T) {
	var dones []Outcome
	first := BalancerBuilderFunc(func(ups []*Upstream) Picker {
		return PickerFunc(func(info PickInfo) (PickResult, error) {
			if info.Endpoint == "panic" {
				panic("picker bug")
			}
			return PickResult{Upstream: ups[len(ups)-1], Done: func(o Outcome) { dones = append(dones, o) }}, nil
		})
	})
	c := inherit(EndpointConfig{}, builtinDefaults())
	s := newUpstreamSet("svc", c, first, newFakeClock(), nil)
	defer s.close()
	s.setMembers([]memberSpec{{url: mustURL("http://a:80")}, {url: mustURL("http://b:80")}}, nil)

	res, err := s.Pick(PickInfo{})
	require.NoError(t, err)
	assert.Equal(t, "http://b:80", res.Upstream.load.key)
	assert.EqualValues(t, 1, res.Upstream.load.inFlight.Load())
	res.Done(Outcome{StatusCode: 200, Latency: time.Millisecond})
	assert.Len(t, dones, 1, "the picker's own Done is called too")
	assert.Zero(t, res.Upstream.load.inFlight.Load())

	_, err = s.Pick(PickInfo{Endpoint: "panic"})
	require.ErrorIs(t, err, ErrNoHealthyUpstream)
	assert.Contains(t, err.Error(), "balancer panicked")

	// A Build that panics leaves no picker: calls fail, nothing crashes.
	bad := newUpstreamSet("svc", c, BalancerBuilderFunc(func([]*Upstream) Picker { panic("build bug") }), newFakeClock(), nil)
	defer bad.close()
	bad.setMembers([]memberSpec{{url: mustURL("http://a:80")}}, nil)
	_, err = bad.Pick(PickInfo{})
	assert.ErrorIs(t, err, ErrNoHealthyUpstream)
}

func TestWeightedConsistentHashShares(t *testing.T) {
	ups := testUpstreams(3)
	ups[0].Weight = 2
	key, _ := parseHashKey("query:k")
	p := (&consistentHash{env: newLBEnv(nil, 0), key: key}).Build(ups)
	got := map[*Upstream]int{}
	for i := 0; i < 20000; i++ {
		r, _ := http.NewRequest("GET", "http://svc/?k="+strconv.Itoa(i), nil)
		res, err := p.Pick(PickInfo{Request: r})
		require.NoError(t, err)
		got[res.Upstream]++
	}
	assert.InDelta(t, 10000, got[ups[0]], 1000, "weight 2 of 4 holds about half the keys")
}

// BenchmarkPickAndDone is a whole pick through the upstream set (in
// flight, breaker check) and its Done (latency, outlier detection).
func BenchmarkPickAndDone(b *testing.B) {
	for _, n := range []int{5, 1000} {
		for _, name := range []string{BalancerRoundRobin, BalancerP2CEWMA} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				s := testSet(n, name, EndpointConfig{}, newFakeClock())
				s.env = newLBEnv(realClock{}, 0)
				s.builder = builtinBuilder(name, hashKey{}, s.env)
				s.setMembers(nil, nil)
				specs := make([]memberSpec, n)
				for i := range specs {
					specs[i] = memberSpec{url: mustURL(fmt.Sprintf("http://10.1.%d.%d:80", i/250, i%250))}
				}
				s.setMembers(specs, nil)
				defer s.close()
				o := Outcome{StatusCode: 200, Latency: time.Millisecond}
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					res, err := s.Pick(PickInfo{})
					if err != nil {
						b.Fatal(err)
					}
					res.Done(o)
				}
			})
		}
	}
}
