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
		if ep.retry.maxAttempts > 1 && ep.retry.maxBufferedBody > 0 {
			gb, once, err := bufferBody(body, ep.retry.maxBufferedBody)
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

	needClone := len(chain.requests) > 0 || len(ep.setHeaders) > 0
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

		// The attempt's own request: a full clone when hooks or headers
		// change it, else a shallow copy that carries the attempt context.
		areq := req
		if needClone {
			areq = req.Clone(ctx)
			areq.Body, areq.GetBody = attemptBody, getBody
			for _, h := range ep.setHeaders {
				if _, set := areq.Header[h.name]; !set {
					areq.Header[h.name] = []string{h.value}
				}
			}
		}
		if len(chain.requests) > 0 {
			rc := &RequestContext{Request: areq, Endpoint: ep.key, Attempt: attempt, Values: values}
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
			areq = rc.Request
		}

		// The rate limiter, then the circuit breaker of the upstream. A
		// refused attempt goes to the fallback endpoint, if there is one.
		var p permit
		var bk *bucket
		if ep.limiter != nil || ep.breakers != nil {
			var aerr error
			p, bk, aerr = m.admit(ctx, ep, areq, deadline)
			if aerr != nil {
				var kind error
				switch aerr.(type) {
				case *CircuitOpenError:
					kind = ErrCircuitOpen
					if fb := m.fallbackFor(ep, hops); fb != nil {
						m.release(ep)
						return m.toFallback(ep, fb, req, attemptBody, getBody, hops, aerr)
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
		if attempt > 1 || len(chain.requests) > 0 || ep.limiter != nil {
			sent = m.now()
		}
		attemptDeadline := deadline
		if ep.timeout > 0 {
			if d := sent.Add(ep.timeout); attemptDeadline.IsZero() || d.Before(attemptDeadline) {
				attemptDeadline = d
			}
		}
		var actx context.Context
		var cancel context.CancelFunc
		if attemptDeadline.IsZero() {
			actx, cancel = context.WithCancel(areq.Context())
		} else {
			actx, cancel = context.WithDeadline(areq.Context(), attemptDeadline)
		}
		areq = areq.WithContext(actx)
		if !needClone {
			areq.Body, areq.GetBody = attemptBody, getBody
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
		var token, budgetRefused bool
		if policyRetry {
			wait, token, budgetRefused = m.admitRetry(ep, attempt, retryAfter, deadline)
		}
		retry := token
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
			case retry && (!token || ec.RetryAfter != retryAfter):
				// The hook asked for a retry, or for another wait: decide again.
				ep.budget.refund(token)
				wait, token, budgetRefused = m.admitRetry(ep, attempt, ec.RetryAfter, deadline)
				retry = token
			case !retry:
				ep.budget.refund(token)
			}
		}
		if retry {
			discard(resp, cancel)
			ep.stats.retries.Add(1)
			m.logRetry(ctx, ep, req, attempt, lastStatus, err, wait)
			if werr := sleepCtx(ctx, wait); werr != nil {
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

// admitRetry decides whether a retry may go: the wait (backoff, or
// retryAfter when longer) must end before the deadline, and the retry
// budget must pay for it. ok means a budget token was taken.
func (m *Manager) admitRetry(ep *endpoint, attempt int, retryAfter time.Duration, deadline time.Time) (wait time.Duration, ok, budgetRefused bool) {
	wait = ep.retry.backoff(attempt)
	if retryAfter > wait {
		wait = retryAfter
	}
	now := m.now()
	if !deadline.IsZero() && now.Add(wait).After(deadline) {
		return wait, false, false // the wait would pass the deadline: stop now
	}
	if !ep.budget.withdraw(now) {
		ep.stats.budgetExhausted.Add(1)
		return wait, false, true
	}
	return wait, true, false
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
