package connmgr

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// RequestHook runs before each attempt is sent. It may change
// ctx.Request (the attempt's own clone), or answer the call without the
// network by setting ctx.Response. Returning an error ends the call.
type RequestHook func(ctx *RequestContext) error

// ResponseHook runs for the response the call goes on with. It may
// replace ctx.Response. Returning an error ends the call; the response
// body is closed.
type ResponseHook func(ctx *ResponseContext) error

// ErrorHook runs for every failed attempt: a transport error, or a
// response whose status counts as a failure (then ctx.Response is set).
// It may change ctx.Retry and ctx.RetryAfter, or answer the call with
// ctx.Fallback. Returning an error ends the call with it.
type ErrorHook func(ctx *ErrorContext) error

// Plugin is a named set of hooks. A plugin joins the chain by also
// implementing any of
//
//	OnRequest(*RequestContext) error
//	OnResponse(*ResponseContext) error
//	OnError(*ErrorContext) error
//
// and, if it holds resources, Close() error, which the Manager calls when
// the plugin is removed or the Manager closes.
type Plugin interface {
	Name() string
}

type requestPlugin interface {
	OnRequest(*RequestContext) error
}

type responsePlugin interface {
	OnResponse(*ResponseContext) error
}

type errorPlugin interface {
	OnError(*ErrorContext) error
}

type closerPlugin interface {
	Close() error
}

// RequestContext is what a RequestHook sees and may change.
type RequestContext struct {
	// Request is this attempt's own clone of the caller's request. Hooks
	// may change its headers or URL, or replace it; the caller's request
	// is never touched.
	Request *http.Request
	// Endpoint is the matched endpoint key ("default" for none).
	Endpoint string
	// Attempt is 1 for the first try.
	Attempt int
	// Values is storage shared by every hook context of one call.
	Values map[string]any
	// Response, when a hook sets it, answers the call without touching
	// the network: the remaining request hooks are skipped and the
	// response hooks run.
	Response *http.Response
}

// ResponseContext is what a ResponseHook sees and may change.
type ResponseContext struct {
	// Request is the attempt's request.
	Request *http.Request
	// Response may be replaced. A hook that replaces it owns the old
	// response's body.
	Response *http.Response
	// Endpoint is the matched endpoint key.
	Endpoint string
	// Attempt is the attempt that produced Response (0 when a request
	// hook answered the call).
	Attempt int
	// Duration is the time from the start of the call to the response headers.
	Duration time.Duration
	// Values is storage shared by every hook context of one call.
	Values map[string]any
}

// ErrorContext is what an ErrorHook sees and may change.
type ErrorContext struct {
	// Request is the attempt's request.
	Request *http.Request
	// Err is the attempt's error. For a failing status it is a
	// *StatusError; Response is set too.
	Err error
	// Response is set when the failure is a status such as 503 or 429.
	// Its body is closed by the Manager unless the call goes on with it.
	Response *http.Response
	// Endpoint is the matched endpoint key.
	Endpoint string
	// Attempt is 1 for the first try.
	Attempt int
	// Values is storage shared by every hook context of one call.
	Values map[string]any
	// Retry says whether another attempt will be made. It starts as the
	// retry policy's final decision (attempts left, safety, deadline,
	// retry budget), so false means this attempt is the last one unless
	// a hook changes it. A retry asked for here is still bounded by the
	// attempts left, the deadline, the retry budget and whether the body
	// can be replayed.
	Retry bool
	// RetryAfter is the wait before the next attempt. It starts as the
	// server's Retry-After (0 when absent); when it is longer than the
	// backoff, it is what the Manager waits.
	RetryAfter time.Duration
	// Fallback, when a hook sets it, answers the call instead of the error.
	Fallback *http.Response
}

// hookEntry is one hook with the plugin it belongs to.
type hookEntry[C any] struct {
	plugin string
	fn     func(C) error
}

// hookChain is an immutable snapshot of the plugins and their hooks, in
// registration order. Use and Remove build a new one and swap it in.
type hookChain struct {
	plugins   []Plugin
	requests  []hookEntry[*RequestContext]
	responses []hookEntry[*ResponseContext]
	errors    []hookEntry[*ErrorContext]
	wrappers  []MiddlewarePlugin // plugins that wrap whole calls
}

func (c *hookChain) empty() bool {
	return len(c.requests) == 0 && len(c.responses) == 0 && len(c.errors) == 0
}

func buildChain(plugins []Plugin) *hookChain {
	c := &hookChain{plugins: plugins}
	for _, p := range plugins {
		name := p.Name()
		if h, ok := p.(requestPlugin); ok {
			c.requests = append(c.requests, hookEntry[*RequestContext]{name, h.OnRequest})
		}
		if h, ok := p.(responsePlugin); ok {
			c.responses = append(c.responses, hookEntry[*ResponseContext]{name, h.OnResponse})
		}
		if h, ok := p.(errorPlugin); ok {
			c.errors = append(c.errors, hookEntry[*ErrorContext]{name, h.OnError})
		}
		if w, ok := p.(MiddlewarePlugin); ok {
			c.wrappers = append(c.wrappers, w)
		}
	}
	return c
}

// funcPlugin adapts one hook function to a Plugin, for OnRequest,
// OnResponse and OnError.
type funcPlugin struct {
	name       string
	onRequest  RequestHook
	onResponse ResponseHook
	onError    ErrorHook
}

func (p *funcPlugin) Name() string { return p.name }

// requestOnly and friends expose exactly one hook method, so that the
// chain sees only the hook the function plugin was made for.
type requestOnly struct{ *funcPlugin }

func (p requestOnly) OnRequest(c *RequestContext) error { return p.onRequest(c) }

type responseOnly struct{ *funcPlugin }

func (p responseOnly) OnResponse(c *ResponseContext) error { return p.onResponse(c) }

type errorOnly struct{ *funcPlugin }

func (p errorOnly) OnError(c *ErrorContext) error { return p.onError(c) }

// validatePlugin checks a plugin before it joins the chain.
func validatePlugin(p Plugin) error {
	if p == nil {
		return errors.New("connmgr: plugin is nil")
	}
	if p.Name() == "" {
		return fmt.Errorf("connmgr: plugin of type %T has an empty name", p)
	}
	_, isReq := p.(requestPlugin)
	_, isResp := p.(responsePlugin)
	_, isErr := p.(errorPlugin)
	_, isWrap := p.(MiddlewarePlugin)
	if !isReq && !isResp && !isErr && !isWrap {
		return fmt.Errorf("connmgr: plugin %q (%T) implements none of OnRequest, OnResponse, OnError, WrapCall", p.Name(), p)
	}
	return nil
}

// Use appends plugins to the chain, in order. It fails, adding none, if a
// plugin is nil, has no hook, or shares a name with another.
func (m *Manager) Use(plugins ...Plugin) error {
	m.pluginMu.Lock()
	defer m.pluginMu.Unlock()
	cur := m.chain.Load()
	names := make(map[string]bool, len(cur.plugins)+len(plugins))
	for _, p := range cur.plugins {
		names[p.Name()] = true
	}
	for _, p := range plugins {
		if err := validatePlugin(p); err != nil {
			return err
		}
		if names[p.Name()] {
			return fmt.Errorf("connmgr: a plugin named %q is already in use", p.Name())
		}
		names[p.Name()] = true
	}
	for _, p := range plugins {
		if a, ok := p.(AttachPlugin); ok {
			if err := m.attachPlugin(a); err != nil {
				return fmt.Errorf("connmgr: plugin %q: %w", safeName(p), err)
			}
		}
	}
	next := append(append(make([]Plugin, 0, len(cur.plugins)+len(plugins)), cur.plugins...), plugins...)
	m.chain.Store(buildChain(next))
	return nil
}

// Remove takes the named plugin out of the chain and closes it if it has
// a Close method. Calls already running finish with the chain they
// started with. It reports whether the plugin was there.
func (m *Manager) Remove(name string) bool {
	m.pluginMu.Lock()
	cur := m.chain.Load()
	var removed Plugin
	next := make([]Plugin, 0, len(cur.plugins))
	for _, p := range cur.plugins {
		if removed == nil && p.Name() == name {
			removed = p
			continue
		}
		next = append(next, p)
	}
	if removed != nil {
		m.chain.Store(buildChain(next))
	}
	m.pluginMu.Unlock()
	if removed == nil {
		return false
	}
	m.closePlugin(removed)
	return true
}

// Plugins returns the names of the plugins in the chain, in order.
func (m *Manager) Plugins() []string {
	cur := m.chain.Load()
	names := make([]string, len(cur.plugins))
	for i, p := range cur.plugins {
		names[i] = p.Name()
	}
	return names
}

// OnRequest appends a request hook, as a plugin named "on_request#N".
func (m *Manager) OnRequest(h RequestHook) {
	m.addFuncPlugin("on_request", func(fp *funcPlugin) Plugin { fp.onRequest = h; return requestOnly{fp} }, h == nil)
}

// OnResponse appends a response hook, as a plugin named "on_response#N".
func (m *Manager) OnResponse(h ResponseHook) {
	m.addFuncPlugin("on_response", func(fp *funcPlugin) Plugin { fp.onResponse = h; return responseOnly{fp} }, h == nil)
}

// OnError appends an error hook, as a plugin named "on_error#N".
func (m *Manager) OnError(h ErrorHook) {
	m.addFuncPlugin("on_error", func(fp *funcPlugin) Plugin { fp.onError = h; return errorOnly{fp} }, h == nil)
}

func (m *Manager) addFuncPlugin(kind string, build func(*funcPlugin) Plugin, isNil bool) {
	if isNil {
		m.logger.Warn("connmgr: nil hook ignored", slog.String("kind", kind))
		return
	}
	m.pluginMu.Lock()
	m.hookSeq++
	name := kind + "#" + strconv.Itoa(m.hookSeq)
	m.pluginMu.Unlock()
	if err := m.Use(build(&funcPlugin{name: name})); err != nil {
		// Cannot happen: the name is unique and the plugin has its hook.
		m.logger.Error("connmgr: hook not added", slog.String("error", err.Error()))
	}
}

// closePlugin closes a plugin that has a Close method, under the
// recovery helper: a Close that panics is logged and the Manager goes on.
func (m *Manager) closePlugin(p Plugin) {
	c, ok := p.(closerPlugin)
	if !ok {
		return
	}
	name := safeName(p)
	var err error
	func() {
		defer m.recovered("plugin Close", name, &err)
		err = c.Close()
	}()
	if err != nil {
		m.logger.Warn("connmgr: plugin close failed", slog.String("plugin", name), slog.String("error", safeString(err)))
	}
}

// runHook calls one hook, turning an error or a panic into a *HookError.
// A panic is counted and logged with its stack; it never escapes.
func runHook[C any](m *Manager, ep *endpoint, stage string, h hookEntry[C], c C) (err error) {
	defer m.recovered(stage, h.plugin, nil, func(v any) {
		ep.stats.hookPanics.Add(1)
		err = &HookError{Plugin: h.plugin, Stage: stage, Panic: v}
	})
	if e := h.fn(c); e != nil {
		return &HookError{Plugin: h.plugin, Stage: stage, Err: e}
	}
	return nil
}
