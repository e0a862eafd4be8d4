package connmgr

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// StatusError is the error an ErrorHook sees for an attempt that got a
// response whose status counts as a failure (by default 408, 429, 500,
// 502, 503, 504).
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	return "upstream answered " + http.StatusText(e.StatusCode) + " (" + strconv.Itoa(e.StatusCode) + ")"
}

// RoundTrip sends one request through the pipeline: endpoint resolution,
// then for each attempt the request hooks, the transport under the
// per-try timeout, classification, the error or response hooks, and the
// retry decision. It never modifies req and always closes req.Body. As
// with any RoundTripper, a final failure status such as 503 is a
// response with a nil error.
func (m *Manager) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		return nil, errors.New("connmgr: RoundTrip: nil request")
	}
	if req.URL == nil {
		closeRequestBody(req.Body)
		return nil, errors.New("connmgr: RoundTrip: request has no URL")
	}
	return m.call(m.table.Load().lookup(req.URL), req, 0)
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

// send runs the attempt loop of one admitted call. Every path either
// returns an error, having released the call, or returns a response whose
// body releases the call when it is closed or read to the end. hops counts
// the fallbacks taken to get to ep.
func (m *Manager) send(ep *endpoint, req *http.Request, hops int) (*http.Response, error) {
	start := m.now()
	ctx := req.Context()
	deadline := time.Time{}
	if ep.totalTimeout > 0 {
		deadline = start.Add(ep.totalTimeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	chain := m.chain.Load()
	var values map[string]any
	if !chain.empty() {
		values = make(map[string]any)
	}
	// fail ends the call with an error. Only a call that reached the
	// network counts in the latency percentiles: a call refused locally
	// (breaker open, rate limited, a hook error) took no upstream time.
	fail := func(attempts, status int, kind, cause error) (*http.Response, error) {
		if attempts > 0 {
			ep.stats.record(0, true, m.since(start))
		} else {
			ep.stats.failures.Add(1)
		}
		m.release(ep)
		return nil, m.callError(ep, req, attempts, status, kind, cause)
	}

	// The body: replayed through GetBody; a body without one is buffered
	// up to a limit so that it can be; a larger one is sent once.
	body, getBody := req.Body, req.GetBody
	if body == http.NoBody {
		body = nil
	}
	replayable := true
	if body != nil && getBody == nil {
		if ep.retry.maxAttempts > 1 && ep.retry.maxBufferedBody > 0 && req.ContentLength <= ep.retry.maxBufferedBody {
			gb, once, err := bufferBodyUntil(ctx, deadline, body, ep.retry.maxBufferedBody)
			switch {
			case err != nil:
				return fail(0, 0, nil, err)
			case gb != nil:
				getBody = gb
				body, _ = gb()
			default:
				body, replayable = once, false
			}
		} else {
			replayable = false
		}
	}

	// hooksSeeRequest: some hook gets the attempt's request, so it must
	// not share the caller's header map or URL.
	hooksSeeRequest := !chain.empty()
	lastStatus := 0
	for attempt := 1; ; attempt++ {
		var attemptBody io.ReadCloser
		if body != nil {
			if attempt == 1 {
				attemptBody = body
			} else {
				b, err := getBody()
				if err != nil {
					return fail(attempt-1, lastStatus, nil, err)
				}
				attemptBody = b
			}
		}

		// With request hooks, the attempt gets a full clone of the caller's
		// request for the hooks to change. Without, it is built below, after
		// admission, as one shallow copy carrying the attempt context.
		var hooked *http.Request
		if len(chain.requests) > 0 {
			hooked = req.Clone(ctx)
			hooked.Body, hooked.GetBody = attemptBody, getBody
			addHeaders(hooked.Header, ep.setHeaders, true)
			rc := &RequestContext{Request: hooked, Endpoint: ep.key, Attempt: attempt, Values: values}
			for _, h := range chain.requests {
				if err := runHook(m, ep, "OnRequest", h, rc); err != nil {
					closeRequestBody(attemptBody)
					return fail(attempt-1, lastStatus, nil, err)
				}
				if rc.Response != nil {
					break
				}
			}
			if rc.Response != nil {
				closeRequestBody(attemptBody)
				return m.answer(ep, req, rc.Request, rc.Response, nil, 0, start, values, chain, false)
			}
			if rc.Request == nil {
				closeRequestBody(attemptBody)
				return fail(attempt-1, lastStatus, nil, errors.New("OnRequest hook set Request to nil"))
			}
			hooked = rc.Request
		}

		// The rate limiter, then the circuit breaker of the upstream. A
		// refused attempt goes to the fallback endpoint, if there is one.
		var p permit
		var bk *bucket
		if ep.limiter != nil || ep.breakers != nil {
			admitReq := req
			if hooked != nil {
				admitReq = hooked
			}
			var aerr error
			p, bk, aerr = m.admit(ctx, ep, admitReq, deadline)
			if aerr != nil {
				var kind error
				switch aerr.(type) {
				case *CircuitOpenError:
					kind = ErrCircuitOpen
					if fb := m.fallbackFor(ep, hops); fb != nil {
						if fbBody, ok := bodyForFallback(attemptBody, getBody, hooked != nil); ok {
							return m.toFallback(ep, fb, req, fbBody, getBody, hops, aerr, m.release)
						}
					}
				case *RateLimitError:
					kind = ErrRateLimited
				}
				closeRequestBody(attemptBody)
				return fail(attempt-1, lastStatus, kind, aerr)
			}
		}

		// The per-try timeout, bounded by the total deadline. It ends when
		// the caller closes the body, not when the headers arrive. The
		// first attempt reuses the call's start unless hooks or a rate
		// limit wait ran since.
		sent := start
		if attempt > 1 || hooked != nil || ep.limiter != nil {
			sent = m.now()
		}
		attemptDeadline := deadline
		if ep.timeout > 0 {
			if d := sent.Add(ep.timeout); attemptDeadline.IsZero() || d.Before(attemptDeadline) {
				attemptDeadline = d
			}
		}
		parent := ctx
		if hooked != nil {
			parent = hooked.Context()
		}
		var actx context.Context
		var cancel context.CancelFunc
		if d, ok := ctx.Deadline(); ok && parent == ctx && !attemptDeadline.IsZero() && !d.After(attemptDeadline) {
			// The caller's own deadline comes first: it is the per-try
			// timeout, and a context of our own would only add a second
			// timer for the same moment.
			actx, cancel = ctx, noCancel
		} else if attemptDeadline.IsZero() {
			actx, cancel = context.WithCancel(parent)
		} else {
			actx, cancel = context.WithDeadline(parent, attemptDeadline)
		}
		if parent != ctx {
			// A hook replaced the request's context: the caller's
			// cancellation must still end the attempt.
			cancelAttempt := cancel
			stop := context.AfterFunc(ctx, cancelAttempt)
			cancel = func() { stop(); cancelAttempt() }
		}
		var areq *http.Request
		if hooked != nil {
			areq = hooked.WithContext(actx)
		} else {
			areq = req.WithContext(actx)
			areq.Body, areq.GetBody = attemptBody, getBody
			switch {
			case hooksSeeRequest:
				// Hooks may change the header in place: a deep copy.
				areq.Header = req.Header.Clone()
				if areq.Header == nil {
					areq.Header = make(http.Header, len(ep.setHeaders))
				}
				addHeaders(areq.Header, ep.setHeaders, true)
			case len(ep.setHeaders) > 0:
				// Only the transport sees it, and it does not write to it.
				areq.Header = headerWith(req.Header, ep.setHeaders)
			}
			if hooksSeeRequest && req.URL != nil {
				u := *req.URL
				areq.URL = &u
			}
		}

		resp, err := m.roundTrip(ep, p, areq)
		if p.b != nil || bk != nil {
			m.feedback(ctx, ep, p, bk, resp, err, attemptDeadline, sent)
		}
		if err == nil && !ep.retry.retryOn.has(resp.StatusCode) {
			return m.answer(ep, req, areq, resp, cancel, attempt, start, values, chain, false)
		}

		// A failed attempt: decide whether to try again.
		canRetry := attempt < ep.retry.maxAttempts && replayable && ctx.Err() == nil
		policyRetry := false
		var retryAfter time.Duration
		var hookErr error
		if err != nil {
			resp = nil
			switch classifyError(ctx, err) {
			case errDial:
				policyRetry = canRetry
			case errRetryable:
				policyRetry = canRetry && ep.retry.safeToRetry(areq, false)
			}
			hookErr = err
		} else {
			lastStatus = resp.StatusCode
			policyRetry = canRetry && ep.retry.safeToRetry(areq, false)
			if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), m.now()); ok {
				retryAfter = ra
				if ra > ep.retry.maxRetryAfter {
					policyRetry = false // the server asks for longer than we wait
				}
			}
			hookErr = &StatusError{StatusCode: resp.StatusCode}
		}
		// Settle the policy's decision (deadline, budget) before the hooks
		// see it, so that Retry == false tells a hook this attempt is the
		// last one.
		var wait time.Duration
		var token retryToken
		var budgetRefused bool
		if policyRetry {
			wait, token, budgetRefused = m.admitRetry(ep, attempt, retryAfter, deadline)
		}
		retry := token.ok()
		if len(chain.errors) > 0 {
			ec := &ErrorContext{Request: areq, Err: hookErr, Response: resp, Endpoint: ep.key,
				Attempt: attempt, Values: values, Retry: retry, RetryAfter: retryAfter}
			for _, h := range chain.errors {
				if herr := runHook(m, ep, "OnError", h, ec); herr != nil {
					ep.budget.refund(token)
					discard(resp, cancel)
					return fail(attempt, lastStatus, nil, herr)
				}
				if ec.Fallback != nil {
					break
				}
			}
			if ec.Fallback != nil {
				ep.budget.refund(token)
				discard(resp, cancel)
				return m.answer(ep, req, areq, ec.Fallback, nil, attempt, start, values, chain, true)
			}
			retry = ec.Retry && canRetry
			switch {
			case retry && (!token.ok() || ec.RetryAfter != retryAfter):
				// The hook asked for a retry, or for another wait: decide again.
				ep.budget.refund(token)
				wait, token, budgetRefused = m.admitRetry(ep, attempt, ec.RetryAfter, deadline)
				retry = token.ok()
			case !retry:
				ep.budget.refund(token)
			}
		}
		if retry {
			discard(resp, cancel)
			ep.stats.retries.Add(1)
			m.logRetry(ctx, ep, req, attempt, lastStatus, err, wait)
			if werr := sleepCtx(ctx, wait); werr != nil {
				ep.budget.refund(token)
				return fail(attempt, lastStatus, nil, werr)
			}
			continue
		}

		// No more attempts.
		if err == nil {
			// A final failure status is a response, as in net/http.
			return m.answer(ep, req, areq, resp, cancel, attempt, start, values, chain, false)
		}
		cancel()
		var kind error
		switch {
		case budgetRefused:
			kind = ErrRetryBudgetExhausted
		case attempt > 1 && ctx.Err() == nil:
			kind = ErrRetriesExhausted
		}
		return fail(attempt, lastStatus, kind, err)
	}
}

// answer finishes a call with resp: it runs the response hooks (not for
// a fallback) and wraps the body so that closing it ends the attempt
// context and releases the call. cancel is nil when resp did not come
// from the network.
func (m *Manager) answer(ep *endpoint, req, areq *http.Request, resp *http.Response, cancel context.CancelFunc,
	attempt int, start time.Time, values map[string]any, chain *hookChain, fallback bool) (*http.Response, error) {
	elapsed := m.since(start)
	if !fallback && len(chain.responses) > 0 {
		rc := &ResponseContext{Request: areq, Response: resp, Endpoint: ep.key, Attempt: attempt, Duration: elapsed, Values: values}
		for _, h := range chain.responses {
			if err := runHook(m, ep, "OnResponse", h, rc); err != nil {
				discard(rc.Response, cancel)
				ep.stats.record(0, true, elapsed)
				m.release(ep)
				return nil, m.callError(ep, req, attempt, resp.StatusCode, nil, err)
			}
		}
		if rc.Response == nil {
			discard(resp, cancel)
			ep.stats.record(0, true, elapsed)
			m.release(ep)
			return nil, m.callError(ep, req, attempt, resp.StatusCode, nil, errors.New("OnResponse hook set Response to nil"))
		}
		resp = rc.Response
	}
	failed := fallback || resp.StatusCode >= 500 || ep.retry.retryOn.has(resp.StatusCode)
	ep.stats.record(resp.StatusCode, failed, elapsed)
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if resp.Request == nil {
		resp.Request = areq
	}
	if cancel == nil || resp.Body == http.NoBody {
		if cancel != nil {
			cancel()
		}
		m.release(ep)
		return resp, nil
	}
	cb := &callBody{rc: resp.Body, cancel: cancel, m: m, ep: ep}
	if _, ok := resp.Body.(io.Writer); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = callBodyWriter{cb}
	} else {
		resp.Body = cb
	}
	return resp, nil
}

// noCancel stands for the cancel func of an attempt that runs directly
// under the caller's context.
func noCancel() {}

// addHeaders sets each of hs that h does not already carry. The values
// are the endpoint's own slices, shared by every request, unless copy is
// set (a hook may write to them).
func addHeaders(h http.Header, hs []headerValue, copy bool) {
	for _, hv := range hs {
		if _, set := h[hv.name]; set {
			continue
		}
		if copy {
			h[hv.name] = []string{hv.values[0]}
		} else {
			h[hv.name] = hv.values
		}
	}
}

// headerWith returns a copy of h, plus each of hs that h does not carry,
// in one map sized for both.
func headerWith(h http.Header, hs []headerValue) http.Header {
	out := make(http.Header, len(h)+len(hs))
	for k, v := range h {
		out[k] = v[:len(v):len(v)] // shared values, but an append copies
	}
	addHeaders(out, hs, false)
	return out
}

// bodyForFallback returns the body to send to a fallback endpoint instead
// of the attempt. A body a request hook may have read is replayed through
// getBody; without getBody there is nothing safe to send, and the call
// does not fall back.
func bodyForFallback(attemptBody io.ReadCloser, getBody func() (io.ReadCloser, error), hooksRan bool) (io.ReadCloser, bool) {
	if attemptBody == nil || !hooksRan {
		return attemptBody, true
	}
	if getBody == nil {
		return nil, false
	}
	closeRequestBody(attemptBody)
	b, err := getBody()
	if err != nil {
		return nil, false
	}
	return b, true
}

// admitRetry decides whether a retry may go: the wait (backoff, or
// retryAfter when longer) must end before the deadline, and the retry
// budget must pay for it. The token says what paid, so that a retry not
// made after all can give it back.
func (m *Manager) admitRetry(ep *endpoint, attempt int, retryAfter time.Duration, deadline time.Time) (wait time.Duration, token retryToken, budgetRefused bool) {
	wait = ep.retry.backoff(attempt)
	if retryAfter > wait {
		wait = retryAfter
	}
	now := m.now()
	if !deadline.IsZero() && now.Add(wait).After(deadline) {
		return wait, noToken, false // the wait would pass the deadline: stop now
	}
	token = ep.budget.withdraw(now)
	if !token.ok() {
		ep.stats.budgetExhausted.Add(1)
		return wait, noToken, true
	}
	return wait, token, false
}

// discard drops a response the call will not return: its body drained a
// little and closed, so its connection can be reused, and its attempt
// context ended.
func discard(resp *http.Response, cancel context.CancelFunc) {
	if resp != nil {
		drainAndClose(resp.Body)
	}
	if cancel != nil {
		cancel()
	}
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
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	m.logger.LogAttrs(ctx, slog.LevelDebug, "connmgr: retrying", attrs...)
}
