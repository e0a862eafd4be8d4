package connmgr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// A logical endpoint: "payments" is two upstreams, and a request to
// http://payments/... goes to one of them, round robin by default.
func ExampleUpstreamConfig() {
	cfg, err := connmgr.ParseConfig([]byte(`
endpoints:
  payments:
    upstreams:
      - https://pay-1.internal:8443
      - {url: "https://pay-2.internal:8443", weight: 3}
    balancer: weighted_round_robin
`), "yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range cfg.Endpoints["payments"].Upstreams {
		fmt.Printf("%s weight %d\n", u.URL, max(u.Weight, 1))
	}
	// Output:
	// https://pay-1.internal:8443 weight 1
	// https://pay-2.internal:8443 weight 3
}

// A balancer of your own, registered by name: this one sends every call
// to the first upstream that can take calls. (A PickResult.Done, when
// set, hears each attempt's outcome.)
func ExampleWithBalancer() {
	a := connmgrtest.NewServer(connmgrtest.Step{Body: "a"})
	defer a.Close()
	b := connmgrtest.NewServer(connmgrtest.Step{Body: "b"})
	defer b.Close()

	// "first-healthy": the first upstream that can take calls. The
	// Manager rebuilds the picker whenever that set changes.
	firstHealthy := connmgr.BalancerBuilderFunc(func(ups []*connmgr.Upstream) connmgr.Picker {
		return connmgr.PickerFunc(func(connmgr.PickInfo) (connmgr.PickResult, error) {
			return connmgr.PickResult{Upstream: ups[0]}, nil
		})
	})
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"svc": {Upstreams: []connmgr.UpstreamConfig{{URL: a.URL}, {URL: b.URL}}, Balancer: "first-healthy"},
	}}, connmgr.WithBalancer("first-healthy", firstHealthy))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	for i := 0; i < 3; i++ {
		resp, err := m.Get(context.Background(), "http://svc/")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// a
	// a
	// a
}

// m.Health() reports what the health checks found.
func ExampleManager_Health() {
	ok := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
	defer ok.Close()
	sick := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer sick.Close()
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"payments": {
			Upstreams:   []connmgr.UpstreamConfig{{URL: ok.URL}, {URL: sick.URL}},
			HealthCheck: connmgr.HealthCheckConfig{Path: "/health", Interval: time.Second, UnhealthyThreshold: 1},
		},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	// The first round of checks runs as the Manager starts.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m.Health().Endpoints["payments"].Usable == 1 {
			break
		}
	}
	h := m.Health()
	e := h.Endpoints["payments"]
	fmt.Printf("overall %s; payments %s, %d of %d upstreams usable\n", h.Overall, e.Status, e.Usable, e.Total)
	for i, u := range e.Upstreams {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("upstream %d: %s %s", i+1, u.Status, u.LastError)))
	}
	// Output:
	// overall degraded; payments degraded, 1 of 2 upstreams usable
	// upstream 1: healthy
	// upstream 2: unhealthy status 503
}

// fixedResolver resolves every name to 127.0.0.1.
type fixedResolver struct{}

func (fixedResolver) LookupHost(context.Context, string) ([]string, error) {
	return []string{"127.0.0.1"}, nil
}

// dns:/// upstreams are one upstream per address the name resolves to.
// The connection goes to the address; the Host header (and a TLS server
// name) stay the logical host.
func ExampleWithResolver() {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Addr())
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"payments": {Upstreams: []connmgr.UpstreamConfig{{URL: "dns:///pay.internal:" + port}}},
	}}, connmgr.WithResolver(fixedResolver{}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	resp, err := m.Get(context.Background(), "http://payments/v1/charge")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	got := srv.Requests()[0]
	fmt.Println("sent to", strings.Split(resp.Request.URL.Host, ":")[0], "with Host", strings.Split(got.Host, ":")[0])
	// Output:
	// sent to 127.0.0.1 with Host pay.internal
}

// When no upstream can take a call (and there is no fallback), the error
// says why each one is out.
func ExampleNoHealthyUpstreamError() {
	srv := connmgrtest.NewServer()
	dead := srv.URL
	srv.Close() // nothing listens there any more
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"payments": {
			Upstreams:        []connmgr.UpstreamConfig{{URL: dead}},
			Retry:            connmgr.RetryConfig{MaxAttempts: 1},
			OutlierDetection: connmgr.OutlierConfig{ConsecutiveGatewayFailure: 1},
			PanicThreshold:   -1,
		},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	_, err = m.Get(context.Background(), "http://payments/")
	fmt.Println("first call:", errors.Is(err, connmgr.ErrNoHealthyUpstream))
	_, err = m.Get(context.Background(), "http://payments/")
	var nh *connmgr.NoHealthyUpstreamError
	if errors.As(err, &nh) {
		fmt.Println("second call:", errors.Is(err, connmgr.ErrNoHealthyUpstream), nh.Endpoint, strings.Fields(nh.Upstreams[0].Reason)[0])
	}
	// Output:
	// first call: false
	// second call: true payments ejected
}
