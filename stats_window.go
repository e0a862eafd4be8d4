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

// WindowStats are an endpoint's calls over the last minute (fewer
// seconds right after the Manager started), for dashboards and the
// status page. Calls refused before any attempt (open breaker, rate
// limit, cap) are not in it: they are in Failures and in the breaker,
// limiter and cap counters. Counts may miss a few increments under heavy
// concurrency at the turn of a second; they are never inflated.
type WindowStats struct {
	// Seconds is the time the numbers cover, at most 60.
	Seconds int `json:"seconds"`
	// Requests counts calls finished in the window; Failures those the
	// Manager counted as failed (an error, a 5xx, a status the retry
	// policy retries on).
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// RequestRate is calls per second; ErrorRate is Failures/Requests
	// (0 to 1, 0 without calls).
	RequestRate float64 `json:"request_rate"`
	ErrorRate   float64 `json:"error_rate"`
	// P50, P95 and P99 are call latencies (to the response headers) over
	// the last 50 to 60 seconds, within about 12%; in JSON nanoseconds.
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	P99 time.Duration `json:"p99_ns"`
}

// callWindow is an endpoint's last minute: per-second counters in a ring
// and six ten-second latency histograms, fixed memory (about 18 KB, made
// on the endpoint's first finished call), atomics, no allocation per call.
type callWindow struct {
	calls   rateRing
	latency [latencySlots]latencySlot
}

type latencySlot struct {
	start atomic.Int64 // unix second the slot began, a multiple of latencySlotSec
	h     histogram
}

// recordWindow counts a call finished in the unix second sec in the
// endpoint's window; idx is its latency's histogram bucket (histIndex).
func (s *endpointStats) recordWindow(sec int64, failed bool, idx int) {
	w := s.win.Load()
	if w == nil {
		w = &callWindow{}
		if !s.win.CompareAndSwap(nil, w) {
			w = s.win.Load()
		}
	}
	i := sec % windowSeconds // one division for both rings
	slot := w.calls.slot(sec, i)
	slot.requests.Add(1)
	if failed {
		slot.failures.Add(1)
	}
	w.latencySlot(sec, i).counts[idx].Add(1)
}

// latencySlot returns the histogram of the ten seconds holding sec, whose
// index in the minute's ring is i (sec % windowSeconds: the latency ring
// divides the same minute).
func (w *callWindow) latencySlot(sec, i int64) *histogram {
	start := sec - i%latencySlotSec
	ls := &w.latency[i/latencySlotSec]
	if old := ls.start.Load(); old != start && ls.start.CompareAndSwap(old, start) {
		for i := range ls.h.counts {
			ls.h.counts[i].Store(0)
		}
	}
	return &ls.h
}

// window returns the numbers of the last minute before now, or nil
// before the first finished call. started is when the Manager started.
func (s *endpointStats) window(now, started time.Time) *WindowStats {
	w := s.win.Load()
	if w == nil {
		return nil
	}
	secs := windowSeconds
	if up := int(now.Sub(started) / time.Second); up < secs {
		secs = max(up, 1)
	}
	ws := &WindowStats{Seconds: secs}
	ws.Requests, ws.Failures = w.calls.sum(now)
	ws.RequestRate = float64(ws.Requests) / float64(secs)
	if ws.Requests > 0 {
		ws.ErrorRate = float64(ws.Failures) / float64(ws.Requests)
	}
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
	return ws
}

// monitor is the Manager's refusal log, made when the logger takes
// Warn: the pipeline tells it of each local refusal (call.refusalSeen),
// and it logs at most one line per endpoint and reason every 10 seconds
// (the others are counted in the next line's "suppressed"). It is not an
// Observer: a call that is not refused pays nothing for it.
type monitor struct {
	m         *Manager
	endpoints sync.Map // endpoint key → *endpointMonitor
}

// refused logs a local refusal, at most one line per endpoint and
// reason every refusalLogEvery. The logger's handler is user code.
func (mo *monitor) refused(ev RefusalEvent) {
	defer mo.m.recovered("logger", ev.Endpoint, nil)
	mo.endpoint(ev.Endpoint).Refused(ev)
}

func (mo *monitor) endpoint(key string) *endpointMonitor {
	if v, ok := mo.endpoints.Load(key); ok {
		return v.(*endpointMonitor)
	}
	v, _ := mo.endpoints.LoadOrStore(key, &endpointMonitor{mo: mo})
	return v.(*endpointMonitor)
}

// endpointMonitor logs the refusals of one endpoint.
type endpointMonitor struct {
	mo       *monitor
	refusals sync.Map // Refusal → *refusalLog
}

type refusalLog struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Uint64
}

func (w *endpointMonitor) Refused(ev RefusalEvent) {
	now := ev.At
	if now.IsZero() {
		now = w.mo.m.now()
	}
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
	attrs := []slog.Attr{
		slog.String("endpoint", ev.Endpoint),
		slog.String("reason", string(ev.Reason)),
		slog.Int("attempt", ev.Attempt),
		slog.Uint64("suppressed", rl.suppressed.Swap(0)),
	}
	if ev.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", ev.Upstream))
	}
	w.mo.m.logger.LogAttrs(context.Background(), slog.LevelWarn, "connmgr: call refused", attrs...)
}

// rateRing is a ring of per-second counters over the last minute.
type rateRing struct {
	slots [windowSeconds]rateSlot
}

type rateSlot struct {
	sec                atomic.Int64 // the unix second counted here
	requests, failures atomic.Uint64
}

// slot returns the slot of the unix second sec, at i = sec %
// windowSeconds, cleared if it held an older one.
func (r *rateRing) slot(sec, i int64) *rateSlot {
	s := &r.slots[i]
	if old := s.sec.Load(); old != sec && s.sec.CompareAndSwap(old, sec) {
		s.requests.Store(0)
		s.failures.Store(0)
	}
	return s
}

// sum adds up the slots of the last windowSeconds seconds before now.
func (r *rateRing) sum(now time.Time) (requests, failures uint64) {
	sec := now.Unix()
	for i := range r.slots {
		s := &r.slots[i]
		if t := s.sec.Load(); t > sec-windowSeconds && t <= sec {
			requests += s.requests.Load()
			failures += s.failures.Load()
		}
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
func (m *Manager) fillWindows(s *Stats, t *endpointTable, now time.Time) {
	started := m.opts.telemetry.started
	s.Started = started
	for key, es := range s.Endpoints {
		ep := t.def
		if key != defaultKey {
			ep = t.byKey[key]
		}
		if ep == nil {
			continue
		}
		if w := ep.stats.window(now, started); w != nil {
			es.Window = w
			s.Endpoints[key] = es
		}
	}
}
