package connmgr

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// windowSeconds is the span of the windowed statistics: the last minute.
const windowSeconds = 60

// latencySlots split the window for latency: six histograms of ten
// seconds each, so the percentiles cover the last 50 to 60 seconds.
const (
	latencySlots   = 6
	latencySlotSec = windowSeconds / latencySlots
)

// refusalLogEvery is the shortest interval between two refusal log
// lines for one endpoint and reason; the refusals in between are counted
// in the next line's "suppressed".
const refusalLogEvery = 10 * time.Second

// WindowStats are an endpoint's numbers over the last minute (fewer
// seconds right after the Manager started), for dashboards and the
// status page. Counts are approximate under heavy concurrency at the
// turn of a second (a few increments may be lost), never inflated.
type WindowStats struct {
	// Seconds is the time the numbers cover, at most 60.
	Seconds int `json:"seconds"`
	// Requests counts calls finished in the window; Failures those that
	// ended in an error or a status of 500 or more or 429; Refused the
	// calls or attempts refused locally; Retries the retries decided.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	Refused  uint64 `json:"refused"`
	Retries  uint64 `json:"retries"`
	// RequestRate is calls per second; ErrorRate is Failures/Requests
	// (0 to 1, 0 without calls).
	RequestRate float64 `json:"request_rate"`
	ErrorRate   float64 `json:"error_rate"`
	// P50, P95 and P99 are call latencies (to the response headers) over
	// the last 50 to 60 seconds, within about 12%; in JSON nanoseconds.
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Upstreams has the attempts sent to each upstream (by authority) in
	// the window, and how many failed.
	Upstreams map[string]UpstreamWindowStats `json:"upstreams,omitempty"`
}

// UpstreamWindowStats are one upstream's attempts over the last minute.
type UpstreamWindowStats struct {
	Requests    uint64  `json:"requests"`
	Failures    uint64  `json:"failures"`
	RequestRate float64 `json:"request_rate"`
	ErrorRate   float64 `json:"error_rate"`
}

// monitor is the Manager's own observer, always registered: it keeps the
// windowed statistics of Stats (per-second rings of counters and six
// ten-second latency histograms per endpoint, fixed memory, atomics, no
// allocation per call) and logs local refusals, at most one line per
// endpoint and reason every 10 seconds.
type monitor struct {
	m         *Manager
	started   time.Time
	logging   bool
	endpoints sync.Map // endpoint key → *endpointWindow
}

func newMonitor(m *Manager) *monitor {
	return &monitor{m: m, started: m.now(), logging: m.opts.logger != nil}
}

// StartCall returns the endpoint's window: it is the CallObserver of
// every call to that endpoint (the monitor keeps no per-call state).
func (mo *monitor) StartCall(ev *CallEvent) CallObserver {
	return mo.endpoint(ev.Endpoint)
}

func (mo *monitor) endpoint(key string) *endpointWindow {
	if v, ok := mo.endpoints.Load(key); ok {
		return v.(*endpointWindow)
	}
	v, _ := mo.endpoints.LoadOrStore(key, &endpointWindow{mo: mo, key: key})
	return v.(*endpointWindow)
}

// endpointWindow is one endpoint's windowed counters.
type endpointWindow struct {
	mo        *monitor
	key       string
	calls     rateRing
	latency   [latencySlots]latencySlot
	upstreams sync.Map // authority → *upstreamWindow
	refusals  sync.Map // Refusal → *refusalLog
}

type latencySlot struct {
	start atomic.Int64 // unix second the slot began, a multiple of latencySlotSec
	h     histogram
}

type refusalLog struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Uint64
}

// upstreamWindow counts one upstream's attempts; it is the
// AttemptObserver of every attempt sent to it.
type upstreamWindow struct {
	ring rateRing
	mo   *monitor
}

func (w *endpointWindow) Refused(ev RefusalEvent) {
	now := w.mo.m.now()
	w.calls.slot(now).refused.Add(1)
	if w.mo.logging {
		w.logRefusal(ev, now)
	}
}

// logRefusal logs a refusal at Warn, at most once per refusalLogEvery for
// the endpoint and reason.
func (w *endpointWindow) logRefusal(ev RefusalEvent, now time.Time) {
	v, ok := w.refusals.Load(ev.Reason)
	if !ok {
		v, _ = w.refusals.LoadOrStore(ev.Reason, &refusalLog{})
	}
	rl := v.(*refusalLog)
	last := rl.last.Load()
	if last != 0 && now.UnixNano()-last < int64(refusalLogEvery) || !rl.last.CompareAndSwap(last, now.UnixNano()) {
		rl.suppressed.Add(1)
		return
	}
	lg := w.mo.m.logger
	if !lg.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{
		slog.String("endpoint", ev.Endpoint),
		slog.String("reason", string(ev.Reason)),
		slog.Int("attempt", ev.Attempt),
		slog.Uint64("suppressed", rl.suppressed.Swap(0)),
	}
	if ev.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", ev.Upstream))
	}
	lg.LogAttrs(context.Background(), slog.LevelWarn, "connmgr: call refused", attrs...)
}

func (w *endpointWindow) AttemptStart(ev *AttemptEvent) AttemptObserver {
	if ev.Upstream == "" {
		return nil
	}
	v, ok := w.upstreams.Load(ev.Upstream)
	if !ok {
		v, _ = w.upstreams.LoadOrStore(ev.Upstream, &upstreamWindow{mo: w.mo})
	}
	return v.(*upstreamWindow)
}

func (w *endpointWindow) Retry(RetryEvent) {
	w.calls.slot(w.mo.m.now()).retries.Add(1)
}

func (w *endpointWindow) End(ev CallEndEvent) {
	now := w.mo.m.now()
	s := w.calls.slot(now)
	s.requests.Add(1)
	status := 0
	if ev.Response != nil {
		status = ev.Response.StatusCode
	}
	if ev.Err != nil || status >= 500 || status == 429 {
		s.failures.Add(1)
	}
	w.latencySlot(now).observe(ev.Duration)
}

func (w *endpointWindow) latencySlot(now time.Time) *histogram {
	start := now.Unix() / latencySlotSec * latencySlotSec
	ls := &w.latency[(start/latencySlotSec)%latencySlots]
	if old := ls.start.Load(); old != start && ls.start.CompareAndSwap(old, start) {
		for i := range ls.h.counts {
			ls.h.counts[i].Store(0)
		}
	}
	return &ls.h
}

func (u *upstreamWindow) Headers(HeadersEvent) {}

func (u *upstreamWindow) End(ev AttemptEndEvent) {
	if ev.Canceled {
		return
	}
	at := ev.At
	if at.IsZero() {
		at = u.mo.m.now()
	}
	s := u.ring.slot(at)
	s.requests.Add(1)
	if ev.Failed {
		s.failures.Add(1)
	}
}

// rateRing is a ring of per-second counters over the last minute.
type rateRing struct {
	slots [windowSeconds]rateSlot
}

type rateSlot struct {
	sec                                  atomic.Int64 // the unix second counted here
	requests, failures, refused, retries atomic.Uint64
}

// slot returns the slot of now's second, cleared if it held an older one.
func (r *rateRing) slot(now time.Time) *rateSlot {
	sec := now.Unix()
	s := &r.slots[sec%windowSeconds]
	if old := s.sec.Load(); old != sec && s.sec.CompareAndSwap(old, sec) {
		s.requests.Store(0)
		s.failures.Store(0)
		s.refused.Store(0)
		s.retries.Store(0)
	}
	return s
}

// sum adds up the slots of the last windowSeconds seconds before now.
func (r *rateRing) sum(now time.Time) (requests, failures, refused, retries uint64) {
	sec := now.Unix()
	for i := range r.slots {
		s := &r.slots[i]
		if t := s.sec.Load(); t > sec-windowSeconds && t <= sec {
			requests += s.requests.Load()
			failures += s.failures.Load()
			refused += s.refused.Load()
			retries += s.retries.Load()
		}
	}
	return
}

// window returns the endpoint's windowed numbers, or nil before its
// first call.
func (mo *monitor) window(key string, now time.Time) *WindowStats {
	v, ok := mo.endpoints.Load(key)
	if !ok {
		return nil
	}
	w := v.(*endpointWindow)
	secs := windowSeconds
	if up := int(now.Sub(mo.started) / time.Second); up < secs {
		secs = max(up, 1)
	}
	ws := &WindowStats{Seconds: secs}
	ws.Requests, ws.Failures, ws.Refused, ws.Retries = w.calls.sum(now)
	ws.RequestRate, ws.ErrorRate = rates(ws.Requests, ws.Failures, secs)
	var counts [histBuckets]uint64
	oldest := now.Unix()/latencySlotSec*latencySlotSec - (latencySlots-1)*latencySlotSec
	for i := range w.latency {
		ls := &w.latency[i]
		if ls.start.Load() >= oldest {
			for j := range counts {
				counts[j] += ls.h.counts[j].Load()
			}
		}
	}
	ws.P50, ws.P95, ws.P99 = quantilesOf(&counts)
	w.upstreams.Range(func(k, v any) bool {
		req, fail, _, _ := v.(*upstreamWindow).ring.sum(now)
		if req == 0 {
			return true
		}
		if ws.Upstreams == nil {
			ws.Upstreams = map[string]UpstreamWindowStats{}
		}
		us := UpstreamWindowStats{Requests: req, Failures: fail}
		us.RequestRate, us.ErrorRate = rates(req, fail, secs)
		ws.Upstreams[k.(string)] = us
		return true
	})
	return ws
}

func rates(requests, failures uint64, secs int) (perSecond, errorRate float64) {
	perSecond = float64(requests) / float64(secs)
	if requests > 0 {
		errorRate = float64(failures) / float64(requests)
	}
	return
}

// quantilesOf returns p50, p95 and p99 of a histogram's counts.
func quantilesOf(counts *[histBuckets]uint64) (p50, p95, p99 time.Duration) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, 0, 0
	}
	var out [3]time.Duration
	for qi, q := range [3]float64{0.50, 0.95, 0.99} {
		rank := max(uint64(q*float64(total)+0.5), 1)
		var cum uint64
		for i, c := range counts {
			cum += c
			if cum >= rank {
				out[qi] = histUpper(i)
				break
			}
		}
	}
	return out[0], out[1], out[2]
}

// fillWindows adds the windowed numbers and the start time to s.
func (m *Manager) fillWindows(s *Stats, now time.Time) {
	mo := m.opts.telemetry.monitor
	if mo == nil {
		return
	}
	s.Started = mo.started
	for key, es := range s.Endpoints {
		if w := mo.window(key, now); w != nil {
			es.Window = w
			s.Endpoints[key] = es
		}
	}
}
