package connmgr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testLimiter(c RateLimitConfig, now time.Time) *limiter {
	full := c
	def := rateLimitDefaults()
	mergeRateLimit(&full, def)
	return newLimiter(full, nil, 30*time.Second, now)
}

// mergeRateLimit fills c's zero fields from def, as inheritance does.
func mergeRateLimit(c *RateLimitConfig, def RateLimitConfig) {
	ec := inherit(EndpointConfig{RateLimit: *c}, EndpointConfig{RateLimit: def})
	*c = ec.RateLimit
}

func TestLimiterAdmitsTheConfiguredRate(t *testing.T) {
	tests := []struct {
		rate  float64
		per   time.Duration
		burst int
		run   time.Duration
	}{
		{rate: 10, per: time.Second, burst: 1, run: 5 * time.Second},
		{rate: 100, per: time.Second, burst: 10, run: 5 * time.Second},
		{rate: 1000, per: time.Second, burst: 50, run: 3 * time.Second},
		{rate: 30, per: time.Minute, burst: 1, run: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%g per %v", tt.rate, tt.per), func(t *testing.T) {
			clock := newStepClock()
			l := testLimiter(RateLimitConfig{Rate: tt.rate, Per: tt.per, Burst: tt.burst}, clock.Now())
			// Offer far more than the rate: an attempt every 100µs (every
			// 10ms for the per-minute limit).
			step := 100 * time.Microsecond
			if tt.per > time.Second {
				step = 10 * time.Millisecond
			}
			admitted := 0
			for elapsed := time.Duration(0); elapsed < tt.run; elapsed += step {
				if l.take(context.Background(), &l.shared, "ep", time.Time{}, clock.Now) == nil {
					admitted++
				}
				clock.Advance(step)
			}
			want := tt.rate*tt.run.Seconds()/tt.per.Seconds() + float64(tt.burst)
			assert.InDelta(t, want, float64(admitted), math.Max(want*0.02, 1), "admitted %d, want %.0f ±2%%", admitted, want)
			st := l.snapshot(clock.Now())
			assert.EqualValues(t, admitted, st.Allowed)
			assert.Equal(t, tt.rate, st.CurrentRate)
		})
	}
}

func TestLimiterWaitThatWouldPassTheDeadlineFailsAtOnce(t *testing.T) {
	l := testLimiter(RateLimitConfig{Rate: 1, Burst: 1, MaxWait: 10 * time.Second}, time.Now())
	require.NoError(t, l.take(context.Background(), &l.shared, "ep", time.Time{}, time.Now))
	start := time.Now()
	err := l.take(context.Background(), &l.shared, "ep", start.Add(100*time.Millisecond), time.Now)
	require.ErrorIs(t, err, ErrRateLimited)
	assert.Less(t, time.Since(start), 50*time.Millisecond, "failed now, not at the deadline")
	var rle *RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.InDelta(t, time.Second, rle.RetryIn, float64(100*time.Millisecond))

	// Past max_wait it fails at once too.
	l2 := testLimiter(RateLimitConfig{Rate: 1, Per: time.Minute, Burst: 1, MaxWait: time.Second}, time.Now())
	require.NoError(t, l2.take(context.Background(), &l2.shared, "ep", time.Time{}, time.Now))
	start = time.Now()
	require.ErrorIs(t, l2.take(context.Background(), &l2.shared, "ep", time.Time{}, time.Now), ErrRateLimited)
	assert.Less(t, time.Since(start), 50*time.Millisecond)
	assert.EqualValues(t, 1, l2.snapshot(time.Now()).Rejected)
}

func TestLimiterWaitsWithinMaxWait(t *testing.T) {
	l := testLimiter(RateLimitConfig{Rate: 20, Burst: 1, MaxWait: time.Second}, time.Now())
	require.NoError(t, l.take(context.Background(), &l.shared, "ep", time.Time{}, time.Now))
	start := time.Now()
	require.NoError(t, l.take(context.Background(), &l.shared, "ep", time.Time{}, time.Now))
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "waited for the next token (50ms)")
	assert.EqualValues(t, 1, l.snapshot(time.Now()).Waited)
}

func TestLimiterCancelledWaitGivesItsTokenBack(t *testing.T) {
	clock := time.Now
	l := testLimiter(RateLimitConfig{Rate: 1, Per: 10 * time.Second, Burst: 1, MaxWait: time.Minute}, clock())
	require.NoError(t, l.take(context.Background(), &l.shared, "ep", time.Time{}, clock))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	err := l.take(ctx, &l.shared, "ep", time.Time{}, clock)
	require.ErrorIs(t, err, context.Canceled)
	// Had the token not come back, the next one would be ~20s away.
	delay := l.tokenDelay(&l.shared, clock())
	assert.Less(t, delay, 10*time.Second)
	assert.Greater(t, delay, 9*time.Second)
}

func TestLimiterPerKeyBucketsBoundedLRU(t *testing.T) {
	clock := newStepClock()
	l := testLimiter(RateLimitConfig{Rate: 1, Per: time.Hour, Burst: 1, Key: "header:X-User-ID", MaxKeys: 2}, clock.Now())
	req := func(user string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
		if user != "" {
			r.Header.Set("X-User-ID", user)
		}
		return r
	}
	take := func(user string) error {
		return l.take(context.Background(), l.bucketFor(req(user), clock.Now), "ep", time.Time{}, clock.Now)
	}
	require.NoError(t, take("alice"))
	require.ErrorIs(t, take("alice"), ErrRateLimited, "alice has her own bucket, now empty")
	require.NoError(t, take("bob"), "bob is not limited by alice")
	require.NoError(t, take(""), "requests without the key share the endpoint bucket")
	require.ErrorIs(t, take(""), ErrRateLimited)
	require.ErrorIs(t, take("alice"), ErrRateLimited) // alice is now the most recent
	require.NoError(t, take("carol"))                 // evicts bob, the least recently used
	st := l.snapshot(clock.Now())
	assert.Equal(t, 2, st.Keys)
	assert.EqualValues(t, 1, st.KeysEvicted)
	require.NoError(t, take("bob"), "bob was evicted and starts afresh") // evicts alice
	require.NoError(t, take("alice"), "alice was evicted too")
}

func TestRateLimitKeyFuncOption(t *testing.T) {
	tr := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
	cfg := Config{Endpoints: map[string]EndpointConfig{"api.test": {RateLimit: RateLimitConfig{Rate: 1, Per: time.Hour, Burst: 1}}}}
	m := newTestManager(t, cfg, WithTransport(tr), WithRateLimitKey("API.test", func(r *http.Request) string { return r.URL.Query().Get("tenant") }))
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"http://api.test/?tenant=a", nil},
		{"http://api.test/?tenant=a", ErrRateLimited},
		{"http://api.test/?tenant=b", nil},
		{"http://api.test/", nil},
		{"http://api.test/", ErrRateLimited},
	} {
		resp, err := get(t, m, tc.url)
		if tc.want == nil {
			require.NoError(t, err, tc.url)
			readAll(t, resp)
		} else {
			require.ErrorIs(t, err, tc.want, tc.url)
		}
	}
	assert.Equal(t, 2, m.Stats().Endpoints["api.test"].RateLimit.Keys)

	_, err := New(cfg, WithRateLimitKey("nope.test", func(*http.Request) string { return "" }))
	require.ErrorContains(t, err, `WithRateLimitKey("nope.test"): no such endpoint`)
}

func TestRateLimitedCallIsTypedAndNeverSent(t *testing.T) {
	srv := connmgrtest.NewServer()
	defer srv.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		srv.Addr(): {RateLimit: RateLimitConfig{Rate: 1, Per: time.Hour, Burst: 2}},
	}})
	for i := 0; i < 2; i++ {
		got, err := status(t, m, srv.URL)
		require.NoError(t, err)
		assert.Equal(t, 200, got)
	}
	_, err := status(t, m, srv.URL)
	require.ErrorIs(t, err, ErrRateLimited)
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, ErrRateLimited, cerr.Kind)
	assert.Equal(t, 0, cerr.Attempts)
	assert.EqualValues(t, 2, srv.Count())
	assert.Contains(t, err.Error(), "rate limited, next token in")
}

func TestRetryAfterOn429PausesTheBucket(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 429, RetryAfter: 5 * time.Second}, connmgrtest.Step{})
	defer srv.Close()
	clock := newStepClock()
	ep := noRetries(BreakerConfig{})
	ep.RateLimit = RateLimitConfig{Rate: 100, Burst: 100}
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{srv.Addr(): ep}}, withClock(clock.Now))
	got, err := status(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, 429, got)
	_, err = status(t, m, srv.URL)
	var rle *RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.True(t, rle.Paused)
	assert.Equal(t, 5*time.Second, rle.RetryIn)
	assert.Equal(t, 5*time.Second, m.Stats().Endpoints[srv.Addr()].RateLimit.PausedFor)
	clock.Advance(5 * time.Second)
	got, err = status(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, 200, got)
	assert.EqualValues(t, 2, srv.Count())
}

func TestAdaptiveRateAIMD(t *testing.T) {
	clock := newStepClock()
	l := testLimiter(RateLimitConfig{Rate: 100, Burst: 10, Adaptive: AdaptiveConfig{
		Enabled: Bool(true), MinRate: 10, IncreaseStep: 5, Interval: time.Second, LatencyTarget: 200 * time.Millisecond,
	}}, clock.Now())
	answer := func(status int, latency time.Duration) float64 {
		l.feedback(&l.shared, &http.Response{StatusCode: status, Header: http.Header{}}, latency, clock.Now())
		return l.snapshot(clock.Now()).CurrentRate
	}
	fast := 10 * time.Millisecond
	assert.Equal(t, 100.0, answer(200, fast), "at the ceiling already")
	assert.Equal(t, 50.0, answer(429, fast), "429 halves the rate")
	assert.Equal(t, 50.0, answer(503, fast), "a burst of push-back counts once per interval")
	clock.Advance(time.Second)
	assert.Equal(t, 25.0, answer(503, fast))
	clock.Advance(time.Second)
	assert.Equal(t, 30.0, answer(200, fast), "additive increase")
	assert.Equal(t, 30.0, answer(200, fast), "once per interval")
	clock.Advance(time.Second)
	assert.Equal(t, 35.0, answer(404, fast), "a 4xx other than 429 is a good answer")
	clock.Advance(time.Second)
	assert.Equal(t, 35.0, answer(500, fast), "other 5xx: neither")
	for i := 0; i < 5; i++ {
		clock.Advance(time.Second)
		answer(429, fast)
	}
	assert.Equal(t, 10.0, answer(429, fast), "never below min_rate")
	// Latency above the target lowers the rate, even with 200s.
	for i := 0; i < 20; i++ {
		clock.Advance(time.Second)
		answer(200, fast)
	}
	assert.Equal(t, 100.0, answer(200, fast), "never above rate")
	clock.Advance(time.Second)
	answer(200, 2*time.Second) // the moving average jumps above 200ms
	assert.Less(t, l.snapshot(clock.Now()).CurrentRate, 100.0)
	st := l.snapshot(clock.Now())
	assert.True(t, st.Adaptive)
	assert.NotZero(t, st.Decreases)
	assert.NotZero(t, st.Increases)
}

func TestAdaptiveReadsQuotaHeaders(t *testing.T) {
	clock := newStepClock()
	l := testLimiter(RateLimitConfig{Rate: 100, Burst: 10, Adaptive: AdaptiveConfig{Enabled: Bool(true), MinRate: 1}}, clock.Now())
	answer := func(h http.Header) float64 {
		l.feedback(&l.shared, &http.Response{StatusCode: 200, Header: h}, time.Millisecond, clock.Now())
		return l.snapshot(clock.Now()).CurrentRate
	}
	// 20 left for the next 10s: slow to 2/s before the upstream says no.
	assert.Equal(t, 2.0, answer(http.Header{"Ratelimit": {`"default";r=20;t=10`}}))
	clock.Advance(11 * time.Second)
	// The reset passed: back to the AIMD rate.
	assert.Equal(t, 100.0, answer(http.Header{}))
	// A policy caps the rate: 600 per minute = 10/s.
	assert.Equal(t, 10.0, answer(http.Header{"Ratelimit-Policy": {`"default";q=600;w=60`}}))
	// None remaining: the bucket pauses until the reset.
	answer(http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"7"}})
	assert.Equal(t, 7*time.Second, l.snapshot(clock.Now()).PausedFor)
	err := l.take(context.Background(), &l.shared, "ep", time.Time{}, clock.Now)
	var rle *RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.True(t, rle.Paused)
}

func TestReadQuota(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		h      http.Header
		rate   float64
		pause  time.Duration
		policy float64
	}{
		{name: "none", h: http.Header{}},
		{name: "ietf structured", h: http.Header{"Ratelimit": {`"default";r=50;t=25`}}, rate: 2},
		{name: "ietf, most restrictive item", h: http.Header{"Ratelimit": {`"hour";r=1000;t=100, "burst";r=5;t=10`}}, rate: 0.5},
		{name: "ietf, none left", h: http.Header{"Ratelimit": {`"default";r=0;t=4`}}, pause: 4 * time.Second},
		{name: "older dictionary form", h: http.Header{"Ratelimit": {`limit=100, remaining=30, reset=10`}}, rate: 3},
		{name: "older separate fields", h: http.Header{"Ratelimit-Remaining": {"8"}, "Ratelimit-Reset": {"4"}}, rate: 2},
		{name: "x-ratelimit delay", h: http.Header{"X-Ratelimit-Remaining": {"10"}, "X-Ratelimit-Reset": {"5"}}, rate: 2},
		{name: "x-ratelimit unix time", h: http.Header{"X-Ratelimit-Remaining": {"10"}, "X-Ratelimit-Reset": {"1700000020"}}, rate: 0.5},
		{name: "x-ratelimit unix ms", h: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1700000003000"}}, pause: 3 * time.Second},
		{name: "garbage ignored", h: http.Header{"X-Ratelimit-Remaining": {"lots"}, "X-Ratelimit-Reset": {"soon"}}},
		{name: "policy", h: http.Header{"Ratelimit-Policy": {`"default";q=100;w=10`}}, policy: 10},
		{name: "older policy", h: http.Header{"Ratelimit-Policy": {`100;w=60, 10;w=1`}}, policy: 100.0 / 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := readQuota(tt.h, now)
			assert.InDelta(t, tt.rate, q.rate, 1e-9, "rate")
			assert.Equal(t, tt.pause, q.pause, "pause")
			assert.InDelta(t, tt.policy, q.policy, 1e-9, "policy")
		})
	}
}

func TestAdaptiveAgainstUpstream429(t *testing.T) {
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if n%4 == 0 {
			return connmgrtest.Step{Status: 429, RetryAfter: time.Second}
		}
		return connmgrtest.Step{}
	})
	defer srv.Close()
	clock := newStepClock()
	ep := noRetries(BreakerConfig{Disabled: Bool(true)})
	ep.RateLimit = RateLimitConfig{Rate: 100, Burst: 100, Adaptive: AdaptiveConfig{Enabled: Bool(true)}}
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{srv.Addr(): ep}}, withClock(clock.Now))
	var codes []int
	for i := 0; i < 6; i++ {
		got, err := status(t, m, srv.URL)
		if errors.Is(err, ErrRateLimited) {
			codes = append(codes, -1)
		} else {
			require.NoError(t, err)
			codes = append(codes, got)
		}
		clock.Advance(300 * time.Millisecond)
	}
	// The 429 halves the rate and pauses the bucket for its Retry-After.
	assert.Equal(t, []int{200, 200, 200, 429, -1, -1}, codes)
	st := m.Stats().Endpoints[srv.Addr()].RateLimit
	assert.Equal(t, 50.0, st.CurrentRate)
	assert.EqualValues(t, 1, st.Decreases)
}
