package cache

import (
	"context"
	"time"
)

// Store holds serialized cache entries by key. The in-memory store is the
// default; redisstore's cache store shares entries with a fleet. Every
// method is called with a short deadline in ctx; an error is a miss, never
// a failed call.
type Store interface {
	// Get returns the value stored under key, or ok == false.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl (0: until evicted).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key.
	Delete(ctx context.Context, key string) error
}
