package connmgr

import (
	"context"
	"errors"
	"sync"
	"time"
)

// upstreamGuard is the circuit breaker an Upstream holds: the built-in
// one, or one a BreakerFactory made. An Upstream without either (a
// picker's upstream on an endpoint whose breaker is off) admits every
// attempt.
type upstreamGuard struct {
	key    string   // the authority, lower case
	b      *breaker // the built-in breaker, or nil
	custom Breaker  // a factory's breaker, or nil
}

// breakerPermit is an attempt's admission by its upstream's breaker: a
// built-in permit, or the done function of a custom Breaker. The zero
// value admits and ignores outcomes.
type breakerPermit struct {
	p    permit
	done func(Outcome)
}

// pickerSlot is how a load-balanced endpoint plugs its upstream set in
// (issue 9): when an endpoint's picker is set, each attempt asks it for
// an Upstream instead of using the request's host. Upstreams it returns
// should be made with breakerSet.upstream, so that each holds its breaker.
type pickerSlot struct {
	picker Picker
}

// breakerFleet shares breaker state through a BreakerStore: local
// transitions are published (in the background, never on the request
// path), remote open signals are applied without being published again,
// and half-open probes are taken from the fleet's shared slots. A closed
// breaker never calls it.
type breakerFleet struct {
	store  BreakerStore
	origin string
	m      *Manager

	pending chan BreakerSignal
	stop    chan struct{}
	wg      sync.WaitGroup
	unsub   func()
	once    sync.Once
}

// fleetTimeout bounds each call to a store, unless the redis block gives
// the store a longer deadline of its own (storeTimeout).
const fleetTimeout = 100 * time.Millisecond

func newBreakerFleet(m *Manager, store BreakerStore, origin string) *breakerFleet {
	f := &breakerFleet{store: store, origin: origin, m: m,
		pending: make(chan BreakerSignal, 256), stop: make(chan struct{})}
	f.wg.Add(1)
	go f.publishLoop()
	func() {
		defer m.recovered("BreakerStore", "Subscribe", nil)
		f.unsub = store.Subscribe(f.receive)
	}()
	return f
}

// publish queues a local change for the store; when the queue is full
// the change is dropped (the fleet hears of the next one).
func (f *breakerFleet) publish(c StateChange) {
	if c.remote {
		return
	}
	s := BreakerSignal{Endpoint: c.Endpoint, Upstream: c.Upstream, State: c.To, Until: c.until, Origin: f.origin}
	select {
	case f.pending <- s:
	default:
	}
}

func (f *breakerFleet) publishLoop() {
	defer f.wg.Done()
	for {
		select {
		case <-f.stop:
			return
		case s := <-f.pending:
			f.send(s)
		}
	}
}

func (f *breakerFleet) send(s BreakerSignal) {
	ctx, cancel := context.WithTimeout(context.Background(), f.m.storeTimeout())
	defer cancel()
	var err error
	func() {
		defer f.m.recovered("BreakerStore", "Publish", &err)
		err = f.store.Publish(ctx, s)
	}()
	if err != nil {
		f.m.logger.Warn("connmgr: breaker signal not published", "endpoint", s.Endpoint, "error", safeString(err))
	}
}

// receive applies a signal from another Manager: an open signal opens
// the local breaker until the signal's Until. Other states are not
// applied: each Manager closes its breakers on its own probes.
func (f *breakerFleet) receive(s BreakerSignal) {
	defer f.m.recovered("BreakerStore", "signal", nil)
	if s.Origin == f.origin || s.State != BreakerOpen {
		return
	}
	t := f.m.table.Load()
	if t == nil {
		return
	}
	ep := t.def
	if s.Endpoint != defaultKey {
		ep = t.byKey[s.Endpoint]
	}
	if ep == nil || ep.breakers == nil || ep.breakers.fleet != f {
		return
	}
	if b := ep.breakers.upstream(ep.key, s.Upstream, f.m.now).guard.b; b != nil {
		b.openRemote(ep.key, s.Until, f.m.now())
	}
}

// acquireProbe asks the fleet for one of its half-open probe slots. A
// store that fails (Redis down) leaves the probe to the local half-open
// rules, so a breaker never stays open for want of a store; one that
// panics refuses it.
func (f *breakerFleet) acquireProbe(endpoint, upstream string, window time.Duration, maxProbes int) (ok bool) {
	defer f.m.recovered("BreakerStore", "AcquireProbe", nil)
	ctx, cancel := context.WithTimeout(context.Background(), f.m.storeTimeout())
	defer cancel()
	got, err := f.store.AcquireProbe(ctx, endpoint, upstream, window, maxProbes)
	return err != nil || got
}

// close stops the subscription and the publisher, waiting for it.
func (f *breakerFleet) close() {
	f.once.Do(func() {
		if f.unsub != nil {
			func() {
				defer f.m.recovered("BreakerStore", "stop", nil)
				f.unsub()
			}()
		}
		close(f.stop)
		f.wg.Wait()
	})
}

// openRemote opens the breaker until until, on another Manager's word.
// The change reaches the local listeners, marked remote so that it is
// never published back.
func (b *breaker) openRemote(endpoint string, until, now time.Time) {
	if !until.After(now) {
		return
	}
	b.mu.Lock()
	if b.state == BreakerOpen && !b.openUntil.Before(until) {
		b.mu.Unlock()
		return
	}
	b.lastErr = errRemoteOpen
	b.setState(endpoint, BreakerOpen, errRemoteOpen, now)
	b.openUntil = until
	b.events.markLastRemote(until)
	b.mu.Unlock()
	b.events.flush()
}

// errRemoteOpen is the cause of a breaker opened by a fleet signal.
var errRemoteOpen = errors.New("connmgr: opened by a fleet signal")

// markLastRemote marks the change just queued as received from the
// fleet. Called under the breaker's lock, right after setState.
func (d *dispatcher) markLastRemote(until time.Time) {
	d.mu.Lock()
	if n := len(d.queue); n > 0 {
		d.queue[n-1].remote = true
		d.queue[n-1].until = until
	}
	d.mu.Unlock()
}
