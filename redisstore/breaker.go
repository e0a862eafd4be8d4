package redisstore

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connmgr/connmgr"
)

// Breaker signals travel two ways. Publish sends each one on the channel
// PREFIX+"breaker" (every subscribed Manager learns at once) and files an
// open signal, with its open-until time, in the hash PREFIX+"breakers"
// (field endpoint+"|"+upstream; a closed signal removes the field). A
// Manager that subscribes late, or whose connection dropped, reads the
// hash whenever its subscription is (re)established and learns every
// breaker still open.

type wireSignal struct {
	Endpoint string `json:"e"`
	Upstream string `json:"u"`
	State    string `json:"s"`
	Until    int64  `json:"t,omitempty"` // Unix ms
	Origin   string `json:"o,omitempty"`
}

func toWire(s connmgr.BreakerSignal) wireSignal {
	w := wireSignal{Endpoint: s.Endpoint, Upstream: s.Upstream, State: s.State.String(), Origin: s.Origin}
	if !s.Until.IsZero() {
		w.Until = s.Until.UnixMilli()
	}
	return w
}

func (w wireSignal) signal() (connmgr.BreakerSignal, bool) {
	s := connmgr.BreakerSignal{Endpoint: w.Endpoint, Upstream: w.Upstream, Origin: w.Origin}
	switch w.State {
	case "open":
		s.State = connmgr.BreakerOpen
	case "half-open":
		s.State = connmgr.BreakerHalfOpen
	case "closed":
		s.State = connmgr.BreakerClosed
	default:
		return s, false
	}
	if w.Until != 0 {
		s.Until = time.UnixMilli(w.Until)
	}
	return s, true
}

func breakerField(endpoint, upstream string) string { return endpoint + "|" + upstream }

// Publish announces a local breaker's change to the fleet: one round trip
// (the channel message and the hash entry in one pipeline). The Manager
// should publish only its own breakers' changes, never a signal it
// received.
func (s *Store) Publish(ctx context.Context, sig connmgr.BreakerSignal) error {
	if err := s.available(); err != nil {
		return err
	}
	msg, err := json.Marshal(toWire(sig))
	if err != nil {
		return err
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	field := breakerField(sig.Endpoint, sig.Upstream)
	_, err = s.client.Pipelined(rctx, func(p redis.Pipeliner) error {
		switch sig.State {
		case connmgr.BreakerOpen:
			p.HSet(rctx, s.key("breakers"), field, msg)
			p.Expire(rctx, s.key("breakers"), 24*time.Hour)
		case connmgr.BreakerClosed:
			p.HDel(rctx, s.key("breakers"), field)
		}
		p.Publish(rctx, s.key("breaker"), msg)
		return nil
	})
	return s.result(ctx, err)
}

// Subscribe calls fn for every breaker signal published by any Manager
// sharing the prefix (a Manager drops its own by Origin), and, each time
// the subscription is (re)established, for every breaker still open. It
// runs one goroutine until stop is called; stop waits for it. fn must
// not block; a panic in fn is recovered and the signal dropped.
func (s *Store) Subscribe(fn func(connmgr.BreakerSignal)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ps := s.client.Subscribe(ctx, s.key("breaker"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.receive(ctx, ps, fn)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			_ = ps.Close()
			<-done
		})
	}
}

func (s *Store) receive(ctx context.Context, ps *redis.PubSub, fn func(connmgr.BreakerSignal)) {
	deliver := func(sig connmgr.BreakerSignal) {
		defer func() { _ = recover() }()
		fn(sig)
	}
	backoff := 50 * time.Millisecond
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// go-redis reconnects and subscribes again on the next call;
			// wait a little so an outage is not a busy loop.
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				for _, sig := range s.openBreakers(ctx) {
					deliver(sig)
				}
			}
		case *redis.Message:
			var w wireSignal
			if json.Unmarshal([]byte(m.Payload), &w) != nil {
				continue
			}
			if sig, ok := w.signal(); ok {
				deliver(sig)
			}
		}
	}
}

// openBreakers reads the breakers still open (Until in the future, by
// this host's clock) from the hash.
func (s *Store) openBreakers(parent context.Context) []connmgr.BreakerSignal {
	ctx, cancel := s.ctx(parent)
	defer cancel()
	all, err := s.client.HGetAll(ctx, s.key("breakers")).Result()
	if s.result(parent, err) != nil {
		return nil
	}
	now := s.now()
	var out []connmgr.BreakerSignal
	for _, v := range all {
		var w wireSignal
		if json.Unmarshal([]byte(v), &w) != nil {
			continue
		}
		if sig, ok := w.signal(); ok && sig.State == connmgr.BreakerOpen && sig.Until.After(now) {
			out = append(out, sig)
		}
	}
	return out
}

// probeScript takes one of ARGV[2] probe slots in a window of ARGV[1] ms
// that starts with the first probe.
var probeScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n <= tonumber(ARGV[2]) then return 1 end
return 0
`)

// AcquireProbe takes one of max half-open probe slots shared by the fleet
// for endpoint and upstream, in a window that starts with the fleet's
// first probe and lasts window (at least 1 ms). On an error the caller
// keeps to its local half-open rules.
func (s *Store) AcquireProbe(ctx context.Context, endpoint, upstream string, window time.Duration, max int) (bool, error) {
	if max < 1 {
		return false, nil
	}
	if err := s.available(); err != nil {
		return false, err
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	key := s.key("probe:{" + breakerField(endpoint, upstream) + "}")
	n, err := probeScript.Run(rctx, s.client, []string{key}, max64(window.Milliseconds(), 1), max).Int64()
	if err := s.result(ctx, err); err != nil {
		return false, err
	}
	return n == 1, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
