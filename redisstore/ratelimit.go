package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connmgr/connmgr"
)

// The limiter is GCRA (the generic cell rate algorithm, as in redis_rate):
// each key holds its theoretical arrival time (TAT), in microseconds on
// the Redis server's clock. A call at now is due at
// max(TAT, now) + interval - burst*interval; it goes at once when that is
// not after now, waits the difference when that is within maxWait, and is
// refused otherwise (nothing is written). One script run is one round
// trip, and the server's clock is the only clock, so Managers on hosts
// whose clocks disagree still share one rate.
//
// KEYS[1] TAT, KEYS[2] pause-until (a 429's Retry-After), KEYS[3] a shared
// lowered rate (adaptive decreases). ARGV: rate per second, burst, max
// wait in microseconds. It returns {ok, delay or retry-in in µs, TAT}.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local low = tonumber(redis.call('GET', KEYS[3]) or '')
if low and low > 0 and low < rate then rate = low end
local interval = 1000000 / rate
local burst = tonumber(ARGV[2])
local start = now
local pause = tonumber(redis.call('GET', KEYS[2]) or '')
if pause and pause > start then start = pause end
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or start
if tat < start then tat = start end
local new_tat = tat + interval
local at = new_tat - burst * interval
if at < start then at = start end
local delay = at - now
if delay > tonumber(ARGV[3]) then
  return {0, math.ceil(delay), 0}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.ceil(delay), math.floor(new_tat)}
`)

// cancelScript gives back the slot of a reservation whose TAT was
// ARGV[3], unless its time has already come. ARGV: rate, burst, token.
var cancelScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local low = tonumber(redis.call('GET', KEYS[2]) or '')
if low and low > 0 and low < rate then rate = low end
local interval = 1000000 / rate
local at = tonumber(ARGV[3]) - tonumber(ARGV[2]) * interval
if at <= now then return 0 end
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if not tat then return 0 end
tat = tat - interval
if tat < now then tat = now end
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return 1
`)

// pauseScript holds admissions for a key until ARGV[1] (Unix µs) unless a
// later pause is already set.
var pauseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untilus = tonumber(ARGV[1])
if untilus <= now then return 0 end
local cur = tonumber(redis.call('GET', KEYS[1]) or '')
if cur and cur >= untilus then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.ceil((untilus - now) / 1000) + 1)
return 1
`)

// rateKeys returns the TAT, pause and lowered-rate keys of a limiter
// key. They share a hash tag, so one script can use them on a Cluster.
// A long key, or one with braces, is hashed.
func (s *Store) rateKeys(key string) [3]string {
	if len(key) > 128 || strings.ContainsAny(key, "{}") {
		sum := sha256.Sum256([]byte(key))
		key = "h:" + hex.EncodeToString(sum[:16])
	}
	base := s.prefix + "rl:{" + key + "}"
	return [3]string{base, base + ":pause", base + ":rate"}
}

// Reserve takes one token for key at limit, waiting at most maxWait: one
// Redis round trip. The Reservation's Delay is exactly how long to wait;
// when the token is not free within maxWait, OK is false and RetryIn says
// when it would be, and nothing is taken. While Redis is unavailable the
// OnError policy answers instead, and the error is nil.
func (s *Store) Reserve(ctx context.Context, key string, limit connmgr.Limit, maxWait time.Duration) (connmgr.Reservation, error) {
	rate, burst, err := checkLimit(limit)
	if err != nil {
		return connmgr.Reservation{}, err
	}
	if math.IsInf(rate, 1) {
		return connmgr.Reservation{OK: true}, nil
	}
	if maxWait < 0 {
		maxWait = 0
	}
	if s.available() != nil {
		return s.fallback(key, rate, burst, maxWait), nil
	}
	keys := s.rateKeys(key)
	rctx, cancel := s.ctx(ctx)
	vals, err := reserveScript.Run(rctx, s.client, keys[:], rate, burst, maxWait.Microseconds()).Int64Slice()
	cancel()
	if err == nil && len(vals) != 3 {
		err = errors.New("redisstore: unexpected reply from the rate script")
	}
	if err != nil {
		if s.result(ctx, err); ctx != nil && ctx.Err() != nil {
			return connmgr.Reservation{}, ctx.Err()
		}
		return s.fallback(key, rate, burst, maxWait), nil
	}
	d := time.Duration(vals[1]) * time.Microsecond
	if d < 0 {
		d = 0
	}
	if vals[0] != 1 {
		return connmgr.Reservation{RetryIn: d}, nil
	}
	return connmgr.Reservation{OK: true, Delay: d, Token: vals[2]}, nil
}

// Cancel gives back a reservation that was not used, unless its time has
// already come. A reservation made by the local fallback goes back to the
// local bucket.
func (s *Store) Cancel(ctx context.Context, key string, limit connmgr.Limit, r connmgr.Reservation) error {
	if !r.OK || r.Token == 0 {
		return nil
	}
	rate, burst, err := checkLimit(limit)
	if err != nil || math.IsInf(rate, 1) {
		return err
	}
	if r.Token < 0 {
		s.local.cancel(key, -r.Token, s.now())
		return nil
	}
	if err := s.available(); err != nil {
		return err
	}
	keys := s.rateKeys(key)
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.result(ctx, cancelScript.Run(rctx, s.client, []string{keys[0], keys[2]}, rate, burst, r.Token).Err())
}

// Pause stops admissions for key, fleet-wide, until until (a 429's
// Retry-After). A later pause already set is kept. While Redis is
// unavailable the local fallback bucket is paused instead.
func (s *Store) Pause(ctx context.Context, key string, until time.Time) error {
	s.local.pause(key, until)
	if err := s.available(); err != nil {
		return err
	}
	keys := s.rateKeys(key)
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.result(ctx, pauseScript.Run(rctx, s.client, []string{keys[1]}, until.UnixMicro()).Err())
}

// LowerRate holds the fleet's rate for key at most at rate per second
// until until: an adaptive limiter's decrease, shared. Each Manager still
// passes its own rate to Reserve; the lower of the two applies. The
// lowered rate lapses at until (an adaptive limiter renews it while the
// upstream still pushes back).
func (s *Store) LowerRate(ctx context.Context, key string, rate float64, until time.Time) error {
	if !(rate > 0) || math.IsInf(rate, 1) {
		return errors.New("redisstore: rate must be a positive number")
	}
	ttl := until.Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	if err := s.available(); err != nil {
		return err
	}
	keys := s.rateKeys(key)
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.result(ctx, s.client.Set(rctx, keys[2], rate, ttl).Err())
}

func checkLimit(l connmgr.Limit) (rate float64, burst int, err error) {
	if !(l.Rate > 0) {
		return 0, 0, errors.New("redisstore: limit rate must be positive")
	}
	burst = l.Burst
	if burst < 1 {
		burst = 1
	}
	return l.Rate, burst, nil
}

// fallback answers a reservation by the OnError policy.
func (s *Store) fallback(key string, rate float64, burst int, maxWait time.Duration) connmgr.Reservation {
	s.fallbacks.Add(1)
	switch s.onError {
	case FallbackAllow:
		return connmgr.Reservation{OK: true}
	case FallbackDeny:
		return connmgr.Reservation{RetryIn: s.heartbeat}
	}
	share := s.localShare
	if share == 0 {
		share = 1 / float64(s.live.Load())
	}
	lb := int(math.Ceil(float64(burst) * share))
	return s.local.reserve(key, rate*share, lb, maxWait, s.now())
}

// localBuckets are the FallbackLocal buckets, the same GCRA in memory.
type localBuckets struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]*localBucket
}

type localBucket struct {
	tat      int64 // µs since the Unix epoch
	pause    int64
	interval float64
	burst    int
}

// maxLocalBuckets bounds the fallback buckets; past it they start afresh.
const maxLocalBuckets = 10000

func (lb *localBuckets) get(key string) *localBucket {
	b := lb.m[key]
	if b == nil {
		if len(lb.m) >= maxLocalBuckets {
			clear(lb.m)
		}
		b = &localBucket{}
		lb.m[key] = b
	}
	return b
}

func (lb *localBuckets) reserve(key string, rate float64, burst int, maxWait time.Duration, t time.Time) connmgr.Reservation {
	now := t.UnixMicro()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b := lb.get(key)
	b.interval, b.burst = 1e6/rate, burst
	start := max(now, b.pause)
	tat := max(float64(b.tat), float64(start))
	newTAT := tat + b.interval
	at := max(newTAT-float64(burst)*b.interval, float64(start))
	delay := time.Duration(math.Ceil(at-float64(now))) * time.Microsecond
	if delay > maxWait {
		return connmgr.Reservation{RetryIn: delay}
	}
	b.tat = int64(newTAT)
	return connmgr.Reservation{OK: true, Delay: delay, Token: -b.tat}
}

func (lb *localBuckets) cancel(key string, token int64, t time.Time) {
	now := t.UnixMicro()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b := lb.m[key]
	if b == nil || float64(token)-float64(b.burst)*b.interval <= float64(now) {
		return
	}
	b.tat = max(b.tat-int64(b.interval), now)
}

func (lb *localBuckets) pause(key string, until time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b := lb.get(key)
	b.pause = max(b.pause, until.UnixMicro())
}
