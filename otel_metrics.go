package connmgr

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// durationBuckets are the semantic conventions' advisory bucket
// boundaries for http.client.request.duration, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// maxAttemptAttrSets bounds the cached attribute sets of attempts (one per
// endpoint, upstream, method, status and error type seen). Past it, sets
// are built per measurement: correct, a little slower.
const maxAttemptAttrSets = 4096

// otelMetrics holds the instruments of one meter provider. Every
// attribute set is built once and cached, so recording a measurement
// does not allocate. The names, units and attributes are documented in
// docs/observability.md.
type otelMetrics struct {
	requestDuration metric.Float64Histogram             // http.client.request.duration, per attempt
	activeRequests  metric.Int64UpDownCounter           // http.client.active_requests
	calls           metric.Int64Counter                 // connmgr.client.calls
	retries         metric.Int64Counter                 // connmgr.client.retries
	refusals        metric.Int64Counter                 // connmgr.client.refusals
	limiterWait     metric.Float64Histogram             // connmgr.client.limiter.wait
	transitions     metric.Int64Counter                 // connmgr.client.breaker.transitions
	registration    metric.Registration                 // the observable instruments' callback
	unregisterOnce  sync.Once                           //
	errs            []error                             // instrument creation errors (kept for tests)
	observables     observableInstruments               //
	byEndpoint      sync.Map                            // endpoint key → *endpointInstruments
	lastEndpoint    atomic.Pointer[endpointInstruments] // the latest looked up: a run of calls to one endpoint skips the map
	lastAttempt     atomic.Pointer[attemptInstruments]  // the attempt sets last used: a run of attempts to one upstream takes no lock
	attemptMu       sync.Mutex                          // guards attempts
	attempts        map[attemptKey]*attemptInstruments

	cacheRegistration metric.Registration // the cache instruments' callback (otel_cache.go)
	// sdk is set when requestDuration is the OpenTelemetry SDK's, which
	// is not user code: it is called without the recovery helper.
	sdk bool
}

// observableInstruments read Manager.Stats() at each collection.
type observableInstruments struct {
	activeRequests metric.Int64ObservableUpDownCounter // http.client.active_requests, from attemptInstruments.active
	calls          metric.Int64ObservableCounter       // connmgr.client.calls, from endpointInstruments.outcomes
	breakerState   metric.Int64ObservableGauge         // connmgr.client.breaker.state
	inFlight       metric.Int64ObservableUpDownCounter // connmgr.client.calls.active
	concInUse      metric.Int64ObservableUpDownCounter // connmgr.client.concurrency.in_use
	concQueued     metric.Int64ObservableUpDownCounter // connmgr.client.concurrency.queued
	limiterRate    metric.Float64ObservableGauge       // connmgr.client.limiter.rate
	reloads        metric.Int64ObservableCounter       // connmgr.client.config.reloads
	fleetOutages   metric.Int64ObservableCounter       // connmgr.client.fleet.outages
	fleetHealthy   metric.Int64ObservableGauge         // connmgr.client.fleet.healthy
	upHealth       metric.Int64ObservableGauge         // connmgr.client.upstream.health
	upEjected      metric.Int64ObservableGauge         // connmgr.client.upstream.ejected
	upEjections    metric.Int64ObservableCounter       // connmgr.client.upstream.ejections
}

// endpointInstruments holds the attribute sets of one endpoint, built
// once.
type endpointInstruments struct {
	key      string
	base     []metric.RecordOption         // connmgr.endpoint
	outcomes [numOutcomes]atomic.Int64     // calls by outcome, reported by the callback
	mu       sync.Mutex                    // guards the maps below
	reasons  map[string][]metric.AddOption // by retry reason
	refusals map[Refusal][]metric.AddOption
}

type attemptKey struct {
	endpoint, upstream, method string
	status                     int
	errType                    string
}

// attemptInstruments holds the attribute sets of an attempt's metrics.
type attemptInstruments struct {
	om       *otelMetrics
	active   atomic.Int64          // attempts waiting for their headers, reported by the callback
	set      attribute.Set         // method, server address and port, endpoint
	duration []metric.RecordOption // the above, plus status and error type
	endpoint string
	upstream string
	method   string
	// last is the duration set of the latest status and error type seen,
	// so that a run of the same outcome takes no lock.
	last atomic.Pointer[durationSet]
}

type durationSet struct {
	status  int
	errType string
	opts    []metric.RecordOption
}

// durationOpts returns the cached duration set for status and errType,
// or nil.
func (ai *attemptInstruments) durationOpts(status int, errType string) []metric.RecordOption {
	if l := ai.last.Load(); l != nil && l.status == status && l.errType == errType {
		return l.opts
	}
	return nil
}

func newOTelMetrics(m *Manager, mp metric.MeterProvider) *otelMetrics {
	meter := mp.Meter(instrumentationName)
	om := &otelMetrics{attempts: map[attemptKey]*attemptInstruments{}}
	var err error
	keep := func(e error) {
		if e != nil {
			om.errs = append(om.errs, e)
		}
	}
	om.requestDuration, err = meter.Float64Histogram("http.client.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP client requests (each attempt, until its response headers or its error)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	keep(err)
	om.retries, err = meter.Int64Counter("connmgr.client.retries",
		metric.WithUnit("{retry}"), metric.WithDescription("Retries decided, by endpoint and reason (status, connect, error, hook)."))
	keep(err)
	om.refusals, err = meter.Int64Counter("connmgr.client.refusals",
		metric.WithUnit("{attempt}"), metric.WithDescription("Calls or attempts refused locally, by endpoint and reason (circuit_open, rate_limited, concurrency_limit, no_healthy_upstream, retry_budget, closed)."))
	keep(err)
	om.limiterWait, err = meter.Float64Histogram("connmgr.client.limiter.wait",
		metric.WithUnit("s"), metric.WithDescription("Time attempts waited for a rate-limit token (only attempts that waited)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	keep(err)
	om.transitions, err = meter.Int64Counter("connmgr.client.breaker.transitions",
		metric.WithUnit("{transition}"), metric.WithDescription("Circuit breaker state changes, by endpoint, upstream and new state."))
	keep(err)

	ob := &om.observables
	ob.activeRequests, err = meter.Int64ObservableUpDownCounter("http.client.active_requests",
		metric.WithUnit("{request}"), metric.WithDescription("Number of active HTTP requests (attempts sent that have not had their response headers or error yet)."))
	keep(err)
	ob.calls, err = meter.Int64ObservableCounter("connmgr.client.calls",
		metric.WithUnit("{call}"), metric.WithDescription("Calls finished, by endpoint and outcome (success, failure, error, refused, fallback)."))
	keep(err)
	ob.breakerState, err = meter.Int64ObservableGauge("connmgr.client.breaker.state",
		metric.WithUnit("{state}"), metric.WithDescription("Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open."))
	keep(err)
	ob.inFlight, err = meter.Int64ObservableUpDownCounter("connmgr.client.calls.active",
		metric.WithUnit("{call}"), metric.WithDescription("Calls in flight, by endpoint."))
	keep(err)
	ob.concInUse, err = meter.Int64ObservableUpDownCounter("connmgr.client.concurrency.in_use",
		metric.WithUnit("{call}"), metric.WithDescription("Concurrency-cap slots held, by endpoint (endpoints with max_concurrent)."))
	keep(err)
	ob.concQueued, err = meter.Int64ObservableUpDownCounter("connmgr.client.concurrency.queued",
		metric.WithUnit("{call}"), metric.WithDescription("Calls waiting for a concurrency-cap slot, by endpoint."))
	keep(err)
	ob.limiterRate, err = meter.Float64ObservableGauge("connmgr.client.limiter.rate",
		metric.WithUnit("{attempt}/s"), metric.WithDescription("Current rate limit per second, by endpoint (below the configured rate when adaptation slowed it)."))
	keep(err)
	ob.reloads, err = meter.Int64ObservableCounter("connmgr.client.config.reloads",
		metric.WithUnit("{reload}"), metric.WithDescription("Config reloads, by result (success, failure)."))
	keep(err)
	ob.fleetOutages, err = meter.Int64ObservableCounter("connmgr.client.fleet.outages",
		metric.WithUnit("{outage}"), metric.WithDescription("Times the fleet store (Redis) became unavailable; one per outage, not per call."))
	keep(err)
	ob.fleetHealthy, err = meter.Int64ObservableGauge("connmgr.client.fleet.healthy",
		metric.WithUnit("1"), metric.WithDescription("1 while the fleet store (Redis) is reachable, 0 while limits use the on_error policy."))
	keep(err)
	ob.upHealth, err = meter.Int64ObservableGauge("connmgr.client.upstream.health",
		metric.WithUnit("{status}"), metric.WithDescription("Active health check status per upstream: 0 unknown, 1 healthy, 2 degraded, 3 unhealthy."))
	keep(err)
	ob.upEjected, err = meter.Int64ObservableGauge("connmgr.client.upstream.ejected",
		metric.WithUnit("{upstream}"), metric.WithDescription("1 while outlier detection holds the upstream out of the balancer, else 0."))
	keep(err)
	ob.upEjections, err = meter.Int64ObservableCounter("connmgr.client.upstream.ejections",
		metric.WithUnit("{ejection}"), metric.WithDescription("Outlier ejections per upstream since it joined the endpoint."))
	keep(err)
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		om.observeCounts(o)
		return om.observe(m.Stats(), o)
	}, ob.activeRequests, ob.calls, ob.breakerState, ob.inFlight, ob.concInUse, ob.concQueued, ob.limiterRate, ob.reloads,
		ob.upHealth, ob.upEjected, ob.upEjections, ob.fleetOutages, ob.fleetHealthy)
	keep(err)
	om.registration = reg
	om.cacheRegistration = registerCacheMetrics(m, meter, keep) // otel_cache.go
	om.sdk = isSDKInstrument(om.requestDuration)
	if len(om.errs) > 0 {
		m.logger.Warn("connmgr: some OpenTelemetry instruments could not be created", "errors", len(om.errs), "error", om.errs[0].Error())
	}
	return om
}

func (om *otelMetrics) unregister() {
	om.unregisterOnce.Do(func() {
		if om.registration != nil {
			_ = om.registration.Unregister()
		}
		if om.cacheRegistration != nil {
			_ = om.cacheRegistration.Unregister()
		}
	})
}

// observe reports the observable instruments from one Stats snapshot.
func (om *otelMetrics) observe(s Stats, o metric.Observer) error {
	ob := &om.observables
	for key, es := range s.Endpoints {
		ep := attribute.String(string(attrEndpoint), key)
		epSet := metric.WithAttributes(ep)
		o.ObserveInt64(ob.inFlight, es.InFlight, epSet)
		for up, bs := range es.Breakers {
			o.ObserveInt64(ob.breakerState, int64(bs.State), metric.WithAttributes(ep, attrUpstream.String(up)))
		}
		for _, us := range es.Upstreams {
			set := metric.WithAttributes(ep, attrUpstream.String(upstreamAuthority(us.Upstream)))
			o.ObserveInt64(ob.upHealth, int64(us.Health), set)
			ejected := int64(0)
			if us.Ejected {
				ejected = 1
			}
			o.ObserveInt64(ob.upEjected, ejected, set)
			o.ObserveInt64(ob.upEjections, int64(us.Ejections), set)
		}
		if es.Concurrency != nil {
			o.ObserveInt64(ob.concInUse, int64(es.Concurrency.InUse), epSet)
			o.ObserveInt64(ob.concQueued, es.Concurrency.Queued, epSet)
		}
		if rl := es.RateLimit; rl != nil && rl.Per > 0 {
			o.ObserveFloat64(ob.limiterRate, rl.CurrentRate/rl.Per.Seconds(), epSet)
		}
	}
	o.ObserveInt64(ob.reloads, int64(s.Reload.Successes), metric.WithAttributes(attrReloadResult.String("success")))
	o.ObserveInt64(ob.reloads, int64(s.Reload.Failures), metric.WithAttributes(attrReloadResult.String("failure")))
	if f := s.Fleet; f != nil {
		o.ObserveInt64(ob.fleetOutages, f.Outages)
		healthy := int64(0)
		if f.Healthy {
			healthy = 1
		}
		o.ObserveInt64(ob.fleetHealthy, healthy)
	}
	return nil
}

// endpoint returns the endpoint's cached attribute sets.
func (om *otelMetrics) endpoint(key string) *endpointInstruments {
	if ei := om.lastEndpoint.Load(); ei != nil && ei.key == key {
		return ei // inlined: the pipeline asks at every call
	}
	return om.endpointSlow(key)
}

func (om *otelMetrics) endpointSlow(key string) *endpointInstruments {
	if v, ok := om.byEndpoint.Load(key); ok {
		ei := v.(*endpointInstruments)
		om.lastEndpoint.Store(ei)
		return ei
	}
	ei := &endpointInstruments{
		key:      key,
		base:     []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrEndpoint.String(key)))},
		reasons:  map[string][]metric.AddOption{},
		refusals: map[Refusal][]metric.AddOption{},
	}
	v, _ := om.byEndpoint.LoadOrStore(key, ei)
	return v.(*endpointInstruments)
}

// addOpts returns the cached options for the endpoint plus one attribute.
func addOpts[K comparable](ei *endpointInstruments, m map[K][]metric.AddOption, k K, kv attribute.KeyValue) []metric.AddOption {
	ei.mu.Lock()
	defer ei.mu.Unlock()
	if o, ok := m[k]; ok {
		return o
	}
	o := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrEndpoint.String(ei.key), kv))}
	if len(m) < 64 { // reasons and outcomes are fixed sets; bound a misbehaving one
		m[k] = o
	}
	return o
}

func (om *otelMetrics) refused(ei *endpointInstruments, r Refusal) {
	om.refusals.Add(context.Background(), 1, addOpts(ei, ei.refusals, r, attrRefusal.String(string(r)))...)
}

func (om *otelMetrics) retried(ei *endpointInstruments, reason string) {
	om.retries.Add(context.Background(), 1, addOpts(ei, ei.reasons, reason, attrRetryReason.String(reason))...)
}

// attemptAttrs returns the cached attribute sets for k.
func (om *otelMetrics) attemptAttrs(k attemptKey) *attemptInstruments {
	om.attemptMu.Lock()
	if ai, ok := om.attempts[k]; ok {
		om.attemptMu.Unlock()
		return ai
	}
	om.attemptMu.Unlock()
	host, port := splitUpstream(k.upstream)
	kvs := []attribute.KeyValue{attrMethod.String(k.method), attrServerAddress.String(host), attrEndpoint.String(k.endpoint)}
	if port > 0 {
		kvs = append(kvs, attrServerPort.Int(port))
	}
	active := attribute.NewSet(kvs...)
	if k.status > 0 {
		kvs = append(kvs, attrStatus.Int(k.status))
	}
	if k.errType != "" {
		kvs = append(kvs, attrErrorType.String(k.errType))
	}
	ai := &attemptInstruments{
		om:       om,
		set:      active,
		duration: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))},
		endpoint: k.endpoint,
		upstream: k.upstream,
		method:   k.method,
	}
	om.attemptMu.Lock()
	defer om.attemptMu.Unlock()
	if prev, ok := om.attempts[k]; ok {
		return prev // built at the same time by another call
	}
	if len(om.attempts) < maxAttemptAttrSets || k.status == 0 && k.errType == "" {
		// The sets of active requests (no status) are always kept: the
		// callback reports their counts.
		om.attempts[k] = ai
	}
	return ai
}

// upstreamAuthority drops the scheme of an upstream's key
// ("https://pay-1:8443"), so that connmgr.upstream is the authority on
// every instrument, as on the breaker's and the attempts'.
func upstreamAuthority(key string) string {
	if i := strings.Index(key, "://"); i >= 0 {
		return key[i+3:]
	}
	return key
}

// splitUpstream splits an authority into host and port; the port is 0
// when the authority has none.
func splitUpstream(up string) (string, int) {
	host, port, err := net.SplitHostPort(up)
	if err != nil {
		return up, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// observeCounts reports the counters kept in atomics: active requests
// and calls by outcome.
func (om *otelMetrics) observeCounts(o metric.Observer) {
	om.attemptMu.Lock()
	for k, ai := range om.attempts {
		if k.status == 0 && k.errType == "" {
			o.ObserveInt64(om.observables.activeRequests, ai.active.Load(), metric.WithAttributeSet(ai.set))
		}
	}
	om.attemptMu.Unlock()
	om.byEndpoint.Range(func(_, v any) bool {
		ei := v.(*endpointInstruments)
		for i := range ei.outcomes {
			if n := ei.outcomes[i].Load(); n > 0 {
				o.ObserveInt64(om.observables.calls, n, metric.WithAttributes(attrEndpoint.String(ei.key), attrOutcome.String(callOutcomeKind(i).String())))
			}
		}
		return true
	})
}

// breakerTransition counts a breaker state change.
func (om *otelMetrics) breakerTransition(c StateChange) {
	om.transitions.Add(context.Background(), 1, metric.WithAttributes(
		attrEndpoint.String(c.Endpoint), attrUpstream.String(c.Upstream), attrBreakerTarget.String(c.To.String())))
}
