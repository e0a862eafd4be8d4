package connmgr

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// prepare builds the attempt's request under its per-try context: the
// timeout, bounded by the call's deadline, that ends when the caller
// closes the body. Without request hooks the request is one shallow copy
// of the caller's carrying that context.
func (a *attempt) prepare() {
	c := a.c
	ep := c.ep
	// The first attempt reuses the call's start unless hooks or a rate
	// limit wait ran since.
	a.sent = c.start
	later := a.n > 1 || a.hooked != nil || ep.limiter != nil || a.picked
	if later {
		a.sent = c.m.now()
	}
	if !later && c.tryFirst {
		// Sent at the call's start, with a per-try timeout no longer
		// than the total one: the total deadline cannot come first,
		// only the caller's (c.deadline, merged or not).
		a.deadline = c.start.Add(c.timeout)
		if !c.deadline.IsZero() && c.deadline.Before(a.deadline) {
			a.deadline = c.deadline
		}
	} else {
		a.deadline = c.callDeadline()
		if c.timeout > 0 {
			if d := a.sent.Add(c.timeout); a.deadline.IsZero() || d.Before(a.deadline) {
				a.deadline = d
			}
		}
	}
	actx := a.attemptContext()
	if a.picked && a.up.load.tlsName != "" {
		// The name the upstream's certificate must carry (see serverNameKey).
		actx = context.WithValue(actx, serverNameKey{}, a.up.load.tlsName)
	}
	if a.hooked != nil {
		a.req = a.hooked.WithContext(actx)
	} else {
		a.req = c.plainRequest(actx, a.body, a.n == 1)
	}
	if a.picked && a.up.URL != nil {
		u := c.lb.url(a.n)
		*u = *a.req.URL
		u.Scheme, u.Host = a.up.URL.Scheme, a.up.URL.Host
		if u.Scheme == "" {
			u.Scheme = a.req.URL.Scheme
		}
		// The Host header is the upstream's, or for a discovered
		// address the logical host it serves.
		a.req.URL, a.req.Host = u, a.up.load.host
	}
}

// attemptContext returns the per-try context and sets what ends it
// (a.tctx or a.cancel; see stopContext), or neither when the attempt runs
// under the caller's own context. Its parent is the caller's context,
// unless a request hook gave the request another one.
func (a *attempt) attemptContext() context.Context {
	ctx := a.c.req.Context()
	parent, replaced := ctx, false
	if a.hooked != nil {
		if hc := a.hooked.Context(); hc != ctx {
			parent, replaced = hc, true
		}
	}
	var actx context.Context
	if d, ok := ctx.Deadline(); ok && !replaced && !a.deadline.IsZero() && !d.After(a.deadline) {
		// The caller's own deadline comes first: it is the per-try
		// timeout, and a context of our own would only add a second
		// timer for the same moment: nothing of ours to end.
		actx = ctx
	} else if !replaced {
		a.tctx = newTryContext(parent, a.deadline)
		actx = a.tctx
	} else if a.deadline.IsZero() {
		actx, a.cancel = context.WithCancel(parent)
	} else {
		actx, a.cancel = context.WithDeadline(parent, a.deadline)
	}
	if replaced {
		// A hook replaced the request's context: the caller's
		// cancellation must still end the attempt.
		cancelAttempt := a.cancel
		stop := context.AfterFunc(ctx, cancelAttempt)
		a.cancel = func() { stop(); cancelAttempt() }
	}
	return actx
}

// plainRequest is the attempt's request when no hook ran: a shallow copy
// of the caller's, with the endpoint's headers. The first attempt's is
// the call's own firstReq; a retry's is a new one, as the transport may
// still hold the request of the attempt before it.
func (c *call) plainRequest(actx context.Context, body io.ReadCloser, first bool) *http.Request {
	req, ep := c.req, c.ep
	var r *http.Request
	if first {
		c.firstReq = *req.WithContext(actx) // WithContext is inlined: its copy stays on the stack
		r = &c.firstReq
	} else {
		r = req.WithContext(actx)
	}
	r.Body, r.GetBody = body, c.getBody
	switch {
	case !c.hooks().empty():
		// Hooks may change the header and the URL in place: the attempt
		// gets deep copies.
		r.Header = req.Header.Clone()
		if r.Header == nil {
			r.Header = make(http.Header, len(ep.setHeaders))
		}
		addHeaders(r.Header, ep.setHeaders, true)
		u := *req.URL
		r.URL = &u
	case c.observer() != nil && c.side.headers:
		// Observers may add headers (trace context), and only that: the
		// attempt gets a header map of its own; its values are shared,
		// capped so that an Add copies them.
		r.Header = observedHeader(req.Header, ep.setHeaders)
	case len(ep.setHeaders) > 0:
		// Only the transport sees it, and it does not write to it.
		r.Header = headerWith(req.Header, ep.setHeaders)
	}
	return r
}

// observeStart reports the attempt to the call's observer o, which may
// replace its context (a span). The first attempt's event is the call's
// own (call_side.go): no allocation.
func (a *attempt) observeStart(o CallObserver) {
	c := a.c
	up := ""
	st := BreakerClosed
	if a.up != nil {
		up = a.up.guard.key
		if b := a.up.guard.b; b != nil {
			st = BreakerState(b.stateGen.Load() & 3)
		}
	} else {
		up = a.req.URL.Host
	}
	ev := &c.side.firstEv
	if a.n > 1 {
		ev = new(AttemptEvent)
	}
	if a.hooked != nil {
		// A hook may have handed on a header map that is not the
		// attempt's own (the caller's): observers write to this one.
		a.req.Header = a.req.Header.Clone()
	}
	ctx := a.req.Context()
	*ev = AttemptEvent{Context: ctx, Request: a.req, Endpoint: c.ep.key, Upstream: up, Attempt: a.n,
		LimiterWait: a.waited, BreakerState: st, Start: a.sent}
	a.obs = c.m.observeAttemptStart(o, ev)
	if ev.Context != nil && ev.Context != ctx {
		a.req = a.req.WithContext(ev.Context)
	}
}

// transportRoundTrip sends an admitted attempt. A transport that panics
// has its panic turned into an error, which then takes the normal
// failure path; a transport that returns neither a response nor an
// error gets an error; a response returned with an error is closed and
// dropped, as http.Client does.
func (m *Manager) transportRoundTrip(ep *endpoint, areq *http.Request) (resp *http.Response, err error) {
	defer m.recovered("transport", ep.key, nil, func(v any) { resp, err = nil, &transportPanicError{value: v} })
	resp, err = ep.roundTripper().RoundTrip(areq)
	switch {
	case err != nil && resp != nil:
		drainAndClose(resp.Body)
		resp = nil
	case err == nil && resp == nil:
		err = errNilResponse
	}
	if err != nil && !validRequest(areq) {
		err = &invalidRequestError{err: err}
	}
	return resp, err
}

// errNilResponse: the transport broke the RoundTripper contract.
var errNilResponse = errors.New("connmgr: transport returned neither a response nor an error")

// transportPanicError is a panic in the transport, turned into an error.
// It is never retried.
type transportPanicError struct {
	value any
}

func (e *transportPanicError) Error() string {
	return "connmgr: transport panicked: " + safeString(e.value)
}

// wrapBody makes resp's body end the attempt and the call when the
// caller closes it or reads it to the end. The call itself is the
// wrapper (no allocation of its own); the attempt, on the stack, hands
// it what ending needs.
func (a *attempt) wrapBody(resp *http.Response) {
	a.ended.Store(true) // from here on, the body ends the attempt
	c := a.c
	c.bodyRC, c.bodyCtx, c.bodyStatus = resp.Body, a.tctx, int32(resp.StatusCode)
	if a.tctx == nil && a.cancel != nil {
		c.sided().bodyCancel = a.cancel
	}
	if c.side != nil {
		c.side.bodyObs = a.obs
	}
	b := (*callBody)(c)
	resp.Body = b
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if _, ok := c.bodyRC.(io.Writer); ok {
			resp.Body = callBodyWriter{b}
		}
	} else if _, ok := c.bodyRC.(io.WriterTo); ok {
		resp.Body = callBodyWriterTo{b}
	}
}

// callBody is the call seen as the body of the response it returns. It
// ends the attempt's context (the per-try timeout), tells the attempt's
// observer, and releases the call when the caller closes the body or
// reads it to the end, whichever is first, exactly once.
type callBody call

func (b *callBody) Read(p []byte) (int, error) {
	n, err := b.bodyRC.Read(p)
	if err == io.EOF {
		b.finish()
	}
	return n, err
}

func (b *callBody) Close() error {
	err := b.bodyRC.Close()
	b.finish()
	return err
}

func (b *callBody) finish() {
	c := (*call)(b)
	// Read to EOF, then Close, is the common way to end a body: the
	// second finish sees the flag with a plain load instead of a locked
	// compare-and-swap.
	if c.finished.Load() || !c.finished.CompareAndSwap(false, true) {
		return
	}
	if c.bodyCtx != nil {
		c.bodyCtx.stop()
	} else if c.side != nil && c.side.bodyCancel != nil {
		c.side.bodyCancel()
	}
	if c.side != nil && c.side.bodyObs != nil {
		failed := c.ep.retry.retryOn.has(int(c.bodyStatus))
		c.m.observeAttemptEnd(c.side.bodyObs, AttemptEndEvent{StatusCode: int(c.bodyStatus), Failed: failed, At: c.m.now()})
	}
	c.closeReplacedBody()
	c.m.release(c.ep)
}

// callBodyWriterTo keeps io.WriterTo for bodies that have it (a body
// held in memory), so that io.Copy from the response hands the copy to
// the body as it would without connmgr.
type callBodyWriterTo struct {
	*callBody
}

// WriteTo copies the body to w with the body's own WriteTo, and ends the
// call when it returns at the end of the body, as reading to the end
// does.
func (b callBodyWriterTo) WriteTo(w io.Writer) (int64, error) {
	n, err := b.bodyRC.(io.WriterTo).WriteTo(w)
	if err == nil {
		b.finish()
	}
	return n, err
}

// callBodyWriter keeps io.Writer for bodies that have it (101 Switching
// Protocols), so upgraded connections still work through the Manager.
type callBodyWriter struct {
	*callBody
}

func (b callBodyWriter) Write(p []byte) (int, error) {
	return b.bodyRC.(io.Writer).Write(p)
}

// maxDrainTime bounds the drain of a discarded body in time, as maxDrain
// bounds it in bytes: a stalled body is cut off, not waited out.
const maxDrainTime = 50 * time.Millisecond

// discard drops a response the call will not return: its body drained a
// little (bounded in bytes and in time) and closed, so its connection
// can be reused, then its attempt ended as cancelled by connmgr.
func (a *attempt) discard(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		body := resp.Body
		stop := a.cancel
		if a.tctx != nil {
			stop = a.tctx.stop
		}
		if stop == nil {
			// The attempt runs under the caller's context: only closing
			// the body stops a stalled drain.
			stop = func() { _ = body.Close() }
		}
		t := time.AfterFunc(maxDrainTime, stop)
		drainAndClose(body)
		t.Stop()
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	a.end(status, nil, true)
}

// discardBody drains and closes a response nobody will read.
func discardBody(resp *http.Response) {
	if resp != nil {
		drainAndClose(resp.Body)
	}
}
