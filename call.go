package connmgr

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr/internal/redact"
)

// call is one call of RoundTrip on one endpoint, from admission to the
// end of its response body (or its error). It owns what lives for the
// whole call: the deadline, the replayable body, the hook Values, the
// settings of this call, the observer, and the call's slot in the
// Manager and the endpoint (released once, by finish). Its attempts are
// values of their own (attempt.go).
type call struct {
	m    *Manager
	ep   *endpoint
	req  *http.Request // the caller's; never written to (its context is the call's)
	side *callSide     // what only calls with observers or hooks need (call_side.go); nil: none

	start time.Time
	// deadline is the caller's context deadline until callDeadline
	// merges the call's total timeout into it (totalMerged): the default
	// first attempt needs only its per-try deadline (tryFirst), and
	// computing the call's would cost a time.Time.Add. Zero: none.
	deadline time.Time

	// Settings: the endpoint's, with the CallOptions of the context.
	timeout     time.Duration // per try; 0: none
	maxAttempts int32
	hops        int32 // fallbacks taken to get here
	attempts    int32 // attempts sent to the network
	lastStatus  int32

	idempotent bool // CallOptions.Idempotent
	replayable bool // false: the body is sent once (too large to buffer)
	budgetRef  bool // the last retry was refused by the budget
	// tryFirst: the per-try timeout is set and no longer than the total
	// one. totalMerged: deadline includes the total timeout (or none).
	tryFirst, totalMerged bool
	finished              atomic.Bool
	bodyStatus            int32

	// The body, replayed through getBody.
	body    io.ReadCloser
	getBody func() (io.ReadCloser, error)

	// lb holds what a load-balanced call keeps across attempts (the
	// upstreams tried, the first attempt's URL), made at its first pick:
	// one allocation per balanced call, none for the others.
	lb *callLB

	// The body of the response the call returns (see wrapBody): what
	// ending the last attempt needs once the caller is done with it.
	bodyRC  io.ReadCloser
	bodyCtx *tryContext // the attempt's own context; nil: side.bodyCancel, if any

	// firstReq is the first attempt's request when no hook ran (see
	// plainRequest): held here, it costs no allocation of its own.
	firstReq http.Request
}

// RoundTrip sends one request through the pipeline (see the package
// doc for the order). It never modifies req and always closes req.Body.
// As with any RoundTripper, a final failure status such as 503 is a
// response with a nil error.
func (m *Manager) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		return nil, errors.New("connmgr: RoundTrip: nil request")
	}
	if req.URL == nil {
		closeRequestBody(req.Body)
		return nil, errors.New("connmgr: RoundTrip: request has no URL")
	}
	ep := m.table.Load().lookup(req.URL)
	if err := checkURL(req.URL); err != nil {
		closeRequestBody(req.Body)
		return nil, &Error{Endpoint: ep.key, Method: methodOrGet(req.Method), URL: m.redact.Load().URL(req.URL), Err: err}
	}
	if req.Response != nil {
		req = redirectHop(req) // a redirect net/http follows: no secrets in Referer to another origin
	}
	if rt := m.wrapped(ep); rt != nil {
		return m.middlewareRoundTrip(ep, rt, req)
	}
	return m.startCall(ep, req, 0)
}

// errNoScheme and errNoHost: a request the transport could never send.
// Such a call fails at once: it is not retried and reaches no breaker.
var (
	errNoScheme = errors.New("connmgr: the URL has no scheme (want http:// or https://)")
	errNoHost   = errors.New("connmgr: the URL has no host")
)

// checkURL refuses a URL the transport could never send.
func checkURL(u *url.URL) error {
	if u.Scheme == "" {
		return errNoScheme
	}
	if u.Host == "" {
		return errNoHost
	}
	return nil
}

// startCall admits a call on ep (the Manager open, the concurrency cap)
// and runs it. hops counts the fallbacks taken to get to ep.
func (m *Manager) startCall(ep *endpoint, req *http.Request, hops int) (*http.Response, error) {
	if hops > 0 {
		m.acquireContinuation(ep)
	} else if !m.acquire(ep) {
		closeRequestBody(req.Body)
		return nil, m.callError(ep, req, 0, 0, ErrClosed, nil)
	}
	ep.stats.requests.Add(1)
	c := m.newCall() // one allocation: the call is also its response's body wrapper
	m.initCall(c, ep, req, hops)
	if ep.bulkhead != nil {
		if err := ep.bulkhead.acquire(req.Context(), c.callDeadline(), m.now); err != nil {
			return c.capRefused(err)
		}
	}
	ep.budget.deposit()
	return c.run()
}

// newCall allocates a call. A call that hooks or observers will need the
// side struct for (call_side.go) gets it in the same allocation.
func (m *Manager) newCall() *call {
	if len(m.observers) == 0 && m.chain.Load().empty() {
		return new(call)
	}
	sc := new(sidedCall)
	sc.call.side = &sc.side
	return &sc.call
}

func (m *Manager) initCall(c *call, ep *endpoint, req *http.Request, hops int) {
	// c is new, hence zero: set field by field, as a composite literal
	// assigned through the pointer would be built on the stack and then
	// copied with write barriers.
	c.m, c.ep, c.req, c.hops = m, ep, req, int32(hops)
	c.start, c.maxAttempts, c.timeout = m.callStart(), int32(ep.retry.maxAttempts), ep.timeout
	total := ep.totalTimeout
	if o := callOptionsFrom(c.req.Context()); o != nil {
		total = c.applyOptions(o, total)
	}
	c.tryFirst, c.totalMerged = c.timeout > 0 && total >= c.timeout, total <= 0
	if d, ok := c.req.Context().Deadline(); ok {
		c.deadline = d
	}
	if chain := m.chain.Load(); !chain.empty() {
		s := c.sided()
		s.chain, s.values = chain, make(map[string]any)
	}
	if len(m.observers) > 0 {
		m.startObserving(c)
	}
}

// total is the call's total timeout: the endpoint's (given) with the
// options' override; 0 for none.
func (o *CallOptions) total(endpoint time.Duration) time.Duration {
	switch {
	case o.TotalTimeout < 0:
		return 0
	case o.TotalTimeout > 0:
		return o.TotalTimeout
	}
	return endpoint
}

// callDeadline returns the call's deadline: the earlier of the caller's
// and the end of the total timeout; zero for none. Only the call's own
// goroutine calls it (admission, attempts, retry plans).
func (c *call) callDeadline() time.Time {
	if !c.totalMerged {
		c.totalMerged = true
		total := c.ep.totalTimeout
		if o := callOptionsFrom(c.req.Context()); o != nil {
			total = o.total(total)
		}
		if total > 0 {
			if t := c.start.Add(total); c.deadline.IsZero() || t.Before(c.deadline) {
				c.deadline = t
			}
		}
	}
	return c.deadline
}

// applyOptions overrides the endpoint's settings with the call's own,
// returning the total timeout.
func (c *call) applyOptions(o *CallOptions, total time.Duration) time.Duration {
	switch {
	case o.Timeout < 0:
		c.timeout = 0
	case o.Timeout > 0:
		c.timeout = o.Timeout
	}
	total = o.total(total)
	if o.MaxAttempts > 0 {
		c.maxAttempts = int32(min(o.MaxAttempts, 100))
	}
	if o.NoRetry {
		c.maxAttempts = 1
	}
	c.idempotent = o.Idempotent
	return total
}

// run runs the attempts of an admitted call until one gives the call
// its outcome.
func (c *call) run() (*http.Response, error) {
	if err := c.prepareBody(); err != nil {
		return c.fail(nil, err)
	}
	for n := 1; ; n++ {
		a := attempt{c: c, n: n} // on the stack
		v := a.run()
		if !v.retry {
			return v.resp, v.err
		}
	}
}

// verdict is what an attempt decided for its call: the call's response
// or error, or another attempt.
type verdict struct {
	resp  *http.Response
	err   error
	retry bool
}

// prepareBody makes the request body replayable: through GetBody, or by
// buffering a body without it up to a limit; a larger one is sent once.
func (c *call) prepareBody() error {
	req, ep := c.req, c.ep
	c.body, c.getBody, c.replayable = req.Body, req.GetBody, true
	if c.body == http.NoBody {
		c.body = nil
	}
	if c.body == nil || c.getBody != nil {
		return nil
	}
	if c.maxAttempts <= 1 || ep.retry.maxBufferedBody <= 0 || req.ContentLength > ep.retry.maxBufferedBody {
		c.replayable = false
		return nil
	}
	gb, once, err := bufferBodyUntil(c.req.Context(), c.callDeadline(), c.body, ep.retry.maxBufferedBody)
	switch {
	case err != nil:
		c.body = nil
		return err
	case gb != nil:
		c.getBody = gb
		c.body, _ = gb()
	default:
		c.body, c.replayable = once, false
	}
	return nil
}

// attemptBody returns the body for attempt n.
func (c *call) attemptBody(n int) (io.ReadCloser, error) {
	if c.body == nil {
		return nil, nil
	}
	if n == 1 {
		return c.body, nil
	}
	return c.getBody()
}

// fail ends the call with an error. Only a call that reached the network
// counts in the latency percentiles: a call refused locally took no
// upstream time.
func (c *call) fail(kind, cause error) (*http.Response, error) {
	err := c.m.callError(c.ep, c.req, int(c.attempts), int(c.lastStatus), kind, cause)
	if c.attempts > 0 {
		c.ep.stats.recordEnd(0, true, c.start, c.m.since(c.start))
	} else {
		c.ep.stats.failures.Add(1)
	}
	c.end(nil, err, false)
	c.finish()
	return nil, err
}

// end reports the end of the call to its observer and its metrics.
func (c *call) end(resp *http.Response, err error, fallback bool) {
	if o := c.observer(); o != nil {
		c.m.observeCallEnd(o, CallEndEvent{Response: resp, Err: err, Attempts: int(c.attempts), Fallback: fallback, Duration: c.m.since(c.start)})
	}
	if ms := c.m.opts.telemetry.meters; ms != nil {
		c.metricsEnd(ms, resp, err, fallback) // otel_pipeline.go
	}
}

// finish releases the call's slots (the Manager's, the endpoint's, the
// concurrency cap's), exactly once.
func (c *call) finish() {
	if c.finished.CompareAndSwap(false, true) {
		c.closeReplacedBody()
		c.m.release(c.ep)
	}
}

// closeReplacedBody closes the caller's request body again at the end of
// a call with hooks: a request hook that replaced the body (to sign or
// rewrite it) left the caller's own unclosed, and the RoundTripper
// contract is that RoundTrip closes it. The transport is done with the
// request by now; closing twice is harmless for a request body.
func (c *call) closeReplacedBody() {
	if c.side != nil && c.side.chain != nil && c.req.Body != nil && c.req.Body != http.NoBody {
		closeRequestBody(c.req.Body)
	}
}

// answer finishes the call with resp: the response hooks run (not for a
// fallback), then the response is returned. a is the attempt that got
// resp from the network, or nil (a hook answered); its body wrapper
// ends the attempt and the call when the caller closes the body.
func (c *call) answer(a *attempt, areq *http.Request, resp *http.Response, fallback bool) (*http.Response, error) {
	elapsed := c.m.since(c.start)
	if a != nil && a.met != nil {
		a.metricsAnswered(resp.StatusCode, elapsed) // otel_pipeline.go
	}
	if !fallback && len(c.hooks().responses) > 0 {
		r, err := c.runResponseHooks(a, areq, resp, elapsed)
		if err != nil {
			if a != nil {
				a.end(0, err, false)
			}
			return c.fail(nil, err)
		}
		resp = r
	}
	ep := c.ep
	failed := fallback || isServerError(resp.StatusCode) || ep.retry.retryOn.has(resp.StatusCode)
	ep.stats.recordEnd(resp.StatusCode, failed, c.start, elapsed)
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if resp.Request == nil {
		resp.Request = areq
	}
	c.end(resp, nil, fallback)
	if a == nil || resp.Body == http.NoBody {
		if a != nil {
			a.end(resp.StatusCode, nil, false)
		}
		c.finish()
		return resp, nil
	}
	a.wrapBody(resp)
	return resp, nil
}

// runResponseHooks runs the response hooks on resp; on an error the
// body of the response they left is closed.
func (c *call) runResponseHooks(a *attempt, areq *http.Request, resp *http.Response, elapsed time.Duration) (*http.Response, error) {
	n := 0
	if a != nil {
		n = a.n
	}
	c.side.hookMu.Lock()
	defer c.side.hookMu.Unlock()
	rc := &ResponseContext{Request: areq, Response: resp, Endpoint: c.ep.key, Attempt: n, Duration: elapsed, Values: c.side.values}
	returned := false
	defer discardUnlessReturned(&returned, &rc.Response) // a hook may runtime.Goexit
	for _, h := range c.hooks().responses {
		if err := runHook(c.m, c.ep, "OnResponse", h, rc); err != nil {
			c.lastStatus = int32(resp.StatusCode)
			discardBody(rc.Response)
			returned = true
			return nil, err
		}
	}
	returned = true
	if rc.Response == nil {
		c.lastStatus = int32(resp.StatusCode)
		discardBody(resp)
		return nil, errors.New("OnResponse hook set Response to nil")
	}
	return rc.Response, nil
}

// discardUnlessReturned, deferred by the callers of hooks, discards the
// response they were shown when the hooks did not return: one called
// runtime.Goexit, and nobody will read or close its body.
func discardUnlessReturned(returned *bool, resp **http.Response) {
	if !*returned {
		discardBody(*resp)
	}
}

// capRefused ends a call the concurrency cap refused: to the fallback
// endpoint, or through the error hooks, or with the error.
func (c *call) capRefused(err error) (*http.Response, error) {
	m, ep := c.m, c.ep
	if err != ErrConcurrencyLimit {
		// The caller gave up while queued.
		m.releaseUncapped(ep)
		c.finished.Store(true)
		ep.stats.failures.Add(1)
		closeRequestBody(c.req.Body)
		return c.refusedWith(m.callError(ep, c.req, 0, 0, nil, err))
	}
	c.refusalSeen(1, "", RefusedConcurrencyLimit, err)
	if fb := m.fallbackFor(ep, int(c.hops)); fb != nil {
		c.finished.Store(true)
		resp, ferr := m.toFallback(ep, fb, c.req, c.req.Body, c.req.GetBody, int(c.hops), err, m.releaseUncapped)
		c.end(resp, ferr, true) // the fallback endpoint's call is observed on its own
		return resp, ferr
	}
	c.body = c.req.Body
	resp, herr := c.refusalHooks(1, c.req, err)
	// The call holds no slot of the cap: finish must not give one back.
	m.releaseUncapped(ep)
	c.finished.Store(true)
	closeRequestBody(c.body)
	if resp != nil {
		return c.answerRefused(resp)
	}
	ep.stats.failures.Add(1)
	if herr == nil {
		return c.refusedWith(m.callError(ep, c.req, 0, 0, ErrConcurrencyLimit, nil))
	}
	return c.refusedWith(m.callError(ep, c.req, 0, 0, nil, herr))
}

// refusedWith ends the observation of a call the cap refused with err.
func (c *call) refusedWith(err error) (*http.Response, error) {
	c.end(nil, err, false)
	return nil, err
}

// answerRefused returns the response an error hook gave a refused call
// (its slots already released).
func (c *call) answerRefused(resp *http.Response) (*http.Response, error) {
	c.ep.stats.record(resp.StatusCode, true, 0)
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if resp.Request == nil {
		resp.Request = c.req
	}
	c.end(resp, nil, true)
	return resp, nil
}

// refusalSeen reports a local refusal to the observer, the refusal log
// and the metrics.
func (c *call) refusalSeen(n int, upstream string, reason Refusal, err error) {
	o, mon := c.observer(), c.m.opts.telemetry.monitor
	if o != nil || mon != nil {
		ev := RefusalEvent{Endpoint: c.ep.key, Upstream: upstream, Reason: reason, Attempt: n, Err: err, At: c.m.now()}
		if o != nil {
			c.m.observeRefused(o, ev)
		}
		if mon != nil {
			mon.refused(ev)
		}
	}
	if ms := c.m.opts.telemetry.meters; ms != nil {
		ms.refused(c.m, c.ep.key, reason)
	}
}

// refusalHooks runs the error hooks for a local refusal (breaker,
// limiter, cap, balancer): Retry is false and stays so, Fallback answers
// the call. It returns the fallback response, or the hook's error.
func (c *call) refusalHooks(n int, req *http.Request, refusal error) (*http.Response, error) {
	if len(c.hooks().errors) == 0 {
		return nil, nil
	}
	if req == c.req {
		// No request hook made a clone: hooks never see the caller's own.
		req = req.Clone(c.req.Context())
	}
	c.side.hookMu.Lock()
	defer c.side.hookMu.Unlock()
	ec := &ErrorContext{Request: req, Err: refusal, Endpoint: c.ep.key, Attempt: n, Values: c.side.values}
	for _, h := range c.hooks().errors {
		if err := runHook(c.m, c.ep, "OnError", h, ec); err != nil {
			return nil, err
		}
		if ec.Fallback != nil {
			return ec.Fallback, nil
		}
	}
	return nil, nil
}

// callError builds the *Error a call returns, with the URL redacted.
func (m *Manager) callError(ep *endpoint, req *http.Request, attempts, status int, kind, cause error) *Error {
	return &Error{
		Endpoint:   ep.key,
		Method:     methodOrGet(req.Method),
		URL:        m.redact.Load().URL(req.URL),
		Attempts:   attempts,
		LastStatus: status,
		Kind:       kind,
		Err:        cause,
	}
}

func methodOrGet(method string) string {
	if method == "" {
		return http.MethodGet
	}
	return method
}

// redactRawURL redacts a raw URL string for an error message. One that
// parses is redacted as any URL. One that does not (a typo) is shown,
// with what could hold a secret cut: the userinfo before an '@', and the
// query and fragment.
func redactRawURL(r *redact.Redactor, raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return r.URL(u)
	}
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + s[i:i+1] + redact.Mask
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		start := 0
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			start = i + 3
		}
		s = s[:start] + redact.Mask + s[at:]
	}
	return s
}
