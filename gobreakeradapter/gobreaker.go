// Package gobreakeradapter runs connmgr's circuit breaking on
// github.com/sony/gobreaker/v2, for teams that already tune gobreaker or
// want its rolling-window counts: a gobreaker TwoStepCircuitBreaker is a
// connmgr.Breaker, and Factory builds one per upstream for
// connmgr.WithBreakerFactory.
//
// # The model
//
// connmgr asks the breaker of an attempt's upstream before sending it
// (Allow) and reports the attempt's outcome exactly once (done), on every
// path: success, failure, panic, cancel. This is gobreaker's two-step
// protocol, so the mapping is direct:
//
//   - Allow's error (gobreaker.ErrOpenState, or ErrTooManyRequests when
//     every half-open probe is taken) refuses the attempt; connmgr
//     returns it to the caller as a *connmgr.CircuitOpenError wrapping
//     it: errors.Is(err, connmgr.ErrCircuitOpen) holds, and so does
//     errors.Is(err, gobreaker.ErrOpenState).
//   - An outcome with a nil Err is reported as a success (nil), a failing
//     one with its Err: a transport error, or a *connmgr.StatusError for
//     a status the endpoint counts as a failure. gobreaker's
//     Settings.IsSuccessful, if set, sees exactly that error.
//   - An Ignored outcome (the caller gave up, or connmgr cancelled the
//     attempt itself, as a losing hedge) says nothing about the upstream.
//     It is reported as ErrIgnored, which the breakers built here exclude
//     (Settings.IsExcluded): neither a success nor a failure, and in the
//     half-open state its probe slot is given back, so a cancelled probe
//     can neither close the breaker nor keep it half-open for good.
//     Counting it as a failure would let callers' timeouts open a
//     breaker on a healthy upstream; as a success, a cancelled probe
//     would close it untested.
//
// A breaker built elsewhere (Wrap) must exclude ErrIgnored itself; use
// Settings to add that to your settings.
//
// gobreaker calls Settings.OnStateChange while holding its own lock: it
// must not call back into the breaker. connmgr's WithStateListener is not
// fed by these breakers; use OnStateChange.
package gobreakeradapter

import (
	"errors"
	"sync/atomic"

	"github.com/connmgr/connmgr"
	"github.com/sony/gobreaker/v2"
)

// ErrIgnored is what an attempt whose Outcome is Ignored reports to the
// gobreaker breaker: the breakers this package builds exclude it from
// their counts.
var ErrIgnored = errors.New("gobreakeradapter: attempt ignored (cancelled): says nothing about the upstream")

// TwoStep is what a gobreaker.TwoStepCircuitBreaker offers, whatever its
// type parameter.
type TwoStep interface {
	Name() string
	State() gobreaker.State
	Counts() gobreaker.Counts
	Allow() (done func(error), err error)
}

var _ TwoStep = (*gobreaker.TwoStepCircuitBreaker[any])(nil)

// Breaker is a gobreaker two-step breaker as a connmgr.Breaker. It is
// safe for concurrent use.
type Breaker struct {
	cb TwoStep
}

var _ connmgr.Breaker = (*Breaker)(nil)

// New builds a gobreaker TwoStepCircuitBreaker from st (with ErrIgnored
// excluded, see Settings) and wraps it.
func New(st gobreaker.Settings) *Breaker {
	return Wrap(gobreaker.NewTwoStepCircuitBreaker[any](Settings(st)))
}

// Wrap makes cb a connmgr.Breaker. cb should exclude ErrIgnored (build
// its settings with Settings); otherwise an ignored attempt counts as a
// failure.
func Wrap(cb TwoStep) *Breaker { return &Breaker{cb: cb} }

// Settings returns st with ErrIgnored excluded from the counts, in
// addition to whatever st.IsExcluded excludes.
func Settings(st gobreaker.Settings) gobreaker.Settings {
	user := st.IsExcluded
	st.IsExcluded = func(err error) bool {
		return errors.Is(err, ErrIgnored) || (user != nil && user(err))
	}
	return st
}

// Allow asks the breaker for a permit. done reports the attempt's outcome;
// calls after the first are ignored, so an outcome is never counted twice.
func (b *Breaker) Allow() (done func(connmgr.Outcome), err error) {
	report, err := b.cb.Allow()
	if err != nil {
		return nil, err
	}
	var once atomic.Bool
	return func(o connmgr.Outcome) {
		if once.Swap(true) {
			return
		}
		report(outcomeErr(o))
	}, nil
}

// outcomeErr is the error gobreaker is told for an outcome.
func outcomeErr(o connmgr.Outcome) error {
	if o.Ignored {
		return ErrIgnored
	}
	return o.Err
}

// State is the breaker's state now.
func (b *Breaker) State() gobreaker.State { return b.cb.State() }

// Counts are the breaker's counts in its current generation.
func (b *Breaker) Counts() gobreaker.Counts { return b.cb.Counts() }

// Name is the breaker's name (Settings.Name).
func (b *Breaker) Name() string { return b.cb.Name() }

// Factory returns a connmgr.BreakerFactory that builds a gobreaker
// breaker from st for each upstream of each endpoint (the upstream is its
// host:port), named "endpoint upstream" when st.Name is empty (else
// "name endpoint upstream"), so that OnStateChange can tell them apart.
func Factory(st gobreaker.Settings) connmgr.BreakerFactory {
	return FactoryFunc(func(endpoint, upstream string) gobreaker.Settings {
		s := st
		s.Name = joinName(st.Name, endpoint, upstream)
		return s
	})
}

// FactoryFunc returns a connmgr.BreakerFactory that builds each
// upstream's breaker from the settings settings returns for it.
func FactoryFunc(settings func(endpoint, upstream string) gobreaker.Settings) connmgr.BreakerFactory {
	return func(endpoint, upstream string) connmgr.Breaker {
		return New(settings(endpoint, upstream))
	}
}

func joinName(name, endpoint, upstream string) string {
	s := endpoint + " " + upstream
	if name != "" {
		s = name + " " + s
	}
	return s
}
