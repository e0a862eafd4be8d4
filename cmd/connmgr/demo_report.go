package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/connmgr/connmgr"
)

// tally counts what the demo saw of one upstream, over an interval or
// the whole run.
type tally struct {
	calls     int // calls that ended, except those cut short by the demo stopping
	ok        int // answered 2xx or 3xx by the upstream
	failed    int // ended in an error or a 4xx/5xx the caller sees
	fallbacks int // answered by the fallback error hook

	retries         int // attempts after the first
	failedAttempts  int // attempts the error hooks saw
	timeouts        int // attempts that hit the per-try timeout
	resets          int // attempts whose connection the upstream dropped
	retryAfterWaits int // retries that waited for the server's Retry-After
}

// meter is an upstream's tally for the current interval and the whole
// run, and the latencies of this interval's responses.
type meter struct {
	mu       sync.Mutex // guards the fields below
	interval tally
	total    tally
	lat      []time.Duration
}

// add applies f to the interval's and the run's tallies.
func (m *meter) add(f func(*tally)) {
	m.mu.Lock()
	f(&m.interval)
	f(&m.total)
	m.mu.Unlock()
}

func (m *meter) observe(d time.Duration) {
	m.mu.Lock()
	m.lat = append(m.lat, d)
	m.mu.Unlock()
}

// take returns the interval's tally and latencies and starts a new
// interval.
func (m *meter) take() (tally, []time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, lat := m.interval, m.lat
	m.interval, m.lat = tally{}, nil
	return t, lat
}

func (m *meter) totals() tally {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// quantile returns the q-quantile of sorted (nearest rank), or 0.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// console serializes the demo's output: tables, events and progress
// lines from several goroutines never interleave.
type console struct {
	mu    sync.Mutex // guards w and seen
	w     io.Writer
	start time.Time
	seen  map[string]bool // event kinds already reported
}

func newConsole(w io.Writer) *console {
	return &console{w: w, start: time.Now(), seen: map[string]bool{}}
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	fmt.Fprintf(c.w, format, args...)
	c.mu.Unlock()
}

// event prints a notable event the first time one of its kind happens.
func (c *console) event(kind, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[kind] {
		return
	}
	c.seen[kind] = true
	fmt.Fprintf(c.w, "  » %5.1fs  %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

// table writes rows of tab-separated cells as aligned columns, at once.
func (c *console) table(rows [][]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tw := tabwriter.NewWriter(c.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// intervalRows is the table printed each second: a header carrying the
// time, then one row per upstream for the calls that ended in the
// interval.
func intervalRows(label string, ups []*upstream) ([][]string, int) {
	rows := [][]string{{label, "calls", "ok", "failed", "retries", "fallbacks", "p50", "p99"}}
	calls := 0
	for _, u := range ups {
		t, lat := u.meter.take()
		slices.Sort(lat)
		calls += t.calls
		rows = append(rows, []string{
			"  " + u.name, itoa(t.calls), itoa(t.ok), itoa(t.failed), itoa(t.retries), itoa(t.fallbacks),
			fmtDur(quantile(lat, 0.50)), fmtDur(quantile(lat, 0.99)),
		})
	}
	return rows, calls
}

// summaryRows is the final table, from the Manager's Stats, with the
// fallbacks the hooks counted.
func summaryRows(ups []*upstream, st connmgr.Stats) [][]string {
	rows := [][]string{{"endpoint", "address", "calls", "ok", "failed", "retries", "refused", "fallbacks", "p50", "p95", "p99", "statuses"}}
	for _, u := range ups {
		es := st.Endpoints[u.srv.Addr()]
		rows = append(rows, []string{
			u.name, u.srv.Addr(),
			utoa(es.Requests), utoa(es.Successes), utoa(es.Failures), utoa(es.Retries), utoa(es.RetryBudgetExhausted),
			itoa(u.meter.totals().fallbacks),
			fmtDur(es.P50), fmtDur(es.P95), fmtDur(es.P99), fmtStatuses(es.StatusCodes),
		})
	}
	return rows
}

// explain says in a sentence what happened to one upstream, from the
// Manager's Stats and what the hooks and workers counted.
func explain(u *upstream, es connmgr.EndpointStats, maxAttempts int) string {
	t := u.meter.totals()
	attempts := es.Requests + es.Retries
	if attempts == 0 {
		return u.name + ": no calls were made"
	}
	if t.failedAttempts == 0 && t.failed == 0 {
		return fmt.Sprintf("%s: all %d calls succeeded on the first attempt; p99 %s.", u.name, es.Requests, fmtDur(es.P99))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s of %d attempts failed, %s of %d calls failed after retries",
		u.name, pct(t.failedAttempts, int(attempts)), attempts, pct(t.failed, t.calls), t.calls)
	if t.timeouts > 0 {
		fmt.Fprintf(&b, "; %s hit the per-try timeout", plural(t.timeouts, "attempt"))
	}
	if t.resets > 0 {
		fmt.Fprintf(&b, "; %s reset", plural(t.resets, "connection was", "connections were"))
		if received := uint64(u.srv.Count()); received > attempts {
			// net/http's Transport re-sends an idempotent request once
			// when a reused keep-alive connection dies before answering.
			fmt.Fprintf(&b, " (and net/http itself re-sent %s on reused connections, unseen by connmgr)",
				plural(int(received-attempts), "request"))
		}
	}
	if t.retryAfterWaits > 0 {
		fmt.Fprintf(&b, "; %s as Retry-After asked", plural(t.retryAfterWaits, "retry waited", "retries waited"))
	}
	if t.fallbacks > 0 {
		fmt.Fprintf(&b, "; %s answered by the fallback hook instead of failing", plural(t.fallbacks, "call was", "calls were"))
	}
	amp := float64(attempts) / float64(es.Requests)
	if es.RetryBudgetExhausted > 0 {
		fmt.Fprintf(&b, "; the retry budget refused %s, holding amplification to %.2fx (max_attempts alone allows %dx)",
			plural(int(es.RetryBudgetExhausted), "retry"), amp, maxAttempts)
	} else {
		fmt.Fprintf(&b, "; retries amplified the load %.2fx", amp)
	}
	b.WriteString(".")
	return b.String()
}

// maxAttempts resolves an endpoint's retry.max_attempts as connmgr does:
// the endpoint's, else the default's, else 3.
func maxAttempts(cfg connmgr.Config, key string) int {
	if n := cfg.Endpoints[key].Retry.MaxAttempts; n > 0 {
		return n
	}
	if n := cfg.Default.Retry.MaxAttempts; n > 0 {
		return n
	}
	return 3
}

// plural returns "1 call", "2 calls": n and the singular, or the plural,
// which is the singular with an s unless given.
func plural(n int, singular string, pluralForm ...string) string {
	if n == 1 {
		return "1 " + singular
	}
	if len(pluralForm) > 0 {
		return itoa(n) + " " + pluralForm[0]
	}
	if strings.HasSuffix(singular, "y") {
		return itoa(n) + " " + strings.TrimSuffix(singular, "y") + "ies"
	}
	return itoa(n) + " " + singular + "s"
}

func itoa(n int) string    { return fmt.Sprint(n) }
func utoa(n uint64) string { return fmt.Sprint(n) }
func pct(n, of int) string {
	if of == 0 || n == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// fmtDur prints a latency compactly: "-" for none, "3.2ms", "250ms", "1.02s".
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// fmtStatuses prints status counts in code order: "200:230 503:3".
func fmtStatuses(m map[int]uint64) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d:%d", c, m[c])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
