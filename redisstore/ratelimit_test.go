package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

func near(got, want, slack time.Duration) bool {
	return got >= want-slack && got <= want+slack
}

func TestReserveIsGCRA(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	ctx := context.Background()
	lim := connmgr.Limit{Rate: 2, Burst: 3} // a slot every 500ms

	for i := range 3 {
		r, err := s.Reserve(ctx, "gcra", lim, 0)
		if err != nil || !r.OK || r.Delay != 0 {
			t.Fatalf("burst call %d: got %+v, %v; want OK with no delay", i, r, err)
		}
	}
	r, err := s.Reserve(ctx, "gcra", lim, 0)
	if err != nil || r.OK || !near(r.RetryIn, 500*time.Millisecond, 50*time.Millisecond) {
		t.Fatalf("past the burst without waiting: got %+v, %v; want refused, RetryIn ~500ms", r, err)
	}
	r, err = s.Reserve(ctx, "gcra", lim, 5*time.Second)
	if err != nil || !r.OK || !near(r.Delay, 500*time.Millisecond, 50*time.Millisecond) {
		t.Fatalf("past the burst, may wait 5s: got %+v, %v; want OK, Delay ~500ms", r, err)
	}
	r2, err := s.Reserve(ctx, "gcra", lim, 5*time.Second)
	if err != nil || !r2.OK || !near(r2.Delay, time.Second, 50*time.Millisecond) {
		t.Fatalf("next waiter: got %+v, %v; want Delay ~1s", r2, err)
	}
	// The second waiter gives up: its slot comes back.
	if err := s.Cancel(ctx, "gcra", lim, r2); err != nil {
		t.Fatal(err)
	}
	r3, err := s.Reserve(ctx, "gcra", lim, 5*time.Second)
	if err != nil || !r3.OK || !near(r3.Delay, time.Second, 50*time.Millisecond) {
		t.Fatalf("after a cancel: got %+v, %v; want Delay ~1s (the slot given back), not ~1.5s", r3, err)
	}
	if _, err := s.Reserve(ctx, "gcra", connmgr.Limit{}, 0); err == nil {
		t.Fatal("a zero rate: got no error")
	}
}

func TestPauseAndLowerRateAreShared(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv), open(t, srv)
	ctx := context.Background()
	lim := connmgr.Limit{Rate: 100, Burst: 10}

	if err := a.Pause(ctx, "p", time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	r, err := b.Reserve(ctx, "p", lim, 0)
	if err != nil || r.OK || !near(r.RetryIn, 300*time.Millisecond, 60*time.Millisecond) {
		t.Fatalf("B during A's pause: got %+v, %v; want refused, RetryIn ~300ms", r, err)
	}

	if err := a.LowerRate(ctx, "low", 2, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	lim1 := connmgr.Limit{Rate: 100, Burst: 1}
	if r, _ := b.Reserve(ctx, "low", lim1, 0); !r.OK {
		t.Fatalf("first call at the lowered rate: got %+v, want OK", r)
	}
	r, err = b.Reserve(ctx, "low", lim1, 0)
	if err != nil || r.OK || !near(r.RetryIn, 500*time.Millisecond, 60*time.Millisecond) {
		t.Fatalf("B after A lowered the rate to 2/s: got %+v, %v; want RetryIn ~500ms", r, err)
	}
}

func TestRateKeysShareOneHashTag(t *testing.T) {
	s := &Store{prefix: "x:"}
	for _, key := range []string{"ep", "ep|user{1}", string(make([]byte, 300))} {
		ks := s.rateKeys(key)
		tag := func(k string) string {
			i := indexByte(k, '{')
			j := indexByte(k[i:], '}')
			return k[i : i+j+1]
		}
		for _, k := range ks[1:] {
			if tag(k) != tag(ks[0]) {
				t.Errorf("key %q: %q and %q have different hash tags", key, ks[0], k)
			}
		}
		if len(ks[0]) > 200 {
			t.Errorf("key of %d bytes: Redis key %d bytes long; want it hashed", len(key), len(ks[0]))
		}
	}
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}
