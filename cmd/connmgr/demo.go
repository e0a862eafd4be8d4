package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/connmgr/connmgr"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	duration time.Duration
	workers  int
	seed     uint64
	verbose  bool
	config   string // a config file to run instead of the built-in policy
	status   string // serve the status page on this address (demo_status.go)
}

// drainTimeout bounds how long the demo waits for calls in flight once
// it stops sending new ones.
const drainTimeout = 5 * time.Second

// callsPerWorker is the rate each worker sends calls at, per second.
const callsPerWorker = 25

const demoUsage = `Usage: connmgr demo [flags]

Starts five local upstreams that misbehave in different ways (503s,
answers slower than the per-try timeout, 429 with Retry-After, reset
connections), sends them traffic through one connmgr.Manager, and prints
what happens each second: calls, retries, fallbacks, latency. It ends with
the Manager's Stats and what they mean, then four short scenes: a circuit
breaker opening and recovering, a rate limiter waiting and rejecting,
five upstreams behind one logical endpoint while one dies and another
turns slow, and an HTTP cache (hits, revalidations, stale answers while
the upstream is down).
Ctrl-C stops it early, cleanly.

The upstreams' faults depend only on --seed, so a seed replays the same
faults; the timing of the calls still varies.

--config FILE runs your own policy (a connmgr config file) against the
upstreams instead of the demo's. Name endpoints after the upstreams
(healthy, flaky, slow, limited, resetting) to give one its own settings;
the others get your default block. Keys that name no upstream are
checked but match nothing.

Flags:
`

const demoExample = `
Example:

	go run ./cmd/connmgr demo --duration 30s --workers 8 --seed 7
	connmgr config sample > policy.yaml   # edit: add endpoints "flaky", "slow", ...
	go run ./cmd/connmgr demo --config policy.yaml
`

// parseDemoFlags parses the demo's flags. When it returns ok false, the
// demo should exit with code: 0 after --help, 2 for a usage error.
func parseDemoFlags(args []string, stdout, stderr io.Writer) (opts demoOptions, code int, ok bool) {
	fs := flag.NewFlagSet("connmgr demo", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), demoUsage)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), demoExample)
	}
	fs.DurationVar(&opts.duration, "duration", 12*time.Second, "how long to send traffic")
	fs.IntVar(&opts.workers, "workers", 4, "goroutines sending calls, each about "+strconv.Itoa(callsPerWorker)+" a second")
	fs.Uint64Var(&opts.seed, "seed", 1, "seed for the upstreams' faults and the workers' pacing")
	fs.BoolVar(&opts.verbose, "verbose", false, "log each retry (connmgr's slog debug output) to stderr")
	fs.StringVar(&opts.config, "config", "", "run the policy in this config file (.yaml or .json) instead of the demo's")
	fs.StringVar(&opts.status, "status", "", "serve the status page on this address while the demo runs, such as 127.0.0.1:8081")

	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
		return opts, 0, false
	case err != nil:
		stderr.Write(out.Bytes())
		return opts, 2, false
	}
	var problem string
	switch {
	case fs.NArg() > 0:
		problem = "unexpected argument " + argText(fs.Arg(0))
	case opts.duration <= 0:
		problem = fmt.Sprintf("--duration must be > 0, got %v", opts.duration)
	case opts.workers < 1 || opts.workers > 256:
		problem = fmt.Sprintf("--workers must be between 1 and 256, got %d", opts.workers)
	case opts.status != "" && checkStatusAddr(opts.status) != nil:
		problem = checkStatusAddr(opts.status).Error()
	}
	if problem != "" {
		fmt.Fprintf(stderr, "connmgr demo: %s\n\n", problem)
		fs.SetOutput(stderr)
		fs.Usage()
		return opts, 2, false
	}
	return opts, 0, true
}

// runDemo is the demo subcommand: it returns the exit code.
func runDemo(args []string, stdout, stderr io.Writer) int {
	opts, code, ok := parseDemoFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.config != "" {
		// Check the file before starting anything: a bad file is a usage error.
		if _, err := connmgr.LoadConfig(opts.config); err != nil {
			return configError("connmgr demo", err, stderr)
		}
	}
	if err := demoMain(ctx, stop, opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "connmgr demo: %v\n", err)
		return 1
	}
	return 0
}

// demo is one run: the upstreams, the Manager in front of them, and the
// console everything reports to.
type demo struct {
	opts demoOptions
	cfg  connmgr.Config // as given to New, keyed by address
	con  *console
	ups  []*upstream
	m    *connmgr.Manager
}

// demoMain runs the demo until opts.duration has passed or ctx ends
// (Ctrl-C), then drains and prints the summary. stopSignals restores the
// default signal handling, so that a second Ctrl-C kills the process.
func demoMain(ctx context.Context, stopSignals func(), opts demoOptions, stdout, stderr io.Writer) error {
	d := &demo{opts: opts, con: newConsole(stdout)}
	d.ups = startUpstreams(opts.seed)
	defer func() {
		for _, u := range d.ups {
			u.srv.Close()
		}
	}()

	cfg, err := loadDemoConfig(opts)
	if err != nil {
		return err
	}
	d.cfg = bindUpstreams(cfg, d.ups)
	mopts := []connmgr.Option{
		connmgr.WithDrainProgress(500*time.Millisecond, func(n int64) {
			if n > 0 {
				d.con.printf("draining: %s in flight\n", plural(int(n), "call"))
			}
		}),
	}
	if opts.verbose {
		mopts = append(mopts, connmgr.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	d.m, err = connmgr.New(d.cfg, mopts...)
	if err != nil {
		return err
	}
	defer d.m.Close()
	if opts.status != "" {
		stopStatus, err := startStatusPage(opts.status, d.m, d.con)
		if err != nil {
			return err
		}
		defer stopStatus()
	}

	h := &hooks{con: d.con, byKey: make(map[string]*upstream, len(d.ups))}
	for _, u := range d.ups {
		h.byKey[u.srv.Addr()] = u
		if u.name == "resetting" {
			h.fallback = u.srv.Addr()
		}
	}
	h.register(d.m)
	d.banner()

	// runCtx ends the traffic; callCtx the calls themselves, which are
	// left to finish when the time is up but cancelled on Ctrl-C.
	callCtx, cancelCalls := context.WithCancel(ctx)
	defer cancelCalls()
	runCtx, cancelRun := context.WithTimeout(ctx, opts.duration)
	defer cancelRun()

	reporterDone := make(chan struct{})
	go func() {
		defer close(reporterDone)
		d.report(runCtx)
	}()
	var workers sync.WaitGroup
	for i := range opts.workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			d.worker(runCtx, callCtx, i)
		}()
	}

	<-runCtx.Done()
	<-reporterDone
	if ctx.Err() != nil {
		stopSignals()
		d.con.printf("interrupted after %v: cancelling the calls in flight\n", d.elapsed())
	} else {
		d.con.printf("%v is up: no new calls; waiting for those in flight (at most %v)\n", opts.duration, drainTimeout)
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	shutdownErr := d.m.Shutdown(sctx)
	cancel()
	cancelCalls() // only calls Shutdown gave up on are left
	workers.Wait()

	rows, calls := intervalRows(fmt.Sprintf("[%v]", d.elapsed()), d.ups)
	if calls > 0 {
		d.con.table(rows)
	}
	d.summary()
	if shutdownErr != nil {
		d.con.printf("shutdown: %v\n", shutdownErr)
	}
	// Four short scenes, each with upstreams of its own: a breaker
	// opening and recovering, a rate limiter waiting and rejecting, load
	// balancing around a dead and a slow upstream, an HTTP cache.
	for _, scene := range []func(context.Context, io.Writer) error{demoBreakerScene, demoLimiterScene, demoLBScene, demoCacheScene} {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintln(stdout)
		if err := scene(ctx, stdout); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) elapsed() time.Duration {
	return time.Since(d.con.start).Round(100 * time.Millisecond)
}

func (d *demo) banner() {
	d.con.printf("connmgr demo: %d local upstreams, %d workers, %v, seed %d (Ctrl-C stops early)\n",
		len(d.ups), d.opts.workers, d.opts.duration, d.opts.seed)
	rows := make([][]string, 0, len(d.ups))
	for _, u := range d.ups {
		rows = append(rows, []string{"  " + u.name, u.srv.Addr(), u.about})
	}
	d.con.table(rows)
	d.con.printf("hooks: X-Request-ID (crypto/rand) on every attempt; latency of each response; a fallback for resetting\n\n")
}

// report prints each second's numbers until ctx ends, and notes the
// first retry the budget refused.
func (d *demo) report(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for sec := 1; ; sec++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rows, _ := intervalRows(fmt.Sprintf("[%ds]", sec), d.ups)
		d.con.table(rows)
		st := d.m.Stats()
		for _, u := range d.ups {
			if n := st.Endpoints[u.srv.Addr()].RetryBudgetExhausted; n > 0 {
				d.con.event("budget", "%s: the retry budget is spent: %s refused so far; those calls returned their last answer",
					u.name, plural(int(n), "retry"))
			}
		}
	}
}

// worker sends calls, one upstream after another, at about
// callsPerWorker a second until runCtx ends. Calls run under callCtx.
//
// Worker 0 starts with the last upstream, worker 1 with the one before,
// and so on, so that each of the first calls has its upstream to itself:
// with a given seed, the first requests each upstream gets, and what it
// does to them, are then the same from run to run.
func (d *demo) worker(runCtx, callCtx context.Context, id int) {
	rng := rand.New(rand.NewPCG(d.opts.seed, uint64(id)))
	pace := time.Second / callsPerWorker
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := len(d.ups) - 1 - id%len(d.ups); ; n++ {
		select {
		case <-runCtx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		d.call(callCtx, d.ups[n%len(d.ups)], n)
		// Jittered pacing: on average one call per pace.
		timer.Reset(pace/2 + time.Duration(rng.Int64N(int64(pace))) - time.Since(start))
	}
}

// call makes one GET to u and counts how it ended.
func (d *demo) call(ctx context.Context, u *upstream, n int) {
	resp, err := d.m.Get(ctx, u.srv.URL+"/v1/items/"+strconv.Itoa(n))
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, connmgr.ErrClosed) {
			return // the demo is stopping: not the upstream's doing
		}
		u.meter.add(func(t *tally) { t.calls++; t.failed++ })
		if errors.Is(err, connmgr.ErrCircuitOpen) {
			d.con.event("breaker", "%s: circuit breaker open: calls fail fast without reaching the upstream", u.name)
		}
		return
	}
	_, rerr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case rerr != nil && ctx.Err() != nil:
		return
	case rerr != nil || resp.StatusCode >= http.StatusBadRequest:
		u.meter.add(func(t *tally) { t.calls++; t.failed++ })
	case resp.Header.Get("X-Fallback") != "":
		u.meter.add(func(t *tally) { t.calls++; t.fallbacks++ })
	default:
		u.meter.add(func(t *tally) { t.calls++; t.ok++ })
	}
}

// summary prints the Manager's Stats and what they mean.
func (d *demo) summary() {
	st := d.m.Stats()
	d.con.printf("\nsummary (Manager.Stats; failed includes calls answered by a fallback; refused = retries the budget refused)\n")
	d.con.table(summaryRows(d.ups, st))
	d.con.printf("\nwhat happened:\n")
	for _, u := range d.ups {
		key := u.srv.Addr()
		d.con.printf("  %s\n", explain(u, st.Endpoints[key], maxAttempts(d.cfg, key)))
	}
	d.con.printf("  %s\n", d.requestIDs())
}

// requestIDs checks what the request hook promised: every request the
// upstreams received carried an X-Request-ID, shared by the attempts of
// one call.
func (d *demo) requestIDs() string {
	received, missing := 0, 0
	ids := map[string]bool{}
	for _, u := range d.ups {
		for _, r := range u.srv.Requests() {
			received++
			id := r.Header.Get("X-Request-ID")
			if id == "" {
				missing++
				continue
			}
			ids[id] = true
		}
	}
	if missing > 0 {
		return fmt.Sprintf("X-Request-ID: %d of %d requests the upstreams received had none", missing, received)
	}
	return fmt.Sprintf("X-Request-ID: all %d requests the upstreams received carried one; %d distinct, as retries keep their call's ID.",
		received, len(ids))
}
