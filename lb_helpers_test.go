package connmgr

import (
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"
)

// fakeClock is a clock tests move by hand; AfterFunc callbacks run in
// Advance, in deadline order.
type fakeClock struct {
	mu     sync.Mutex // guards now and timers
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time on by d, running the timers that fall due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var due *fakeTimer
		for i, t := range c.timers {
			if t.stopped {
				continue
			}
			if !t.at.After(end) {
				due = t
				c.timers = append(c.timers[:i:i], c.timers[i+1:]...)
			}
			break
		}
		if due == nil {
			break
		}
		due.stopped = true
		if due.at.After(c.now) {
			c.now = due.at
		}
		c.mu.Unlock()
		due.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// testUpstreams makes n upstreams http://10.0.0.i:80 with weight 1.
func testUpstreams(n int) []*Upstream {
	ups := make([]*Upstream, n)
	for i := range ups {
		ups[i] = newUpstream(&url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250)}, 1, "")
	}
	return ups
}

// testSet builds an upstream set over n upstreams with the named
// balancer and a fake clock.
func testSet(n int, balancer string, c EndpointConfig, clk *fakeClock) *upstreamSet {
	c.Balancer = balancer
	c = inherit(c, builtinDefaults())
	s := newUpstreamSet("svc", c, nil, clk, nil)
	specs := make([]memberSpec, n)
	for i := range specs {
		specs[i] = memberSpec{url: &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250)}, weight: 1}
	}
	s.setMembers(specs, nil)
	return s
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
