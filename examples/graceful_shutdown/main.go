// Command graceful_shutdown shows Manager.Shutdown draining the calls in
// flight before a service exits, on SIGTERM.
//
// It is the Go counterpart of the seed's "Graceful Draining" (Request
// Tracking), "Shutdown Coordination" (Utility Functions) and "Basic
// Request Tracking" in go-plugins' advanced components guide. There is no
// tracker to feed: the Manager counts its calls in flight itself (a call
// ends when its response body is closed; Stats().InFlight), and
//
//   - Shutdown(ctx) stops new calls at once (they fail with ErrClosed),
//     waits for those in flight until ctx ends, then closes the Manager;
//     ctx's deadline is the seed's DrainTimeout;
//   - WithDrainProgress(interval, fn) is the seed's CheckInterval and
//     ProgressCallback: fn gets the calls still in flight;
//   - when the deadline passes first, Shutdown says how many calls were
//     left. They are not cut off: cancelling them is the caller's choice,
//     here through the context they were started with.
//
// The program runs two shutdowns against a local upstream whose answers
// take as long as their path says. In the first, three slow calls finish
// within the deadline. In the second, two calls hang and the deadline
// expires. Both are wired to SIGTERM and Ctrl-C with signal.NotifyContext;
// the program sends itself no signal and starts the shutdown by itself
// after a moment. Run it with
//
//	go run ./examples/graceful_shutdown
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "graceful_shutdown:", err)
		os.Exit(1)
	}
}

func run() error {
	// /slow/700ms answers after 700ms; /hang never answers.
	upstream := connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/hang" {
			return connmgrtest.Step{Hang: true}
		}
		d, _ := time.ParseDuration(r.URL.Path[len("/slow/"):])
		return connmgrtest.Step{Delay: d, Body: "done"}
	})
	defer upstream.Close() // also ends the hanging requests, if any are left

	fmt.Println("1. every call finishes within the drain deadline")
	if err := drain(upstream, []string{"/slow/400ms", "/slow/700ms", "/slow/1s"}, 3*time.Second); err != nil {
		return err
	}
	fmt.Println("\n2. the drain deadline expires with calls still in flight")
	return drain(upstream, []string{"/slow/500ms", "/hang", "/hang"}, 600*time.Millisecond)
}

// drain starts calls to paths, waits for SIGTERM (or, since nobody sends
// one, a moment), and shuts the Manager down with a drain deadline.
func drain(upstream *connmgrtest.Server, paths []string, deadline time.Duration) error {
	start := time.Now()
	since := func() time.Duration { return time.Since(start).Round(50 * time.Millisecond) }

	// Shutdown calls the progress function at once, then every interval.
	shuttingDown := make(chan struct{})
	var once sync.Once
	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{Timeout: 5 * time.Second, Retry: connmgr.RetryConfig{MaxAttempts: 1}},
	}, connmgr.WithDrainProgress(250*time.Millisecond, func(remaining int64) {
		once.Do(func() { close(shuttingDown) })
		fmt.Printf("  [%v] draining: %d call(s) in flight\n", since(), remaining)
	}))
	if err != nil {
		return err
	}
	defer m.Close()

	// The context outbound work runs under: cancelled once draining is
	// over, so that a call still hanging then is cut off rather than
	// left behind.
	work, abandon := context.WithCancel(context.Background())
	defer abandon()
	var calls sync.WaitGroup
	for _, p := range paths {
		calls.Add(1)
		go func() {
			defer calls.Done()
			resp, err := m.Get(work, upstream.URL+p)
			if errors.Is(err, context.Canceled) {
				fmt.Printf("  [%v] GET %s: abandoned (context canceled)\n", since(), p)
				return
			} else if err != nil {
				fmt.Printf("  [%v] GET %s: %v\n", since(), p, err)
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close() // the call ends here, and Shutdown counts it
			if err != nil {
				fmt.Printf("  [%v] GET %s: %s, reading the body: %v\n", since(), p, resp.Status, err)
				return
			}
			fmt.Printf("  [%v] GET %s: %s %s\n", since(), p, resp.Status, body)
		}()
	}
	for m.Stats().InFlight < int64(len(paths)) {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("  [%v] %d calls in flight\n", since(), len(paths))

	// A service waits here for SIGTERM (or Ctrl-C). This example starts its
	// shutdown by itself after 100ms instead.
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-sig.Done():
		fmt.Printf("  [%v] signal received: shutting down\n", since())
	case <-time.After(100 * time.Millisecond):
		fmt.Printf("  [%v] no SIGTERM (nobody sends one here): shutting down anyway\n", since())
	}
	stop() // a second Ctrl-C now kills the process, as it would without NotifyContext

	// The drain deadline is a fresh context: sig is already done.
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Shutdown(ctx) }()

	<-shuttingDown
	if _, err := m.Get(context.Background(), upstream.URL+"/slow/0s"); errors.Is(err, connmgr.ErrClosed) {
		var e *connmgr.Error
		errors.As(err, &e)
		fmt.Printf("  [%v] a new call is refused with ErrClosed: %v\n", since(), e)
	} else {
		return fmt.Errorf("a call during Shutdown: got %v, want ErrClosed", err)
	}

	err = <-done
	if err != nil {
		fmt.Printf("  [%v] Shutdown after %v: %v\n", since(), deadline, err)
		abandon() // cut off what is left
	} else {
		fmt.Printf("  [%v] Shutdown returned nil: every call finished\n", since())
	}
	calls.Wait()
	fmt.Printf("  in flight now: %d\n", m.Stats().InFlight)
	return nil
}
