package connmgr

import (
	"context"
	"time"
)

// CallOptions override an endpoint's settings for one call, carried by
// the request's context (as resty users set them per request). A zero
// field keeps the endpoint's setting.
type CallOptions struct {
	// Timeout is the per-try timeout; negative means none.
	Timeout time.Duration
	// TotalTimeout bounds the whole call; negative means none.
	TotalTimeout time.Duration
	// MaxAttempts caps the attempts (1: no retry).
	MaxAttempts int
	// NoRetry sends the call once.
	NoRetry bool
	// Idempotent marks the call safe to retry whatever its method.
	Idempotent bool
}

type callOptionsKey struct{}

// WithCallOptions returns a context whose calls use o.
func WithCallOptions(ctx context.Context, o CallOptions) context.Context {
	return context.WithValue(ctx, callOptionsKey{}, &o)
}

// callOptionsFrom returns the call options in ctx, or nil.
func callOptionsFrom(ctx context.Context) *CallOptions {
	o, _ := ctx.Value(callOptionsKey{}).(*CallOptions)
	return o
}
