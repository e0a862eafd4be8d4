package connmgr

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors for conditions a caller branches on with errors.Is. The
// errors connmgr returns wrap them in an *Error that says which call
// failed.
var (
	// ErrCircuitOpen: the upstream's circuit breaker is open (or its
	// half-open probes are all taken); the network was not touched.
	ErrCircuitOpen = errors.New("connmgr: circuit breaker is open")
	// ErrRateLimited: no rate-limit token could be had within max_wait or
	// before the deadline.
	ErrRateLimited = errors.New("connmgr: rate limited")
	// ErrRetriesExhausted: every attempt failed; the error also unwraps to
	// the last attempt's cause.
	ErrRetriesExhausted = errors.New("connmgr: retries exhausted")
	// ErrRetryBudgetExhausted: a retry was due but the endpoint's retry
	// budget was spent, so the call ended; it unwraps to the last cause.
	ErrRetryBudgetExhausted = errors.New("connmgr: retry budget exhausted")
	// ErrConcurrencyLimit: the endpoint's max_concurrent calls are in flight.
	ErrConcurrencyLimit = errors.New("connmgr: concurrency limit reached")
	// ErrNoHealthyUpstream: no upstream of a logical endpoint can take
	// the call (each is ejected, unhealthy or has an open breaker, or
	// discovery found none) and it has no fallback. The error is a
	// *NoHealthyUpstreamError saying why each upstream is out.
	ErrNoHealthyUpstream = errors.New("connmgr: no healthy upstream")
	// ErrClosed: the Manager was closed or is shutting down.
	ErrClosed = errors.New("connmgr: manager closed")
	// ErrCertificatePin: the server's certificate chain matched none of
	// the configured pins.
	ErrCertificatePin = errors.New("connmgr: certificate pin mismatch")
)

// Error describes a failed call: which endpoint, which request (its URL
// redacted), how many attempts were made and the last status seen. It
// unwraps to both its Kind (a sentinel such as ErrRetriesExhausted, when
// there is one) and its cause, so errors.Is and errors.As reach either.
type Error struct {
	// Endpoint is the matched endpoint key ("default" for none).
	Endpoint string
	// Method and URL identify the request; URL has secrets redacted.
	Method string
	URL    string
	// Attempts is the number of attempts sent to the network.
	Attempts int
	// LastStatus is the status code of the last response seen, or 0.
	LastStatus int
	// Kind is the sentinel for the condition, or nil.
	Kind error
	// Err is the underlying cause, or nil.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("connmgr: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.URL)
	b.WriteString(" (endpoint ")
	b.WriteString(e.Endpoint)
	if e.Attempts > 0 {
		b.WriteString(", ")
		b.WriteString(strconv.Itoa(e.Attempts))
		if e.Attempts == 1 {
			b.WriteString(" attempt")
		} else {
			b.WriteString(" attempts")
		}
	}
	if e.LastStatus != 0 {
		b.WriteString(", last status ")
		b.WriteString(strconv.Itoa(e.LastStatus))
	}
	b.WriteString(")")
	if e.Kind != nil && (e.Err == nil || !errors.Is(e.Err, e.Kind)) {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "connmgr: "))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "connmgr: "))
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause, whichever are set.
func (e *Error) Unwrap() []error {
	switch {
	case e.Kind != nil && e.Err != nil:
		return []error{e.Kind, e.Err}
	case e.Kind != nil:
		return []error{e.Kind}
	case e.Err != nil:
		return []error{e.Err}
	}
	return nil
}

// HookError is a failure of a hook: it returned an error or panicked. The
// call ends with it, wrapped in an *Error.
type HookError struct {
	// Plugin is the name of the plugin the hook belongs to.
	Plugin string
	// Stage is "OnRequest", "OnResponse" or "OnError".
	Stage string
	// Err is what the hook returned; nil when it panicked.
	Err error
	// Panic is the value the hook panicked with, or nil.
	Panic any
}

func (e *HookError) Error() string {
	if e.Panic != nil {
		return "connmgr: " + e.Stage + " hook of plugin " + strconv.Quote(e.Plugin) + " panicked: " + panicString(e.Panic)
	}
	return "connmgr: " + e.Stage + " hook of plugin " + strconv.Quote(e.Plugin) + ": " + safeString(e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }
