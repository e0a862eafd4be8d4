package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// lbMode is what one of the load-balancing scene's upstreams does now.
type lbMode int32

const (
	lbUp   lbMode = iota // 200 in 2ms
	lbDead               // every connection reset, health checks too
	lbSlow               // 200 in 40ms: 20x slower
)

// lbUpstream is one of the scene's five servers.
type lbUpstream struct {
	name string
	mode atomic.Int32
	hits atomic.Int64 // requests that were not health checks
	srv  *connmgrtest.Server
}

func newLBUpstream(name string) *lbUpstream {
	u := &lbUpstream{name: name}
	u.srv = connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		mode := lbMode(u.mode.Load())
		if r.URL.Path != "/health" {
			u.hits.Add(1)
		}
		switch mode {
		case lbDead:
			return connmgrtest.Step{Reset: true}
		case lbSlow:
			return connmgrtest.Step{Body: "ok", Delay: 40 * time.Millisecond}
		}
		return connmgrtest.Step{Body: "ok", Delay: 2 * time.Millisecond}
	})
	return u
}

// lbPhase is one stretch of the scene.
type lbPhase struct {
	title  string
	length time.Duration
	change func(ups []*lbUpstream)
}

// demoLBScene shows five upstreams behind one logical endpoint: one dies,
// another turns slow, both come back. Each phase prints where the calls
// went, what the client saw, and which upstreams were out and why.
func demoLBScene(ctx context.Context, out io.Writer) error {
	ups := make([]*lbUpstream, 5)
	urls := make([]connmgr.UpstreamConfig, 5)
	for i := range ups {
		ups[i] = newLBUpstream(fmt.Sprintf("up-%d", i+1))
		defer ups[i].srv.Close()
		urls[i] = connmgr.UpstreamConfig{URL: ups[i].srv.URL}
	}
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"payments": {
			Upstreams:        urls,
			Balancer:         connmgr.BalancerLeastRequest,
			Retry:            connmgr.RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
			HealthCheck:      connmgr.HealthCheckConfig{Path: "/health", Interval: 2 * time.Second, Timeout: 200 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 1},
			OutlierDetection: connmgr.OutlierConfig{BaseEjectionTime: time.Second, MaxEjectionTime: 3 * time.Second, MaxEjectionPercent: 20},
			CircuitBreaker:   connmgr.BreakerConfig{RecoveryTimeout: time.Second},
		},
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	fmt.Fprintln(out, "scene: load balancing over five upstreams (least_request, health checks every 2s, outlier ejection)")
	fmt.Fprintln(out, "  calls go to http://payments/...; each upstream answers in 2ms")
	phases := []lbPhase{
		{"all five up", 1500 * time.Millisecond, nil},
		{"up-2 dies (resets every connection)", 2500 * time.Millisecond, func(u []*lbUpstream) { u[1].mode.Store(int32(lbDead)) }},
		{"up-4 turns slow (40ms)", 2500 * time.Millisecond, func(u []*lbUpstream) { u[3].mode.Store(int32(lbSlow)) }},
		{"both are fine again", 3 * time.Second, func(u []*lbUpstream) {
			u[1].mode.Store(int32(lbUp))
			u[3].mode.Store(int32(lbUp))
		}},
	}
	for _, ph := range phases {
		if ctx.Err() != nil {
			return nil
		}
		if ph.change != nil {
			ph.change(ups)
		}
		before := make([]int64, len(ups))
		for i, u := range ups {
			before[i] = u.hits.Load()
		}
		ejectedBefore := lbEjections(m)
		calls, failed := lbTraffic(ctx, m, ph.length)
		var total int64
		shares := make([]int64, len(ups))
		for i, u := range ups {
			shares[i] = u.hits.Load() - before[i]
			total += shares[i]
		}
		fmt.Fprintf(out, "  %s\n", ph.title)
		var b strings.Builder
		for i, u := range ups {
			pct := 0.0
			if total > 0 {
				pct = 100 * float64(shares[i]) / float64(total)
			}
			fmt.Fprintf(&b, " %s %4.1f%%", u.name, pct)
		}
		errPct := 0.0
		if calls > 0 {
			errPct = 100 * float64(failed) / float64(calls)
		}
		fmt.Fprintf(out, "    attempts:%s\n", b.String())
		fmt.Fprintf(out, "    client: %d calls, %d failed (%.2f%%)\n", calls, failed, errPct)
		var ej []string
		for i, n := range lbEjections(m) {
			if d := n - ejectedBefore[i]; d > 0 {
				ej = append(ej, fmt.Sprintf("%s %d time(s)", ups[i].name, d))
			}
		}
		if len(ej) > 0 {
			fmt.Fprintf(out, "    ejected by outlier detection: %s\n", strings.Join(ej, ", "))
		}
		fmt.Fprintf(out, "    %s\n", lbOutNow(m, ups))
	}
	return nil
}

// lbTraffic sends calls from 8 workers for d and counts them.
func lbTraffic(ctx context.Context, m *connmgr.Manager, d time.Duration) (calls, failed int64) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	var nCalls, nFailed atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				resp, err := m.Get(ctx, "http://payments/v1/charge")
				if ctx.Err() != nil {
					if err == nil {
						_ = resp.Body.Close()
					}
					return // the phase ended mid-call: not counted
				}
				nCalls.Add(1)
				if err != nil {
					nFailed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode >= 500 {
					nFailed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nCalls.Load(), nFailed.Load()
}

// lbEjections returns each upstream's ejection count, in config order.
func lbEjections(m *connmgr.Manager) []uint64 {
	var out []uint64
	for _, u := range m.Stats().Endpoints["payments"].Upstreams {
		out = append(out, u.Ejections)
	}
	return out
}

// lbOutNow says which upstreams are out of the balancer now, and why.
func lbOutNow(m *connmgr.Manager, ups []*lbUpstream) string {
	h := m.Health().Endpoints["payments"]
	names := map[string]string{}
	for _, u := range ups {
		names[u.srv.URL] = u.name
	}
	var out []string
	for _, uh := range h.Upstreams {
		name := names[uh.Upstream]
		switch {
		case uh.Ejected:
			out = append(out, fmt.Sprintf("%s ejected (outlier) for %v more", name, time.Until(uh.EjectedUntil).Round(100*time.Millisecond)))
		case uh.Status == connmgr.HealthUnhealthy:
			out = append(out, fmt.Sprintf("%s unhealthy (%s)", name, uh.LastError))
		case uh.Status == connmgr.HealthDegraded:
			out = append(out, fmt.Sprintf("%s degraded (%s)", name, uh.LastError))
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("health: %s, all %d upstreams in the balancer", h.Status, h.Total)
	}
	return fmt.Sprintf("health: %s; %s", h.Status, strings.Join(out, "; "))
}
