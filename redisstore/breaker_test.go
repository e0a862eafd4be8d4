package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// signals collects what a subscription delivers.
type signals struct {
	mu  sync.Mutex
	got []connmgr.BreakerSignal
}

func (s *signals) add(sig connmgr.BreakerSignal) {
	s.mu.Lock()
	s.got = append(s.got, sig)
	s.mu.Unlock()
}

func (s *signals) find(state connmgr.BreakerState, endpoint string) (connmgr.BreakerSignal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.got {
		if g.State == state && g.Endpoint == endpoint {
			return g, true
		}
	}
	return connmgr.BreakerSignal{}, false
}

func TestBreakerSignalReachesOthersAndLateComers(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv), open(t, srv)
	var onB signals
	stopB := b.Subscribe(onB.add)
	defer stopB()
	time.Sleep(50 * time.Millisecond) // let B's SUBSCRIBE reach the server

	until := time.Now().Add(2 * time.Second).Truncate(time.Millisecond)
	opened := connmgr.BreakerSignal{Endpoint: "api", Upstream: "https://u1", State: connmgr.BreakerOpen, Until: until, Origin: "A"}
	sent := time.Now()
	if err := a.Publish(context.Background(), opened); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 100*time.Millisecond, "B to learn A's breaker opened", func() bool { _, ok := onB.find(connmgr.BreakerOpen, "api"); return ok })
	t.Logf("B learned in %v", time.Since(sent))
	if got, _ := onB.find(connmgr.BreakerOpen, "api"); !got.Until.Equal(until) || got.Origin != "A" || got.Upstream != "https://u1" {
		t.Errorf("B got %+v; want %+v", got, opened)
	}

	// A Manager that subscribes later learns from the key.
	c := open(t, srv)
	var onC signals
	stopC := c.Subscribe(onC.add)
	defer stopC()
	waitFor(t, time.Second, "a late subscriber to learn the breaker is open", func() bool { _, ok := onC.find(connmgr.BreakerOpen, "api"); return ok })

	// Closed: subscribers hear it, and a later subscriber learns nothing.
	if err := a.Publish(context.Background(), connmgr.BreakerSignal{Endpoint: "api", Upstream: "https://u1", State: connmgr.BreakerClosed, Origin: "A"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 100*time.Millisecond, "B to learn the breaker closed", func() bool { _, ok := onB.find(connmgr.BreakerClosed, "api"); return ok })
	d := open(t, srv)
	var onD signals
	stopD := d.Subscribe(onD.add)
	time.Sleep(200 * time.Millisecond)
	stopD()
	if _, ok := onD.find(connmgr.BreakerOpen, "api"); ok {
		t.Error("a subscriber after the close learned the breaker is open")
	}
}

// TestBreakerSignalAfterReconnect: a subscriber whose connection dropped
// while a breaker opened learns it when it is back.
func TestBreakerSignalAfterReconnect(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv)
	var onB signals
	stop := b.Subscribe(onB.add)
	defer stop()
	time.Sleep(50 * time.Millisecond)
	srv.Kill()
	srv.Restart()
	// Published while B is still reconnecting.
	a := open(t, srv)
	sig := connmgr.BreakerSignal{Endpoint: "late", State: connmgr.BreakerOpen, Until: time.Now().Add(5 * time.Second), Origin: "A"}
	if err := a.Publish(context.Background(), sig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "B to learn the open breaker after its reconnect", func() bool { _, ok := onB.find(connmgr.BreakerOpen, "late"); return ok })
}

func TestSubscriberPanicIsContained(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv)
	var calls atomic.Int64
	stop := a.Subscribe(func(connmgr.BreakerSignal) { calls.Add(1); panic("listener bug") })
	defer stop()
	time.Sleep(50 * time.Millisecond)
	for range 2 {
		if err := a.Publish(context.Background(), connmgr.BreakerSignal{Endpoint: "p", State: connmgr.BreakerHalfOpen}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Second, "both signals delivered despite the panics", func() bool { return calls.Load() == 2 })
}

func TestProbeSlotsAreFleetWide(t *testing.T) {
	srv := redistest.Start(t)
	stores := []*Store{open(t, srv), open(t, srv), open(t, srv)}
	const max = 2
	window := 300 * time.Millisecond
	granted := func() int {
		var n atomic.Int64
		var wg sync.WaitGroup
		for _, s := range stores {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := s.AcquireProbe(context.Background(), "api", "https://u1", window, max)
					if err != nil {
						t.Error(err)
					}
					if ok {
						n.Add(1)
					}
				}()
			}
		}
		wg.Wait()
		return int(n.Load())
	}
	if got := granted(); got != max {
		t.Fatalf("12 probe attempts from 3 stores granted %d slots; want %d for the fleet", got, max)
	}
	time.Sleep(window + 50*time.Millisecond)
	if got := granted(); got != max {
		t.Fatalf("next window: granted %d; want %d", got, max)
	}
}
