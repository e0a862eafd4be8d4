package connmgr

import "sync"

// callSide holds what only calls with observers or hooks need, so that
// the default call stays small (the 480-byte size class instead of 576:
// fewer bytes allocated per call): made once, at the start of a call
// that needs it.
type callSide struct {
	obs     CallObserver    // nil: no observer wanted this call
	bodyObs AttemptObserver // the observer of the attempt whose body the caller holds
	// bodyCancel ends the context of the attempt whose body the caller
	// holds when it is not connmgr's own (a hook gave the request
	// another context).
	bodyCancel func()
	headers    bool // an observer may add headers to the attempts (mayWriteHeaders)

	// The events handed to observers by pointer live here, not on the
	// heap one by one: the call's start, and its first attempt's start
	// (later attempts, rare, get their own).
	callEv  CallEvent
	firstEv AttemptEvent

	// values is the hook Values map. Hooks of one call never run at the
	// same time (hookMu), so the map needs no lock of its own even when
	// attempts overlap (hedging). Made when the call has hooks.
	values map[string]any
	hookMu sync.Mutex

	// chain is the hooks of the call, read once at its start; nil when
	// there are none (then there is no side struct for them either).
	chain *hookChain
}

// sidedCall is a call and its side struct in one allocation, for a call
// that needs the side struct from the start (newCall).
type sidedCall struct {
	call call
	side callSide
}

// sided returns the call's side struct, made on first use.
func (c *call) sided() *callSide {
	if c.side == nil {
		c.side = new(callSide)
	}
	return c.side
}

// noHooks is the hook chain of a call without hooks.
var noHooks hookChain

// hooks returns the call's hook chain (empty for a call without hooks).
func (c *call) hooks() *hookChain {
	if c.side == nil || c.side.chain == nil {
		return &noHooks
	}
	return c.side.chain
}

// observer returns the call's observer, nil when nothing observes it.
func (c *call) observer() CallObserver {
	if c.side == nil {
		return nil
	}
	return c.side.obs
}
