package connmgr

import (
	"context"
	"encoding/hex"
	"net/http"
	"unsafe"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// attemptCarrier is the propagation.TextMapCarrier of one attempt: it
// writes trace context into the attempt's own header map, with the values
// and their header slots held here instead of allocated one by one. It
// lives in the attempt's AttemptEvent, which the call owns (the first
// attempt's is in the call's side struct, a later one's is its own): it
// is never pooled nor reused, so a header may keep referring to it after
// the call, as the transport or the server's request may.
//
// For propagation.TraceContext, the traceparent value is formatted into
// tp, and the header's string refers to those bytes: they are written
// once, before the string exists, and never again (tpUsed).
type attemptCarrier struct {
	header http.Header
	vals   [2]string // the values set, in order (traceparent, tracestate)
	used   int       // how many of vals hold a value
	tp     [traceparentLen]byte
	tpUsed bool
}

// traceparentLen is the length of a version 00 traceparent value:
// "00-" + 32 hex digits + "-" + 16 hex digits + "-" + 2 hex digits.
const traceparentLen = 55

const hexDigits = "0123456789abcdef"

// inject writes the trace context of ctx into h through p.
func (c *attemptCarrier) inject(p propagation.TextMapPropagator, ctx context.Context, h http.Header) {
	c.header = h
	if _, ok := p.(propagation.TraceContext); ok && !c.tpUsed {
		c.injectTraceContext(trace.SpanContextFromContext(ctx))
		return
	}
	p.Inject(ctx, c)
}

// injectTraceContext is propagation.TraceContext.Inject without the
// allocation of the traceparent value.
func (c *attemptCarrier) injectTraceContext(sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	if ts := sc.TraceState().String(); ts != "" {
		c.Set("tracestate", ts)
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	b := &c.tp
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	f := byte(sc.TraceFlags() & trace.FlagsSampled)
	b[53], b[54] = hexDigits[f>>4], hexDigits[f&0xf]
	c.tpUsed = true
	c.Set("traceparent", unsafe.String(&b[0], len(b)))
}

func (c *attemptCarrier) Get(key string) string { return propagation.HeaderCarrier(c.header).Get(key) }
func (c *attemptCarrier) Keys() []string        { return propagation.HeaderCarrier(c.header).Keys() }

// Set sets the header key to value. It knows the canonical form of the
// W3C trace context and baggage keys (http.Header.Set would canonicalize
// "traceparent" into a new string each time), and the first values get
// their slot from vals (capped, so that an Add to the header copies).
func (c *attemptCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		key = "Traceparent"
	case "tracestate":
		key = "Tracestate"
	case "baggage":
		key = "Baggage"
	default:
		key = http.CanonicalHeaderKey(key)
	}
	if c.used < len(c.vals) {
		i := c.used
		c.used++
		c.vals[i] = value
		c.header[key] = c.vals[i : i+1 : i+1]
		return
	}
	c.header[key] = []string{value}
}

// observedHeader is headerWith for an attempt whose observers may add
// headers: room is made for the trace context (traceparent, tracestate),
// so that adding it does not grow the map.
func observedHeader(h http.Header, hs []headerValue) http.Header {
	out := make(http.Header, len(h)+len(hs)+2)
	for k, v := range h {
		out[k] = v[:len(v):len(v)] // shared values, but an append copies
	}
	addHeaders(out, hs, false)
	return out
}
