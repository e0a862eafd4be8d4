package gobreakeradapter_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/gobreakeradapter"
	"github.com/sony/gobreaker/v2"
)

// A gobreaker breaker driven through connmgr's two-step Breaker
// interface, as the pipeline drives it: failures trip it, an ignored
// (cancelled) attempt counts for nothing.
func ExampleNew() {
	b := gobreakeradapter.New(gobreaker.Settings{
		Timeout:     30 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 2 },
	})
	report := func(o connmgr.Outcome) {
		done, err := b.Allow()
		if err != nil {
			fmt.Println("refused:", err)
			return
		}
		done(o)
		fmt.Println("state:", b.State())
	}
	report(connmgr.Outcome{Err: &connmgr.StatusError{StatusCode: 503}, StatusCode: 503})
	report(connmgr.Outcome{Err: errors.New("caller gave up"), Ignored: true})
	report(connmgr.Outcome{Err: errors.New("connection refused")})
	report(connmgr.Outcome{StatusCode: 200})
	// Output:
	// state: closed
	// state: closed
	// state: open
	// refused: circuit breaker is open
}

// Factory builds one gobreaker breaker per upstream, for
// connmgr.WithBreakerFactory; each is named after its endpoint and
// upstream, so that OnStateChange can tell them apart.
func ExampleFactory() {
	f := gobreakeradapter.Factory(gobreaker.Settings{
		Timeout: 30 * time.Second,
		OnStateChange: func(name string, from, to gobreaker.State) {
			fmt.Printf("%s: %s -> %s\n", name, from, to)
		},
	})
	// m, err := connmgr.New(cfg, connmgr.WithBreakerFactory(f))
	b := f("payments", "pay-1.internal:8443")
	for i := 0; i < 6; i++ { // gobreaker's default trips after more than 5 consecutive failures
		done, err := b.Allow()
		if err != nil {
			fmt.Println("refused:", err)
			break
		}
		done(connmgr.Outcome{Err: errors.New("connection refused")})
	}
	_, err := b.Allow()
	fmt.Println("refused:", err)
	// Output:
	// payments pay-1.internal:8443: closed -> open
	// refused: circuit breaker is open
}

// Wrap adapts a breaker built elsewhere; build its settings with
// Settings, so that an ignored (cancelled) attempt counts for nothing.
func ExampleWrap() {
	cb := gobreaker.NewTwoStepCircuitBreaker[any](gobreakeradapter.Settings(gobreaker.Settings{
		Name:        "payments",
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
	}))
	b := gobreakeradapter.Wrap(cb)
	done, _ := b.Allow()
	done(connmgr.Outcome{Err: errors.New("context canceled"), Ignored: true})
	fmt.Println(b.Name(), b.State(), "exclusions:", b.Counts().TotalExclusions)
	done, _ = b.Allow()
	done(connmgr.Outcome{Err: errors.New("connection refused")})
	fmt.Println(b.Name(), b.State())
	// Output:
	// payments closed exclusions: 1
	// payments open
}

// FactoryFunc gives each upstream its own settings: here a shorter open
// period for one endpoint.
func ExampleFactoryFunc() {
	f := gobreakeradapter.FactoryFunc(func(endpoint, upstream string) gobreaker.Settings {
		st := gobreaker.Settings{Name: endpoint + " " + upstream, Timeout: time.Minute}
		if endpoint == "search" {
			st.Timeout = 5 * time.Second
		}
		return st
	})
	// m, err := connmgr.New(cfg, connmgr.WithBreakerFactory(f))
	b := f("search", "search-1:8443").(*gobreakeradapter.Breaker)
	fmt.Println(b.Name(), b.State())
	// Output:
	// search search-1:8443 closed
}

// The Manager's pipeline on gobreaker breakers, one per upstream: three
// 503s trip it, and the next call fails at once with ErrCircuitOpen
// without reaching the upstream.
func Example() {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer srv.Close()
	m, err := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{MaxAttempts: 1},
	}}, connmgr.WithBreakerFactory(gobreakeradapter.Factory(gobreaker.Settings{
		Timeout:     30 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
	})))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	for i := 0; i < 4; i++ {
		resp, err := m.Get(context.Background(), srv.URL)
		if err != nil {
			fmt.Println("circuit open:", errors.Is(err, connmgr.ErrCircuitOpen), errors.Is(err, gobreaker.ErrOpenState))
			continue
		}
		_ = resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println("upstream saw", srv.Count(), "requests")
	// Output:
	// 503
	// 503
	// 503
	// circuit open: true true
	// upstream saw 3 requests
}
