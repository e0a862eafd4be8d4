package connmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/connmgr/connmgr/internal/quote"
	"github.com/connmgr/connmgr/internal/redact"
)

// HealthCheckConfig is an active health check: every interval, each
// upstream of the endpoint is sent GET path over the endpoint's own
// transport and TLS (client certificate included). An upstream turns
// unhealthy after unhealthy_threshold failed checks in a row and healthy
// again after healthy_threshold passed ones (hysteresis: one lucky or
// unlucky check changes nothing). Checks of one endpoint never overlap.
type HealthCheckConfig struct {
	// Path is requested on each upstream, as "/health". Health checks are
	// off while it is empty (the default).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Interval is the time between two rounds of checks. 0 inherits;
	// default 10s; at least 1s.
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Timeout bounds one check. 0 inherits; default 2s.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// ExpectedStatuses are the statuses that pass. Default: any 2xx.
	ExpectedStatuses []int `yaml:"expected_statuses,omitempty" json:"expected_statuses,omitempty"`
	// HealthyThreshold is the passed checks in a row that make an
	// unhealthy upstream healthy again. 0 inherits; default 2.
	HealthyThreshold int `yaml:"healthy_threshold,omitempty" json:"healthy_threshold,omitempty"`
	// UnhealthyThreshold is the failed checks in a row that make an
	// upstream unhealthy; fewer make it degraded. 0 inherits; default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold,omitempty" json:"unhealthy_threshold,omitempty"`
	// Jitter adds up to this much random time to each interval, so that
	// many replicas do not check in step. 0 inherits; default a tenth of
	// the interval; negative means none.
	Jitter time.Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	// Disabled switches inherited health checks off for this endpoint.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

func healthCheckDefaults() HealthCheckConfig {
	return HealthCheckConfig{
		Interval:           10 * time.Second,
		Timeout:            2 * time.Second,
		HealthyThreshold:   2,
		UnhealthyThreshold: 3,
		Disabled:           Bool(false),
	}
}

func validateHealthCheck(p *problems, path string, c HealthCheckConfig) {
	if c.Path != "" && (c.Path[0] != '/' || !validHeaderValue(c.Path)) {
		p.add(path+".path", "must start with '/', got %s", quote.Short(c.Path))
	}
	if c.Interval != 0 && c.Interval < time.Second {
		p.add(path+".interval", "must be at least 1s, got %v", c.Interval)
	}
	nonNegative(p, path+".timeout", c.Timeout)
	for i, s := range c.ExpectedStatuses {
		if s < 100 || s > 599 {
			p.add(fmt.Sprintf("%s.expected_statuses[%d]", path, i), "must be an HTTP status 100..599, got %d", s)
		}
	}
	if c.HealthyThreshold < 0 {
		p.add(path+".healthy_threshold", "must be >= 1, got %d", c.HealthyThreshold)
	}
	if c.UnhealthyThreshold < 0 {
		p.add(path+".unhealthy_threshold", "must be >= 1, got %d", c.UnhealthyThreshold)
	}
}

// HealthStatus is what connmgr knows of an upstream's health, or of an
// endpoint's or the whole Manager's (as the Go seed's monitor).
type HealthStatus int

const (
	// HealthUnknown: not checked yet (or no health check configured).
	HealthUnknown HealthStatus = iota
	// HealthHealthy: the last checks passed.
	HealthHealthy
	// HealthDegraded: recent checks failed, not yet enough to count as
	// unhealthy; for an endpoint, some upstreams are out.
	HealthDegraded
	// HealthUnhealthy: out of the balancer until it passes
	// healthy_threshold checks; for an endpoint, none can take calls.
	HealthUnhealthy
)

func (s HealthStatus) String() string {
	switch s {
	case HealthHealthy:
		return "healthy"
	case HealthDegraded:
		return "degraded"
	case HealthUnhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// MarshalText writes the status as its name, for JSON.
func (s HealthStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a status name, so that Stats and HealthReport
// (and the status page's JSON) decode as they encode.
func (s *HealthStatus) UnmarshalText(b []byte) error {
	switch string(b) {
	case "unknown":
		*s = HealthUnknown
	case "healthy":
		*s = HealthHealthy
	case "degraded":
		*s = HealthDegraded
	case "unhealthy":
		*s = HealthUnhealthy
	default:
		return fmt.Errorf("connmgr: unknown health status %q", b)
	}
	return nil
}

// healthState is one upstream's health record, guarded by the
// upstreamSet's mu.
type healthState struct {
	status    HealthStatus
	passes    int // in a row
	fails     int // in a row
	lastCheck time.Time
	lastErr   string
}

// healthPolicy is an endpoint's resolved HealthCheckConfig.
type healthPolicy struct {
	path               string
	interval, timeout  time.Duration
	jitter             time.Duration
	expected           []int
	healthy, unhealthy int
}

func newHealthPolicy(c HealthCheckConfig) (healthPolicy, bool) {
	if c.Path == "" || (c.Disabled != nil && *c.Disabled) {
		return healthPolicy{}, false
	}
	hp := healthPolicy{
		path: c.Path, interval: c.Interval, timeout: c.Timeout, expected: c.ExpectedStatuses,
		healthy: max(c.HealthyThreshold, 1), unhealthy: max(c.UnhealthyThreshold, 1),
	}
	switch {
	case c.Jitter == 0:
		hp.jitter = hp.interval / 10
	case c.Jitter > 0:
		hp.jitter = c.Jitter
	}
	return hp, true
}

func (hp *healthPolicy) passes(status int) bool {
	if len(hp.expected) == 0 {
		return status >= 200 && status < 300
	}
	for _, s := range hp.expected {
		if s == status {
			return true
		}
	}
	return false
}

// observe folds one check into st with hysteresis and reports whether
// the upstream's usability changed.
func (hp *healthPolicy) observe(st *healthState, ok bool, errText string, at time.Time) (changed bool) {
	was := st.status != HealthUnhealthy
	st.lastCheck = at
	if ok {
		st.passes++
		st.fails = 0
		st.lastErr = ""
		if st.status != HealthUnhealthy || st.passes >= hp.healthy {
			st.status = HealthHealthy
		}
	} else {
		st.fails++
		st.passes = 0
		st.lastErr = errText
		if st.fails >= hp.unhealthy {
			st.status = HealthUnhealthy
		} else if st.status != HealthUnhealthy {
			st.status = HealthDegraded
		}
	}
	return was != (st.status != HealthUnhealthy)
}

// healthChecker runs one endpoint's health checks in its own goroutine,
// from the endpoint's build until stop.
type healthChecker struct {
	set    *upstreamSet
	policy healthPolicy
	rt     http.RoundTripper
	cancel context.CancelFunc
	done   chan struct{}
}

// startHealthChecker starts checking set's upstreams through rt.
func startHealthChecker(set *upstreamSet, policy healthPolicy, rt http.RoundTripper) *healthChecker {
	ctx, cancel := context.WithCancel(context.Background())
	hc := &healthChecker{set: set, policy: policy, rt: rt, cancel: cancel, done: make(chan struct{})}
	go hc.run(ctx)
	return hc
}

// stop ends the checks and waits for the goroutine (and any check in
// progress) to finish.
func (hc *healthChecker) stop() {
	hc.cancel()
	<-hc.done
}

func (hc *healthChecker) run(ctx context.Context) {
	defer close(hc.done)
	timer := time.NewTimer(0) // the first round at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		hc.round(ctx)
		wait := hc.policy.interval
		if hc.policy.jitter > 0 {
			wait += rand.N(hc.policy.jitter)
		}
		timer.Reset(wait)
	}
}

// round checks every upstream at once and returns when all are done, so
// rounds never overlap.
func (hc *healthChecker) round(ctx context.Context) {
	ups := hc.set.members()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, errText := hc.check(ctx, u)
			if ctx.Err() != nil {
				return // stopped: the result says nothing about u
			}
			hc.set.reportHealth(u, &hc.policy, ok, errText)
		}()
	}
	wg.Wait()
}

// check sends one probe to u.
func (hc *healthChecker) check(ctx context.Context, u *Upstream) (bool, string) {
	if hc.policy.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hc.policy.timeout)
		defer cancel()
	}
	target := *u.URL
	if target.Scheme == "" {
		// A discovered address is sent the request's scheme; a check has
		// no request, so it goes by the port.
		target.Scheme = "http"
		if p := target.Port(); p == "443" || p == "8443" {
			target.Scheme = "https"
		}
	}
	target.Path = hc.policy.path
	if u.load.tlsName != "" {
		ctx = context.WithValue(ctx, serverNameKey{}, u.load.tlsName)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return false, scrubCheckError(err.Error(), u.URL)
	}
	if u.load.host != "" {
		req.Host = u.load.host
	}
	req.Header.Set("User-Agent", "connmgr-health-check")
	resp, err := hc.rt.RoundTrip(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return false, fmt.Sprintf("no answer within %v", hc.policy.timeout)
		}
		return false, scrubCheckError(describeCheckError(err), u.URL)
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
	if !hc.policy.passes(resp.StatusCode) {
		return false, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return true, ""
}

// scrubCheckError masks what of the upstream's URL could be secret (its
// userinfo) wherever an error quoted it: the text is shown on the status
// page and in Health. A URL is written with its userinfo escaped
// ("user:p%40ss@"), a message may quote it raw: both forms are masked
// where they stand as userinfo, and the password and the user name
// wherever they appear on their own, unless they are too short to tell
// from the rest of the message.
func scrubCheckError(msg string, u *url.URL) string {
	if u == nil || u.User == nil {
		return msg
	}
	name := u.User.Username()
	p, hasPassword := u.User.Password()
	userinfo := []string{u.User.String(), name}
	if hasPassword {
		userinfo = append(userinfo, name+":"+p)
	}
	for _, ui := range userinfo {
		if ui != "" {
			msg = strings.ReplaceAll(msg, ui+"@", redact.Mask+"@")
		}
	}
	for _, s := range []string{p, url.QueryEscape(p), url.PathEscape(p), name, url.QueryEscape(name), url.PathEscape(name)} {
		if len(s) >= minScrubbed {
			msg = strings.ReplaceAll(msg, s, redact.Mask)
		}
	}
	return msg
}

// minScrubbed is the shortest password or user name masked wherever it
// appears in a message: a shorter one would mask parts of words.
const minScrubbed = 4

// describeCheckError says what went wrong without the URL (the upstream
// is named next to it already).
func describeCheckError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
