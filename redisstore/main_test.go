package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial through its package logger; the
	// outage tests make many.
	redis.SetLogger(quietLogger{})
	if runChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// loadTimeout is the Redis deadline of the load tests: they measure
// sharing, and a loaded machine running -race can miss the default 50 ms,
// which would make them measure the fallback instead. (A Manager bounds
// its store calls at twice the redis block's timeout.)
const loadTimeout = time.Second

// openLoad is open with loadTimeout.
func openLoad(t testing.TB, srv *redistest.Server) *Store {
	t.Helper()
	s, err := Open(connmgr.RedisConfig{URL: srv.URL(), Prefix: "test:", Timeout: loadTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// open returns a Store on srv, closed at the test's end.
func open(t testing.TB, srv *redistest.Server, opts ...Option) *Store {
	t.Helper()
	s, err := Open(connmgr.RedisConfig{URL: srv.URL(), Prefix: "test:"}, append([]Option{WithHeartbeat(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitFor polls cond every 10ms for at most d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
