package connmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"time"

	"github.com/connmgr/connmgr/internal/redact"
)

// RedisConfig is the `redis:` block: where a fleet of Managers keeps the
// state it shares (rate limits with `scope: fleet`, breaker signals,
// half-open probes). The zero value means no fleet: everything stays in
// memory. The root package never talks to Redis itself: a Manager opens
// the store through the FleetConnector given with WithFleetConnector
// (redisstore.Connect), so programs that never import redisstore never
// compile a Redis client.
type RedisConfig struct {
	// URL is the Redis server, "redis://[user:password@]host:port/db" or
	// "rediss://" for TLS (often "${REDIS_URL}"). Empty: no fleet. The
	// password never appears in any output, Redacted included.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Prefix starts every key and channel the fleet uses. Default
	// "connmgr:".
	Prefix string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	// Timeout bounds each Redis operation. Default 50ms.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// OnError is what a fleet rate limit does while Redis is unavailable:
	// "local" (default: a local bucket at the fleet rate divided by the
	// live Managers seen, or at LocalShare of it), "allow" or "deny".
	// Breakers keep working locally and the cache misses, whatever it says.
	OnError string `yaml:"on_error,omitempty" json:"on_error,omitempty"`
	// LocalShare, when set (0 < share <= 1), is the fraction of the fleet
	// rate the "local" fallback bucket runs at. Default 0: the fleet rate
	// divided by the live Managers seen.
	LocalShare float64 `yaml:"local_share,omitempty" json:"local_share,omitempty"`
}

// Enabled reports whether the block asks for a fleet (URL is set).
func (r RedisConfig) Enabled() bool { return r.URL != "" }

// FleetStore is what a FleetConnector opens: a shared rate-limit store
// and breaker store in one, closed by the Manager that opened it.
type FleetStore interface {
	RateLimitStore
	BreakerStore
	io.Closer
}

// FleetRateLowerer is implemented by a RateLimitStore that shares an
// adaptive limiter's decreases: until until, the fleet admits at most rate
// per second for key, whatever rate each Manager passes to Reserve.
type FleetRateLowerer interface {
	LowerRate(ctx context.Context, key string, rate float64, until time.Time) error
}

// FleetStats is the health of a fleet store: Manager.Stats reports it
// when the rate-limit or breaker store implements FleetHealth.
type FleetStats struct {
	// Healthy is false while the store cannot reach Redis.
	Healthy bool `json:"healthy"`
	// DownSince is when the current outage began (zero when healthy).
	DownSince time.Time `json:"down_since,omitzero"`
	// Outages counts the times the store lost Redis (once per outage).
	Outages int64 `json:"outages"`
	// Errors counts failed store operations.
	Errors int64 `json:"errors"`
	// Fallbacks counts admissions decided by the on_error policy.
	Fallbacks int64 `json:"fallbacks"`
	// LiveManagers is how many Managers the store saw lately (at least 1).
	LiveManagers int `json:"live_managers"`
	// OnError is the limiter's policy while Redis is down.
	OnError string `json:"on_error"`
	// LastError is the last store error; it never holds a password.
	LastError string `json:"last_error,omitempty"`
}

// FleetHealth is implemented by a fleet store that reports its health.
type FleetHealth interface {
	FleetStats() FleetStats
}

// fleetStats asks the rate-limit store, then the breaker store, for
// their health, under the recovery helper.
func (m *Manager) fleetStats() (out *FleetStats) {
	for _, s := range []any{m.opts.rateStore, m.opts.breakerStore} {
		if h, ok := s.(FleetHealth); ok {
			defer m.recovered("fleet store", "FleetStats", nil)
			st := h.FleetStats()
			return &st
		}
	}
	return nil
}

// FleetDial is what a FleetConnector is given; it may grow.
type FleetDial struct {
	// Redis is the config's redis block, as written (Prefix, Timeout and
	// OnError may be zero: the connector applies the defaults).
	Redis RedisConfig
	// Logger is the Manager's logger (never nil).
	Logger *slog.Logger
}

// FleetConnector opens the fleet store for a `redis:` block.
// redisstore.Connect is one.
type FleetConnector func(FleetDial) (FleetStore, error)

// WithFleetConnector sets how a Manager whose config has a `redis:` block
// opens its fleet store (pass redisstore.Connect). The Manager opens the
// store in New, uses it for rate limits with `scope: fleet` and for
// breaker signals, unless WithRateLimitStore or WithBreakerStore gave
// others, and closes it in Close. A config with a `redis:` block and no
// connector is an error. The block is read by New only: Reload keeps the
// store opened at New.
func WithFleetConnector(c FleetConnector) Option {
	return optionFunc(func(o *options) { o.fleetConnector = c })
}

// validateRedis checks the redis block. It never quotes the URL, which
// may hold a password.
func validateRedis(p *problems, r RedisConfig) {
	const path = "redis"
	if r.URL != "" {
		u, err := url.Parse(r.URL)
		switch {
		case err != nil:
			p.add(path+".url", "not a valid URL")
		case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
			p.add(path+".url", `scheme must be "redis", "rediss" or "unix"`)
		case u.Scheme != "unix" && u.Host == "":
			p.add(path+".url", "has no host")
		}
	}
	nonNegative(p, path+".timeout", r.Timeout)
	switch r.OnError {
	case "", "local", "allow", "deny":
	default:
		p.add(path+".on_error", `must be "local", "allow" or "deny"`)
	}
	if r.LocalShare < 0 || r.LocalShare > 1 {
		p.add(path+".local_share", "must be between 0 and 1, got %g", r.LocalShare)
	}
	if r.URL == "" && (r.Prefix != "" || r.Timeout != 0 || r.OnError != "" || r.LocalShare != 0) {
		p.add(path+".url", "must be set when the redis block is")
	}
}

// redactRedis masks the userinfo (and secret query values) of the URL.
func redactRedis(r RedisConfig) RedisConfig {
	if r.URL != "" {
		r.URL = redact.New(nil, []string{"password"}).String(r.URL)
	}
	return r
}

// openFleet opens the fleet store for cfg's redis block, if any, and
// keeps it in m.ownedFleet, for Close. Stores given in code win.
func (m *Manager) openFleet(r RedisConfig) (err error) {
	m.opts.fleetRedis = r
	if !r.Enabled() {
		return nil
	}
	var p problems
	validateRedis(&p, r)
	if err := p.err(); err != nil {
		return err
	}
	o := &m.opts
	if o.rateStore != nil && o.breakerStore != nil {
		return nil // both given in code: nothing to open
	}
	if o.fleetConnector == nil {
		return &ConfigError{Problems: []FieldError{{Path: "redis", Problem: "needs a fleet connector: pass connmgr.WithFleetConnector(redisstore.Connect)"}}}
	}
	store, err := m.callConnector(FleetDial{Redis: r, Logger: m.logger})
	if err != nil {
		return err
	}
	m.ownedFleet = store
	// The store keeps its own deadline (redis.timeout); the Manager's
	// bound on a store call must not cut it short.
	o.fleetTimeout = max(fleetTimeout, 2*effectiveRedis(r).Timeout)
	if o.rateStore == nil {
		o.rateStore = store
	}
	if o.breakerStore == nil {
		o.breakerStore = store
	}
	return nil
}

// callConnector runs the connector (user code) under the recovery
// helper, and refuses a nil or typed-nil store.
func (m *Manager) callConnector(d FleetDial) (store FleetStore, err error) {
	func() {
		defer m.recovered("fleet connector", "redis", &err)
		store, err = m.opts.fleetConnector(d)
	}()
	if err != nil {
		// The connector's error may quote the URL: name the field only.
		return nil, fmt.Errorf("connmgr: redis: %w", redactedError{err})
	}
	if rv := reflect.ValueOf(store); store == nil || isNilable(rv.Kind()) && rv.IsNil() {
		return nil, errors.New("connmgr: redis: the fleet connector returned no store")
	}
	return store, nil
}

// redactedError keeps the chain of a connector's error for errors.Is and
// errors.As, but prints a message safe to log.
type redactedError struct{ err error }

func (e redactedError) Error() string { return "cannot open the fleet store" }
func (e redactedError) Unwrap() error { return e.err }

// effectiveRedis fills in the defaults of a redis block that is set.
func effectiveRedis(r RedisConfig) RedisConfig {
	if !r.Enabled() {
		return r
	}
	if r.Prefix == "" {
		r.Prefix = "connmgr:"
	}
	if r.Timeout == 0 {
		r.Timeout = 50 * time.Millisecond
	}
	if r.OnError == "" {
		r.OnError = "local"
	}
	return r
}

// closeFleet closes the fleet store the Manager opened, under the
// recovery helper.
func (m *Manager) closeFleet() {
	if m.ownedFleet == nil {
		return
	}
	var err error
	func() {
		defer m.recovered("fleet store", "Close", &err)
		err = m.ownedFleet.Close()
	}()
	if err != nil {
		m.logger.Warn("connmgr: closing the fleet store failed")
	}
	m.ownedFleet = nil
}

// storeTimeout bounds each call the Manager makes to a fleet store.
func (m *Manager) storeTimeout() time.Duration {
	if m.opts.fleetTimeout > 0 {
		return m.opts.fleetTimeout
	}
	return fleetTimeout
}

// noteRedisReload warns when a reload changes the redis block: the store
// opened by New stays in use until the Manager is restarted.
func (m *Manager) noteRedisReload(r RedisConfig) {
	if r != m.opts.fleetRedis {
		m.logger.Warn("connmgr: the redis block changed; it takes effect at the next start (the fleet store opened at New stays in use)")
	}
}
