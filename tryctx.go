package connmgr

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// tryContext is an attempt's context: the caller's context, ended at the
// attempt's deadline or when connmgr ends the attempt (its body closed, a
// retry decided), whichever comes first. It behaves as
// context.WithDeadline(parent, deadline) does, with two differences in
// cost, none in meaning:
//
//   - Its timer is armed only when something can wait for the deadline:
//     the first call of Done, or a context derived from it (net/http's
//     Transport derives one for every request). Until then Err reads the
//     clock. A transport that never waits (an in-memory one, a test
//     double) costs no timer at all.
//   - It is one allocation where context.WithDeadline makes four (the
//     context, its timer's func, the timer, the cancel func), plus one
//     for the channel and one for the timer when armed.
//
// A context derived from it (context.WithCancel, context.AfterFunc)
// registers through AfterFunc, which the context package looks for on a
// parent it does not know, so no goroutine is started for it.
type tryContext struct {
	parent   context.Context
	deadline time.Time // zero: none

	err  atomic.Value // error: set once, by the first cancel
	done atomic.Value // chan struct{}: made by the first Done

	armed atomic.Bool // the timer and the watch on the parent run: Err need not look

	mu         sync.Mutex
	timer      *time.Timer
	stopParent func() bool // ends the watch on parent (armed, parent cancelable)
	first      tryFunc     // the first function registered by AfterFunc (f nil: none)
	more       []tryFunc   // the others, rare
	nextID     uint64
}

// tryFunc is a function registered by AfterFunc.
type tryFunc struct {
	id uint64
	f  func()
}

// newTryContext returns the context of an attempt under parent that ends
// at deadline (zero: only when cancelled or when parent ends). A parent
// deadline earlier than deadline is the context's deadline.
func newTryContext(parent context.Context, deadline time.Time) *tryContext {
	if d, ok := parent.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	return &tryContext{parent: parent, deadline: deadline}
}

// Deadline returns the attempt's deadline.
func (t *tryContext) Deadline() (time.Time, bool) {
	return t.deadline, !t.deadline.IsZero()
}

// Done returns a channel closed when the attempt's context ends, arming
// the timer on first use.
func (t *tryContext) Done() <-chan struct{} {
	if d := t.done.Load(); d != nil {
		return d.(chan struct{})
	}
	t.mu.Lock()
	d, _ := t.done.Load().(chan struct{})
	if d == nil {
		d = make(chan struct{})
		if t.err.Load() != nil {
			close(d)
		}
		t.done.Store(d)
	}
	run := t.armLocked()
	t.mu.Unlock()
	run.run()
	return d
}

// Err returns nil until the context ends, then why it ended. Unarmed, it
// notices the deadline by the clock and the parent's end by asking it;
// armed, the timer and the watch on the parent end it, as they close
// Done. It never reports an end before Done is closed: cancel stores the
// error first, then closes the channel.
func (t *tryContext) Err() error {
	if err := t.err.Load(); err != nil {
		if d, _ := t.done.Load().(chan struct{}); d != nil {
			<-d // closed by the cancel that stored err, if not yet
		}
		return err.(error)
	}
	if t.armed.Load() {
		return nil
	}
	if err := t.parent.Err(); err != nil {
		t.cancel(err)
	} else if !t.deadline.IsZero() && !time.Now().Before(t.deadline) {
		t.cancel(context.DeadlineExceeded)
	} else {
		return nil
	}
	return t.err.Load().(error)
}

// Value returns the parent's value for key, except the context package's
// own key for the nearest cancelable context, which it hides: the parent's
// is not this context's, so context.Cause of this context is its Err (on
// every Go version: before Go 1.26, Cause asks Value first and would find
// a live parent's nil cause), and a context derived from it registers
// through AfterFunc.
func (t *tryContext) Value(key any) any {
	if key == cancelCtxKey && key != nil {
		return nil
	}
	return t.parent.Value(key)
}

func (t *tryContext) String() string { return "connmgr attempt context" }

// AfterFunc arranges for f to run once the context ends, as
// context.AfterFunc does (the context package calls it for a context
// derived from this one). stop unregisters f; it reports whether it did
// so before f ran.
func (t *tryContext) AfterFunc(f func()) (stop func() bool) {
	t.mu.Lock()
	if t.err.Load() != nil {
		t.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	t.nextID++
	id := t.nextID
	if t.first.f == nil {
		t.first = tryFunc{id: id, f: f}
	} else {
		t.more = append(t.more, tryFunc{id: id, f: f})
	}
	run := t.armLocked()
	t.mu.Unlock()
	run.run()
	return func() bool { return t.unregister(id) }
}

func (t *tryContext) unregister(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first.id == id && t.first.f != nil {
		t.first = tryFunc{}
		return true
	}
	for i, tf := range t.more {
		if tf.id == id {
			t.more = append(t.more[:i], t.more[i+1:]...)
			return true
		}
	}
	return false
}

// armLocked starts the timer and the watch on the parent, once. A
// deadline already past, or a parent already ended, ends the context:
// what must then run after t.mu is released is returned.
func (t *tryContext) armLocked() cancelled {
	if t.armed.Load() || t.err.Load() != nil {
		return cancelled{}
	}
	t.armed.Store(true)
	if err := t.parent.Err(); err != nil {
		return t.cancelLocked(err)
	}
	if !t.deadline.IsZero() {
		d := time.Until(t.deadline)
		if d <= 0 {
			return t.cancelLocked(context.DeadlineExceeded)
		}
		t.timer = time.AfterFunc(d, t.expire)
	}
	if t.parent.Done() != nil {
		t.stopParent = context.AfterFunc(t.parent, t.parentEnded)
	}
	return cancelled{}
}

func (t *tryContext) expire() { t.cancel(context.DeadlineExceeded) }

func (t *tryContext) parentEnded() { t.cancel(t.parent.Err()) }

// cancel ends the context with err (the first call wins), closes Done,
// stops the timer and the watch on the parent, and runs the functions
// registered by AfterFunc.
func (t *tryContext) cancel(err error) {
	if t.err.Load() != nil {
		return
	}
	t.mu.Lock()
	run := t.cancelLocked(err)
	t.mu.Unlock()
	run.run()
}

// stop ends the attempt's context: connmgr is done with the attempt.
func (t *tryContext) stop() { t.cancel(context.Canceled) }

// cancelled is what ending a context leaves to do once its lock is
// released: functions that may call back into it.
type cancelled struct {
	stopParent func() bool
	first      func()
	more       []tryFunc
}

func (c cancelled) run() {
	if c.stopParent != nil {
		c.stopParent()
	}
	if c.first != nil {
		c.first()
	}
	for _, tf := range c.more {
		tf.f()
	}
}

func (t *tryContext) cancelLocked(err error) cancelled {
	if t.err.Load() != nil {
		return cancelled{}
	}
	t.err.Store(err)
	if d, _ := t.done.Load().(chan struct{}); d != nil {
		close(d)
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	c := cancelled{stopParent: t.stopParent, first: t.first.f, more: t.more}
	t.stopParent, t.first, t.more = nil, tryFunc{}, nil
	return c
}

// cancelCtxKey is the context package's key for the nearest cancelable
// context (unexported there), learnt once by asking context.Cause of a
// context that has ended and records the key its Value is asked for.
// Should the context package ever look it up differently, this is nil
// and Value hides nothing.
var cancelCtxKey = func() any {
	p := &keyProbe{}
	_ = context.Cause(p)
	if _, ok := p.key.(*int); !ok {
		return nil
	}
	return p.key
}()

// keyProbe is an ended context that records the first key its Value is
// asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Err() error { return context.Canceled }

func (p *keyProbe) Value(key any) any {
	if p.key == nil {
		p.key = key
	}
	return nil
}
