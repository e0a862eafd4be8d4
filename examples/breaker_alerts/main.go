// Command breaker_alerts shows circuit breaker state listeners used for
// alerting, the Go version of the seed's AdvancedCircuitBreaker with its
// _on_state_change listener.
//
// An upstream fails its first four requests with 503, then recovers. The
// breaker for it opens after three failures in a row, fails calls fast
// (ErrCircuitOpen, with the time until the next probe) without touching
// the network, lets one probe through after the recovery timeout, and
// closes when the probe succeeds. A listener registered with
// WithStateListener turns each change into an alert or a recovery
// notice; it runs outside every lock, in order, and may call m.Stats().
//
// Run it with
//
//	go run ./examples/breaker_alerts
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "breaker_alerts:", err)
		os.Exit(1)
	}
}

func run() error {
	upstream := connmgrtest.NewServerFunc(func(n int64, _ *http.Request) connmgrtest.Step {
		if n <= 4 {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "overloaded"}
		}
		return connmgrtest.Step{Body: "ok"}
	})
	defer upstream.Close()

	var m *connmgr.Manager
	alerts := func(c connmgr.StateChange) {
		switch c.To {
		case connmgr.BreakerOpen:
			fmt.Printf("ALERT: circuit breaker for %s opened (was %s): %v\n", c.Upstream, c.From, c.Err)
		case connmgr.BreakerHalfOpen:
			fmt.Printf("INFO: circuit breaker for %s is half-open: probing\n", c.Upstream)
		case connmgr.BreakerClosed:
			// A listener may call back into the Manager.
			st := m.Stats().Endpoints[c.Endpoint].Breaker
			fmt.Printf("INFO: service %s recovered (breaker closed; it opened %d time(s), refused %d call(s))\n",
				c.Upstream, st.Opens, st.Rejected)
		}
	}
	var err error
	m, err = connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{
			Retry: connmgr.RetryConfig{MaxAttempts: 1},
			CircuitBreaker: connmgr.BreakerConfig{
				ConsecutiveFailures: 3,
				RecoveryTimeout:     300 * time.Millisecond,
				HalfOpenRequests:    1,
			},
		},
	}, connmgr.WithStateListener(alerts))
	if err != nil {
		return err
	}
	defer m.Close()

	for i := 1; i <= 12; i++ {
		resp, err := m.Get(context.Background(), upstream.URL+"/v1/status")
		var open *connmgr.CircuitOpenError
		switch {
		case errors.As(err, &open):
			fmt.Printf("call %2d: fail fast, circuit open (next probe in ~%dms)\n", i, open.RetryIn.Round(100*time.Millisecond).Milliseconds())
		case err != nil:
			return err
		default:
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			fmt.Printf("call %2d: %d %s\n", i, resp.StatusCode, body)
		}
		if i == 5 || i == 8 {
			time.Sleep(350 * time.Millisecond) // past the recovery timeout
		}
	}
	fmt.Printf("the upstream saw %d requests for 12 calls\n", upstream.Count())
	return nil
}
