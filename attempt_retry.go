package connmgr

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// decide classifies a settled attempt and says what the call does next:
// return the response, try again, or end with an error.
func (a *attempt) decide(resp *http.Response, err error) verdict {
	c := a.c
	failed, retryable, perr := a.classify(resp, err)
	if perr != nil {
		// The retry policy ended the call.
		if resp != nil {
			c.lastStatus = int32(resp.StatusCode)
		}
		a.discard(resp)
		return final(c.fail(nil, perr))
	}
	if !failed {
		return final(c.answer(a, a.req, resp, false))
	}
	if a.met != nil {
		a.metricsDone(statusOf(resp), err, resp == nil && a.ownCancel.Load(), c.m.since(a.sent))
	}
	return a.failed(resp, err, retryable)
}

// classify tells whether the attempt failed and whether the failure is
// worth another try: the endpoint's retry_on and the transport error's
// class, or the RetryPolicy when one is set. Whether a retry is safe is
// decided later, by the Manager, whatever the policy says.
func (a *attempt) classify(resp *http.Response, err error) (failed, retryable bool, perr error) {
	c := a.c
	if err != nil {
		class := classifyError(c.req.Context(), err)
		if c.ep.retryPolicy == nil || class == errCallerDone || isPanicOrContract(err) {
			return true, class == errDial || class == errRetryable, nil
		}
		retry, perr := a.askPolicy(nil, err)
		return true, retry, perr
	}
	if c.ep.retryPolicy == nil {
		bad := c.ep.retry.retryOn.has(resp.StatusCode)
		return bad, bad, nil
	}
	retry, perr := a.askPolicy(resp, nil)
	return retry, retry, perr
}

func isPanicOrContract(err error) bool {
	_, panicked := err.(*transportPanicError)
	_, invalid := err.(*invalidRequestError)
	return panicked || invalid || err == errNilResponse
}

func (a *attempt) askPolicy(resp *http.Response, err error) (retry bool, perr error) {
	defer a.c.m.recovered("RetryPolicy", a.c.ep.key, &perr)
	return a.c.ep.retryPolicy(a.c.req.Context(), resp, err)
}

// retryPlan is the decision on a failed attempt, as the error hooks see
// and may change it.
type retryPlan struct {
	canRetry   bool // attempts left, a replayable body, the caller still there
	retry      bool
	wait       time.Duration
	token      retryToken
	retryAfter time.Duration
	reason     string
}

// failed decides on a failed attempt: the policy's verdict (attempts
// left, safety, Retry-After, deadline, budget), then the error hooks,
// which see that verdict and may change it or answer with a fallback.
func (a *attempt) failed(resp *http.Response, err error, retryable bool) verdict {
	plan, hookErr := a.plan(resp, err, retryable)
	if len(a.c.hooks().errors) > 0 {
		if v, done := a.errorHooks(resp, hookErr, &plan); done {
			return v
		}
	}
	if plan.retry {
		return a.retry(resp, err, plan.wait, plan.token, plan.reason)
	}
	return a.giveUp(resp, err)
}

// plan settles the policy's decision (deadline, budget) before the hooks
// see it, so that Retry == false tells a hook this attempt is the last
// one. It returns the error the hooks are shown.
func (a *attempt) plan(resp *http.Response, err error, retryable bool) (retryPlan, error) {
	c := a.c
	p := retryPlan{canRetry: a.n < int(c.maxAttempts) && c.replayable && c.req.Context().Err() == nil}
	policyRetry := p.canRetry && retryable && (isDialError(c.req.Context(), err) || a.safe())
	hookErr := err
	if err == nil {
		c.lastStatus = int32(resp.StatusCode)
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.m.now()); ok {
			p.retryAfter = ra
			if ra > c.ep.retry.maxRetryAfter {
				policyRetry = false // the server asks for longer than we wait
			}
		}
		hookErr = &StatusError{StatusCode: resp.StatusCode}
	}
	c.budgetRef = false
	if policyRetry {
		p.wait, p.token = a.admitRetry(p.retryAfter, resp)
	}
	p.retry, p.reason = p.token.ok(), retryReason(err, c.req.Context())
	return p, hookErr
}

// errorHooks runs the error hooks on a failed attempt. done is set when
// they ended the call (an error, or a Fallback); else p holds their
// decision.
func (a *attempt) errorHooks(resp *http.Response, hookErr error, p *retryPlan) (verdict, bool) {
	c := a.c
	ec := &ErrorContext{Request: a.req, Err: hookErr, Response: resp, Endpoint: c.ep.key,
		Attempt: a.n, Values: c.side.values, Retry: p.retry, RetryAfter: p.retryAfter}
	herr := c.runErrorHooks(ec)
	switch {
	case herr != nil:
		c.ep.budget.refund(p.token)
		a.discard(resp)
		return final(c.fail(nil, herr)), true
	case ec.Fallback != nil:
		c.ep.budget.refund(p.token)
		a.discard(resp)
		return final(c.answer(nil, a.req, ec.Fallback, true)), true
	}
	p.retry = ec.Retry && p.canRetry
	switch {
	case p.retry && (!p.token.ok() || ec.RetryAfter != p.retryAfter):
		// The hook asked for a retry, or for another wait: decide again.
		c.ep.budget.refund(p.token)
		p.wait, p.token = a.admitRetry(ec.RetryAfter, resp)
		p.retry, p.reason = p.token.ok(), "hook"
	case !p.retry:
		c.ep.budget.refund(p.token)
	}
	return verdict{}, false
}

// runErrorHooks runs the error hooks until one fails or answers.
func (c *call) runErrorHooks(ec *ErrorContext) error {
	c.side.hookMu.Lock()
	defer c.side.hookMu.Unlock()
	returned := false
	defer discardUnlessReturned(&returned, &ec.Response) // a hook may runtime.Goexit
	for _, h := range c.hooks().errors {
		if err := runHook(c.m, c.ep, "OnError", h, ec); err != nil || ec.Fallback != nil {
			returned = true
			return err
		}
	}
	returned = true
	return nil
}

// retry drops the failed attempt and waits before the next one.
func (a *attempt) retry(resp *http.Response, err error, wait time.Duration, token retryToken, reason string) verdict {
	c := a.c
	if err != nil {
		a.end(0, err, false)
	} else {
		a.discard(resp)
	}
	c.ep.stats.retries.Add(1)
	if o := c.observer(); o != nil {
		c.m.observeRetry(o, RetryEvent{Attempt: a.n, Reason: reason, StatusCode: statusOf(resp), Err: err, Wait: wait})
	}
	if ms := c.m.opts.telemetry.meters; ms != nil {
		ms.retried(c.m, c.ep.key, reason)
	}
	c.m.logRetry(c.req.Context(), c.ep, c.req, a.n, int(c.lastStatus), err, wait)
	if werr := sleepCtx(c.req.Context(), wait); werr != nil {
		c.ep.budget.refund(token)
		return final(c.fail(nil, werr))
	}
	return verdict{retry: true}
}

// giveUp ends the call after its last attempt: a final failing status is
// a response, as in net/http; an error is typed.
func (a *attempt) giveUp(resp *http.Response, err error) verdict {
	c := a.c
	if err == nil {
		return final(c.answer(a, a.req, resp, false))
	}
	a.end(0, err, false)
	var kind error
	switch {
	case c.budgetRef:
		kind = ErrRetryBudgetExhausted
	case a.n > 1 && c.req.Context().Err() == nil:
		kind = ErrRetriesExhausted
	}
	return final(c.fail(kind, err))
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func retryReason(err error, ctx context.Context) string {
	switch {
	case err == nil:
		return "status"
	case classifyError(ctx, err) == errDial:
		return "connect"
	}
	return "error"
}

func isDialError(ctx context.Context, err error) bool {
	return err != nil && classifyError(ctx, err) == errDial
}

// safe reports whether the attempt's request may be sent again: an
// idempotent method, an Idempotency-Key, or an opt-in.
func (a *attempt) safe() bool {
	return a.c.idempotent || a.c.ep.retry.safeToRetry(a.req, false)
}

// admitRetry decides whether a retry may go: the wait (backoff, or
// retryAfter when longer) must end before the deadline, and the retry
// budget must pay for it. The token says what paid, so that a retry not
// made after all can give it back.
func (a *attempt) admitRetry(retryAfter time.Duration, resp *http.Response) (time.Duration, retryToken) {
	c := a.c
	ep := c.ep
	wait := a.backoff(resp)
	if retryAfter > wait {
		wait = retryAfter
	}
	now := c.m.now()
	if dl := c.callDeadline(); !dl.IsZero() && now.Add(wait).After(dl) {
		return wait, noToken // the wait would pass the deadline: stop now
	}
	token := ep.budget.withdraw(now)
	if !token.ok() {
		ep.stats.budgetExhausted.Add(1)
		c.budgetRef = true
		if c.observer() != nil || c.m.opts.telemetry.meters != nil || c.m.opts.telemetry.monitor != nil {
			c.refusalSeen(a.n+1, "", RefusedRetryBudget, ErrRetryBudgetExhausted)
		}
	}
	return wait, token
}

// backoff is the wait before the next attempt: the BackoffFunc when one
// is set, else full-jitter exponential backoff.
func (a *attempt) backoff(resp *http.Response) (d time.Duration) {
	c := a.c
	if c.ep.backoffFunc == nil {
		return c.ep.retry.backoff(a.n)
	}
	defer c.m.recovered("BackoffFunc", c.ep.key, nil)
	return max(c.ep.backoffFunc(c.ep.retry.initialBackoff, c.ep.retry.maxBackoff, a.n, resp), 0)
}

// sleepCtx waits d, or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (m *Manager) logRetry(ctx context.Context, ep *endpoint, req *http.Request, attempt, status int, err error, wait time.Duration) {
	if !m.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("endpoint", ep.key),
		slog.String("method", methodOrGet(req.Method)),
		slog.String("url", m.redact.Load().URL(req.URL)),
		slog.Int("attempt", attempt),
		slog.Duration("wait", wait),
	}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", safeString(err)))
	}
	m.logger.LogAttrs(ctx, slog.LevelDebug, "connmgr: retrying", attrs...)
}
