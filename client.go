package connmgr

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr/internal/redact"
)

// Manager sends HTTP requests under per-endpoint policy: timeouts, safe
// retries with backoff and a retry budget, auth and default headers, and
// a chain of hooks. It is an http.RoundTripper, so it also serves any
// *http.Client (see Client).
//
// Each call resolves its endpoint from the request URL's authority and
// runs the pipeline the package documentation describes. The caller's
// request is never modified; each attempt sends its own clone.
//
// A Manager is safe for concurrent use. Close it (or Shutdown it) when
// done, to stop background work and close idle connections.
type Manager struct {
	recoverer // recovers and logs the panics of user code (recover.go)

	table  atomic.Pointer[endpointTable]
	chain  atomic.Pointer[hookChain]
	redact atomic.Pointer[redact.Redactor]

	opts   options
	logger *slog.Logger
	client *http.Client // Transport is the Manager; used by Do, Get, Post
	// now is the Manager's clock. Tests may replace it before the first
	// call; nil-free after New.
	now       func() time.Time
	realClock bool                      // now is time.Now
	epoch     atomic.Pointer[time.Time] // callStart's last time.Now (clock.go)
	events    *dispatcher               // breaker state changes, to the listeners
	observers []Observer                // WithObserver; empty: calls are not observed
	id        string                    // this Manager in fleet signals
	fleet     *breakerFleet             // shares breaker state; nil without a BreakerStore

	// pluginMu serializes changes to the hook chain and guards hookSeq.
	pluginMu sync.Mutex
	hookSeq  int

	// reloadMu serializes New's first build, Reload and Close, and guards
	// stats and retired.
	reloadMu sync.Mutex
	stats    map[string]*endpointStats // by endpoint key; kept across reloads
	policies map[string]*breakerPolicy // during buildTable: compiled breaker policies by config
	retired  []retiredPool             // pools of replaced endpoints still serving calls

	inflight  atomic.Int64
	closed    atomic.Bool
	drained   chan struct{} // closed once closed is set and inflight is 0
	drainOnce sync.Once
	closeOnce sync.Once

	// cfgWatch counts reloads and runs the file watcher (config_watch.go).
	cfgWatch configWatch

	// ownedFleet is the store the Manager opened for the redis block, closed
	// by Close (fleet.go).
	ownedFleet FleetStore
}

var _ http.RoundTripper = (*Manager)(nil)

// Option carries what is not data: loggers, transports, plugins,
// listeners.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger        *slog.Logger
	transport     http.RoundTripper
	plugins       []Plugin
	drainProgress func(remaining int64)
	drainInterval time.Duration
	tlsConfigs    map[string]*tls.Config // WithTLSConfig, by endpoint key
	// reloadListener and configEnvPrefix: see config_watch.go.
	reloadListener  func(error)
	configEnvPrefix string

	clock          func() time.Time // tests only: see withClock
	stateListeners []func(StateChange)
	keyFuncs       map[string]KeyFunc // by endpoint key (normalised by New)
	// endpointKeys lists the endpoints the options keyed by endpoint
	// name; keysResolved is set once New has normalised them
	// (endpoint_keys.go).
	endpointKeys []endpointKeyRef
	keysResolved bool

	// Extension points (observer.go, balancer.go, store.go,
	// middleware.go, breaker_plug.go, retry_policy.go).
	observers           []Observer
	balancers           map[string]BalancerBuilder
	resolver            Resolver // WithResolver: dns:/// upstreams
	rateStore           RateLimitStore
	breakerStore        BreakerStore
	middleware          []Middleware
	endpointMiddleware  map[string][]Middleware
	breakerFactory      BreakerFactory
	retryPolicy         RetryPolicy
	endpointRetryPolicy map[string]RetryPolicy
	backoff             BackoffFunc
	endpointBackoff     map[string]BackoffFunc
	fleetConnector      FleetConnector // fleet.go
	fleetTimeout        time.Duration  // bound on a store call; 0: fleetTimeout
	fleetRedis          RedisConfig    // the redis block New read

	telemetry telemetryOptions // OpenTelemetry, status window: otel_options.go
}

// WithLogger sets the structured logger. Nil, the default, is silent.
// Secrets never reach it.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithTransport replaces the connection pools the Manager would build
// with rt, for every endpoint. Transport and TLS settings in the config
// then have no effect. Use it for tests, or to layer connmgr over a
// transport you already tune.
func WithTransport(rt http.RoundTripper) Option {
	return optionFunc(func(o *options) { o.transport = rt })
}

// WithPlugins adds plugins to the chain, in order, as Use would.
func WithPlugins(p ...Plugin) Option {
	return optionFunc(func(o *options) { o.plugins = append(o.plugins, p...) })
}

// WithDrainProgress has Shutdown report the calls still in flight as soon
// as it starts (when new calls are already refused), then every interval
// (default 1s when interval <= 0) while it waits.
func WithDrainProgress(interval time.Duration, report func(remaining int64)) Option {
	return optionFunc(func(o *options) {
		o.drainProgress = report
		o.drainInterval = interval
	})
}

// New validates cfg and returns a Manager for it. An invalid cfg gives a
// *ConfigError naming every bad field; New never panics.
func New(cfg Config, opts ...Option) (*Manager, error) {
	m := &Manager{
		now:       time.Now,
		realClock: true,
		stats:     map[string]*endpointStats{},
		drained:   make(chan struct{}),
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&m.opts)
		}
	}
	m.logger = m.opts.logger
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	m.recoverer = recoverer{logger: m.logger}
	if m.opts.drainInterval <= 0 {
		m.opts.drainInterval = time.Second
	}
	if m.opts.clock != nil {
		m.now, m.realClock = m.opts.clock, false
	}
	m.client = &http.Client{Transport: m, CheckRedirect: CheckRedirect}
	m.events = &dispatcher{deliver: m.deliverStateChange}
	m.observers = m.opts.observers
	m.id = newManagerID()
	m.chain.Store(buildChain(nil))
	if err := m.Use(m.opts.plugins...); err != nil {
		return nil, err
	}
	if err := m.openFleet(cfg.Redis); err != nil {
		return nil, err
	}
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	cc, err := m.prepare(cfg)
	if err != nil {
		m.closeFleet()
		return nil, err
	}
	if m.opts.breakerStore != nil {
		m.fleet = newBreakerFleet(m, m.opts.breakerStore, m.id)
	}
	table, err := m.buildTable(cc, nil)
	if err != nil {
		if m.fleet != nil {
			m.fleet.close()
		}
		m.closeFleet()
		return nil, err
	}
	m.redact.Store(cc.redactor)
	m.table.Store(table)
	m.setupTelemetry()
	return m, nil
}

// Reload validates cfg and swaps it in whole, or changes nothing and
// returns the error. Endpoints whose settings did not change keep their
// state (retry budget, pool, breaker); calls in flight finish under the
// settings they started with. Counters in Stats survive.
func (m *Manager) Reload(cfg Config) (err error) {
	defer func() { m.recordReload(err) }() // runs after reloadMu is released
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	cc, err := m.prepare(cfg)
	if err != nil {
		return err
	}
	m.noteRedisReload(cfg.Redis)
	old := m.table.Load()
	table, err := m.buildTable(cc, old)
	if err != nil {
		return err
	}
	m.redact.Store(cc.redactor)
	m.table.Store(table)
	stopLB(old, table)
	// Pools of endpoints that were replaced serve only the calls still in
	// flight; drop their idle connections now, again once those calls are
	// surely over, and on Close.
	kept := map[*endpoint]bool{table.def: true}
	for _, ep := range table.byKey {
		kept[ep] = true
	}
	now := m.now()
	m.pruneRetired(now)
	for _, ep := range append(old.endpoints(), old.def) {
		if pool := ep.pool(); !kept[ep] && pool != nil {
			pool.CloseIdleConnections()
			m.retired = append(m.retired, retiredPool{pool: pool, until: now.Add(retiredGrace(ep))})
		}
	}
	return nil
}

// retiredPool is the connection pool of an endpoint a reload replaced,
// kept until the calls that may still use it are over.
type retiredPool struct {
	pool  *http.Transport
	until time.Time
}

// retiredGrace is how long calls started under ep may still use its
// pool: its total timeout (or, without one, its per-try timeout), plus
// the idle timeout after which the pool closes idle connections itself.
// A pool past it is forgotten after a last CloseIdleConnections.
func retiredGrace(ep *endpoint) time.Duration {
	bound := ep.totalTimeout
	if bound == 0 {
		bound = ep.timeout
	}
	if bound == 0 {
		bound = time.Hour
	}
	return bound + ep.cfg.Transport.IdleConnTimeout
}

// pruneRetired forgets the retired pools whose grace has passed, so that a
// service reloading for weeks does not keep every pool it ever had.
// Requires reloadMu.
func (m *Manager) pruneRetired(now time.Time) {
	kept := m.retired[:0]
	for _, r := range m.retired {
		if now.After(r.until) {
			r.pool.CloseIdleConnections()
			continue
		}
		kept = append(kept, r)
	}
	clear(m.retired[len(kept):])
	m.retired = kept
}

// buildTable turns a compiled config into an endpoint table, reusing the
// endpoints of old whose resolved settings are unchanged. Requires
// reloadMu.
func (m *Manager) buildTable(cc *compiledConfig, old *endpointTable) (*endpointTable, error) {
	t := &endpointTable{
		hostPort:   map[string]*endpoint{},
		implied80:  map[string]*endpoint{},
		implied443: map[string]*endpoint{},
		host:       map[string]*endpoint{},
		wildcard:   map[string]*endpoint{},
		byKey:      make(map[string]*endpoint, len(cc.endpoints)),
		groups:     map[string]*breakerSet{},
	}
	m.policies = map[string]*breakerPolicy{}
	defer func() { m.policies = nil }()
	var created []*endpoint
	var shared configInterner
	build := func(key string, kind endpointKind, cfg EndpointConfig) (*endpoint, error) {
		var prev *endpoint
		if old != nil {
			prev = old.def
			if key != defaultKey {
				prev = old.byKey[key]
			}
			if prev != nil && reflect.DeepEqual(*prev.cfg, cfg) {
				if g := cfg.CircuitBreaker.Group; g != "" && prev.breakers != nil {
					t.groups[g] = prev.breakers
				}
				return prev, nil
			}
		}
		ep, err := m.newEndpoint(key, kind, shared.intern(cfg), prev, old, t.groups)
		if err != nil {
			return nil, err
		}
		m.startLB(ep, prev)
		created = append(created, ep)
		return ep, nil
	}
	fail := func(err error) (*endpointTable, error) {
		for _, ep := range created {
			ep.lb.stop()
			if pool := ep.pool(); pool != nil {
				pool.CloseIdleConnections()
			}
		}
		return nil, err
	}
	def, err := build(defaultKey, kindHost, cc.def)
	if err != nil {
		return fail(err)
	}
	t.def = def
	for key, ce := range cc.endpoints {
		ep, err := build(key, ce.kind, ce.cfg)
		if err != nil {
			return fail(err)
		}
		t.byKey[key] = ep
		switch ce.kind {
		case kindHostPort:
			t.hostPort[key] = ep
			host, port := splitAuthority(key)
			switch port {
			case "80":
				t.implied80[host] = ep
			case "443":
				t.implied443[host] = ep
			}
		case kindHost:
			t.host[key] = ep
		case kindWildcard:
			t.wildcard[key[1:]] = ep // "*.example.com" is stored as ".example.com"
		}
	}
	return t, nil
}

// newEndpoint builds the runtime endpoint for a resolved config. prev is
// the endpoint of the same key being replaced, if any: its breakers,
// limiter and bulkhead carry over when their own settings are unchanged.
// groups holds the shared breaker sets of the table being built. Requires
// reloadMu.
func (m *Manager) newEndpoint(key string, kind endpointKind, cfg *EndpointConfig, prev *endpoint, old *endpointTable, groups map[string]*breakerSet) (*endpoint, error) {
	ep := &endpoint{
		key:          key,
		kind:         kind,
		cfg:          cfg,
		timeout:      positive(cfg.Timeout),
		totalTimeout: positive(cfg.TotalTimeout),
		retry:        newRetryPolicy(cfg.Retry),
		budget:       newRetryBudget(cfg.Retry.Budget),
		setHeaders:   headersToSet(*cfg),
	}
	if cfg.Fallback != "" {
		var fbKind endpointKind
		ep.fallback, fbKind, _ = normalizeKey(cfg.Fallback)
		ep.fallbackHost = fallbackAuthority(ep.fallback, fbKind)
	}
	m.buildLimits(ep, prev, old, groups)
	m.applyEndpointOptions(ep)
	if s := m.stats[key]; s != nil {
		ep.stats = s
	} else {
		ep.stats = &endpointStats{now: m.clockNow}
		m.stats[key] = ep.stats
	}
	ep.m = m
	if m.opts.transport != nil {
		ep.transport = m.opts.transport
		return ep, nil
	}
	if !tlsSettingsSet(cfg.TLS) && m.opts.tlsBase(key) == nil {
		return ep, nil // the pool is built on first use: see endpoint.roundTripper
	}
	p, err := m.newPool(ep)
	if err != nil {
		return nil, err
	}
	ep.transport, ep.ownTransport = p.rt, p.own
	return ep, nil
}

// since is the time elapsed from t by the Manager's clock. With the real
// clock it reads only the monotonic clock, which is cheaper than time.Now.
func (m *Manager) since(t time.Time) time.Duration {
	if m.realClock {
		return time.Since(t)
	}
	return m.now().Sub(t)
}

func positive(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// endpoints lists the table's configured endpoints (not the default).
func (t *endpointTable) endpoints() []*endpoint {
	out := make([]*endpoint, 0, len(t.byKey))
	for _, ep := range t.byKey {
		out = append(out, ep)
	}
	return out
}

// Client returns a new *http.Client whose Transport is the Manager, for
// libraries that take one. Redirects it follows go through the pipeline
// hop by hop, under CheckRedirect (no query in a Referer sent to another
// host). Each call returns a new Client, so setting its fields does
// not affect others.
func (m *Manager) Client() *http.Client {
	return &http.Client{Transport: m, CheckRedirect: CheckRedirect}
}

// Do sends req through the pipeline and follows redirects, as
// http.Client.Do does. Close the response body when done: that is when
// the call ends (the per-try timeout covers reading the body).
func (m *Manager) Do(req *http.Request) (*http.Response, error) {
	resp, err := m.client.Do(req)
	return resp, m.redactURLError(err)
}

// Get issues a GET to url under ctx.
func (m *Manager) Get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, m.redactURLError(err)
	}
	return m.Do(req)
}

// Post issues a POST of body, with the given Content-Type, to url under
// ctx. A POST is retried only when the connection was never made, unless
// the request carries an Idempotency-Key or the endpoint opts in.
func (m *Manager) Post(ctx context.Context, url, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		if rc, ok := body.(io.Closer); ok {
			_ = rc.Close()
		}
		return nil, m.redactURLError(err)
	}
	req.Header.Set("Content-Type", contentType)
	return m.Do(req)
}

// redactURLError replaces the URL net/http puts in a *url.Error with its
// redacted form, so a token in a query string never reaches a log.
func (m *Manager) redactURLError(err error) error {
	if err == nil {
		return nil // the common case: no allocation
	}
	return m.redactURLErrorSlow(err)
}

func (m *Manager) redactURLErrorSlow(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	ue.URL = redactRawURL(m.redact.Load(), ue.URL)
	return err
}

// Result is the outcome of one request of DoAll.
type Result struct {
	// Response is set on success; close its body.
	Response *http.Response
	// Err is set on failure.
	Err error
}

// DoAll sends reqs with at most concurrency in flight at once and returns
// their results in input order. Each request runs under its own context
// and under ctx: when ctx ends, calls in flight are cancelled and those
// not yet started fail with ctx's error. A concurrency below 1 is an
// error for every request.
//
// Each response's per-try timeout keeps running until its body is closed,
// and DoAll returns only when every call is done: a response held while
// slower calls finish may run out of time before its body is read. Give
// such endpoints a timeout that covers the whole batch, or send the
// requests with Do from your own goroutines and read each body as it
// arrives.
func (m *Manager) DoAll(ctx context.Context, reqs []*http.Request, concurrency int) []Result {
	results := make([]Result, len(reqs))
	if concurrency < 1 {
		err := fmt.Errorf("connmgr: DoAll: concurrency must be >= 1, got %d", concurrency)
		for i, r := range reqs {
			if r != nil {
				closeRequestBody(r.Body)
			}
			results[i].Err = err
		}
		return results
	}
	if concurrency > len(reqs) {
		concurrency = len(reqs)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(concurrency)
	for w := 0; w < concurrency; w++ {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				results[i] = m.doOne(ctx, i, reqs[i])
			}
		}()
	}
	wg.Wait()
	return results
}

func (m *Manager) doOne(ctx context.Context, i int, req *http.Request) Result {
	if req == nil {
		return Result{Err: fmt.Errorf("connmgr: DoAll: reqs[%d] is nil", i)}
	}
	if err := ctx.Err(); err != nil {
		closeRequestBody(req.Body)
		return Result{Err: fmt.Errorf("connmgr: DoAll: reqs[%d] not sent: %w", i, err)}
	}
	rctx := req.Context()
	if rctx == context.Background() {
		resp, err := m.Do(req.WithContext(ctx))
		return Result{Response: resp, Err: err}
	}
	// Both the request's own context and ctx must end the call.
	merged, cancel := context.WithCancelCause(rctx)
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	resp, err := m.Do(req.WithContext(merged))
	if err != nil || resp == nil {
		stop()
		cancel(nil)
		return Result{Err: err}
	}
	// The merged context must live until the body is closed.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { stop(); cancel(nil) }}
	return Result{Response: resp}
}

// cancelOnClose ends a context when the body it guards is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
	once   sync.Once
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(c.cancel)
	return err
}

// CloseIdleConnections closes idle connections of every pool, including
// a transport given with WithTransport when it supports it.
func (m *Manager) CloseIdleConnections() {
	type idleCloser interface{ CloseIdleConnections() }
	if ic, ok := m.opts.transport.(idleCloser); ok {
		ic.CloseIdleConnections()
	}
	t := m.table.Load()
	for _, ep := range append(t.endpoints(), t.def) {
		if pool := ep.pool(); pool != nil {
			pool.CloseIdleConnections()
		}
	}
	m.reloadMu.Lock()
	for _, r := range m.retired {
		r.pool.CloseIdleConnections()
	}
	m.reloadMu.Unlock()
}

// acquire admits a new call, or reports false once the Manager is closed.
func (m *Manager) acquire(ep *endpoint) bool {
	m.inflight.Add(1)
	if m.closed.Load() {
		m.releaseManager()
		return false
	}
	ep.stats.inFlight.Add(1)
	return true
}

// acquireContinuation admits the continuation of a call already in
// flight (a fallback), even while the Manager is closing: Shutdown waits
// for it as for the call it continues.
func (m *Manager) acquireContinuation(ep *endpoint) {
	m.inflight.Add(1)
	ep.stats.inFlight.Add(1)
}

// release ends a call admitted by acquire (and by the endpoint's
// concurrency cap, which it gives the slot back to).
func (m *Manager) release(ep *endpoint) {
	if ep.bulkhead != nil {
		ep.bulkhead.release()
	}
	ep.stats.inFlight.Add(-1)
	m.releaseManager()
}

// releaseUncapped ends a call admitted by acquire but refused a slot by
// the concurrency cap.
func (m *Manager) releaseUncapped(ep *endpoint) {
	ep.stats.inFlight.Add(-1)
	m.releaseManager()
}

func (m *Manager) releaseManager() {
	if m.inflight.Add(-1) == 0 && m.closed.Load() {
		m.drainOnce.Do(func() { close(m.drained) })
	}
}

// Shutdown stops new calls (they fail with ErrClosed), waits for the
// calls in flight to finish (their bodies closed) until ctx ends,
// reporting progress if WithDrainProgress is set, then closes the
// Manager. It returns an error saying how many calls were still in flight
// if ctx ended first. It is safe to call more than once.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.beginClose()
	var tick <-chan time.Time
	if m.opts.drainProgress != nil {
		t := time.NewTicker(m.opts.drainInterval)
		defer t.Stop()
		tick = t.C
		m.opts.drainProgress(m.inflight.Load())
	}
	for {
		select {
		case <-m.drained:
			return m.Close()
		case <-tick:
			m.opts.drainProgress(m.inflight.Load())
		case <-ctx.Done():
			remaining := m.inflight.Load()
			_ = m.Close()
			if remaining <= 0 {
				return nil
			}
			calls := "calls"
			if remaining == 1 {
				calls = "call"
			}
			return fmt.Errorf("connmgr: shutdown: %d %s still in flight: %w", remaining, calls, ctx.Err())
		}
	}
}

func (m *Manager) beginClose() {
	m.closed.Store(true)
	if m.inflight.Load() == 0 {
		m.drainOnce.Do(func() { close(m.drained) })
	}
}

// Close stops new calls (they fail with ErrClosed), stops background
// work, closes plugins that have a Close method and closes idle
// connections. Calls in flight are not waited for; use Shutdown for
// that. It is safe to call more than once.
func (m *Manager) Close() error {
	m.beginClose()
	m.closeOnce.Do(func() {
		m.pluginMu.Lock()
		plugins := m.chain.Load().plugins
		m.pluginMu.Unlock()
		// Each step runs whatever the one before did: closePlugin
		// recovers a Close that panics.
		for _, p := range plugins {
			m.closePlugin(p)
		}
		m.stopWatch()
		m.reloadMu.Lock() // no reload may start upstreams after this
		stopLB(m.table.Load(), nil)
		m.reloadMu.Unlock()
		if m.fleet != nil {
			m.fleet.close()
		}
		m.closeFleet() // after the breaker fleet has unsubscribed
		m.CloseIdleConnections()
		m.opts.telemetry.close()
	})
	return nil
}
