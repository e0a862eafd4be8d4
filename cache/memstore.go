package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// MemoryStore is the default Store: in-process, bounded in bytes, with
// W-TinyLFU eviction (github.com/maypok86/otter/v2, chosen because it
// bounds by weight, expires each entry on its own TTL, keeps its hit
// ratio under scans and churn, and is lock-free on reads). The Cache
// keeps decoded responses in it directly, so a hit decodes nothing; the
// Store methods, for other users, hold bytes.
//
// Entries live in the Cache, not in a Manager: they survive Reload.
type MemoryStore struct {
	c         *otter.Cache[string, memValue]
	evictions atomic.Uint64
}

// memValue is what the store holds: a decoded variant set (from the
// Cache) or raw bytes (from Store.Set), with the TTL to keep it.
type memValue struct {
	v     *variants
	raw   []byte
	ttl   time.Duration
	bytes uint32
}

// NewMemoryStore returns a store holding at most maxBytes of responses
// (keys, headers and bodies, estimated). maxBytes must be positive.
// Close it when done.
func NewMemoryStore(maxBytes int64) *MemoryStore {
	s := &MemoryStore{}
	s.c = otter.Must(&otter.Options[string, memValue]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       func(_ string, v memValue) uint32 { return v.bytes },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, memValue]) time.Duration {
			if e.Value.ttl <= 0 {
				return math.MaxInt64
			}
			return e.Value.ttl
		}),
		OnDeletion: func(e otter.DeletionEvent[string, memValue]) {
			if e.WasEvicted() {
				s.evictions.Add(1)
			}
		},
		// Maintenance and deletion events run on the caller: no
		// goroutine outlives Close, and the bound holds after each write.
		Executor: func(fn func()) { fn() },
	})
	return s
}

func weight(key string, n int64) uint32 {
	n += int64(len(key)) + 64
	if n > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(n)
}

// Get returns the bytes stored under key.
func (s *MemoryStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	v, ok := s.c.GetIfPresent(key)
	if !ok || v.raw == nil {
		return nil, false, nil
	}
	return v.raw, true, nil
}

// Set stores value under key for ttl (0: until evicted).
func (s *MemoryStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.c.Set(key, memValue{raw: value, ttl: ttl, bytes: weight(key, int64(len(value)))})
	return nil
}

// Delete removes key.
func (s *MemoryStore) Delete(_ context.Context, key string) error {
	s.c.Invalidate(key)
	return nil
}

// Bytes is the estimated size of what the store holds.
func (s *MemoryStore) Bytes() int64 { return int64(s.c.WeightedSize()) }

// Len is the number of keys held.
func (s *MemoryStore) Len() int { return s.c.EstimatedSize() }

// Evictions counts entries dropped to stay under the byte bound.
func (s *MemoryStore) Evictions() uint64 { return s.evictions.Load() }

// Close stops the store's periodic maintenance goroutine. The Cache
// closes the store it made; close one you made yourself when done.
func (s *MemoryStore) Close() error {
	s.c.StopAllGoroutines()
	return nil
}

func (s *MemoryStore) load(_ context.Context, key string) (*variants, bool) {
	v, ok := s.c.GetIfPresent(key)
	if !ok || v.v == nil {
		return nil, false
	}
	return v.v, true
}

func (s *MemoryStore) save(_ context.Context, key string, v *variants, ttl time.Duration) {
	s.c.Set(key, memValue{v: v, ttl: ttl, bytes: weight(key, v.size())})
}

func (s *MemoryStore) remove(_ context.Context, key string) { s.c.Invalidate(key) }

// backend is how the Cache reaches its store: decoded variant sets.
type backend interface {
	load(ctx context.Context, key string) (*variants, bool)
	save(ctx context.Context, key string, v *variants, ttl time.Duration)
	remove(ctx context.Context, key string)
}

// bytesBackend adapts a Store of bytes (Redis) to a backend. An error is
// a miss (or a lost write), never a failed call. Keys are hashed: a URL's
// query may hold a secret (an api_key), and a shared store's key space
// is visible to whoever can list it.
type bytesBackend struct {
	s       Store
	timeout time.Duration
	errors  atomic.Uint64
}

func (b *bytesBackend) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), b.timeout)
}

func (b *bytesBackend) load(parent context.Context, key string) (*variants, bool) {
	ctx, cancel := b.ctx(parent)
	defer cancel()
	var data []byte
	var ok bool
	var err error
	if recovered(func() { data, ok, err = b.s.Get(ctx, hashKey(key)) }) || err != nil {
		b.errors.Add(1)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	return decodeVariants(data)
}

func (b *bytesBackend) save(parent context.Context, key string, v *variants, ttl time.Duration) {
	data, err := encodeVariants(v)
	if err != nil {
		b.errors.Add(1)
		return
	}
	ctx, cancel := b.ctx(parent)
	defer cancel()
	if recovered(func() { err = b.s.Set(ctx, hashKey(key), data, ttl) }) || err != nil {
		b.errors.Add(1)
	}
}

func (b *bytesBackend) remove(parent context.Context, key string) {
	ctx, cancel := b.ctx(parent)
	defer cancel()
	var err error
	if recovered(func() { err = b.s.Delete(ctx, hashKey(key)) }) || err != nil {
		b.errors.Add(1)
	}
}

// recovered runs f, a call into user code, and reports whether it
// panicked. Nothing the panic carries is read, so nothing can panic again.
func recovered(f func()) (panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	f()
	return false
}

// hashKey is the key a Store of bytes sees: "cache:" and the SHA-256 of
// the primary key, in hex.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "cache:" + hex.EncodeToString(sum[:])
}
