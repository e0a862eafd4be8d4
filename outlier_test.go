package connmgr

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failOn sends n attempts to u (picked until it comes up) with outcome o.
func sendTo(t *testing.T, s *upstreamSet, u *Upstream, n int, o Outcome) {
	t.Helper()
	for sent := 0; sent < n; {
		res, err := s.pick(PickInfo{})
		require.NoError(t, err)
		if res.Upstream == u {
			s.done(res, o)
			sent++
			continue
		}
		s.done(res, Outcome{StatusCode: 200, Latency: time.Millisecond})
	}
}

func ejected(s *upstreamSet, u *Upstream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return u.load.outlier.ejected
}

func picksOf(t *testing.T, s *upstreamSet, n int) map[*Upstream]int {
	got := map[*Upstream]int{}
	for i := 0; i < n; i++ {
		res, err := s.pick(PickInfo{})
		require.NoError(t, err)
		got[res.Upstream]++
		s.done(res, Outcome{Ignored: true})
	}
	return got
}

func TestOutlierEjectionTimeGrowsAndIsCapped(t *testing.T) {
	clk := newFakeClock()
	s := testSet(5, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	bad := s.members()[1]
	refused := Outcome{Err: syscall.ECONNREFUSED}

	// base 30s × times ejected, capped at 300s.
	for i, want := range []time.Duration{30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300} {
		sendTo(t, s, bad, 4, refused)
		require.False(t, ejected(s, bad), "round %d: 4 failures do not eject", i)
		sendTo(t, s, bad, 1, refused)
		require.True(t, ejected(s, bad), "round %d: the 5th does", i)
		assert.Zero(t, picksOf(t, s, 100)[bad], "round %d: an ejected upstream gets no picks", i)
		clk.Advance(want*time.Second - time.Millisecond)
		require.True(t, ejected(s, bad), "round %d: still out just before %v", i, want*time.Second)
		clk.Advance(time.Millisecond)
		require.False(t, ejected(s, bad), "round %d: back after %v", i, want*time.Second)
		assert.Equal(t, 20, picksOf(t, s, 100)[bad], "round %d: back in the rotation", i)
	}
	s.mu.Lock()
	assert.EqualValues(t, 11, bad.load.outlier.ejections)
	s.mu.Unlock()
}

func TestOutlierMultiplierDecaysWhileHealthy(t *testing.T) {
	clk := newFakeClock()
	s := testSet(5, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	bad := s.members()[0]
	five03 := Outcome{StatusCode: 503, Err: errors.New("503")}
	sendTo(t, s, bad, 5, five03)
	clk.Advance(30 * time.Second)
	sendTo(t, s, bad, 5, five03) // second in a row: 60s
	clk.Advance(60 * time.Second)
	clk.Advance(10 * time.Minute) // healthy for a long while
	sendTo(t, s, bad, 5, five03)
	s.mu.Lock()
	left := bad.load.outlier.until.Sub(clk.Now())
	s.mu.Unlock()
	assert.Equal(t, 30*time.Second, left, "after a long healthy spell the multiplier starts over")
}

func TestOutlierSuccessResetsTheCount(t *testing.T) {
	clk := newFakeClock()
	s := testSet(5, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	bad := s.members()[0]
	for i := 0; i < 3; i++ {
		sendTo(t, s, bad, 4, Outcome{StatusCode: 500})
		sendTo(t, s, bad, 1, Outcome{StatusCode: 200})
	}
	assert.False(t, ejected(s, bad))
}

func TestOutlierGatewayAndFiveXXCounters(t *testing.T) {
	cfg := EndpointConfig{OutlierDetection: OutlierConfig{Consecutive5xx: 100, ConsecutiveGatewayFailure: 3}}
	s := testSet(5, BalancerRoundRobin, cfg, newFakeClock())
	defer s.close()
	u := s.members()[0]
	sendTo(t, s, u, 2, Outcome{StatusCode: 502})
	sendTo(t, s, u, 1, Outcome{StatusCode: 500}) // a 5xx but not a gateway failure
	sendTo(t, s, u, 2, Outcome{StatusCode: 504})
	assert.False(t, ejected(s, u), "the 500 broke the run of gateway failures")
	sendTo(t, s, u, 1, Outcome{Err: syscall.ECONNRESET})
	assert.True(t, ejected(s, u), "502/503/504 and transport failures count as gateway failures")

	// Ignored outcomes (the caller gave up) count for nothing.
	v := s.members()[1]
	sendTo(t, s, v, 10, Outcome{Ignored: true, Err: errors.New("canceled")})
	assert.False(t, ejected(s, v))
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	for _, tc := range []struct {
		total, pct, bad, want int
	}{
		{5, 10, 2, 1},   // 10% of 5 rounds down to 0: one may always go
		{20, 10, 5, 2},  // 10% of 20
		{10, 50, 10, 5}, // half
	} {
		clk := newFakeClock()
		s := testSet(tc.total, BalancerRoundRobin, EndpointConfig{PanicThreshold: -1, OutlierDetection: OutlierConfig{MaxEjectionPercent: tc.pct}}, clk)
		ups := s.members()
		for _, u := range ups[:tc.bad] {
			sendTo(t, s, u, 5, Outcome{StatusCode: 503})
		}
		n := 0
		for _, u := range ups {
			if ejected(s, u) {
				n++
			}
		}
		assert.Equal(t, tc.want, n, "%d upstreams, %d%%, %d failing", tc.total, tc.pct, tc.bad)
		s.close()
	}
}

func TestOutlierDisabled(t *testing.T) {
	s := testSet(5, BalancerRoundRobin, EndpointConfig{OutlierDetection: OutlierConfig{Disabled: Bool(true)}}, newFakeClock())
	defer s.close()
	u := s.members()[0]
	sendTo(t, s, u, 20, Outcome{StatusCode: 503})
	assert.False(t, ejected(s, u))
}

func TestPanicThresholdUsesEveryUpstream(t *testing.T) {
	// 2 of 4 unhealthy: 50% usable is not below the default 50% threshold,
	// so the two healthy ones take everything; at 3 of 4 out the
	// balancer panics and uses all four.
	clk := newFakeClock()
	s := testSet(4, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	ups := s.members()
	hp, _ := newHealthPolicy(HealthCheckConfig{Path: "/h", UnhealthyThreshold: 1, HealthyThreshold: 1})
	s.reportHealth(ups[0], &hp, false, "status 500")
	s.reportHealth(ups[1], &hp, false, "status 500")
	got := picksOf(t, s, 100)
	assert.Equal(t, map[*Upstream]int{ups[2]: 50, ups[3]: 50}, got)
	s.reportHealth(ups[2], &hp, false, "status 500")
	got = picksOf(t, s, 100)
	assert.Len(t, got, 4, "panic mode: all upstreams")
	assert.True(t, s.picker.Load().panic)
}

func TestNoHealthyUpstreamSaysWhy(t *testing.T) {
	clk := newFakeClock()
	s := testSet(2, BalancerRoundRobin, EndpointConfig{PanicThreshold: -1, OutlierDetection: OutlierConfig{MaxEjectionPercent: 100}}, clk)
	defer s.close()
	ups := s.members()
	hp, _ := newHealthPolicy(HealthCheckConfig{Path: "/h", UnhealthyThreshold: 1})
	s.reportHealth(ups[0], &hp, false, "status 500")
	sendTo(t, s, ups[1], 5, Outcome{Err: syscall.ECONNREFUSED})
	_, err := s.pick(PickInfo{})
	require.ErrorIs(t, err, ErrNoHealthyUpstream)
	var nh *NoHealthyUpstreamError
	require.ErrorAs(t, err, &nh)
	assert.Equal(t, "svc", nh.Endpoint)
	assert.Equal(t, `connmgr: no healthy upstream for svc: http://10.0.0.0:80 unhealthy (status 500); http://10.0.0.1:80 ejected for 30s`, err.Error())

	// Nothing at all (discovery found nothing yet).
	empty := newUpstreamSet("svc", inherit(EndpointConfig{}, builtinDefaults()), nil, clk, nil)
	_, err = empty.pick(PickInfo{})
	assert.ErrorIs(t, err, ErrNoHealthyUpstream)
	assert.Contains(t, err.Error(), "no upstreams")
}

func TestSlowStartRampsAReturningUpstream(t *testing.T) {
	clk := newFakeClock()
	s := testSet(2, BalancerRoundRobin, EndpointConfig{SlowStart: 100 * time.Second, OutlierDetection: OutlierConfig{MaxEjectionPercent: 50}}, clk)
	defer s.close()
	ups := s.members()
	sendTo(t, s, ups[0], 5, Outcome{StatusCode: 503})
	clk.Advance(30 * time.Second)
	require.False(t, ejected(s, ups[0]))
	early := picksOf(t, s, 4000)[ups[0]]
	clk.Advance(50 * time.Second)
	mid := picksOf(t, s, 4000)[ups[0]]
	clk.Advance(60 * time.Second)
	late := picksOf(t, s, 4000)[ups[0]]
	t.Logf("returning upstream's picks of 4000: %d, %d, %d", early, mid, late)
	assert.Less(t, early, 600, "10%% share right after return")
	assert.Greater(t, mid, early)
	assert.InDelta(t, 2000, late, 100, "full share after the window")
}

func TestStateCarriedToTheNextSetByAddress(t *testing.T) {
	clk := newFakeClock()
	a := testSet(3, BalancerRoundRobin, EndpointConfig{}, clk)
	ups := a.members()
	sendTo(t, a, ups[1], 5, Outcome{StatusCode: 503})
	require.True(t, ejected(a, ups[1]))
	clk.Advance(10 * time.Second)

	// The next config keeps 10.0.0.1 and 10.0.0.2, drops 10.0.0.0 and
	// changes a weight: history follows the address.
	c := inherit(EndpointConfig{Balancer: BalancerWeightedRoundRobin}, builtinDefaults())
	b := newUpstreamSet("svc", c, nil, clk, nil)
	b.setMembers([]memberSpec{
		{url: mustURL("http://10.0.0.1:80"), weight: 2},
		{url: mustURL("http://10.0.0.2:80")},
		{url: mustURL("http://10.0.0.9:80")},
	}, a)
	a.close()
	defer b.close()
	nb := b.members()
	assert.True(t, ejected(b, nb[0]), "still ejected in the new set")
	assert.Equal(t, ups[1].load.requests.Load(), nb[0].load.requests.Load())
	assert.EqualValues(t, 5, nb[0].load.failures.Load())
	assert.Zero(t, nb[2].load.requests.Load())
	clk.Advance(20 * time.Second)
	assert.False(t, ejected(b, nb[0]), "the new set's timer brought it back at the same time")
}
