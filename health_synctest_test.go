//go:build go1.25

package connmgr

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthCheckerTakesAnUpstreamOutAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := inherit(EndpointConfig{PanicThreshold: -1, HealthCheck: HealthCheckConfig{Path: "/health", Jitter: -1}}, builtinDefaults())
		s := newUpstreamSet("svc", c, nil, realClock{}, nil)
		s.setMembers([]memberSpec{{url: mustURL("http://a:80")}, {url: mustURL("http://b:80")}}, nil)
		ups := s.members()
		tr := newCheckTransport()
		tr.set("a:80", 200)
		tr.set("b:80", 503)
		hp, _ := newHealthPolicy(c.HealthCheck)
		hc := startHealthChecker(s, hp, tr)
		defer s.close()
		defer hc.stop()

		synctest.Wait() // round 1 at once
		assert.Equal(t, HealthHealthy, healthOf(s, ups[0]))
		assert.Equal(t, HealthDegraded, healthOf(s, ups[1]))
		time.Sleep(20 * time.Second) // rounds 2 and 3
		synctest.Wait()
		assert.Equal(t, HealthUnhealthy, healthOf(s, ups[1]))
		assert.Equal(t, map[*Upstream]int{ups[0]: 10}, picksOf(t, s, 10))

		tr.set("b:80", 200)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, HealthUnhealthy, healthOf(s, ups[1]), "one pass is not enough")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, HealthHealthy, healthOf(s, ups[1]))
		assert.Len(t, picksOf(t, s, 10), 2)
		assert.EqualValues(t, 10, tr.checks.Load(), "five rounds of two checks")
		s.mu.Lock()
		assert.Equal(t, "", ups[1].load.health.lastErr)
		s.mu.Unlock()
	})
}

func TestHealthChecksNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := inherit(EndpointConfig{HealthCheck: HealthCheckConfig{Path: "/health", Interval: time.Second, Timeout: time.Minute, Jitter: -1}}, builtinDefaults())
		s := newUpstreamSet("svc", c, nil, realClock{}, nil)
		s.setMembers([]memberSpec{{url: mustURL("http://a:80")}}, nil)
		tr := newCheckTransport()
		tr.set("a:80", 200)
		tr.delay = 5 * time.Second // each check outlasts the interval
		hp, _ := newHealthPolicy(c.HealthCheck)
		hc := startHealthChecker(s, hp, tr)
		time.Sleep(30 * time.Second)
		hc.stop()
		s.close()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		assert.Equal(t, 1, tr.maxInFlight["a:80"])
		require.LessOrEqual(t, tr.checks.Load(), int64(6), "a round every 5s + 1s at most")
	})
}

func TestHealthCheckTimesOutAndKeepsLogicalHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := inherit(EndpointConfig{HealthCheck: HealthCheckConfig{Path: "/health", Timeout: time.Second, UnhealthyThreshold: 1}}, builtinDefaults())
		s := newUpstreamSet("svc", c, nil, realClock{}, nil)
		s.setMembers([]memberSpec{{url: mustURL("https://10.0.0.7:8443"), host: "pay.internal:8443"}}, nil)
		tr := newCheckTransport()
		tr.set("10.0.0.7:8443", 200)
		tr.delay = 3 * time.Second
		hp, _ := newHealthPolicy(c.HealthCheck)
		hc := startHealthChecker(s, hp, tr)
		synctest.Wait()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		hc.stop()
		s.close()
		u := s.all[0]
		assert.Equal(t, HealthUnhealthy, u.load.health.status)
		assert.Equal(t, "no answer within 1s", u.load.health.lastErr)
		assert.Equal(t, "pay.internal:8443", tr.hosts["10.0.0.7:8443"], "Host header is the logical host")
	})
}
