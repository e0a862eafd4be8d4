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

func (m *Manager) observeStart(o Observer, ev *CallEvent) (co CallObserver) {
	defer m.recovered("observer", "StartCall", nil)
	return o.StartCall(ev)
}

func (m *Manager) observeRefused(o CallObserver, ev RefusalEvent) {
	if l, ok := o.(multiCallObserver); ok {
		for _, x := range l {
			m.observeRefused(x, ev)
		}
		return
	}
	defer m.recovered("observer", "Refused", nil)
	o.Refused(ev)
}

func (m *Manager) observeRetry(o CallObserver, ev RetryEvent) {
	if l, ok := o.(multiCallObserver); ok {
		for _, x := range l {
			m.observeRetry(x, ev)
		}
		return
	}
	defer m.recovered("observer", "Retry", nil)
	o.Retry(ev)
}

func (m *Manager) observeCallEnd(o CallObserver, ev CallEndEvent) {
	if l, ok := o.(multiCallObserver); ok {
		for _, x := range l {
			m.observeCallEnd(x, ev)
		}
		return
	}
	defer m.recovered("observer", "End", nil)
	o.End(ev)
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
	if l, ok := o.(multiAttemptObserver); ok {
		for _, x := range l {
			m.observeHeaders(x, ev)
		}
		return
	}
	defer m.recovered("observer", "Headers", nil)
	o.Headers(ev)
}

func (m *Manager) observeAttemptEnd(o AttemptObserver, ev AttemptEndEvent) {
	if l, ok := o.(multiAttemptObserver); ok {
		for _, x := range l {
			m.observeAttemptEnd(x, ev)
		}
		return
	}
	defer m.recovered("observer", "AttemptEnd", nil)
	o.End(ev)
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
