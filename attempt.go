package connmgr

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// attempt is one try of a call: its own request clone, the upstream it
// goes to, the permits it holds (the pick, the rate-limit token, the
// breaker permit), its per-try timer and its outcome. settle reports the
// outcome to every permit exactly once, on every path; end stops the
// per-try timer and tells the observer, once, when the attempt is over
// (its body closed or read to the end, or its error).
type attempt struct {
	c *call
	n int // 1 for the first try

	body   io.ReadCloser // this attempt's request body
	hooked *http.Request // the request after the request hooks, or nil
	req    *http.Request // the request sent

	up       *Upstream // nil: the endpoint's breaker is off and nothing picked
	picked   bool      // up came from the endpoint's Picker
	pickDone func(Outcome)
	bp       breakerPermit
	bk       *bucket // the limiter bucket the token came from
	fleetKey string  // the key of a fleet token (fleetTok set)
	fleetTok bool
	waited   time.Duration // time spent waiting for a token

	tctx      *tryContext        // the per-try context, when it is connmgr's own
	cancel    context.CancelFunc // else what ends the per-try context
	ownCancel atomic.Bool        // connmgr itself ended the attempt
	sent      time.Time
	deadline  time.Time // the per-try deadline the attempt ran under
	obs       AttemptObserver
	met       *attemptInstruments // the attempt's metrics until its duration is recorded (otel_pipeline.go)

	settled  bool        // settle ran
	returned bool        // run returned normally
	ended    atomic.Bool // end ran, or the body wrapper took over
}

// run takes the attempt through its steps and says what the call does
// next. If it unwinds (a panic in connmgr itself, runtime.Goexit in a
// transport) its permits and the call's slots are still settled.
func (a *attempt) run() verdict {
	defer a.unwind()
	v := a.steps()
	a.returned = true
	return v
}

func (a *attempt) unwind() {
	if a.returned {
		return
	}
	if c := a.c; !c.finished.Load() {
		// The call ends here: count it, and close a body never sent.
		c.ep.stats.failures.Add(1)
		if a.req == nil {
			closeRequestBody(a.body)
		}
	}
	a.settle(nil, errBreakerPanic)
	a.end(0, errBreakerPanic, false)
	a.c.finish()
}

func (a *attempt) steps() verdict {
	c := a.c
	body, err := c.attemptBody(a.n)
	if err != nil {
		return final(c.fail(nil, err))
	}
	a.body = body
	if len(c.hooks().requests) > 0 {
		if v, done := a.requestHooks(); done {
			return v
		}
	}
	if v, refused := a.admit(); refused {
		return v
	}
	resp, err := a.send()
	a.settle(resp, err)
	return a.decide(resp, err)
}

func final(resp *http.Response, err error) verdict { return verdict{resp: resp, err: err} }

// requestHooks gives the hooks the attempt's own clone of the request.
// done is set when the hooks ended the call (an error, or a response).
func (a *attempt) requestHooks() (v verdict, done bool) {
	c := a.c
	h := c.req.Clone(c.req.Context())
	h.Body, h.GetBody = a.body, c.getBody
	addHeaders(h.Header, c.ep.setHeaders, true)
	rc := &RequestContext{Request: h, Endpoint: c.ep.key, Attempt: a.n, Values: c.side.values}
	c.side.hookMu.Lock()
	var herr error
	for _, hook := range c.hooks().requests {
		if herr = runHook(c.m, c.ep, "OnRequest", hook, rc); herr != nil || rc.Response != nil {
			break
		}
	}
	c.side.hookMu.Unlock()
	switch {
	case herr != nil:
		closeRequestBody(a.body)
		return final(c.fail(nil, herr)), true
	case rc.Response != nil:
		closeRequestBody(a.body)
		return final(c.answer(nil, rc.Request, rc.Response, false)), true
	case rc.Request == nil:
		closeRequestBody(a.body)
		return final(c.fail(nil, errors.New("OnRequest hook set Request to nil"))), true
	}
	a.hooked = rc.Request
	return verdict{}, false
}

// target is the request admission looks at: the hooks' or the caller's.
func (a *attempt) target() *http.Request {
	if a.hooked != nil {
		return a.hooked
	}
	return a.c.req
}

// admit picks the upstream, then takes the rate-limit token and the
// breaker permit. An open breaker is asked first, so that a call it
// refuses anyway never waits for a token or spends one.
func (a *attempt) admit() (verdict, bool) {
	c := a.c
	ep := c.ep
	if err := a.pick(); err != nil {
		a.settleIgnored() // a Done that came without an upstream
		return a.refused(RefusedNoHealthyUpstream, err)
	}
	var g *upstreamGuard
	if a.up != nil {
		g = &a.up.guard
	}
	early := g != nil && g.b != nil && BreakerState(g.b.stateGen.Load()&3) != BreakerClosed
	if early {
		p, refused := g.b.allowAt(ep.key, c.m.now())
		if refused != nil {
			return a.refused(RefusedCircuitOpen, refused)
		}
		a.bp.p = p
	}
	if ep.limiter != nil {
		if err := a.takeToken(); err != nil {
			a.settleIgnored()
			var rl *RateLimitError
			if errors.As(err, &rl) {
				return a.refused(RefusedRateLimited, err)
			}
			closeRequestBody(a.body)
			return final(c.fail(nil, err)), true
		}
	}
	if g != nil && !early {
		if err := a.allowBreaker(g); err != nil {
			a.settleIgnored()
			return a.refused(RefusedCircuitOpen, err)
		}
	}
	return verdict{}, false
}

// pick chooses the attempt's upstream: the endpoint's Picker when it has
// one, else the request's host (with its breaker, when the breaker is on).
func (a *attempt) pick() error {
	c := a.c
	if slot := c.ep.picker.Load(); slot != nil {
		res, err := a.callPicker(slot.picker)
		if err != nil {
			return err
		}
		if res.Upstream == nil {
			a.pickDone = res.Done
			return ErrNoHealthyUpstream
		}
		a.up, a.picked, a.pickDone = res.Upstream, true, res.Done
		if c.lb == nil {
			c.lb = &callLB{}
			c.lb.tried = c.lb.buf[:0]
		}
		c.lb.tried = append(c.lb.tried, res.Upstream)
		return nil
	}
	if c.ep.breakers != nil {
		a.up = c.ep.breakers.upstream(c.ep.key, a.target().URL.Host, c.m.now)
	}
	return nil
}

func (a *attempt) callPicker(p Picker) (res PickResult, err error) {
	defer a.c.m.recovered("Picker", a.c.ep.key, &err)
	return p.Pick(PickInfo{Request: a.target(), Endpoint: a.c.ep.key, Tried: a.c.lb.triedList()})
}

// allowBreaker takes the permit of a closed built-in breaker, or asks a
// custom one.
func (a *attempt) allowBreaker(g *upstreamGuard) error {
	c := a.c
	if g.b != nil {
		p, refused := g.b.allow(c.ep.key, c.m.now)
		if refused != nil {
			return refused
		}
		a.bp.p = p
		return nil
	}
	if g.custom == nil {
		return nil
	}
	done, err := a.callBreaker(g.custom)
	if err != nil {
		var open *CircuitOpenError
		if errors.As(err, &open) {
			return err
		}
		return &CircuitOpenError{Endpoint: c.ep.key, Upstream: g.key, State: BreakerOpen, LastErr: err}
	}
	a.bp.done = done
	return nil
}

func (a *attempt) callBreaker(b Breaker) (done func(Outcome), err error) {
	defer a.c.m.recovered("Breaker", a.c.ep.key, &err)
	return b.Allow()
}

// takeToken takes the attempt's rate-limit token, waiting at most
// max_wait and never past the deadline. The key function is user code:
// a panic in it refuses the attempt (and its permits are settled).
func (a *attempt) takeToken() error {
	c := a.c
	l := c.ep.limiter
	key, err := a.limiterKey(l)
	if err != nil {
		return err
	}
	start := time.Time{}
	observed := c.observer() != nil || c.m.opts.telemetry.meters != nil
	if observed {
		start = c.m.now()
	}
	if l.fleet != nil {
		a.fleetKey, a.fleetTok = key, true
		err = l.fleet.take(c.req.Context(), l, c.ep.key, key, c.callDeadline())
	} else {
		a.bk = l.bucketByKey(key, c.m.now)
		err = l.take(c.req.Context(), a.bk, c.ep.key, c.callDeadline(), c.m.now)
	}
	if observed {
		a.waited = c.m.since(start)
	}
	return err
}

func (a *attempt) limiterKey(l *limiter) (key string, err error) {
	if l.keys == nil {
		return "", nil
	}
	defer a.c.m.recovered("rate-limit key function", a.c.ep.key, &err)
	return l.keyOf(a.target()), nil
}

// refused ends the attempt (and its call) refused locally: to the
// fallback endpoint when the breaker or the balancer refused and there is
// one, else through the error hooks (a Fallback answers), else with the
// typed error.
func (a *attempt) refused(reason Refusal, err error) (verdict, bool) {
	c := a.c
	m, ep := c.m, c.ep
	upstream := ""
	if a.up != nil {
		upstream = a.up.guard.key
	}
	c.refusalSeen(a.n, upstream, reason, err)
	if reason == RefusedCircuitOpen || reason == RefusedNoHealthyUpstream {
		if fb := m.fallbackFor(ep, int(c.hops)); fb != nil {
			if fbBody, ok := bodyForFallback(a.body, c.getBody, a.hooked != nil); ok {
				c.finished.Store(true) // toFallback releases the call
				resp, ferr := m.toFallback(ep, fb, c.req, fbBody, c.getBody, int(c.hops), err, m.release)
				c.end(resp, ferr, true) // the fallback endpoint's call is observed on its own
				return final(resp, ferr), true
			}
		}
	}
	resp, herr := c.refusalHooks(a.n, a.target(), err)
	closeRequestBody(a.body)
	switch {
	case herr != nil:
		return final(c.fail(nil, herr)), true
	case resp != nil:
		return final(c.answer(nil, a.target(), resp, true)), true
	}
	return final(c.fail(refusalKind(reason), err)), true
}

func refusalKind(r Refusal) error {
	switch r {
	case RefusedCircuitOpen:
		return ErrCircuitOpen
	case RefusedRateLimited:
		return ErrRateLimited
	case RefusedNoHealthyUpstream:
		return ErrNoHealthyUpstream
	case RefusedConcurrencyLimit:
		return ErrConcurrencyLimit
	}
	return nil
}

// send builds the attempt's request under its per-try context and sends
// it through the endpoint's transport.
func (a *attempt) send() (*http.Response, error) {
	c := a.c
	a.prepare()
	if o := c.observer(); o != nil {
		a.observeStart(o)
	}
	if ms := c.m.opts.telemetry.meters; ms != nil {
		a.met = a.metricsStart(ms) // otel_pipeline.go
	}
	c.attempts++
	resp, err := c.m.transportRoundTrip(c.ep, a.req)
	if a.obs != nil {
		c.m.observeHeaders(a.obs, HeadersEvent{Response: resp, Err: err, At: c.m.now()})
	}
	return resp, err
}

// settleIgnored settles an attempt that never reached the network.
func (a *attempt) settleIgnored() {
	a.ownCancel.Store(true)
	a.settle(nil, context.Canceled)
}

// abandon ends an attempt connmgr no longer wants (a losing hedge): its
// outcome is ignored by the breaker, the balancer and the limiter.
func (a *attempt) abandon() {
	a.ownCancel.Store(true)
	a.stopContext()
}

// settle reports the attempt's outcome to each permit it holds, exactly
// once: the breaker permit, the pick's Done, the limiter's feedback. An
// attempt the caller or connmgr itself cancelled is Ignored: neither a
// failure nor a latency sample.
//
// The common case, a success on a closed breaker with nothing else to
// learn from it, reads no clock.
func (a *attempt) settle(resp *http.Response, err error) {
	if a.settled {
		return
	}
	a.settled = true
	if a.bp.p.b == nil && a.bp.done == nil && a.bk == nil && a.pickDone == nil && !a.fleetTok {
		return
	}
	c := a.c
	ep := c.ep
	var policy *breakerPolicy
	if ep.breakers != nil {
		policy = ep.breakers.policy
	}
	if err == nil && policy != nil && a.bp.p.b != nil && !a.bp.p.probe && a.bp.done == nil && a.pickDone == nil &&
		a.bk == nil && !a.fleetTok && policy.slowCall <= 0 && !policy.failStatus.has(resp.StatusCode) &&
		!a.sent.IsZero() && !a.ownCancel.Load() {
		// The most common case of all, spelled out: a success is the
		// outcome, at the time the attempt was sent, for the closed
		// built-in breaker, the only permit held.
		a.bp.p.done(ep.key, outcomeSuccess, nil, a.sent)
		return
	}
	timed := err != nil || a.bp.p.probe || a.bp.done != nil || a.pickDone != nil ||
		(policy != nil && (policy.slowCall > 0 || policy.failStatus.has(resp.StatusCode))) ||
		(a.bk != nil && (ep.limiter.adaptive != nil || resp.StatusCode == http.StatusTooManyRequests))
	now, latency := a.sent, time.Duration(0)
	if timed && !a.sent.IsZero() {
		latency = c.m.since(a.sent)
		now = a.sent.Add(latency)
	} else if a.sent.IsZero() {
		now = c.m.now()
	}
	o, cause := outcomeIgnored, error(nil)
	if !a.ownCancel.Load() {
		o, cause = breakerOutcome(c.req.Context(), policy, resp, err, a.deadline, latency)
	}
	if a.bp.p.b != nil {
		a.bp.p.done(ep.key, o, cause, now)
	}
	if a.bp.done != nil || a.pickDone != nil {
		a.report(publicOutcome(o, cause, resp, latency))
	}
	if a.bk != nil && err == nil && o != outcomeIgnored {
		ep.limiter.feedback(a.bk, resp, latency, now)
	}
	if a.fleetTok && err == nil && o != outcomeIgnored {
		ep.limiter.fleet.feedback(ep.limiter, ep.key, a.fleetKey, resp, latency, now)
	}
}

// report hands the outcome to a custom breaker and to the picker.
func (a *attempt) report(o Outcome) {
	m := a.c.m
	if a.bp.done != nil {
		func() {
			defer m.recovered("Breaker done", a.c.ep.key, nil)
			a.bp.done(o)
		}()
	}
	if a.pickDone != nil {
		func() {
			defer m.recovered("PickResult.Done", a.c.ep.key, nil)
			a.pickDone(o)
		}()
	}
}

func publicOutcome(o outcome, cause error, resp *http.Response, latency time.Duration) Outcome {
	out := Outcome{Err: cause, Latency: latency, Ignored: o == outcomeIgnored}
	if resp != nil {
		out.StatusCode = resp.StatusCode
	}
	if o == outcomeIgnored {
		out.Err, out.Latency = nil, 0
	}
	return out
}

// end stops the per-try timer and reports the attempt's end, once.
func (a *attempt) end(status int, err error, canceled bool) {
	if !a.ended.CompareAndSwap(false, true) {
		return
	}
	a.stopContext()
	if a.met != nil {
		a.metricsDone(status, err, canceled, a.c.m.since(a.sent))
	}
	if a.obs != nil {
		failed := err != nil || (status != 0 && a.c.ep.retry.retryOn.has(status))
		a.c.m.observeAttemptEnd(a.obs, AttemptEndEvent{StatusCode: status, Err: err, Canceled: canceled, Failed: failed, At: a.c.m.now()})
	}
}

// stopContext ends the attempt's per-try context.
func (a *attempt) stopContext() {
	if a.tctx != nil {
		a.tctx.stop()
	} else if a.cancel != nil {
		a.cancel()
	}
}
