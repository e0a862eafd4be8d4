package connmgr

// callSide holds what only an observed call needs, so that the call
// itself stays small for the calls that need none of it: made once, at
// the start of a call that has observers (startObserving).
type callSide struct {
	obs     CallObserver    // nil: no observer wanted this call
	bodyObs AttemptObserver // the observer of the attempt whose body the caller holds

	// The events handed to observers by pointer live here, not on the
	// heap one by one: the call's start, and its first attempt's start
	// (later attempts, rare, get their own).
	callEv  CallEvent
	firstEv AttemptEvent
}

// observer returns the call's observer, nil when nothing observes it.
func (c *call) observer() CallObserver {
	if c.side == nil {
		return nil
	}
	return c.side.obs
}
