package statuspage

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
)

// balancedUpstreams lists the upstreams of an endpoint with upstreams, in
// config (or resolution) order: their health from Manager.Health, their
// traffic from Stats, joined with their breakers by authority. Breakers
// no upstream holds (a host called before a reload gave the endpoint its
// upstreams) follow as in upstreamsFor.
//
// An upstream is down while it is ejected, unhealthy or its breaker is
// open; degraded while its check is failing (degraded), its breaker is
// half-open or most of its recent calls failed; else up.
func balancedUpstreams(now time.Time, es connmgr.EndpointStats, eh connmgr.EndpointHealth) []upstreamView {
	stats := make(map[string]connmgr.UpstreamStats, len(es.Upstreams))
	for _, us := range es.Upstreams {
		stats[us.Upstream] = us
	}
	seen := map[string]bool{}
	out := make([]upstreamView, 0, len(eh.Upstreams))
	for _, uh := range eh.Upstreams {
		us := stats[uh.Upstream]
		auth := authority(uh.Upstream)
		seen[auth] = true
		name := uh.Upstream
		if uh.Host != "" {
			name += " (" + uh.Host + ")"
		}
		uv := upstreamView{Name: name, Status: "up", Breaker: "—", Calls: "—", ErrorRate: "—", NextProbe: "—",
			Health: uh.Status.String(), LastCheck: "never", Ejected: "no", Ejections: us.Ejections,
			InFlight: fmt.Sprint(us.InFlight), Latency: "—", LastError: uh.LastError}
		if !uh.LastCheck.IsZero() {
			uv.LastCheck = roundDuration(now.Sub(uh.LastCheck).Truncate(time.Millisecond)) + " ago"
		}
		if us.Latency > 0 {
			uv.Latency = roundDuration(us.Latency)
		}
		if uh.Ejected {
			uv.Ejected = "yes"
			if left := uh.EjectedUntil.Sub(now); left > 0 {
				uv.Ejected = "yes, for " + roundDuration(left)
			}
		}
		if b, ok := es.Breakers[auth]; ok {
			breakerColumns(&uv, b)
			if uv.LastError == "" {
				uv.LastError = b.LastError
			}
		}
		switch {
		case uh.Ejected || uh.Status == connmgr.HealthUnhealthy:
			uv.Status = "down"
		case uh.Status == connmgr.HealthDegraded && uv.Status == "up":
			uv.Status = "degraded"
		}
		out = append(out, uv)
	}
	var rest []upstreamView
	for _, uv := range upstreamsFor(es) {
		if !seen[uv.Name] {
			rest = append(rest, uv)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	return append(out, rest...)
}

// breakerColumns fills uv's breaker columns from b, and its status: down
// while b is open, degraded while half-open or when most recent calls
// failed.
func breakerColumns(uv *upstreamView, b connmgr.BreakerStats) {
	uv.Breaker, uv.Calls = b.State.String(), fmt.Sprint(b.Requests)
	if b.Requests > 0 {
		rate := float64(b.Failures) / float64(b.Requests)
		uv.ErrorRate = fmt.Sprintf("%.1f%%", 100*rate)
		if b.Requests >= 3 && rate >= 0.5 && uv.Status == "up" {
			uv.Status = "degraded"
		}
	}
	switch b.State {
	case connmgr.BreakerOpen:
		uv.Status = "down"
		uv.NextProbe = "in " + roundDuration(b.HalfOpenIn)
	case connmgr.BreakerHalfOpen:
		if uv.Status == "up" {
			uv.Status = "degraded"
		}
		uv.NextProbe = "probing"
	}
}

// authority drops the scheme of an upstream's key ("http://10.0.0.1:80"),
// which is how its breaker is named.
func authority(key string) string {
	if i := strings.Index(key, "://"); i >= 0 {
		return key[i+3:]
	}
	return key
}
