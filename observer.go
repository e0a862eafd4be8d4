package connmgr

import (
	"context"
	"net/http"
	"time"
)

// Observer sees every call at fixed points, as httptrace.ClientTrace sees
// a connection: the call's start, a local refusal with its reason, each
// attempt's start, its response headers and its end (when the body is
// closed or read to the end), each retry decision with its wait, and the
// call's end. OpenTelemetry tracing and the refusal log implement it
// (OpenTelemetry metrics are recorded by the pipeline itself, at the same
// points, at a fraction of the cost). Register one with WithObserver.
//
// StartCall returns the observer of that one call, or nil to see nothing
// more of it. A Manager with no observer pays nothing for the extension
// point: every call site is nil-checked.
//
// Observers are called on the request path, never under a lock of the
// Manager, and under the same panic recovery as hooks. They must not
// block, and must not keep the *http.Request or *http.Response they are
// shown past the call.
type Observer interface {
	StartCall(ev *CallEvent) CallObserver
}

// CallObserver sees one call. Attempts of a call may run at once (hedged
// requests), so AttemptStart may be called again before the previous
// attempt ended; each attempt gets its own AttemptObserver.
type CallObserver interface {
	// Refused reports a call or attempt that was refused before it
	// reached the network: circuit open, rate limited, concurrency cap
	// full, no healthy upstream.
	Refused(ev RefusalEvent)
	// AttemptStart reports an admitted attempt about to be sent. ev.Request
	// is the attempt's own request: an observer may add headers (trace
	// context) and may set ev.Context to a context derived from it, which
	// the attempt's request then carries. It returns the attempt's
	// observer, or nil.
	AttemptStart(ev *AttemptEvent) AttemptObserver
	// Retry reports the decision to try again, with the wait before it.
	Retry(ev RetryEvent)
	// End reports the end of the call: the response it returns (whose
	// body may still be open) or its error.
	End(ev CallEndEvent)
}

// AttemptObserver sees one attempt.
type AttemptObserver interface {
	// Headers reports the response headers, or the transport error.
	Headers(ev HeadersEvent)
	// End reports the end of the attempt: the body closed or read to the
	// end, or the error that ended it. It is called exactly once.
	End(ev AttemptEndEvent)
}

// CallEvent describes a call at its start.
type CallEvent struct {
	// Context is the caller's context.
	Context context.Context
	// Request is the caller's request. It must not be changed.
	Request *http.Request
	// Endpoint is the matched endpoint key.
	Endpoint string
	// Start is when the call began.
	Start time.Time
}

// Refusal names why a call or attempt was refused locally.
type Refusal string

// The reasons a call is refused before reaching the network.
const (
	RefusedCircuitOpen       Refusal = "circuit_open"
	RefusedRateLimited       Refusal = "rate_limited"
	RefusedConcurrencyLimit  Refusal = "concurrency_limit"
	RefusedNoHealthyUpstream Refusal = "no_healthy_upstream"
	RefusedRetryBudget       Refusal = "retry_budget"
	RefusedClosed            Refusal = "closed"
)

// RefusalEvent describes a local refusal.
type RefusalEvent struct {
	Endpoint string
	// Upstream is the authority that was refused ("" when the refusal
	// came before a pick).
	Upstream string
	Reason   Refusal
	// Attempt is the attempt that was refused (1 for the first).
	Attempt int
	// Err is the typed error (a *CircuitOpenError, a *RateLimitError, ...).
	Err error
	At  time.Time
}

// AttemptEvent describes an attempt about to be sent.
type AttemptEvent struct {
	// Context is the attempt's context. An observer may replace it with a
	// context derived from it (for example one carrying a span).
	Context context.Context
	// Request is the attempt's own request; an observer may add headers.
	Request  *http.Request
	Endpoint string
	// Upstream is the authority the attempt goes to.
	Upstream string
	// Attempt is 1 for the first try.
	Attempt int
	// Hedge is set for an attempt started while another was still running.
	Hedge bool
	// LimiterWait is the time this attempt waited for a rate-limit token.
	LimiterWait time.Duration
	// BreakerState is the state of the upstream's breaker at admission.
	BreakerState BreakerState
	Start        time.Time

	// carrier holds the trace context connmgr's own observer writes into
	// Request's headers (otel_carrier.go): storage of the attempt's, so
	// that injecting allocates nothing.
	carrier attemptCarrier
}

// HeadersEvent describes an attempt's response headers or transport error.
type HeadersEvent struct {
	// Response is set when headers arrived; Err when the transport failed.
	Response *http.Response
	Err      error
	// PeerAddress is the remote address of the connection, when known.
	PeerAddress string
	At          time.Time
}

// AttemptEndEvent describes the end of an attempt.
type AttemptEndEvent struct {
	// StatusCode is 0 when no response arrived.
	StatusCode int
	// Err is the error that ended the attempt, nil for a body read or
	// closed normally.
	Err error
	// Canceled is set when connmgr itself ended the attempt (a losing
	// hedge, a discarded retryable response): it is neither a failure of
	// the upstream nor a latency sample.
	Canceled bool
	// Failed is the classification: an error or a failing status.
	Failed bool
	At     time.Time
}

// RetryEvent describes a decision to try again.
type RetryEvent struct {
	// Attempt is the attempt that failed.
	Attempt int
	// Reason is why: "status" (a retryable status), "connect" (a dial
	// error), "error" (another retryable error) or "hook" (an error hook
	// asked for it).
	Reason string
	// StatusCode is the failing status, 0 for an error.
	StatusCode int
	Err        error
	// Wait is the backoff (or Retry-After) before the next attempt.
	Wait time.Duration
}

// CallEndEvent describes the end of a call.
type CallEndEvent struct {
	// Response is what the call returns; nil with Err.
	Response *http.Response
	Err      error
	// Attempts is the number of attempts sent.
	Attempts int
	// Fallback is set when a fallback (endpoint or hook) answered.
	Fallback bool
	// Duration is from the call's start to now.
	Duration time.Duration
}

// WithObserver adds an observer. Several observers are called in the
// order given.
func WithObserver(o Observer) Option {
	return optionFunc(func(opts *options) {
		if o != nil {
			opts.observers = append(opts.observers, o)
		}
	})
}
