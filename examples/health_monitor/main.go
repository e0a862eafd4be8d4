// Command health_monitor is the Go seed's HealthMonitor (AddPlugin,
// StartAll, GetAllStatus, GetOverallHealth) as configuration: each
// logical endpoint with a health_check is monitored from the moment the
// Manager is built until it closes, and m.Health() gives every
// upstream's status, last check and last error, each endpoint's status,
// and an overall one.
//
// A status is unknown (not checked yet), healthy, degraded (failed
// checks, not yet unhealthy_threshold in a row: still used) or unhealthy
// (out of the balancer until healthy_threshold checks pass). Run it with
//
//	go run ./examples/health_monitor
package main

import (
	"fmt"
	"log"
	"net/http"
	"sort"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	ok := func() *connmgrtest.Server {
		return connmgrtest.NewServerFunc(func(int64, *http.Request) connmgrtest.Step { return connmgrtest.Step{Body: "ok"} })
	}
	auth1, auth2, pay1 := ok(), ok(), ok()
	pay2 := connmgrtest.NewServerFunc(func(int64, *http.Request) connmgrtest.Step {
		return connmgrtest.Step{Status: http.StatusInternalServerError, Body: "database down"}
	})
	names := map[string]string{}
	for name, s := range map[string]*connmgrtest.Server{"auth-1": auth1, "auth-2": auth2, "pay-1": pay1, "pay-2": pay2} {
		defer s.Close()
		names[s.URL] = name
	}

	check := connmgr.HealthCheckConfig{Path: "/healthz", Interval: time.Second, Timeout: time.Second, UnhealthyThreshold: 2}
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"auth-service":    {Upstreams: []connmgr.UpstreamConfig{{URL: auth1.URL}, {URL: auth2.URL}}, HealthCheck: check},
		"payment-service": {Upstreams: []connmgr.UpstreamConfig{{URL: pay1.URL}, {URL: pay2.URL}}, HealthCheck: check},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	print := func(title string) {
		h := m.Health()
		fmt.Println(title)
		keys := make([]string, 0, len(h.Endpoints))
		for k := range h.Endpoints {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e := h.Endpoints[k]
			fmt.Printf("  %s: %s (%d of %d upstreams usable)\n", k, e.Status, e.Usable, e.Total)
			for _, u := range e.Upstreams {
				line := fmt.Sprintf("    %s: %s", names[u.Upstream], u.Status)
				if u.LastError != "" {
					line += ", last error: " + u.LastError
				}
				fmt.Println(line)
			}
		}
		fmt.Printf("  overall: %s\n", h.Overall)
	}
	// Each round checks every upstream at once; the first runs as the
	// Manager starts, the next a second later (plus up to 100ms jitter).
	waitFor := func(done func(connmgr.HealthReport) bool) {
		for deadline := time.Now().Add(15 * time.Second); !done(m.Health()) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(func(h connmgr.HealthReport) bool {
		for _, e := range h.Endpoints {
			for _, u := range e.Upstreams {
				if u.LastCheck.IsZero() {
					return false
				}
			}
		}
		return true
	})
	print("after the first round of checks:")
	waitFor(func(h connmgr.HealthReport) bool { return h.Endpoints["payment-service"].Usable == 1 })
	print("after the second round:")
}
