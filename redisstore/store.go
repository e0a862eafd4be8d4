// Package redisstore keeps connmgr's fleet state in Redis: rate limits
// shared by every Manager (GCRA in one Lua script, one round trip per
// admission), breaker signals shared by pub/sub with keys that carry the
// open-until time, fleet-wide half-open probe slots, and a cache.Store for
// the cache plugin.
//
// The model: a Store wraps a redis.UniversalClient (a single node, a
// Cluster or a Sentinel-backed client, as go-redis builds it). Every
// Redis operation runs under a short deadline (50 ms by default). When one
// fails the Store marks Redis down, logs one line and counts one outage,
// and until a background ping succeeds again it does not call Redis on
// the request path at all: the limiter falls back to its OnError policy
// (a local bucket at the fleet rate divided by the live Managers seen, by
// default), the breaker works locally, and the cache misses. No call ever
// waits for Redis longer than the deadline.
//
// The Store implements connmgr.RateLimitStore, connmgr.BreakerStore and
// (through Cache) cache.Store. Connect builds one from the `redis:` block
// of a config file, for connmgr.WithFleetConnector.
//
// A Store is safe for concurrent use. Close stops its background work;
// it closes the client only when Connect created it.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connmgr/connmgr"
)

// Defaults for a Store's options.
const (
	DefaultPrefix    = "connmgr:"
	DefaultTimeout   = 50 * time.Millisecond
	DefaultHeartbeat = time.Second
)

// ErrUnavailable is returned, wrapped, while Redis is marked down: the
// Store does not call Redis until its background ping succeeds again.
var ErrUnavailable = errors.New("redisstore: redis unavailable")

// OnError is what the rate limiter does while Redis is unavailable.
type OnError int

const (
	// FallbackLocal admits from a local bucket at the fleet rate divided
	// by the live Managers seen (or at WithLocalShare's share).
	FallbackLocal OnError = iota
	// FallbackAllow admits every call.
	FallbackAllow
	// FallbackDeny refuses every call (connmgr.ErrRateLimited).
	FallbackDeny
)

func (p OnError) String() string {
	switch p {
	case FallbackAllow:
		return "allow"
	case FallbackDeny:
		return "deny"
	}
	return "local"
}

// ParseOnError reads "local" (or ""), "allow" or "deny".
func ParseOnError(s string) (OnError, error) {
	switch s {
	case "", "local":
		return FallbackLocal, nil
	case "allow":
		return FallbackAllow, nil
	case "deny":
		return FallbackDeny, nil
	}
	return FallbackLocal, errors.New(`redisstore: on_error must be "local", "allow" or "deny"`)
}

// Option configures a Store.
type Option interface{ apply(*Store) }

type optionFunc func(*Store)

func (f optionFunc) apply(s *Store) { f(s) }

// WithPrefix sets the prefix of every Redis key and channel the Store uses
// (default "connmgr:"). Managers share state only under the same prefix.
func WithPrefix(p string) Option { return optionFunc(func(s *Store) { s.prefix = p }) }

// WithTimeout sets the deadline of each Redis operation (default 50 ms;
// <= 0 keeps the default). The client should have ContextTimeoutEnabled
// set, as Connect does, so that a slow server cannot hold a call past it.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(s *Store) {
		if d > 0 {
			s.timeout = d
		}
	})
}

// WithOnError sets the limiter's policy while Redis is unavailable
// (default FallbackLocal).
func WithOnError(p OnError) Option { return optionFunc(func(s *Store) { s.onError = p }) }

// WithLocalShare makes the FallbackLocal bucket run at share (0 < share
// <= 1) of the fleet rate, instead of the fleet rate divided by the live
// Managers seen.
func WithLocalShare(share float64) Option {
	return optionFunc(func(s *Store) {
		if share > 0 && share <= 1 {
			s.localShare = share
		}
	})
}

// WithLogger sets the logger for the one line per outage and recovery
// (default: silent).
func WithLogger(l *slog.Logger) Option { return optionFunc(func(s *Store) { s.logger = l }) }

// WithHeartbeat sets how often the Store announces itself in the set of
// live Managers (default 1s); a Manager unseen for three beats is no
// longer counted. While Redis is down the Store pings it after 100 ms,
// then backing off to this interval.
func WithHeartbeat(d time.Duration) Option {
	return optionFunc(func(s *Store) {
		if d > 0 {
			s.heartbeat = d
		}
	})
}

// Store is connmgr's fleet state on Redis. Build it with New or Connect;
// the zero value is not usable.
type Store struct {
	client     redis.UniversalClient
	ownsClient bool
	prefix     string
	timeout    time.Duration
	onError    OnError
	localShare float64
	logger     *slog.Logger
	heartbeat  time.Duration
	id         string
	now        func() time.Time

	down      atomic.Bool
	live      atomic.Int64 // live Managers seen at the last heartbeat, >= 1
	outages   atomic.Int64
	errs      atomic.Int64
	fallbacks atomic.Int64

	// healthMu guards downSince and lastErr.
	healthMu  sync.Mutex
	downSince time.Time
	lastErr   string

	local localBuckets

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a Store on client and starts its heartbeat. Close it when
// done; the client stays open (it is the caller's).
func New(client redis.UniversalClient, opts ...Option) *Store {
	s := &Store{
		client:    client,
		prefix:    DefaultPrefix,
		timeout:   DefaultTimeout,
		heartbeat: DefaultHeartbeat,
		id:        newID(),
		now:       time.Now,
		stop:      make(chan struct{}),
	}
	for _, o := range opts {
		if o != nil {
			o.apply(s)
		}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.live.Store(1)
	s.local.m = make(map[string]*localBucket)
	s.wg.Add(1)
	go s.heartbeatLoop()
	return s
}

// ID identifies this Store among the live Managers (a random hex string).
func (s *Store) ID() string { return s.id }

// Close stops the heartbeat and removes this Store from the live set. It
// closes the client only when Connect created it. It is safe to call more
// than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		if !s.down.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			s.client.ZRem(ctx, s.key("managers"), s.id)
			cancel()
		}
		if s.ownsClient {
			err = s.client.Close()
		}
	})
	return err
}

// Stats is a snapshot of a Store's health; a Manager reports it in
// connmgr.Stats.Fleet.
type Stats = connmgr.FleetStats

// FleetStats is Stats, for connmgr.FleetHealth.
func (s *Store) FleetStats() connmgr.FleetStats { return s.Stats() }

// Stats returns the Store's health.
func (s *Store) Stats() Stats {
	st := Stats{
		Healthy:      !s.down.Load(),
		Outages:      s.outages.Load(),
		Errors:       s.errs.Load(),
		Fallbacks:    s.fallbacks.Load(),
		LiveManagers: int(s.live.Load()),
		OnError:      s.onError.String(),
	}
	s.healthMu.Lock()
	st.DownSince, st.LastError = s.downSince, s.lastErr
	s.healthMu.Unlock()
	return st
}

// key returns the full Redis key for name.
func (s *Store) key(name string) string { return s.prefix + name }

// ctx returns parent bounded by the Store's deadline.
func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, s.timeout)
}

// available reports whether Redis may be called on the request path.
func (s *Store) available() error {
	if s.down.Load() {
		return ErrUnavailable
	}
	return nil
}

// result records the outcome of one Redis operation made under a ctx
// from s.ctx(parent). A failure marks Redis down once per outage; a
// caller's own cancellation is not Redis's fault.
func (s *Store) result(parent context.Context, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return nil
	}
	if parent != nil && parent.Err() != nil {
		return err
	}
	s.errs.Add(1)
	msg := err.Error()
	if len(msg) > 256 {
		msg = msg[:256]
	}
	s.healthMu.Lock()
	s.lastErr = msg
	s.healthMu.Unlock()
	if !s.down.Swap(true) {
		s.outages.Add(1)
		s.healthMu.Lock()
		s.downSince = s.now()
		s.healthMu.Unlock()
		s.logger.Warn("redisstore: redis unavailable; limits fall back", "on_error", s.onError.String(), "error", msg)
	}
	return err
}

// recovered marks Redis up again after a successful ping.
func (s *Store) recovered() {
	if s.down.Swap(false) {
		s.healthMu.Lock()
		since := s.downSince
		s.downSince = time.Time{}
		s.healthMu.Unlock()
		s.logger.Info("redisstore: redis available again", "down_for", s.now().Sub(since).Round(time.Millisecond).String())
	}
}

// heartbeatLoop announces this Store in the live set and counts the live
// Managers; while Redis is down it pings it until it answers.
func (s *Store) heartbeatLoop() {
	defer s.wg.Done()
	s.beat()
	retry := 100 * time.Millisecond
	for {
		d := s.heartbeat
		if s.down.Load() {
			// Ping sooner while down, backing off to the heartbeat: go-redis
			// logs each failed dial through its own package logger.
			d, retry = min(retry, d), min(retry*2, d)
		} else {
			retry = 100 * time.Millisecond
		}
		t := time.NewTimer(d)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		s.beat()
	}
}

// beatScript adds this Store to the live set, drops Managers unseen for
// three beats and counts the rest, on the server's clock.
var beatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
`)

func (s *Store) beat() {
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	n, err := beatScript.Run(ctx, s.client, []string{s.key("managers")}, s.id, (3 * s.heartbeat).Milliseconds()).Int64()
	if err != nil {
		s.result(nil, err)
		return
	}
	if n < 1 {
		n = 1
	}
	s.live.Store(n)
	s.recovered()
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	_ connmgr.RateLimitStore = (*Store)(nil)
	_ connmgr.BreakerStore   = (*Store)(nil)
	_ connmgr.FleetHealth    = (*Store)(nil)
)
