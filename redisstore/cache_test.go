package redisstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

func TestCacheStoreSharedByTwoStores(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv).Cache("svc"), open(t, srv).Cache("svc")
	ctx := context.Background()
	if err := a.Set(ctx, "GET https://x/1", []byte("entry"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, ok, err := b.Get(ctx, "GET https://x/1")
	if err != nil || !ok || !bytes.Equal(v, []byte("entry")) {
		t.Fatalf("B.Get after A.Set: %q, %v, %v; want the entry", v, ok, err)
	}
	// Namespaces do not see each other.
	if _, ok, _ := open(t, srv).Cache("other").Get(ctx, "GET https://x/1"); ok {
		t.Error("another namespace saw the entry")
	}
	if err := b.Delete(ctx, "GET https://x/1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Get(ctx, "GET https://x/1"); ok {
		t.Error("A still sees the entry B deleted")
	}
	// TTL.
	if err := a.Set(ctx, "short", []byte("v"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the entry to expire", func() bool { _, ok, _ := b.Get(ctx, "short"); return !ok })
	// Long keys are hashed, and still found.
	long := strings.Repeat("k", 1000)
	if err := a.Set(ctx, long, []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, long); !ok {
		t.Error("a long key was not found")
	}
}

func TestCacheStoreBoundsValues(t *testing.T) {
	srv := redistest.Start(t)
	c := open(t, srv).Cache("svc", WithMaxValueSize(10))
	ctx := context.Background()
	if err := c.Set(ctx, "big", make([]byte, 11), time.Minute); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Set of 11 bytes with a 10-byte bound: %v; want ErrValueTooLarge", err)
	}
	if _, ok, _ := c.Get(ctx, "big"); ok {
		t.Error("the refused value was stored")
	}
	if err := c.Set(ctx, "ok", make([]byte, 10), time.Minute); err != nil {
		t.Fatalf("Set of 10 bytes: %v", err)
	}
}

func TestCacheMissesWhileRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	c := s.Cache("svc")
	ctx := context.Background()
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	for range 5 {
		start := time.Now()
		_, ok, err := c.Get(ctx, "k")
		if ok || err == nil {
			t.Fatalf("Get with Redis down: ok=%v err=%v; want a miss with an error", ok, err)
		}
		if took := time.Since(start); took > DefaultTimeout+100*time.Millisecond {
			t.Fatalf("Get with Redis down took %v", took)
		}
	}
	if st := s.Stats(); st.Outages != 1 {
		t.Errorf("Outages = %d; want 1", st.Outages)
	}
}
