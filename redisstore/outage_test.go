package redisstore

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// countingHandler counts log records by level.
type countingHandler struct {
	warn, info atomic.Int64
	mu         sync.Mutex
	lines      []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Level {
	case slog.LevelWarn:
		h.warn.Add(1)
	case slog.LevelInfo:
		h.info.Add(1)
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestRedisKilledAndRestarted: while Redis is down no call waits past the
// deadline, the configured policy decides, the outage is logged and
// counted once, and after the restart the limiter is back on Redis.
func TestRedisKilledAndRestarted(t *testing.T) {
	lim := connmgr.Limit{Rate: 1, Burst: 10} // no refill worth counting during the loop
	for _, tc := range []struct {
		policy OnError
		// check judges the admissions made during the outage.
		check func(ok, refused int) bool
	}{
		{FallbackLocal, func(ok, refused int) bool { return ok >= 10 && ok <= 12 && refused > 0 }},
		{FallbackAllow, func(ok, refused int) bool { return refused == 0 }},
		{FallbackDeny, func(ok, refused int) bool { return ok == 0 }},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			srv := redistest.Start(t)
			h := &countingHandler{}
			s := open(t, srv, WithOnError(tc.policy), WithHeartbeat(100*time.Millisecond), WithLogger(slog.New(h)))
			ctx := context.Background()
			if r, err := s.Reserve(ctx, "k", lim, 0); err != nil || !r.OK {
				t.Fatalf("before the outage: got %+v, %v", r, err)
			}
			srv.Kill()
			ok, refused := 0, 0
			for range 30 {
				start := time.Now()
				r, err := s.Reserve(ctx, "k", lim, 0)
				if took := time.Since(start); took > DefaultTimeout+100*time.Millisecond {
					t.Fatalf("a call during the outage took %v; want at most the 50ms deadline (and slack)", took)
				}
				if err != nil {
					t.Fatalf("during the outage: error %v; want the policy's answer", err)
				}
				if r.OK {
					ok++
				} else {
					refused++
				}
			}
			if !tc.check(ok, refused) {
				t.Errorf("during the outage, policy %v: %d admitted, %d refused", tc.policy, ok, refused)
			}
			st := s.Stats()
			if st.Healthy || st.Outages != 1 || st.Fallbacks < 29 {
				t.Errorf("Stats during the outage: %+v; want unhealthy, 1 outage, >= 29 fallbacks", st)
			}
			time.Sleep(300 * time.Millisecond) // failed pings must not log again
			if n := h.warn.Load(); n != 1 {
				t.Errorf("logged %d warnings for one outage; want 1", n)
			}

			srv.Restart()
			waitFor(t, 3*time.Second, "the store to see Redis again", func() bool { return s.Stats().Healthy })
			before := s.Stats().Fallbacks
			for range 5 {
				if _, err := s.Reserve(ctx, "k2", lim, 0); err != nil {
					t.Fatal(err)
				}
			}
			if st := s.Stats(); st.Fallbacks != before || st.Outages != 1 {
				t.Errorf("after the restart: %+v; want no more fallbacks (%d), 1 outage", st, before)
			}
			if n := h.info.Load(); n != 1 {
				t.Errorf("logged %d recoveries; want 1", n)
			}
		})
	}
}

// TestLocalFallbackSplitsTheFleetRate: with two live Managers, each
// one's local bucket runs at half the fleet rate during an outage.
func TestLocalFallbackSplitsTheFleetRate(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv), open(t, srv)
	waitFor(t, 2*time.Second, "two live Managers", func() bool {
		return a.Stats().LiveManagers == 2 && b.Stats().LiveManagers == 2
	})
	srv.Kill()
	ctx := context.Background()
	lim := connmgr.Limit{Rate: 10, Burst: 10}
	// The first call finds Redis gone; from then on the local bucket
	// (5/s, burst 5) answers.
	_, _ = a.Reserve(ctx, "split", lim, 0)
	ok := 1
	var last connmgr.Reservation
	for range 20 {
		r, err := a.Reserve(ctx, "split", lim, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK {
			last = r
			break
		}
		ok++
	}
	if ok < 5 || ok > 6 || !near(last.RetryIn, 200*time.Millisecond, 30*time.Millisecond) {
		t.Errorf("local bucket with 2 live Managers: %d admitted, then RetryIn %v; want 5 (burst 10/2), then ~200ms (5/s)", ok, last.RetryIn)
	}
	if got := a.Stats().LiveManagers; got != 2 {
		t.Errorf("LiveManagers during the outage = %d; want the last count seen, 2", got)
	}
}

// TestSlowRedisNeverHolds: a server that stops answering (SIGSTOP) holds
// no call past the deadline, for any operation.
func TestSlowRedisNeverHolds(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	c := s.Cache("ns")
	ctx := context.Background()
	lim := connmgr.Limit{Rate: 100, Burst: 10}
	srv.Freeze()
	defer srv.Thaw()
	ops := map[string]func() error{
		"Reserve": func() error { _, err := s.Reserve(ctx, "k", lim, 0); return err },
		"Cancel":  func() error { return s.Cancel(ctx, "k", lim, connmgr.Reservation{OK: true, Token: 1 << 50}) },
		"Pause":   func() error { return s.Pause(ctx, "k", time.Now().Add(time.Second)) },
		"Publish": func() error {
			return s.Publish(ctx, connmgr.BreakerSignal{Endpoint: "e", State: connmgr.BreakerOpen, Until: time.Now().Add(time.Second)})
		},
		"AcquireProbe": func() error { _, err := s.AcquireProbe(ctx, "e", "u", time.Second, 1); return err },
		"CacheGet":     func() error { _, _, err := c.Get(ctx, "x"); return err },
		"CacheSet":     func() error { return c.Set(ctx, "x", []byte("v"), time.Minute) },
	}
	for name, op := range ops {
		start := time.Now()
		_ = op()
		// The deadline, and slack for a loaded machine running -race.
		if took := time.Since(start); took > DefaultTimeout+200*time.Millisecond {
			t.Errorf("%s against a frozen server took %v; want at most the deadline", name, took)
		}
	}
	if s.Stats().Healthy {
		t.Error("Stats().Healthy with a frozen server")
	}
}
