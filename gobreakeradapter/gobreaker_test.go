package gobreakeradapter

import (
	"errors"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errUpstream = errors.New("connection refused")

// tripAfter is settings that open after n consecutive failures and turn
// half-open after timeout, with one probe.
func tripAfter(n uint32, timeout time.Duration) gobreaker.Settings {
	return gobreaker.Settings{
		Timeout:     timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
	}
}

func attempt(t *testing.T, b *Breaker, o connmgr.Outcome) {
	t.Helper()
	done, err := b.Allow()
	require.NoError(t, err)
	done(o)
}

func TestBreakerTripsOnFailures(t *testing.T) {
	b := New(tripAfter(3, time.Hour))
	attempt(t, b, connmgr.Outcome{StatusCode: 200})
	for i := 0; i < 2; i++ {
		attempt(t, b, connmgr.Outcome{Err: errUpstream})
	}
	assert.Equal(t, gobreaker.StateClosed, b.State())
	attempt(t, b, connmgr.Outcome{Err: &connmgr.StatusError{StatusCode: 503}, StatusCode: 503})
	assert.Equal(t, gobreaker.StateOpen, b.State())
	done, err := b.Allow()
	assert.Nil(t, done)
	assert.ErrorIs(t, err, gobreaker.ErrOpenState)
}

// TestIgnoredOutcomesCountForNothing: an attempt the caller gave up on,
// or connmgr cancelled, is neither a failure nor a success.
func TestIgnoredOutcomesCountForNothing(t *testing.T) {
	b := New(tripAfter(1, time.Hour))
	for i := 0; i < 10; i++ {
		attempt(t, b, connmgr.Outcome{Err: errors.New("context canceled"), Ignored: true})
	}
	assert.Equal(t, gobreaker.StateClosed, b.State(), "cancels do not open the breaker")
	c := b.Counts()
	assert.EqualValues(t, 0, c.TotalFailures)
	assert.EqualValues(t, 0, c.TotalSuccesses)
	assert.EqualValues(t, 10, c.TotalExclusions)
}

// TestHalfOpenProbe: a cancelled probe gives its slot back without
// closing the breaker; a successful one closes it; a failed one opens it
// again.
func TestHalfOpenProbe(t *testing.T) {
	const timeout = 30 * time.Millisecond
	b := New(tripAfter(1, timeout))
	attempt(t, b, connmgr.Outcome{Err: errUpstream})
	require.Equal(t, gobreaker.StateOpen, b.State())
	require.Eventually(t, func() bool { return b.State() == gobreaker.StateHalfOpen }, time.Second, 5*time.Millisecond)

	probe, err := b.Allow()
	require.NoError(t, err)
	_, err = b.Allow()
	assert.ErrorIs(t, err, gobreaker.ErrTooManyRequests, "one probe at a time")
	probe(connmgr.Outcome{Ignored: true})
	assert.Equal(t, gobreaker.StateHalfOpen, b.State(), "a cancelled probe does not close the breaker")

	probe, err = b.Allow()
	require.NoError(t, err, "the cancelled probe gave its slot back")
	probe(connmgr.Outcome{Err: errUpstream})
	assert.Equal(t, gobreaker.StateOpen, b.State(), "a failed probe opens it again")

	require.Eventually(t, func() bool { return b.State() == gobreaker.StateHalfOpen }, time.Second, 5*time.Millisecond)
	attempt(t, b, connmgr.Outcome{StatusCode: 200})
	assert.Equal(t, gobreaker.StateClosed, b.State(), "a good probe closes it")
}

func TestDoneCountsOnce(t *testing.T) {
	b := New(tripAfter(2, time.Hour))
	done, err := b.Allow()
	require.NoError(t, err)
	done(connmgr.Outcome{Err: errUpstream})
	done(connmgr.Outcome{Err: errUpstream})
	assert.EqualValues(t, 1, b.Counts().TotalFailures)
	assert.Equal(t, gobreaker.StateClosed, b.State())
}

func TestSettingsKeepsTheUsersExclusionsAndSuccesses(t *testing.T) {
	errBusy := errors.New("busy")
	st := tripAfter(1, time.Hour)
	st.IsExcluded = func(err error) bool { return errors.Is(err, errBusy) }
	st.IsSuccessful = func(err error) bool {
		var se *connmgr.StatusError
		return err == nil || (errors.As(err, &se) && se.StatusCode == 501)
	}
	b := New(st)
	attempt(t, b, connmgr.Outcome{Err: errBusy})
	attempt(t, b, connmgr.Outcome{Ignored: true})
	attempt(t, b, connmgr.Outcome{Err: &connmgr.StatusError{StatusCode: 501}, StatusCode: 501})
	assert.Equal(t, gobreaker.StateClosed, b.State())
	assert.EqualValues(t, 2, b.Counts().TotalExclusions)
	assert.EqualValues(t, 1, b.Counts().TotalSuccesses)
	attempt(t, b, connmgr.Outcome{Err: errUpstream})
	assert.Equal(t, gobreaker.StateOpen, b.State())
}

func TestFactoryBuildsOneBreakerPerUpstream(t *testing.T) {
	var changes []string
	st := tripAfter(1, time.Hour)
	st.OnStateChange = func(name string, from, to gobreaker.State) { changes = append(changes, name+": "+to.String()) }
	f := Factory(st)
	a := f("payments", "pay-1:8443").(*Breaker)
	b := f("payments", "pay-2:8443").(*Breaker)
	assert.Equal(t, "payments pay-1:8443", a.Name())
	attempt(t, a, connmgr.Outcome{Err: errUpstream})
	assert.Equal(t, gobreaker.StateOpen, a.State())
	assert.Equal(t, gobreaker.StateClosed, b.State(), "each upstream has its own")
	assert.Equal(t, []string{"payments pay-1:8443: open"}, changes)

	st.Name = "svc"
	assert.Equal(t, "svc payments u", Factory(st)("payments", "u").(*Breaker).Name())
}

func TestWrapUsesTheGivenBreaker(t *testing.T) {
	cb := gobreaker.NewTwoStepCircuitBreaker[*struct{}](Settings(tripAfter(1, time.Hour)))
	b := Wrap(cb)
	attempt(t, b, connmgr.Outcome{Ignored: true})
	attempt(t, b, connmgr.Outcome{Err: errUpstream})
	assert.Equal(t, gobreaker.StateOpen, cb.State())
}
