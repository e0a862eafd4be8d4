// Package statuspage serves a read-only status page for a connmgr
// Manager, for an operator to mount on an admin port:
//
//	mux.Handle("/connmgr", statuspage.Handler(m))
//
// The page shows, per endpoint and per upstream, the request rate and
// error rate over the last minute, latency percentiles over the last
// minute, status codes, the circuit breaker with the time to its next
// probe and its last error, the rate limiter, the concurrency cap, the
// config reloads, the uptime and the running config with its secrets
// redacted. For an endpoint with upstreams it shows each upstream's
// health (Manager.Health: the active check's status, last check and last
// error), outlier ejections and whether it is ejected now, the attempts
// in flight and the EWMA latency, and above all endpoints the overall
// health. With a cache plugin (package cache), it shows the cache's hit
// ratio and numbers (Manager.CacheStats: hits, misses, validations,
// stale served, coalesced, bytes and entries held, evictions) for the
// whole Manager: a cache does not count by endpoint. The same data is JSON when the request asks for it (an
// Accept header naming application/json, or ?format=json).
//
// The HTML page is self-contained: no script, no external asset, one
// stylesheet allowed by its hash in a strict Content-Security-Policy; it
// refreshes itself every few seconds with a meta refresh. Nothing on it
// is secret: it is built from Manager.Stats and Manager.RunningConfig,
// which redact, and Manager.Health.
package statuspage

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
)

// RefreshSeconds is how often the HTML page reloads itself.
const RefreshSeconds = 5

var (
	//go:embed style.css
	styleCSS string
	//go:embed page.html
	pageHTML string

	pageTemplate = template.Must(template.New("page").Parse(pageHTML))
	// contentSecurityPolicy allows nothing but the page's own stylesheet,
	// by hash.
	contentSecurityPolicy = func() string {
		sum := sha256.Sum256([]byte(styleCSS))
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	}()
)

// Page is what the JSON form serves.
type Page struct {
	Generated time.Time     `json:"generated"`
	Uptime    time.Duration `json:"uptime_ns"`
	// Stats is Manager.Stats: EndpointStats.Window has the last minute.
	Stats connmgr.Stats `json:"stats"`
	// Health is Manager.Health: every load-balanced endpoint's upstreams
	// with their status, last check, last error and ejection, and the
	// overall status.
	Health connmgr.HealthReport `json:"health"`
	// Config is Manager.RunningConfig, secrets redacted, in the same
	// shape as a config file (durations as strings such as "10s").
	Config json.RawMessage `json:"config"`
	// Caches has the numbers of the Manager's cache plugins
	// (Manager.CacheStats) and their hit ratios, by plugin name.
	Caches map[string]CacheSection `json:"caches,omitempty"`
}

// Handler returns the status page of m. It answers GET and HEAD only.
func Handler(m *connmgr.Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Vary", "Accept")
		now := time.Now()
		stats := m.Stats()
		health := m.Health()
		cfg := m.RunningConfig()
		caches := m.CacheStats()
		if wantsJSON(r) {
			serveJSON(w, now, stats, health, cfg, caches)
			return
		}
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Type", "text/html; charset=utf-8")
		v := buildView(now, stats, health, cfg)
		v.Caches = cacheViews(caches)
		if err := pageTemplate.Execute(w, v); err != nil {
			// Headers are out: all that is left is to stop writing.
			return
		}
	})
}

func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func serveJSON(w http.ResponseWriter, now time.Time, s connmgr.Stats, health connmgr.HealthReport, cfg connmgr.Config, caches map[string]connmgr.CacheStats) {
	raw, err := connmgr.MarshalConfig(cfg, "json")
	if err != nil {
		raw = []byte("null")
	}
	p := Page{Generated: now.UTC(), Stats: s, Health: health, Config: json.RawMessage(raw), Caches: cacheSections(caches)}
	if !s.Started.IsZero() {
		p.Uptime = now.Sub(s.Started)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(p)
}

// view is what the HTML template shows: everything already formatted.
type view struct {
	Refresh   int
	CSS       template.CSS
	Generated string
	Started   string
	Uptime    string
	InFlight  int64
	Reload    connmgr.ReloadStats
	LastTried string
	// Overall is the Manager's health ("" when no endpoint has upstreams);
	// Health lists the load-balanced endpoints.
	Overall   string
	Health    []healthView
	Endpoints []endpointView
	Config    string
	// Caches are the Manager's cache plugins (statuspage/cache.go).
	Caches []cacheView
}

type endpointView struct {
	Key, Breaker                   string
	WindowSeconds                  int
	Rate, ErrorRate, P50, P95, P99 string
	ErrorRateHigh                  bool
	Refused, Retries               uint64
	Requests, Failures             uint64
	InFlight                       int64
	StatusCodes                    string
	RateLimit, Concurrency         string
	Extra                          []nameValue
	// Health is the endpoint's health ("" without upstreams).
	Health    string
	Upstreams []upstreamView
	// Balanced is set when the endpoint has upstreams: its table has
	// the health, ejection, in-flight and latency columns.
	Balanced bool
}

// healthView is one load-balanced endpoint's line in the overall view.
type healthView struct {
	Key, Status, Usable, Discovery string
	Panic                          bool
}

type nameValue struct{ Name, Value string }

type upstreamView struct {
	Name, Status, Breaker, Calls, ErrorRate, NextProbe, LastError string
	// The load-balancing columns (endpoints with upstreams).
	Health, LastCheck, Ejected, InFlight, Latency string
	Ejections                                     uint64
}

func buildView(now time.Time, s connmgr.Stats, h connmgr.HealthReport, cfg connmgr.Config) view {
	v := view{
		Refresh:   RefreshSeconds,
		CSS:       template.CSS(styleCSS),
		Generated: now.UTC().Format(time.RFC3339),
		Started:   s.Started.UTC().Format(time.RFC3339),
		Uptime:    now.Sub(s.Started).Round(time.Second).String(),
		InFlight:  s.InFlight,
		Reload:    s.Reload,
		LastTried: "never",
	}
	if !s.Reload.LastAttempt.IsZero() {
		v.LastTried = s.Reload.LastAttempt.UTC().Format(time.RFC3339)
	}
	keys := make([]string, 0, len(s.Endpoints))
	for k := range s.Endpoints {
		keys = append(keys, k)
	}
	for k := range h.Endpoints { // a load-balanced endpoint before its first call
		if _, ok := s.Endpoints[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { // "default" last
		if (keys[i] == "default") != (keys[j] == "default") {
			return keys[j] == "default"
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		eh, balanced := h.Endpoints[k]
		ev := endpointFor(k, s.Endpoints[k])
		if balanced {
			ev.Health, ev.Balanced = eh.Status.String(), true
			ev.Upstreams = balancedUpstreams(now, s.Endpoints[k], eh)
		}
		v.Endpoints = append(v.Endpoints, ev)
	}
	if len(h.Endpoints) > 0 {
		v.Overall = h.Overall.String()
		hk := make([]string, 0, len(h.Endpoints))
		for k := range h.Endpoints {
			hk = append(hk, k)
		}
		sort.Strings(hk)
		for _, k := range hk {
			eh := h.Endpoints[k]
			v.Health = append(v.Health, healthView{Key: k, Status: eh.Status.String(),
				Usable: fmt.Sprintf("%d of %d", eh.Usable, eh.Total), Discovery: eh.Discovery, Panic: eh.Panic})
		}
	}
	if b, err := connmgr.MarshalConfig(cfg, "yaml"); err == nil {
		v.Config = string(b)
	}
	return v
}

func endpointFor(key string, es connmgr.EndpointStats) endpointView {
	ev := endpointView{
		Key: key, Requests: es.Requests, Failures: es.Failures, InFlight: es.InFlight, Retries: es.Retries,
		Rate: "0.00", ErrorRate: "0.0%", P50: "—", P95: "—", P99: "—", WindowSeconds: 60,
	}
	if es.Breaker != nil {
		ev.Breaker = es.Breaker.State.String()
	}
	w := es.Window
	if w != nil {
		ev.WindowSeconds = w.Seconds
		ev.Rate = fmt.Sprintf("%.2f", w.RequestRate)
		ev.ErrorRate = fmt.Sprintf("%.1f%%", 100*w.ErrorRate)
		ev.ErrorRateHigh = w.ErrorRate >= 0.05 && w.Requests > 0
		if w.P50 > 0 {
			ev.P50, ev.P95, ev.P99 = roundDuration(w.P50), roundDuration(w.P95), roundDuration(w.P99)
		}
	}
	codes := make([]int, 0, len(es.StatusCodes))
	for c := range es.StatusCodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var sc []string
	for _, c := range codes {
		sc = append(sc, fmt.Sprintf("%d×%d", c, es.StatusCodes[c]))
	}
	ev.StatusCodes = strings.Join(sc, " ")
	if rl := es.RateLimit; rl != nil {
		ev.RateLimit = fmt.Sprintf("%.4g of %.4g per %v (burst %d); %d waited, %d refused",
			rl.CurrentRate, rl.Rate, rl.Per, rl.Burst, rl.Waited, rl.Rejected)
		if rl.PausedFor > 0 {
			ev.RateLimit += fmt.Sprintf("; paused for %v", roundDuration(rl.PausedFor))
		}
	}
	if c := es.Concurrency; c != nil {
		ev.Concurrency = fmt.Sprintf("%d of %d in use, %d queued (max %d), %d refused", c.InUse, c.Max, c.Queued, c.MaxQueue, c.Rejected)
	}
	if es.RetryBudgetExhausted > 0 {
		ev.Extra = append(ev.Extra, nameValue{"retries refused by the budget", fmt.Sprint(es.RetryBudgetExhausted)})
	}
	if es.Fallbacks > 0 {
		ev.Extra = append(ev.Extra, nameValue{"calls sent to the fallback", fmt.Sprint(es.Fallbacks)})
	}
	if es.HookPanics > 0 {
		ev.Extra = append(ev.Extra, nameValue{"hook panics", fmt.Sprint(es.HookPanics)})
	}
	ev.Upstreams = upstreamsFor(es)
	return ev
}

// upstreamsFor lists the upstreams of the endpoint's breakers, with the
// calls and failures in each breaker's rolling window. An upstream is
// down while its breaker is open, degraded while it is half-open or most
// of the calls in its window failed, else up.
func upstreamsFor(es connmgr.EndpointStats) []upstreamView {
	out := make([]upstreamView, 0, len(es.Breakers))
	for n, b := range es.Breakers {
		uv := upstreamView{Name: n, Status: "up", ErrorRate: "—", NextProbe: "—", LastError: b.LastError}
		breakerColumns(&uv, b)
		out = append(out, uv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond).String()
	}
	return d.String()
}
