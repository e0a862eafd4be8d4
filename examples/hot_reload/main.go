// Command hot_reload shows a Manager following its config file: edits
// are applied while traffic flows, a broken edit is refused and the
// running config stays, and the fix is applied.
//
// It is the Go counterpart of the seed's "Dynamic Configuration with
// Hot-Reload" and "Configuration Watcher" (Configuration Management in
// go-plugins' advanced components guide). There is no watcher object to
// create, start and stop, and nothing to poll: m.Watch(path) loads the
// file, applies it, and follows it (fsnotify on the file's directory, so a
// file replaced by a rename is seen) until m.Close. WithReloadListener
// hears about every reload, applied (nil) or refused (the error), and
// m.Stats().Reload counts them.
//
// The upstream is local: each call's first attempt gets a 503 at once, and
// its later attempts an answer after 150ms. The story is an operator's:
//
//  1. version 1 does not retry: calls end in the 503;
//  2. version 2 (written by rename) retries, but its 100ms per-try timeout
//     is shorter than the upstream's answer: calls time out;
//  3. a hurried edit ("timeout: 1", no unit, and a misspelt key) is
//     refused with every problem listed; version 2 keeps running;
//  4. the fixed file (timeout: 1s) is applied: calls succeed on their
//     second attempt.
//
// Background traffic runs all along; no call fails because of a reload,
// and each one runs under the config it started with. Run it with
//
//	go run ./examples/hot_reload
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// The file's versions. The endpoint key "127.0.0.1" matches the local
// upstream whatever its port; in real life it is "api.orders.example".
// The circuit breaker is off so that the policies above are all there is
// to see (see examples/breaker_alerts for it).
const (
	v1 = `# orders client, version 1: no retries
endpoints:
  "127.0.0.1":
    timeout: 100ms
    retry:
      max_attempts: 1
    circuit_breaker: {disabled: true}
`
	v2 = `# orders client, version 2: retry the 503s
endpoints:
  "127.0.0.1":
    timeout: 100ms
    retry:
      max_attempts: 3
      initial_backoff: 10ms
    circuit_breaker: {disabled: true}
`
	broken = `# orders client, version 3: a longer per-try timeout (in a hurry)
endpoints:
  "127.0.0.1":
    timeout: 1
    retry:
      max_attempts: 3
      inital_backoff: 10ms
    circuit_breaker: {disabled: true}
`
	fixed = `# orders client, version 3: a longer per-try timeout
endpoints:
  "127.0.0.1":
    timeout: 1s
    retry:
      max_attempts: 3
      initial_backoff: 10ms
    circuit_breaker: {disabled: true}
`
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hot_reload:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "connmgr-hot-reload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "orders-client.yaml")

	upstream := newUpstream()
	defer upstream.Close()
	fmt.Println("upstream: a call's first attempt gets 503 at once, its later attempts 200 after 150ms")

	// The listener runs on the watcher's goroutine after every reload; it
	// must not block (nor call Close or Shutdown).
	reloads := make(chan error, 10)
	m, err := connmgr.New(connmgr.Config{}, connmgr.WithReloadListener(func(err error) {
		if err != nil {
			fmt.Printf("reload refused, the running config stays: %s\n", strings.ReplaceAll(err.Error(), dir, "$TMPDIR"))
		} else {
			fmt.Println("reload applied")
		}
		reloads <- err
	}))
	if err != nil {
		return err
	}
	defer m.Close()

	// Version 1, then Watch: its first load is a reload like the others.
	if err := writeAtomic(path, v1); err != nil {
		return err
	}
	if err := m.Watch(path); err != nil {
		return err // the file's *ConfigError, or a read error
	}
	<-reloads
	fmt.Println("watching", strings.ReplaceAll(m.Stats().Reload.WatchedFile, dir, "$TMPDIR"))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	bg := startTraffic(ctx, m, upstream)

	steps := []struct {
		what, content string
		wantErr       bool
	}{
		{"version 2 (max_attempts: 3)", v2, false},
		{"version 3, in a hurry (timeout: 1, inital_backoff)", broken, true},
		{"version 3, fixed (timeout: 1s)", fixed, false},
	}
	fmt.Print("\nversion 1 (timeout: 100ms, max_attempts: 1)\n  probe: ", probe(ctx, m, upstream, "probe-1"), "\n")
	time.Sleep(200 * time.Millisecond) // let the background traffic run under it
	for i, s := range steps {
		fmt.Printf("\nwriting %s by rename\n", s.what)
		if err := writeAtomic(path, s.content); err != nil {
			return err
		}
		var got error
		select {
		case got = <-reloads:
		case <-time.After(5 * time.Second):
			return errors.New("no reload within 5s of the change")
		}
		if (got != nil) != s.wantErr {
			return fmt.Errorf("reload of %s: got %v", s.what, got)
		}
		fmt.Println("  probe:", probe(ctx, m, upstream, "probe-"+strconv.Itoa(i+2)))
		r := m.Stats().Reload
		fmt.Printf("  Stats().Reload: successes=%d failures=%d last_error=%q\n",
			r.Successes, r.Failures, shorten(strings.ReplaceAll(r.LastError, dir, "$TMPDIR")))
		time.Sleep(200 * time.Millisecond)
	}

	outcomes := bg.stop()
	fmt.Printf("\nbackground traffic: %d calls\n", outcomes.total)
	for _, o := range outcomes.order {
		fmt.Printf("  %3d  %s\n", outcomes.count[o], o)
	}
	fmt.Printf("  %d failed for any other reason: the reloads themselves failed no call\n", len(outcomes.other))
	for _, o := range outcomes.other {
		fmt.Println("  unexpected:", o)
	}
	return nil
}

// writeAtomic replaces path with content the way deploy tools do: a
// complete file in the same directory, renamed over the old one, so the
// watcher never reads a half-written file.
func writeAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// shorten keeps the first line of a multi-line error.
func shorten(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// upstream answers each call's first attempt with 503 and its later ones
// with 200 after 150ms. Calls are told apart by their X-Call header.
type upstream struct {
	*connmgrtest.Server
	mu       sync.Mutex
	attempts map[string]int
}

func newUpstream() *upstream {
	u := &upstream{attempts: map[string]int{}}
	u.Server = connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		u.mu.Lock()
		u.attempts[r.Header.Get("X-Call")]++
		n := u.attempts[r.Header.Get("X-Call")]
		u.mu.Unlock()
		if n == 1 {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "warming up"}
		}
		return connmgrtest.Step{Body: "ok", Delay: 150 * time.Millisecond}
	})
	return u
}

func (u *upstream) attemptsOf(call string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.attempts[call]
}

// call makes one call, tagged with id, and describes its outcome. other
// is true for an outcome none of the configs explains.
func call(ctx context.Context, m *connmgr.Manager, u *upstream, id string) (outcome string, other bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL+"/v1/orders", nil)
	if err != nil {
		return err.Error(), true
	}
	req.Header.Set("X-Call", id)
	resp, err := m.Do(req)
	if err != nil {
		var e *connmgr.Error
		if errors.As(err, &e) && errors.Is(err, connmgr.ErrRetriesExhausted) && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Sprintf("failed after %d attempts: the last one timed out", e.Attempts), false
		}
		return "error: " + err.Error(), true
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	n := u.attemptsOf(id)
	s := "s"
	if n == 1 {
		s = ""
	}
	return fmt.Sprintf("%s after %d attempt%s", resp.Status, n, s), resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable
}

func probe(ctx context.Context, m *connmgr.Manager, u *upstream, id string) string {
	o, _ := call(ctx, m, u, id)
	return o
}

// traffic makes calls one after another in the background and counts
// their outcomes.
type traffic struct {
	cancel context.CancelFunc
	done   chan outcomes
}

type outcomes struct {
	total int
	count map[string]int
	order []string // first-seen order
	other []string // outcomes no config explains
}

func startTraffic(ctx context.Context, m *connmgr.Manager, u *upstream) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	t := &traffic{cancel: cancel, done: make(chan outcomes, 1)}
	go func() {
		o := outcomes{count: map[string]int{}}
		for i := 1; ctx.Err() == nil; i++ {
			desc, other := call(context.WithoutCancel(ctx), m, u, "bg-"+strconv.Itoa(i))
			o.total++
			if other {
				o.other = append(o.other, desc)
			} else {
				if o.count[desc] == 0 {
					o.order = append(o.order, desc)
				}
				o.count[desc]++
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.done <- o
	}()
	return t
}

// stop ends the traffic after the call in progress and returns what it
// saw.
func (t *traffic) stop() outcomes {
	t.cancel()
	return <-t.done
}
