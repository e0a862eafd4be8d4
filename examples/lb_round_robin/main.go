// Command lb_round_robin is the seed's round-robin load balancer
// (LoadBalancedManager with itertools.cycle) as configuration: one
// logical endpoint, "api", with three upstreams. A call names the
// endpoint as its host (http://api/data/1); connmgr picks an upstream
// per attempt, sends the request there with its path and query, and
// leaves the caller's request alone. resp.Request shows where it went.
//
// Unlike the seed, a failed attempt is retried on another upstream (one
// the call has not tried yet), and an upstream that keeps failing is
// ejected for a while. Run it with
//
//	go run ./examples/lb_round_robin
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	// Three local servers, "https://api1.example.com" and so on in real life.
	names := map[string]string{}
	var upstreams []connmgr.UpstreamConfig
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("api%d", i)
		srv := connmgrtest.NewServerFunc(func(int64, *http.Request) connmgrtest.Step {
			return connmgrtest.Step{Body: "data from " + name}
		})
		defer srv.Close()
		names[srv.Addr()] = name
		upstreams = append(upstreams, connmgr.UpstreamConfig{URL: srv.URL})
	}
	// The third one is down for one call: its attempt fails and the
	// call is retried on another upstream.
	down := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable}, connmgrtest.Step{Body: "data from api4"})
	defer down.Close()
	names[down.Addr()] = "api4"
	upstreams = append(upstreams, connmgr.UpstreamConfig{URL: down.URL})

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"api": {
			Upstreams: upstreams,
			Balancer:  connmgr.BalancerRoundRobin, // the default
			Retry:     connmgr.RetryConfig{InitialBackoff: time.Millisecond},
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 8; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://api/data/%d", i), nil)
		resp, err := m.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("Request %d: %d %q, sent to %s as %s (the caller's URL is still %s)\n",
			i, resp.StatusCode, body, names[resp.Request.URL.Host], resp.Request.URL.Path, req.URL)
	}
	// Request 3 went to api4 first, which answered 503: the retry went to
	// the next upstream, api1.
	for _, u := range m.Stats().Endpoints["api"].Upstreams {
		fmt.Printf("%s: %d attempts, %d failed\n", names[u.Upstream[len("http://"):]], u.Requests, u.Failures)
	}
}
