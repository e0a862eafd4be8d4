// Command lb_health_aware is the seed's HealthAwareLoadBalancer as
// configuration: every upstream's /health is checked in the background
// (health_check), calls go only to the healthy ones, and when none is
// healthy the balancer uses them all rather than fail every call
// (panic_threshold; the seed "tries any endpoint").
//
// Unlike the seed, one failed check does not take an upstream out
// (unhealthy_threshold failures in a row do), checks run on their own
// schedule rather than inside a call, and m.Health() says what each check
// found. Run it with
//
//	go run ./examples/lb_health_aware
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// service is one upstream whose /health answer the program controls.
type service struct {
	name    string
	healthy atomic.Bool
	srv     *connmgrtest.Server
}

func newService(name string) *service {
	s := &service{name: name}
	s.healthy.Store(true)
	s.srv = connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/health" && !s.healthy.Load() {
			return connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "draining"}
		}
		return connmgrtest.Step{Body: s.name}
	})
	return s
}

func main() {
	services := []*service{newService("api1"), newService("api2"), newService("api3")}
	var upstreams []connmgr.UpstreamConfig
	byAddr := map[string]*service{}
	for _, s := range services {
		defer s.srv.Close()
		upstreams = append(upstreams, connmgr.UpstreamConfig{URL: s.srv.URL})
		byAddr["http://"+s.srv.Addr()] = s
	}
	services[1].healthy.Store(false) // api2 says it is draining

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"service": {
			Upstreams: upstreams,
			Balancer:  connmgr.BalancerRandom, // as the seed: random.choice
			HealthCheck: connmgr.HealthCheckConfig{
				Path: "/health", Interval: time.Second, Timeout: time.Second,
				UnhealthyThreshold: 1, HealthyThreshold: 1,
			},
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	waitFor := func(want func(connmgr.EndpointHealth) bool) connmgr.EndpointHealth {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			h := m.Health().Endpoints["service"]
			if want(h) || time.Now().After(deadline) {
				return h
			}
		}
	}
	show := func(h connmgr.EndpointHealth) {
		for _, u := range h.Upstreams {
			line := fmt.Sprintf("  %s: %s", byAddr[u.Upstream].name, u.Status)
			if u.LastError != "" {
				line += " (" + u.LastError + ")"
			}
			fmt.Println(line)
		}
	}
	calls := func(n int) {
		got := map[string]int{}
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := m.Get(ctx, "http://service/data")
			if err != nil {
				log.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			got[string(body)]++
		}
		var names []string
		for name := range got {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Printf("  %d calls went to %v\n", n, names)
	}

	fmt.Println("api2 reports itself unhealthy:")
	show(waitFor(func(h connmgr.EndpointHealth) bool { return h.Usable == 2 }))
	calls(30)

	fmt.Println("all three unhealthy: too few to serve, so all are used (panic mode):")
	services[0].healthy.Store(false)
	services[2].healthy.Store(false)
	h := waitFor(func(h connmgr.EndpointHealth) bool { return h.Usable == 0 })
	show(h)
	fmt.Printf("  endpoint %s, panic mode %v\n", h.Status, h.Panic)
	calls(30)

	fmt.Println("all recover:")
	for _, s := range services {
		s.healthy.Store(true)
	}
	show(waitFor(func(h connmgr.EndpointHealth) bool { return h.Usable == 3 }))
	calls(30)
}
