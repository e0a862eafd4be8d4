package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/connmgr/connmgr/cache"
)

// DefaultMaxValueSize bounds a cached value (1 MiB).
const DefaultMaxValueSize = 1 << 20

// ErrValueTooLarge is returned by CacheStore.Set for a value over the
// store's maximum size; nothing is stored.
var ErrValueTooLarge = errors.New("redisstore: cache value too large")

// CacheStore is a cache.Store on Redis, shared by every Manager that uses
// the same prefix and namespace. Keys are PREFIX+"cache:"+namespace+":"+key
// (a key longer than 200 bytes is replaced by its SHA-256). Every method
// runs under the Store's deadline; while Redis is down Get misses at once
// and Set and Delete do nothing, returning ErrUnavailable.
type CacheStore struct {
	s       *Store
	ns      string
	maxSize int
}

// CacheOption configures a CacheStore.
type CacheOption func(*CacheStore)

// WithMaxValueSize bounds the size of a value Set stores (default 1 MiB;
// <= 0 keeps the default).
func WithMaxValueSize(n int) CacheOption {
	return func(c *CacheStore) {
		if n > 0 {
			c.maxSize = n
		}
	}
}

// Cache returns a cache.Store in namespace (for example one per service or
// per cache configuration), sharing the Store's client, prefix, deadline
// and health.
func (s *Store) Cache(namespace string, opts ...CacheOption) *CacheStore {
	c := &CacheStore{s: s, ns: namespace, maxSize: DefaultMaxValueSize}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

var _ cache.Store = (*CacheStore)(nil)

func (c *CacheStore) key(k string) string {
	if len(k) > 200 {
		sum := sha256.Sum256([]byte(k))
		k = "h:" + hex.EncodeToString(sum[:])
	}
	return c.s.prefix + "cache:" + c.ns + ":" + k
}

// Get returns the value stored under key, or ok == false.
func (c *CacheStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := c.s.available(); err != nil {
		return nil, false, err
	}
	rctx, cancel := c.s.ctx(ctx)
	defer cancel()
	v, err := c.s.client.Get(rctx, c.key(key)).Bytes()
	if err != nil {
		return nil, false, c.s.result(ctx, err)
	}
	if len(v) > c.maxSize {
		return nil, false, nil
	}
	return v, true, nil
}

// Set stores value under key for ttl (0: until Redis evicts it). A value
// larger than the maximum size is refused with ErrValueTooLarge.
func (c *CacheStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if len(value) > c.maxSize {
		return ErrValueTooLarge
	}
	if ttl < 0 {
		return nil
	}
	if err := c.s.available(); err != nil {
		return err
	}
	rctx, cancel := c.s.ctx(ctx)
	defer cancel()
	return c.s.result(ctx, c.s.client.Set(rctx, c.key(key), value, ttl).Err())
}

// Delete removes key.
func (c *CacheStore) Delete(ctx context.Context, key string) error {
	if err := c.s.available(); err != nil {
		return err
	}
	rctx, cancel := c.s.ctx(ctx)
	defer cancel()
	return c.s.result(ctx, c.s.client.Del(rctx, c.key(key)).Err())
}
