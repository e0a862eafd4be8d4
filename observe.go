package connmgr

// This file calls the observers (observer.go) from the pipeline. Every
// call runs under the recovery helper: an observer that panics is logged
// and the call goes on. A Manager without observers never gets here:
// every call site checks the call's observer for nil first.

// startObserving starts observing a call: one CallObserver per observer
// that wants the call, combined only when there are several. The call's
// event lives in the call's side struct (call_side.go), so a call
// observed by one observer costs that struct's allocation and no other.
func (m *Manager) startObserving(c *call) {
	s := c.sided()
	s.callEv = CallEvent{Context: c.req.Context(), Request: c.req, Endpoint: c.ep.key, Start: c.start}
	var first CallObserver
	var list multiCallObserver
	for _, o := range m.observers {
		co := m.observeStart(o, &s.callEv)
		if co != nil && !s.headers {
			s.headers = mayWriteHeaders(co)
		}
		switch {
		case co == nil:
		case first == nil:
			first = co
		case list == nil:
			list = multiCallObserver{first, co}
		default:
			list = append(list, co)
		}
	}
	if list != nil {
		s.obs = list
	} else {
		s.obs = first
	}
}

// headerAdder is implemented by connmgr's own call observers, which
// know whether they add headers to an attempt (trace context). An
// observer that does not implement it may: its attempts get a header
// map of their own to write to.
type headerAdder interface {
	addsHeaders() bool
}

func mayWriteHeaders(co CallObserver) bool {
	hr, ok := co.(headerAdder)
	return !ok || hr.addsHeaders()
}

// notifyEach calls f with each observer that o stands for: those of l,
// the observers a multi-observer fans out to, or else o itself; each
// under the recovery helper, so that one that panics does not keep the
// others from the event.
func notifyEach[O any](m *Manager, l []O, o O, method string, f func(O)) {
	if l == nil {
		notifyOne(m, o, method, f)
		return
	}
	for _, x := range l {
		notifyOne(m, x, method, f)
	}
}

func notifyOne[O any](m *Manager, o O, method string, f func(O)) {
	defer m.recovered("observer", method, nil)
	f(o)
}

func (m *Manager) observeStart(o Observer, ev *CallEvent) (co CallObserver) {
	defer m.recovered("observer", "StartCall", nil)
	return o.StartCall(ev)
}

func (m *Manager) observeRefused(o CallObserver, ev RefusalEvent) {
	l, _ := o.(multiCallObserver)
	notifyEach(m, l, o, "Refused", func(x CallObserver) { x.Refused(ev) })
}

func (m *Manager) observeRetry(o CallObserver, ev RetryEvent) {
	l, _ := o.(multiCallObserver)
	notifyEach(m, l, o, "Retry", func(x CallObserver) { x.Retry(ev) })
}

func (m *Manager) observeCallEnd(o CallObserver, ev CallEndEvent) {
	l, _ := o.(multiCallObserver)
	notifyEach(m, l, o, "End", func(x CallObserver) { x.End(ev) })
}

func (m *Manager) observeAttemptStart(o CallObserver, ev *AttemptEvent) AttemptObserver {
	l, ok := o.(multiCallObserver)
	if !ok {
		return m.attemptStart(o, ev)
	}
	var first AttemptObserver
	var list multiAttemptObserver
	for _, x := range l {
		ao := m.attemptStart(x, ev)
		switch {
		case ao == nil:
		case first == nil:
			first = ao
		case list == nil:
			list = multiAttemptObserver{first, ao}
		default:
			list = append(list, ao)
		}
	}
	if list != nil {
		return list
	}
	return first
}

func (m *Manager) attemptStart(o CallObserver, ev *AttemptEvent) (ao AttemptObserver) {
	defer m.recovered("observer", "AttemptStart", nil)
	return o.AttemptStart(ev)
}

func (m *Manager) observeHeaders(o AttemptObserver, ev HeadersEvent) {
	l, _ := o.(multiAttemptObserver)
	notifyEach(m, l, o, "Headers", func(x AttemptObserver) { x.Headers(ev) })
}

func (m *Manager) observeAttemptEnd(o AttemptObserver, ev AttemptEndEvent) {
	l, _ := o.(multiAttemptObserver)
	notifyEach(m, l, o, "AttemptEnd", func(x AttemptObserver) { x.End(ev) })
}

// multiCallObserver and multiAttemptObserver fan one call out to several
// observers, in the order they were registered. The Manager unpacks them
// so that each observer runs under its own recovery.
type multiCallObserver []CallObserver

func (l multiCallObserver) Refused(ev RefusalEvent) {}
func (l multiCallObserver) AttemptStart(ev *AttemptEvent) AttemptObserver {
	return nil
}
func (l multiCallObserver) Retry(ev RetryEvent) {}
func (l multiCallObserver) End(ev CallEndEvent) {}

type multiAttemptObserver []AttemptObserver

func (l multiAttemptObserver) Headers(ev HeadersEvent) {}
func (l multiAttemptObserver) End(ev AttemptEndEvent)  {}
