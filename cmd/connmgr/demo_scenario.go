package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// The demo's faults. The upstreams' behaviour depends only on the seed
// and the request number (see connmgrtest.Flaky), so a seed replays the
// same faults; the timing of the calls still varies from run to run.
const (
	flakyRate     = 0.30 // share of requests the flaky upstream answers 503
	slowRate      = 0.12 // share of requests the slow upstream holds for slowStall
	slowStall     = 400 * time.Millisecond
	slowTimeout   = 250 * time.Millisecond // the slow endpoint's per-try timeout
	limitedRate   = 0.05                   // share of requests answered 429 Retry-After: 1
	resettingRate = 0.40                   // share of requests whose connection is reset before any answer
)

// upstream is one local server the demo calls, with what the demo saw.
type upstream struct {
	name  string // the endpoint's name in the demo config and the output
	about string // what the upstream does, for the banner
	srv   *connmgrtest.Server
	meter meter
}

// startUpstreams starts the demo's local upstreams, each on its own
// loopback port.
func startUpstreams(seed uint64) []*upstream {
	return []*upstream{
		{
			name:  "healthy",
			about: "always 200, in 1-4ms",
			srv:   connmgrtest.NewServerFunc(jittered(seed, time.Millisecond, 3*time.Millisecond)),
		},
		{
			name:  "flaky",
			about: fmt.Sprintf("%.0f%% of requests get 503", flakyRate*100),
			srv:   connmgrtest.NewServerFunc(connmgrtest.Flaky(seed+1, flakyRate, connmgrtest.Step{Status: http.StatusServiceUnavailable})),
		},
		{
			name: "slow",
			about: fmt.Sprintf("200 in 10-40ms, but %.0f%% stall %v (per-try timeout %v)",
				slowRate*100, slowStall, slowTimeout),
			srv: connmgrtest.NewServerFunc(slowSteps(seed + 2)),
		},
		{
			name:  "limited",
			about: fmt.Sprintf("%.0f%% of requests get 429 with Retry-After: 1", limitedRate*100),
			srv: connmgrtest.NewServerFunc(connmgrtest.Flaky(seed+3, limitedRate,
				connmgrtest.Step{Status: http.StatusTooManyRequests, RetryAfter: time.Second})),
		},
		{
			name:  "resetting",
			about: fmt.Sprintf("%.0f%% of requests get their connection reset; an error hook falls back", resettingRate*100),
			srv:   connmgrtest.NewServerFunc(connmgrtest.Flaky(seed+4, resettingRate, connmgrtest.Step{Reset: true})),
		},
	}
}

// jittered answers 200 after base plus up to spread, drawn from seed and
// the request number.
func jittered(seed uint64, base, spread time.Duration) func(int64, *http.Request) connmgrtest.Step {
	return func(n int64, _ *http.Request) connmgrtest.Step {
		r := mathrand.New(mathrand.NewPCG(seed, uint64(n)))
		return connmgrtest.Step{Body: `{"ok":true}`, Delay: base + time.Duration(r.Int64N(int64(spread)))}
	}
}

// slowSteps answers in 10-40ms, except for slowRate of the requests,
// which stall for slowStall: longer than the per-try timeout.
func slowSteps(seed uint64) func(int64, *http.Request) connmgrtest.Step {
	return func(n int64, _ *http.Request) connmgrtest.Step {
		r := mathrand.New(mathrand.NewPCG(seed, uint64(n)))
		if r.Float64() < slowRate {
			return connmgrtest.Step{Body: `{"ok":true}`, Delay: slowStall}
		}
		return connmgrtest.Step{Body: `{"ok":true}`, Delay: 10*time.Millisecond + time.Duration(r.Int64N(int64(30*time.Millisecond)))}
	}
}

// demoConfig is the policy the demo runs under, with its endpoints keyed
// by upstream name; bindUpstreams rekeys them to the upstreams'
// addresses once those are known. --config FILE replaces it (see
// loadDemoConfig).
func demoConfig() connmgr.Config {
	return connmgr.Config{
		Default: connmgr.EndpointConfig{
			Timeout:      2 * time.Second,
			TotalTimeout: 10 * time.Second,
			Retry: connmgr.RetryConfig{
				MaxAttempts:    3,
				InitialBackoff: 20 * time.Millisecond,
				MaxBackoff:     500 * time.Millisecond,
			},
			// A short recovery, so that an open breaker is seen closing
			// again within the demo.
			CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 8, RecoveryTimeout: time.Second},
		},
		Endpoints: map[string]connmgr.EndpointConfig{
			"healthy": {},
			"flaky": {
				Retry: connmgr.RetryConfig{
					MaxAttempts: 4,
					// Retries may add at most a quarter to the load, plus
					// 3 a second: without the budget, 4 attempts could
					// quadruple it when the upstream is down.
					Budget: connmgr.RetryBudgetConfig{Ratio: 0.25, MinPerSecond: 3},
				},
			},
			"slow": {Timeout: slowTimeout},
			"limited": {
				// Honour Retry-After up to 2s; a longer one is returned as is.
				Retry: connmgr.RetryConfig{MaxRetryAfter: 2 * time.Second},
			},
			"resetting": {
				Retry: connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond},
			},
		},
	}
}

// loadDemoConfig returns the config the demo runs with: demoConfig, or
// the file --config names, loaded with connmgr.LoadConfig. Its endpoints
// keyed by upstream name are bound to the upstreams like demoConfig's;
// upstreams it does not name get its default block.
func loadDemoConfig(opts demoOptions) (connmgr.Config, error) {
	if opts.config == "" {
		return demoConfig(), nil
	}
	return connmgr.LoadConfig(opts.config)
}

// bindUpstreams returns cfg with every endpoint key (and fallback) that
// names an upstream replaced by that upstream's "host:port", so that the
// requests sent to it match. Other keys are kept. An upstream cfg does
// not name gets an empty endpoint, which inherits the default block: so
// each upstream has its own numbers in Stats.
func bindUpstreams(cfg connmgr.Config, ups []*upstream) connmgr.Config {
	addr := make(map[string]string, len(ups))
	for _, u := range ups {
		addr[u.name] = u.srv.Addr()
	}
	out := cfg
	out.Endpoints = make(map[string]connmgr.EndpointConfig, len(cfg.Endpoints))
	for key, ec := range cfg.Endpoints {
		if a, ok := addr[key]; ok {
			key = a
		}
		if a, ok := addr[ec.Fallback]; ok {
			ec.Fallback = a
		}
		out.Endpoints[key] = ec
	}
	for _, u := range ups {
		if _, named := cfg.Endpoints[u.name]; !named {
			if _, bound := out.Endpoints[u.srv.Addr()]; !bound {
				out.Endpoints[u.srv.Addr()] = connmgr.EndpointConfig{}
			}
		}
	}
	return out
}

// Keys of the per-call values the hooks share (RequestContext.Values).
const (
	valRequestID  = "demo.request_id"
	valRetryAfter = "demo.retry_after" // the Retry-After the last failed attempt asked for
	valFailedAt   = "demo.failed_at"   // when the last attempt failed
)

// hooks are the demo's request, response and error hooks. They count
// what they see in each upstream's meter and report notable events.
type hooks struct {
	con      *console
	byKey    map[string]*upstream // by endpoint key, read-only
	fallback string               // the endpoint key whose failures get a fallback answer
}

// register adds the hooks to m, in the order they run.
func (h *hooks) register(m *connmgr.Manager) {
	m.OnRequest(h.requestID)
	m.OnResponse(h.latency)
	m.OnError(h.observe)
	m.OnError(h.answerWithFallback)
}

// requestID sets X-Request-ID to a random 128-bit hex ID, the same for
// every attempt of a call, and notes when a retry waited for Retry-After.
func (h *hooks) requestID(c *connmgr.RequestContext) error {
	id, ok := c.Values[valRequestID].(string)
	if !ok {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("request id: %w", err)
		}
		id = hex.EncodeToString(b[:])
		c.Values[valRequestID] = id
	}
	c.Request.Header.Set("X-Request-ID", id)
	if c.Attempt == 1 {
		return nil
	}
	u := h.byKey[c.Endpoint]
	if u == nil {
		return nil
	}
	u.meter.add(func(t *tally) { t.retries++ })
	ra, _ := c.Values[valRetryAfter].(time.Duration)
	failedAt, ok := c.Values[valFailedAt].(time.Time)
	if ok && ra > 0 {
		waited := time.Since(failedAt)
		u.meter.add(func(t *tally) { t.retryAfterWaits++ })
		h.con.event("retry-after", "%s: the upstream answered 429 with Retry-After: %v; connmgr waited %.2fs before attempt %d, which carries the same X-Request-ID (%s…)",
			u.name, ra, waited.Seconds(), c.Attempt, id[:8])
	}
	return nil
}

// latency records how long each call took to get its response headers,
// retries included.
func (h *hooks) latency(c *connmgr.ResponseContext) error {
	if u := h.byKey[c.Endpoint]; u != nil {
		u.meter.observe(c.Duration)
	}
	return nil
}

// observe counts every failed attempt and reports the first timeout and
// connection reset.
func (h *hooks) observe(c *connmgr.ErrorContext) error {
	c.Values[valRetryAfter] = c.RetryAfter
	c.Values[valFailedAt] = time.Now()
	u := h.byKey[c.Endpoint]
	if u == nil {
		return nil
	}
	timeout, reset := isTimeout(c.Err), isReset(c.Err)
	u.meter.add(func(t *tally) {
		t.failedAttempts++
		if timeout {
			t.timeouts++
		}
		if reset {
			t.resets++
		}
	})
	next := "giving up"
	if c.Retry {
		next = "retrying"
	}
	switch {
	case timeout:
		h.con.event("timeout", "%s: attempt %d hit the per-try timeout; %s", u.name, c.Attempt, next)
	case reset:
		h.con.event("reset", "%s: attempt %d: connection reset by the upstream; %s", u.name, c.Attempt, next)
	}
	return nil
}

// answerWithFallback answers a call to the fallback endpoint whose last
// attempt failed with a canned response marked X-Fallback, instead of
// the error.
func (h *hooks) answerWithFallback(c *connmgr.ErrorContext) error {
	if c.Endpoint != h.fallback || c.Retry {
		return nil
	}
	body := `{"items":[],"stale":true}`
	c.Fallback = &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type": {"application/json"},
			"X-Fallback":   {"cached"},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       c.Request,
	}
	u := h.byKey[c.Endpoint]
	h.con.event("fallback", "%s: attempt %d failed too (%s); the error hook answered with a cached fallback",
		u.name, c.Attempt, describe(c.Err))
	return nil
}

func isTimeout(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// isReset reports whether err is the upstream dropping the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// describe says in a few words why an attempt failed.
func describe(err error) string {
	var se *connmgr.StatusError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%d %s", se.StatusCode, http.StatusText(se.StatusCode))
	case isTimeout(err):
		return "per-try timeout"
	case isReset(err):
		return "connection reset"
	default:
		return err.Error()
	}
}
