package connmgr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr/internal/redact"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthHysteresis(t *testing.T) {
	hp, on := newHealthPolicy(HealthCheckConfig{Path: "/health", HealthyThreshold: 2, UnhealthyThreshold: 3})
	require.True(t, on)
	var st healthState
	at := time.Unix(0, 0)
	steps := []struct {
		ok      bool
		want    HealthStatus
		changed bool
	}{
		{true, HealthHealthy, false},    // unknown -> healthy on a pass
		{false, HealthDegraded, false},  // one failure: degraded, still used
		{false, HealthDegraded, false},  // two
		{true, HealthHealthy, false},    // a pass clears it
		{false, HealthDegraded, false},  // 1
		{false, HealthDegraded, false},  // 2
		{false, HealthUnhealthy, true},  // 3 in a row: out
		{true, HealthUnhealthy, false},  // one pass is not enough
		{false, HealthUnhealthy, false}, // and a failure starts the count again
		{true, HealthUnhealthy, false},  // 1
		{true, HealthHealthy, true},     // 2 in a row: back
	}
	for i, s := range steps {
		changed := hp.observe(&st, s.ok, "status 503", at)
		assert.Equal(t, s.want, st.status, "step %d", i)
		assert.Equal(t, s.changed, changed, "step %d: usability changed", i)
	}
}

func TestHealthPolicyStatusesAndDefaults(t *testing.T) {
	_, on := newHealthPolicy(HealthCheckConfig{})
	assert.False(t, on, "no path, no checks")
	hp, _ := newHealthPolicy(inherit(EndpointConfig{HealthCheck: HealthCheckConfig{Path: "/h"}}, builtinDefaults()).HealthCheck)
	assert.True(t, hp.passes(200))
	assert.True(t, hp.passes(204))
	assert.False(t, hp.passes(301))
	assert.Equal(t, time.Second, hp.jitter, "a tenth of the 10s interval")
	hp, _ = newHealthPolicy(HealthCheckConfig{Path: "/h", ExpectedStatuses: []int{200, 429}, Jitter: -1})
	assert.True(t, hp.passes(429))
	assert.False(t, hp.passes(204))
	assert.Zero(t, hp.jitter)
}

// checkTransport answers health checks per upstream host and records
// the most checks of one host in flight at once.
type checkTransport struct {
	mu                    sync.Mutex // guards status, hosts, inFlight, maxInFlight
	status                map[string]int
	hosts                 map[string]string
	delay                 time.Duration
	checks                atomic.Int64
	inFlight, maxInFlight map[string]int
}

func (c *checkTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.checks.Add(1)
	c.mu.Lock()
	h := r.URL.Host
	c.hosts[h] = r.Host
	c.inFlight[h]++
	c.maxInFlight[h] = max(c.maxInFlight[h], c.inFlight[h])
	st := c.status[h]
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight[h]--
		c.mu.Unlock()
	}()
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	if st == 0 {
		return nil, errors.New("connection refused")
	}
	return cannedResponse(r, st, "ok"), nil
}

func (c *checkTransport) set(host string, status int) {
	c.mu.Lock()
	c.status[host] = status
	c.mu.Unlock()
}

func newCheckTransport() *checkTransport {
	return &checkTransport{status: map[string]int{}, hosts: map[string]string{}, inFlight: map[string]int{}, maxInFlight: map[string]int{}}
}

func healthOf(s *upstreamSet, u *Upstream) HealthStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return u.load.health.status
}

func TestHealthReport(t *testing.T) {
	clk := newFakeClock()
	s := testSet(3, BalancerRoundRobin, EndpointConfig{}, clk)
	defer s.close()
	ups := s.members()
	r := s.report()
	assert.Equal(t, HealthUnknown, r.Status, "nothing checked yet")
	assert.Equal(t, 3, r.Usable)

	hp, _ := newHealthPolicy(HealthCheckConfig{Path: "/h", UnhealthyThreshold: 1})
	for _, u := range ups {
		s.reportHealth(u, &hp, true, "")
	}
	assert.Equal(t, HealthHealthy, s.report().Status)
	s.reportHealth(ups[0], &hp, false, "status 503")
	sendTo(t, s, ups[1], 5, Outcome{StatusCode: 502})
	r = s.report()
	assert.Equal(t, HealthDegraded, r.Status)
	assert.Equal(t, 1, r.Usable)
	assert.True(t, r.Panic, "1 of 3 usable is below 50%")
	assert.Equal(t, "status 503", r.Upstreams[0].LastError)
	assert.Equal(t, HealthUnhealthy, r.Upstreams[0].Status)
	assert.True(t, r.Upstreams[1].Ejected)
	assert.Equal(t, clk.Now().Add(30*time.Second), r.Upstreams[1].EjectedUntil)
	assert.Equal(t, HealthDegraded, overallHealth(map[string]EndpointHealth{"a": r, "b": {Status: HealthHealthy}}))
	assert.Equal(t, HealthUnhealthy, overallHealth(map[string]EndpointHealth{"a": r, "b": {Status: HealthUnhealthy}}))

	st := s.stats(func(*Upstream) string { return "closed" })
	require.Len(t, st, 3)
	assert.EqualValues(t, 5, st[1].Failures)
	assert.EqualValues(t, 1, st[1].Ejections)
	assert.Equal(t, "closed", st[1].Breaker)
}

func TestHealthCheckCanBeSwitchedOff(t *testing.T) {
	c := inherit(EndpointConfig{HealthCheck: HealthCheckConfig{Disabled: Bool(true)}},
		inherit(EndpointConfig{HealthCheck: HealthCheckConfig{Path: "/health"}}, builtinDefaults()))
	_, on := newHealthPolicy(c.HealthCheck)
	assert.False(t, on, "an endpoint can switch off the checks it inherits")
}

func TestHealthCheckErrorHidesTheUpstreamsUserinfo(t *testing.T) {
	hp, _ := newHealthPolicy(HealthCheckConfig{Path: "/h"})
	rt := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		// A transport that quotes the URL it was given, userinfo and all.
		return nil, fmt.Errorf("proxy refused %s (user %s)", r.URL.String(), r.URL.User.Username())
	})
	hc := &healthChecker{policy: hp, rt: rt}
	u := &Upstream{URL: &url.URL{Scheme: "http", Host: "10.0.0.5:8080", User: url.UserPassword("svc-user", "s3cret-pw")}}
	ok, text := hc.check(context.Background(), u)
	assert.False(t, ok)
	assert.Contains(t, text, "proxy refused")
	assert.NotContains(t, text, "s3cret-pw")
	assert.NotContains(t, text, "svc-user")
}

func TestScrubCheckErrorMasksEveryFormOfTheUserinfo(t *testing.T) {
	u := &url.URL{Scheme: "http", Host: "10.0.0.5:8080", Path: "/h", User: url.UserPassword("svc user", "p@ss/w:rd")}
	for _, msg := range []string{
		"proxy refused " + u.String(),                       // escaped, as URL.String writes it
		"dial " + "svc user:p@ss/w:rd@10.0.0.5:8080 failed", // raw
		"bad password p@ss/w:rd for svc user",
		"bad password " + url.QueryEscape("p@ss/w:rd"),
	} {
		got := scrubCheckError(msg, u)
		for _, secret := range []string{"p@ss/w:rd", "p%40ss%2Fw%3Ard", "p%40ss", "svc user", "svc%20user", "svc+user"} {
			assert.NotContains(t, got, secret, "in %q", got)
		}
	}
	short := &url.URL{Scheme: "http", Host: "10.0.0.5:8080", User: url.UserPassword("e", "pw")}
	got := scrubCheckError("dial tcp 10.0.0.5:8080: connect: connection refused (e:pw@10.0.0.5)", short)
	assert.Equal(t, "dial tcp 10.0.0.5:8080: connect: connection refused ("+redact.Mask+"@10.0.0.5)", got,
		"a short name is masked as userinfo only, not inside words")
}
