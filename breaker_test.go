package connmgr

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepClock is a clock tests move by hand.
type stepClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newStepClock() *stepClock {
	return &stepClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// breakerHarness drives one breaker through steps on a step clock and
// records the state changes it announces.
type breakerHarness struct {
	t       *testing.T
	clock   *stepClock
	b       *breaker
	mu      sync.Mutex // guards changes
	changes []string
	held    []permit // admitted, outcome not yet reported
}

func newBreakerHarness(t *testing.T, cfg BreakerConfig) *breakerHarness {
	h := &breakerHarness{t: t, clock: newStepClock()}
	full := cfg
	def := breakerDefaults()
	mergeValue(reflect.ValueOf(&full).Elem(), reflect.ValueOf(def))
	d := &dispatcher{deliver: func(c StateChange) {
		h.mu.Lock()
		h.changes = append(h.changes, c.From.String()+">"+c.To.String())
		h.mu.Unlock()
	}}
	h.b = newBreaker(newBreakerPolicy(full), d, "up.test:443", h.clock.Now())
	return h
}

// step is one line of a breaker script:
//
//	"ok", "fail", "slow", "cancel": admit a call and report that outcome
//	"hold": admit a call and keep its permit; "ok held", "fail held",
//	"cancel held": report the oldest held permit
//	"reject": the breaker must refuse a call
//	"+30s": advance the clock
//	"state=open": check the state
type step string

func (h *breakerHarness) run(script ...step) {
	h.t.Helper()
	for i, s := range script {
		desc := fmt.Sprintf("step %d %q", i, s)
		switch {
		case strings.HasPrefix(string(s), "+"):
			d, err := time.ParseDuration(string(s[1:]))
			require.NoError(h.t, err, desc)
			h.clock.Advance(d)
		case strings.HasPrefix(string(s), "state="):
			got := h.b.snapshot("ep", h.clock.Now()).State.String()
			require.Equal(h.t, string(s[len("state="):]), got, desc)
		case s == "reject":
			p, refused := h.b.allow("ep", h.clock.Now)
			require.NotNil(h.t, refused, desc)
			require.Nil(h.t, p.b, desc)
		case s == "hold":
			p, refused := h.b.allow("ep", h.clock.Now)
			require.Nil(h.t, refused, desc)
			h.held = append(h.held, p)
		case strings.HasSuffix(string(s), " held"):
			require.NotEmpty(h.t, h.held, desc)
			p := h.held[0]
			h.held = h.held[1:]
			p.done("ep", outcomeOf(strings.TrimSuffix(string(s), " held")), errors.New("boom"), h.clock.Now())
		default:
			p, refused := h.b.allow("ep", h.clock.Now)
			require.Nil(h.t, refused, desc)
			p.done("ep", outcomeOf(string(s)), errors.New("boom"), h.clock.Now())
		}
	}
}

func outcomeOf(s string) outcome {
	switch s {
	case "ok":
		return outcomeSuccess
	case "fail":
		return outcomeFailure
	case "slow":
		return outcomeSlow
	case "cancel":
		return outcomeIgnored
	}
	panic("unknown outcome " + s)
}

func repeat(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func script(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch v := p.(type) {
		case step:
			out = append(out, v)
		case string:
			out = append(out, step(v))
		case []step:
			out = append(out, v...)
		}
	}
	return out
}

func TestBreakerTransitions(t *testing.T) {
	tests := []struct {
		name    string
		cfg     BreakerConfig
		script  []step
		changes []string
	}{
		{
			name:    "opens at 5 consecutive failures by default",
			script:  script(repeat(4, "fail"), "state=closed", "fail", "state=open", "reject"),
			changes: []string{"closed>open"},
		},
		{
			name:   "a success resets the consecutive count",
			script: script(repeat(4, "fail"), "ok", repeat(4, "fail"), "state=closed"),
		},
		{
			name:    "slow calls count as failures",
			cfg:     BreakerConfig{ConsecutiveFailures: 3},
			script:  script("slow", "slow", "slow", "state=open"),
			changes: []string{"closed>open"},
		},
		{
			name: "failure ratio needs min_requests in the window",
			cfg:  BreakerConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 10, Window: 10 * time.Second},
			// 4 failures of 9 calls: under the minimum; the 10th call, a
			// failure, makes 5 of 10 = 50%.
			script:  script("ok", "fail", "ok", "fail", "ok", "fail", "ok", "fail", "ok", "state=closed", "fail", "state=open"),
			changes: []string{"closed>open"},
		},
		{
			name: "failures that left the rolling window no longer count",
			cfg:  BreakerConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 4, Window: 10 * time.Second},
			// 3 failures, then 11s later 1 failure and 3 successes: 1 of 4 in the window.
			script: script("fail", "fail", "fail", "+11s", "fail", "ok", "ok", "ok", "state=closed"),
		},
		{
			name: "the window rolls bucket by bucket",
			cfg:  BreakerConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 4, Window: 10 * time.Second},
			// 2 failures at t=0, 2 successes at t=5s, then at t=9s one more
			// failure: 3 of 5 in the window -> open.
			script:  script("fail", "fail", "+5s", "ok", "ok", "+4s", "fail", "state=open"),
			changes: []string{"closed>open"},
		},
		{
			name: "half-open after recovery_timeout, closes after success_threshold probes",
			cfg:  BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: 30 * time.Second, HalfOpenRequests: 2, SuccessThreshold: 2},
			script: script("fail", "state=open", "+29s", "reject", "+1s", "state=half-open",
				"ok", "state=half-open", "ok", "state=closed", "ok"),
			changes: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "one failed probe reopens for another recovery_timeout",
			cfg:  BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: 10 * time.Second},
			script: script("fail", "+10s", "ok", "fail", "state=open", "+9s", "reject", "+1s",
				"ok", "ok", "ok", "state=closed"),
			changes: []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "half-open admits exactly half_open_requests probes",
			cfg:  BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Second, HalfOpenRequests: 3},
			script: script("fail", "+1s", "hold", "hold", "hold", "reject", "reject",
				"ok held", "ok held", "state=half-open", "ok held", "state=closed"),
			changes: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "a cancelled probe gives its slot back",
			cfg:  BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Second, HalfOpenRequests: 1},
			script: script("fail", "+1s", "hold", "reject", "cancel held", "state=half-open",
				"hold", "reject", "ok held", "state=closed"),
			changes: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "outcomes of an older generation are dropped",
			cfg:  BreakerConfig{ConsecutiveFailures: 2, RecoveryTimeout: time.Second, HalfOpenRequests: 1},
			// A call admitted while closed reports its failure after the
			// breaker opened and turned half-open: it must not reopen it.
			script: script("hold", "fail", "fail", "state=open", "+1s", "state=half-open",
				"fail held", "state=half-open", "ok", "state=closed"),
			changes: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name:   "cancelled calls are neither successes nor failures",
			cfg:    BreakerConfig{ConsecutiveFailures: 2},
			script: script("fail", "cancel", "cancel", "ok", "fail", "state=closed", "fail", "state=open"),
			changes: []string{
				"closed>open",
			},
		},
		{
			name:   "success_threshold below half_open_requests closes early",
			cfg:    BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Second, HalfOpenRequests: 3, SuccessThreshold: 1},
			script: script("fail", "+1s", "hold", "hold", "ok held", "state=closed", "fail held", "state=closed"),
			changes: []string{
				"closed>open", "open>half-open", "half-open>closed",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newBreakerHarness(t, tt.cfg)
			h.run(tt.script...)
			h.mu.Lock()
			defer h.mu.Unlock()
			assert.Equal(t, tt.changes, h.changes)
		})
	}
}

func TestBreakerOpenErrorSaysWhenTheNextProbeIs(t *testing.T) {
	h := newBreakerHarness(t, BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: 30 * time.Second})
	h.run("fail", "+10s")
	_, refused := h.b.allow("ep", h.clock.Now)
	require.NotNil(t, refused)
	assert.Equal(t, 20*time.Second, refused.RetryIn)
	assert.Equal(t, BreakerOpen, refused.State)
	assert.Equal(t, "up.test:443", refused.Upstream)
	assert.ErrorIs(t, refused, ErrCircuitOpen)
	assert.EqualError(t, refused.LastErr, "boom")

	s := h.b.snapshot("ep", h.clock.Now())
	assert.Equal(t, 20*time.Second, s.HalfOpenIn)
	assert.Equal(t, "boom", s.LastError)
	assert.Equal(t, h.clock.Now().Add(-10*time.Second), s.LastFailure)
	assert.EqualValues(t, 1, s.Opens)
	assert.EqualValues(t, 1, s.Rejected)
}

func TestBreakerStatsCountTheWindow(t *testing.T) {
	h := newBreakerHarness(t, BreakerConfig{ConsecutiveFailures: 10, FailureRatio: -1})
	h.run("ok", "ok", "fail", "slow", "cancel")
	s := h.b.snapshot("ep", h.clock.Now())
	assert.Equal(t, BreakerClosed, s.State)
	assert.EqualValues(t, 4, s.Requests)
	assert.EqualValues(t, 2, s.Failures)
	assert.EqualValues(t, 1, s.SlowCalls)
	assert.Equal(t, 2, s.ConsecutiveFailures)
	assert.Zero(t, s.HalfOpenIn)
}

// TestHalfOpenNeverSticks is the regression test for the seed's stuck
// half-open state: many goroutines race probes that succeed, fail, are
// cancelled, or panic, and the breaker must always come back to a state
// that admits calls. Every permit reports exactly once.
func TestHalfOpenNeverSticks(t *testing.T) {
	h := newBreakerHarness(t, BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Millisecond, HalfOpenRequests: 2, SuccessThreshold: 2})
	outcomes := []outcome{outcomeIgnored, outcomeFailure, outcomeSuccess, outcomeIgnored, outcomeSuccess}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				h.clock.Advance(time.Millisecond / 4)
				p, refused := h.b.allow("ep", h.clock.Now)
				if refused != nil {
					continue
				}
				p.done("ep", outcomes[(g+i)%len(outcomes)], errors.New("x"), h.clock.Now())
			}
		}()
	}
	wg.Wait()
	// Whatever state it ended in, a run of successes must close it.
	for i := 0; i < 10; i++ {
		h.clock.Advance(time.Millisecond)
		if p, refused := h.b.allow("ep", h.clock.Now); refused == nil {
			p.done("ep", outcomeSuccess, nil, h.clock.Now())
		}
	}
	s := h.b.snapshot("ep", h.clock.Now())
	assert.Equal(t, BreakerClosed, s.State)
	h.b.mu.Lock()
	assert.Zero(t, h.b.probes, "no probe slot leaked")
	h.b.mu.Unlock()
}

func TestBreakerSetOnePerUpstreamAndIdleEviction(t *testing.T) {
	clock := newStepClock()
	cfg := breakerDefaults()
	cfg.IdleTimeout = time.Minute
	s := newBreakerSet(cfg, &dispatcher{deliver: func(StateChange) {}})
	a := s.get("a.test", clock.Now)
	assert.Same(t, a, s.get("a.test", clock.Now), "cached")
	b := s.get("b.test", clock.Now)
	assert.NotSame(t, a, b)
	p, _ := a.allow("ep", clock.Now)
	p.done("ep", outcomeSuccess, nil, clock.Now())

	clock.Advance(2 * time.Minute)
	// Making a new breaker sweeps the idle ones.
	s.get("c.test", clock.Now)
	_, hasA := s.byUpstream.Load("a.test")
	n := len(s.breakers())
	assert.False(t, hasA, "idle breaker dropped")
	assert.Equal(t, 1, n)
	assert.NotSame(t, a, s.get("a.test", clock.Now), "a new breaker after eviction")
}

func TestDispatcherDeliversInOrderOutsideLocks(t *testing.T) {
	var got []int
	var d *dispatcher
	d = &dispatcher{deliver: func(c StateChange) {
		got = append(got, int(c.At.Unix()))
		if c.At.Unix() == 1 {
			// A listener whose work queues another change (as a listener
			// that calls the Manager can): it is delivered after this one,
			// not inside it, and nothing deadlocks.
			d.enqueue(StateChange{At: time.Unix(3, 0)})
			d.flush()
			got = append(got, -1)
		}
	}}
	d.enqueue(StateChange{At: time.Unix(1, 0)})
	d.enqueue(StateChange{At: time.Unix(2, 0)})
	d.flush()
	assert.Equal(t, []int{1, -1, 2, 3}, got)
}
