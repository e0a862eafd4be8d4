package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/internal/redact"
)

// tracer prints each attempt of the calls a Manager makes, for -v. It
// sees them through the Manager's hooks, so what it prints is what the
// pipeline did: the endpoint matched, every attempt, its outcome and the
// retry decision. Secrets in URLs and headers are redacted.
type tracer struct {
	// mu guards w and attempts: a redirect is a new call, and hooks of
	// one call run one at a time, but nothing promises one goroutine.
	mu       sync.Mutex
	w        io.Writer
	eff      connmgr.Config // effective settings, to describe an endpoint's policy
	redactor *redact.Redactor
	shown    map[string]bool // endpoints whose policy was printed
	attempts int             // attempts sent, over all calls
}

// attemptStartKey is where the tracer keeps the start of the current
// attempt in RequestContext.Values.
const attemptStartKey = "connmgr.cli.attempt_start"

func newTracer(w io.Writer, cfg connmgr.Config) (*tracer, error) {
	eff, err := cfg.Effective()
	if err != nil {
		return nil, err
	}
	extra := append([]string(nil), cfg.Redact.Headers...)
	for _, ec := range append(mapValues(eff.Endpoints), eff.Default) {
		if ec.Auth.APIKey != "" {
			extra = append(extra, ec.Auth.APIKeyHeader)
		}
	}
	return &tracer{w: w, eff: eff, redactor: redact.New(extra, cfg.Redact.QueryKeys), shown: map[string]bool{}}, nil
}

func mapValues(m map[string]connmgr.EndpointConfig) []connmgr.EndpointConfig {
	out := make([]connmgr.EndpointConfig, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (t *tracer) register(m *connmgr.Manager) {
	m.OnRequest(t.onRequest)
	m.OnError(t.onError)
	m.OnResponse(t.onResponse)
}

func (t *tracer) printf(format string, args ...any) {
	fmt.Fprintf(t.w, format, args...)
}

func (t *tracer) onRequest(c *connmgr.RequestContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.Values[attemptStartKey] = time.Now()
	t.attempts++
	if !t.shown[c.Endpoint] {
		t.shown[c.Endpoint] = true
		t.printf("* endpoint %s: %s\n", c.Endpoint, t.policy(c.Endpoint))
	}
	r := c.Request
	t.printf("> attempt %d: %s %s (upstream %s)\n", c.Attempt, methodOf(r), t.redactor.URL(r.URL), upstreamOf(r))
	t.headers(">", r.Header)
	return nil
}

func (t *tracer) onError(c *connmgr.ErrorContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	took := attemptTime(c.Values)
	if c.Response != nil {
		t.printf("< attempt %d: %s %s in %s\n", c.Attempt, c.Response.Proto, c.Response.Status, took)
		t.headers("<", c.Response.Header)
	} else {
		t.printf("! attempt %d: failed after %s: %s\n", c.Attempt, took, describeErr(c.Err))
	}
	switch {
	case c.Retry && c.RetryAfter > 0:
		t.printf("! attempt %d: will retry, after the Retry-After of %s (or the backoff if longer)\n", c.Attempt, c.RetryAfter)
	case c.Retry:
		t.printf("! attempt %d: will retry after a backoff\n", c.Attempt)
	default:
		t.printf("! attempt %d: no retry: %s\n", c.Attempt, t.noRetryReason(c))
	}
	return nil
}

func (t *tracer) onResponse(c *connmgr.ResponseContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := c.Response
	if c.Attempt == 0 {
		t.printf("< answered by a hook without the network: %s\n", r.Status)
	} else {
		t.printf("< attempt %d: %s %s in %s\n", c.Attempt, r.Proto, r.Status, attemptTime(c.Values))
	}
	t.headers("<", r.Header)
	return nil
}

// done prints how a call that got a response ended.
func (t *tracer) done(resp *http.Response, bodyBytes int64, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.printf("* %s, %d body bytes, %s, %s in all\n", resp.Status, bodyBytes, plural(t.attempts, "attempt"), round(took))
}

// failed prints how a call without a response ended, and what stopped it.
func (t *tracer) failed(err error, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.printf("* no response after %s, %s: %s\n", plural(t.attempts, "attempt"), round(took), verdict(err))
}

// verdict names the decision that ended a failed call.
func verdict(err error) string {
	switch {
	case errors.Is(err, connmgr.ErrCircuitOpen):
		return "the circuit breaker is open, so the call was not sent"
	case errors.Is(err, connmgr.ErrRateLimited):
		return "the rate limiter had no token within max_wait"
	case errors.Is(err, connmgr.ErrConcurrencyLimit):
		return "max_concurrent calls were already in flight"
	case errors.Is(err, connmgr.ErrNoHealthyUpstream):
		return "no upstream is healthy"
	case errors.Is(err, connmgr.ErrRetryBudgetExhausted):
		return "a retry was due but the endpoint's retry budget is spent"
	case errors.Is(err, connmgr.ErrRetriesExhausted):
		return "every attempt failed"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return describeErr(err)
}

// noRetryReason says why the pipeline will not try again, as far as a
// hook can tell.
func (t *tracer) noRetryReason(c *connmgr.ErrorContext) string {
	r := t.endpoint(c.Endpoint).Retry
	switch {
	case c.Attempt >= r.MaxAttempts:
		return fmt.Sprintf("that was the last of %s (retry.max_attempts)", plural(r.MaxAttempts, "attempt"))
	case c.Request.Context().Err() != nil:
		return "the call was cancelled or timed out"
	case !idempotent(c.Request) && (r.NonIdempotent == nil || !*r.NonIdempotent):
		return c.Request.Method + " is not idempotent and carries no Idempotency-Key"
	case c.Response != nil && c.RetryAfter > r.MaxRetryAfter:
		return fmt.Sprintf("the upstream asked to wait %s, longer than retry.max_retry_after (%s)", c.RetryAfter, r.MaxRetryAfter)
	}
	return "the wait would pass the total timeout, the retry budget is spent, or the error is not one to retry"
}

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// describeErr says what a transport error was, in a few words.
func describeErr(err error) string {
	if err == nil {
		return "no error"
	}
	var se *connmgr.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "the upstream answered " + strconv.Itoa(se.StatusCode) + " " + http.StatusText(se.StatusCode)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timed out (" + strings.TrimPrefix(err.Error(), "connmgr: ") + ")"
	}
	return strings.TrimPrefix(err.Error(), "connmgr: ")
}

// urlHeaders are headers whose value is a URL: its query may hold a
// secret (a redirect to "/callback?code=..."), redacted as the request
// URL is.
var urlHeaders = map[string]bool{"Location": true, "Content-Location": true, "Referer": true}

// headers prints headers, sorted, secrets redacted.
func (t *tracer) headers(prefix string, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			switch ck := http.CanonicalHeaderKey(k); {
			case t.redactor.SecretHeader(ck):
				v = redact.Mask
			case urlHeaders[ck]:
				v = t.redactor.String(v)
			}
			t.printf("%s %s: %s\n", prefix, k, v)
		}
	}
}

// endpoint returns the effective settings of an endpoint key.
func (t *tracer) endpoint(key string) connmgr.EndpointConfig {
	if ec, ok := t.eff.Endpoints[key]; ok {
		return ec
	}
	return t.eff.Default
}

// policy describes the settings an endpoint runs with, in one line.
func (t *tracer) policy(key string) string {
	ec := t.endpoint(key)
	var parts []string
	parts = append(parts, "timeout "+dur(ec.Timeout)+" per try, "+dur(ec.TotalTimeout)+" in all")
	r := ec.Retry
	if r.MaxAttempts <= 1 {
		parts = append(parts, "no retries")
	} else {
		parts = append(parts, fmt.Sprintf("up to %d attempts, backoff %s..%s, retry on %s", r.MaxAttempts, r.InitialBackoff, r.MaxBackoff, statuses(r.RetryOn)))
	}
	if cb := ec.CircuitBreaker; cb.Disabled != nil && *cb.Disabled {
		parts = append(parts, "breaker off")
	} else {
		parts = append(parts, fmt.Sprintf("breaker opens after %d failures", cb.ConsecutiveFailures))
	}
	if rl := ec.RateLimit; rl.Rate > 0 && (rl.Disabled == nil || !*rl.Disabled) {
		parts = append(parts, fmt.Sprintf("rate limit %g per %s", rl.Rate, rl.Per))
	} else {
		parts = append(parts, "no rate limit")
	}
	if ec.MaxConcurrent > 0 {
		parts = append(parts, fmt.Sprintf("at most %d in flight", ec.MaxConcurrent))
	}
	return strings.Join(parts, "; ")
}

func statuses(codes []int) string {
	if len(codes) == 0 {
		return "connection errors only"
	}
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

func dur(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

func methodOf(r *http.Request) string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

// upstreamOf is the host and port an attempt goes to.
func upstreamOf(r *http.Request) string {
	host := r.URL.Host
	if r.URL.Port() == "" {
		switch r.URL.Scheme {
		case "https":
			host = net.JoinHostPort(r.URL.Hostname(), "443")
		case "http":
			host = net.JoinHostPort(r.URL.Hostname(), "80")
		}
	}
	return host
}

func attemptTime(values map[string]any) string {
	if start, ok := values[attemptStartKey].(time.Time); ok {
		return round(time.Since(start)).String()
	}
	return "?"
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
