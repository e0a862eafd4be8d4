package connmgr

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// otelObserver is the Observer behind WithTracerProvider and WithPropagator
// (and the global providers when those are not given). Metrics do not go
// through it: the pipeline records them directly (otel_pipeline.go).
//
// Trace shape: one span per call ("connmgr GET", kind internal) and, under
// it, one client span per attempt ("GET"), as the HTTP semantic
// conventions ask of a client that resends: "each time an HTTP request is
// resent, a new CLIENT span is created", each carrying
// http.request.resend_count. The call span is what the caller sees as one
// operation (its refusals, backoff waits and outcome are on it); the
// attempt spans are the physical requests, each injected into its own
// request so the server's span is the child of the attempt that reached
// it. The call span ends when the call has returned and the last attempt
// has ended (its body closed or read to the end).
//
// When the call span is not recorded (sampled out), no attempt spans are
// made: the call span's context, with its sampled-out flag, is what each
// attempt propagates.
type otelObserver struct {
	m       *Manager
	tracers *tracerSource
	opts    telemetryOptions
	calls   sync.Pool // of *otelCall, recycled once a call and its attempts ended
}

func newOTelObserver(m *Manager, opts telemetryOptions) *otelObserver {
	o := &otelObserver{
		m:       m,
		tracers: newTracerSource(opts.tracerProvider),
		opts:    opts,
	}
	o.calls.New = func() any { return new(otelCall) }
	return o
}

var (
	callSpanOpts    = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	attemptSpanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// Attribute keys: the stable HTTP client semantic conventions, and
// connmgr's own (documented in docs/observability.md).
const (
	attrMethod         = attribute.Key("http.request.method")
	attrMethodOriginal = attribute.Key("http.request.method_original")
	attrStatus         = attribute.Key("http.response.status_code")
	attrServerAddress  = attribute.Key("server.address")
	attrServerPort     = attribute.Key("server.port")
	attrURLFull        = attribute.Key("url.full")
	attrErrorType      = attribute.Key("error.type")
	attrResendCount    = attribute.Key("http.request.resend_count")
	attrPeerAddress    = attribute.Key("network.peer.address")
	attrPeerPort       = attribute.Key("network.peer.port")

	attrEndpoint      = attribute.Key("connmgr.endpoint")
	attrUpstream      = attribute.Key("connmgr.upstream")
	attrAttempt       = attribute.Key("connmgr.attempt")
	attrAttempts      = attribute.Key("connmgr.attempts")
	attrHedge         = attribute.Key("connmgr.hedge")
	attrLimiterWait   = attribute.Key("connmgr.limiter.wait")
	attrBreakerState  = attribute.Key("connmgr.breaker.state")
	attrRetryReason   = attribute.Key("connmgr.retry.reason")
	attrBackoff       = attribute.Key("connmgr.retry.backoff")
	attrBackoffTotal  = attribute.Key("connmgr.retry.backoff_total")
	attrRefusal       = attribute.Key("connmgr.refusal.reason")
	attrOutcome       = attribute.Key("connmgr.outcome")
	attrFallback      = attribute.Key("connmgr.fallback")
	attrCanceled      = attribute.Key("connmgr.canceled")
	attrCacheStatus   = attribute.Key("connmgr.cache.status")
	attrBreakerTarget = attribute.Key("connmgr.breaker.to")
	attrReloadResult  = attribute.Key("connmgr.reload.result")
)

// StartCall starts the call span.
func (o *otelObserver) StartCall(ev *CallEvent) CallObserver {
	tr := o.tracers.tracer()
	if tr == nil {
		return nil
	}
	c := o.calls.Get().(*otelCall)
	c.o, c.tracer, c.endpoint, c.method, c.start = o, tr, ev.Endpoint, ev.Request.Method, ev.Start
	if cacheStatusUsed.Load() {
		c.readCacheMark(ev.Context) // cache_observe.go
	}
	method, known := spanMethod(ev.Request.Method)
	c.ctx, c.span = tr.Start(ev.Context, callSpanName(method), callSpanOpts...)
	c.recording = c.span.IsRecording()
	if c.recording {
		c.span.SetAttributes(
			attrMethod.String(method),
			attrEndpoint.String(ev.Endpoint),
			attrURLFull.String(o.m.redact.Load().URL(ev.Request.URL)),
		)
		if !known {
			c.span.SetAttributes(attrMethodOriginal.String(ev.Request.Method))
		}
		if c.cacheStatus != "" {
			c.span.SetAttributes(cacheSpanAttrs(c.cacheStatus)...)
		}
	}
	return c
}

// callSpanNames are the names of call spans, built once.
var callSpanNames = func() map[string]string {
	out := map[string]string{}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect} {
		out[m] = "connmgr " + m
	}
	out["_OTHER"] = "connmgr HTTP"
	return out
}()

func callSpanName(method string) string { return callSpanNames[method] }

// spanMethod is the method as the semantic conventions name it: one of
// the known methods, else "_OTHER" (and "HTTP" in span names).
func spanMethod(m string) (string, bool) {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return m, true
	case "":
		return http.MethodGet, true
	}
	return "_OTHER", false
}

// otelCall follows one call: its span and the attempts still open.
type otelCall struct {
	o        *otelObserver
	tracer   trace.Tracer
	endpoint string
	method   string
	start    time.Time

	span      trace.Span      // nil when tracing is off
	ctx       context.Context // the caller's context with the call span
	recording bool
	first     otelAttempt // the first attempt's observer
	firstUsed bool        // guarded by mu

	// mu guards the fields below: attempts of a call can run at once
	// (hedges) and end after the call has returned (bodies still open).
	mu       sync.Mutex
	open     int       // attempts started and not ended
	ended    bool      // End was called
	lastAt   time.Time // the latest end seen, for the span's end
	refusal  Refusal   // the latest refusal
	backoffs time.Duration

	cacheStatus string // a cache's mark on the call (WithCacheStatus)
}

// addsHeaders reports that the call's attempts get trace context
// headers.
func (c *otelCall) addsHeaders() bool { return true }

// Refused records a local refusal: an event on the call span.
func (c *otelCall) Refused(ev RefusalEvent) {
	c.mu.Lock()
	c.refusal = ev.Reason
	c.mu.Unlock()
	if c.recording {
		c.span.AddEvent("connmgr.refused", trace.WithTimestamp(nonZero(ev.At)), trace.WithAttributes(
			attrRefusal.String(string(ev.Reason)),
			attrUpstream.String(ev.Upstream),
			attrAttempt.Int(ev.Attempt),
		))
	}
}

// AttemptStart starts the attempt's client span under the call span and
// writes the trace context into the attempt's own headers.
func (c *otelCall) AttemptStart(ev *AttemptEvent) AttemptObserver {
	c.mu.Lock()
	c.open++
	a := &c.first // the first attempt lives in the call: one allocation less
	if c.firstUsed {
		a = new(otelAttempt)
	}
	c.firstUsed = true
	c.mu.Unlock()
	a.c, a.start, a.ctx = c, ev.Start, ev.Context
	// The attempt's request and its header map are its own (the pipeline
	// copies the map for observers): inject into it, with the values held
	// by the event (attemptCarrier).
	if ev.Request.Header == nil {
		ev.Request.Header = http.Header{}
	}
	ctx := c.ctx // sampled out: no attempt span; the call span's context, with its not-sampled flag, is what the attempt propagates
	if c.recording {
		a.span = c.startAttemptSpan(ev)
		ev.Context = httptrace.WithClientTrace(trace.ContextWithSpan(ev.Context, a.span), &httptrace.ClientTrace{GotConn: a.gotConn})
		a.ctx = ev.Context
		ctx = ev.Context
	}
	ev.carrier.inject(c.o.opts.propagatorOrGlobal(), ctx, ev.Request.Header)
	return a
}

// startAttemptSpan starts the client span of an attempt under the call
// span, with the HTTP client attributes.
func (c *otelCall) startAttemptSpan(ev *AttemptEvent) trace.Span {
	method, known := spanMethod(ev.Request.Method)
	host, port := serverAddress(ev.Request.URL)
	name := method
	if !known {
		name = "HTTP"
	}
	_, span := c.tracer.Start(trace.ContextWithSpan(ev.Context, c.span), name, attemptSpanOpts...)
	attrs := []attribute.KeyValue{
		attrMethod.String(method),
		attrServerAddress.String(host),
		attrServerPort.Int(port),
		attrURLFull.String(c.o.m.redact.Load().URL(ev.Request.URL)),
		attrEndpoint.String(ev.Endpoint),
		attrUpstream.String(ev.Upstream),
		attrAttempt.Int(ev.Attempt),
		attrBreakerState.String(ev.BreakerState.String()),
	}
	if !known {
		attrs = append(attrs, attrMethodOriginal.String(ev.Request.Method))
	}
	if ev.Attempt > 1 {
		attrs = append(attrs, attrResendCount.Int(ev.Attempt-1))
	}
	if ev.Hedge {
		attrs = append(attrs, attrHedge.Bool(true))
	}
	if ev.LimiterWait > 0 {
		attrs = append(attrs, attrLimiterWait.Float64(ev.LimiterWait.Seconds()))
	}
	span.SetAttributes(attrs...)
	return span
}

// Retry records the decision to try again: an event with the reason and
// the wait on the call span, and the retry counter.
func (c *otelCall) Retry(ev RetryEvent) {
	c.mu.Lock()
	c.backoffs += ev.Wait
	c.mu.Unlock()
	if c.recording {
		attrs := []attribute.KeyValue{
			attrAttempt.Int(ev.Attempt),
			attrRetryReason.String(ev.Reason),
			attrBackoff.Float64(ev.Wait.Seconds()),
		}
		if ev.StatusCode > 0 {
			attrs = append(attrs, attrStatus.Int(ev.StatusCode))
		}
		if ev.Err != nil {
			attrs = append(attrs, attrErrorType.String(errorType(ev.Err, 0)))
		}
		c.span.AddEvent("connmgr.backoff", trace.WithAttributes(attrs...))
	}
}

// End records the call's outcome; the span ends now, or when the last
// attempt still open ends.
func (c *otelCall) End(ev CallEndEvent) {
	status := 0
	if ev.Response != nil {
		status = ev.Response.StatusCode
	}
	c.mu.Lock()
	refusal := c.refusal
	backoffs := c.backoffs
	c.mu.Unlock()
	outcome := callOutcome(status, ev, refusal)
	if c.recording {
		attrs := []attribute.KeyValue{
			attrAttempts.Int(ev.Attempts),
			attrOutcome.String(outcome.String()),
		}
		if status > 0 {
			attrs = append(attrs, attrStatus.Int(status))
			if cs := ev.Response.Header.Get("Cache-Status"); cs != "" && c.cacheStatus == "" {
				attrs = append(attrs, attrCacheStatus.String(cacheStatus(cs)))
			}
		}
		if backoffs > 0 {
			attrs = append(attrs, attrBackoffTotal.Float64(backoffs.Seconds()))
		}
		if ev.Fallback {
			attrs = append(attrs, attrFallback.Bool(true))
		}
		if refusal != "" && ev.Err != nil {
			attrs = append(attrs, attrRefusal.String(string(refusal)))
		}
		if et := errorType(ev.Err, status); et != "" {
			attrs = append(attrs, attrErrorType.String(et))
			c.span.SetStatus(codes.Error, c.errorText(ev.Err, et))
		}
		c.span.SetAttributes(attrs...)
	}
	// Last: once ended is set, the last attempt to end may recycle c.
	c.mu.Lock()
	c.ended = true
	done := c.open == 0
	if end := c.start.Add(ev.Duration); end.After(c.lastAt) {
		c.lastAt = end
	}
	c.mu.Unlock()
	if done {
		c.finish()
	}
}

// errorText is the span status description: the error's message with
// URLs redacted, or the error type for a failing status.
func (c *otelCall) errorText(err error, et string) string {
	if err == nil {
		return et
	}
	return redactErrorText(c.o.m, err)
}

// redactErrorText is err's message with the URL of a *url.Error redacted,
// as the Manager returns it. Typed connmgr errors carry redacted URLs.
func redactErrorText(m *Manager, err error) string {
	msg := safeString(err) // the one panic-proof describer (recover.go)
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "" {
		msg = strings.ReplaceAll(msg, ue.URL, m.redact.Load().String(ue.URL))
	}
	return msg
}

func (c *otelCall) attemptEnded(at time.Time) {
	c.mu.Lock()
	c.open--
	if at.After(c.lastAt) {
		c.lastAt = at
	}
	done := c.ended && c.open == 0
	c.mu.Unlock()
	if done {
		c.finish()
	}
}

// finish ends the call span and recycles c: the call has ended and so
// has every attempt, so nothing refers to c any more.
func (c *otelCall) finish() {
	switch {
	case c.span == nil:
	case !c.recording:
		c.span.End() // sampled out: nothing to time
	default:
		c.span.End(trace.WithTimestamp(nonZero(c.lastAt)))
	}
	o := c.o
	*c = otelCall{}
	o.calls.Put(c)
}

// otelAttempt follows one attempt.
type otelAttempt struct {
	c      *otelCall
	span   trace.Span // nil unless the call span records
	ctx    context.Context
	start  time.Time
	status int
	peer   atomic.Value // string: the remote address, from httptrace
}

// gotConn notes the connection's remote address (network.peer.address),
// when the pipeline does not report it.
func (a *otelAttempt) gotConn(info httptrace.GotConnInfo) {
	if info.Conn != nil {
		if addr := info.Conn.RemoteAddr(); addr != nil {
			a.peer.Store(addr.String())
		}
	}
}

// Headers records the status or the transport error on the attempt span.
func (a *otelAttempt) Headers(ev HeadersEvent) {
	if ev.Response != nil {
		a.status = ev.Response.StatusCode
	}
	if a.span == nil {
		return
	}
	if ev.Response != nil {
		a.span.SetAttributes(attrStatus.Int(ev.Response.StatusCode))
	}
	peer := ev.PeerAddress
	if peer == "" {
		if p := a.peer.Load(); p != nil {
			peer = p.(string)
		}
	}
	if peer != "" {
		if host, port, err := net.SplitHostPort(peer); err == nil {
			p, _ := strconv.Atoi(port)
			a.span.SetAttributes(attrPeerAddress.String(host), attrPeerPort.Int(p))
		} else {
			a.span.SetAttributes(attrPeerAddress.String(peer))
		}
	}
}

// End ends the attempt span (its body closed or read to the end, or the
// error that ended it).
func (a *otelAttempt) End(ev AttemptEndEvent) {
	status := ev.StatusCode
	if status == 0 {
		status = a.status
	}
	at := nonZero(ev.At)
	// A canceled attempt that got a response (a retryable status whose
	// body connmgr discarded) is still a request that failed; one that
	// got none (a losing hedge) has no error of its own.
	et := ""
	if !ev.Canceled || status > 0 {
		et = errorType(ev.Err, status)
		if et == "" && ev.Failed {
			et = "_OTHER"
		}
	}
	if ev.Canceled && status == 0 {
		et = ""
	}
	if a.span != nil {
		if status > 0 {
			a.span.SetAttributes(attrStatus.Int(status))
		}
		if ev.Canceled {
			a.span.SetAttributes(attrCanceled.Bool(true))
		}
		if et != "" {
			a.span.SetAttributes(attrErrorType.String(et))
			a.span.SetStatus(codes.Error, a.c.errorText(ev.Err, et))
		}
		a.span.End(trace.WithTimestamp(at))
	}
	a.c.attemptEnded(at)
}

// callOutcomeKind names how a call ended, for the calls metric and the
// span: success, failure (a final 5xx or 429), error, refused (a local
// refusal ended it) or fallback.
type callOutcomeKind int

const (
	callSuccess callOutcomeKind = iota
	callFailure
	callErrored
	callRefused
	callFallback
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "failure", "error", "refused", "fallback"}

func (k callOutcomeKind) String() string { return outcomeNames[k] }

func callOutcome(status int, ev CallEndEvent, refusal Refusal) callOutcomeKind {
	switch {
	case ev.Fallback:
		return callFallback
	case ev.Err != nil && refusal != "" && refusalError(ev.Err):
		return callRefused
	case ev.Err != nil:
		return callErrored
	case isServerError(status) || status == http.StatusTooManyRequests:
		return callFailure
	}
	return callSuccess
}

func refusalError(err error) bool {
	return errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrRateLimited) ||
		errors.Is(err, ErrConcurrencyLimit) || errors.Is(err, ErrNoHealthyUpstream) ||
		errors.Is(err, ErrRetryBudgetExhausted) || errors.Is(err, ErrClosed)
}

// errorType is the semantic conventions' error.type: the status code for
// a status of 400 or more, a short low-cardinality name for an error, ""
// for neither.
func errorType(err error, status int) string {
	if err == nil {
		if status >= 400 && status < 600 {
			return statusText(status)
		}
		return ""
	}
	var te *TLSError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, ErrCircuitOpen):
		return "circuit_open"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrConcurrencyLimit):
		return "concurrency_limit"
	case errors.Is(err, ErrNoHealthyUpstream):
		return "no_healthy_upstream"
	case errors.Is(err, ErrRetryBudgetExhausted):
		return "retry_budget"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrCertificatePin):
		return "certificate_pin"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.As(err, &dns):
		return "dns"
	case errors.As(err, &te):
		return "tls"
	case isTLSError(err):
		return "tls"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected_eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "_OTHER"
}

func isTLSError(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &ae)
}

// statusTexts holds the decimal form of every status code, so that
// error.type and metric attributes do not allocate.
var statusTexts = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

// serverAddress splits a request URL into server.address and
// server.port, the port implied by the scheme when the URL has none.
func serverAddress(u *url.URL) (string, int) {
	if u == nil {
		return "", 0
	}
	host := u.Hostname()
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return host, n
	}
	if u.Scheme == "https" {
		return host, 443
	}
	return host, 80
}

// cacheStatus reduces an RFC 9211 Cache-Status header to hit, miss or
// stale, the only values the span carries (the header may carry more).
func cacheStatus(h string) string {
	for i := 0; i+3 <= len(h); i++ {
		switch {
		case h[i:i+3] == "hit":
			return "hit"
		case i+5 <= len(h) && h[i:i+5] == "stale":
			return "stale"
		}
	}
	return "miss"
}

func nonZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
