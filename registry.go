package connmgr

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connmgr/connmgr/internal/redact"
)

// defaultKey names the endpoint that serves requests no key matches.
const defaultKey = "default"

// endpoint is the compiled, immutable policy for one endpoint key plus
// the state that outlives a single call (stats, retry budget, pool). A
// reload that leaves an endpoint's settings unchanged keeps its endpoint.
type endpoint struct {
	key  string
	kind endpointKind
	cfg  *EndpointConfig // resolved: inherited and defaulted; shared by endpoints whose configs are equal, never written to

	timeout      time.Duration // per try; 0 means none
	totalTimeout time.Duration // 0 means none
	retry        retryPolicy
	budget       *retryBudget
	// setHeaders are auth and default headers, added to a request that
	// does not already carry them. Empty on most endpoints, which then
	// skip cloning headers.
	setHeaders []headerValue
	// fallback is the normalized key of the fallback endpoint ("" for
	// none); fallbackHost is the URL authority requests are sent to there.
	fallback     string
	fallbackHost string

	// breakers is nil when the breaker is off; limiter nil without a rate
	// limit; bulkhead nil without a concurrency cap. A reload that keeps
	// their settings hands them on to the new endpoint, state and all.
	breakers *breakerSet
	limiter  *limiter
	bulkhead *bulkhead

	// picker, when set, chooses each attempt's upstream (load balancing
	// plugs in here); nil: the upstream is the request's host.
	picker atomic.Pointer[pickerSlot]
	// lb is the load balancing of an endpoint with upstreams (nil
	// without): its upstream set is the picker.
	lb *balanced
	// retryPolicy and backoffFunc replace retry_on and full jitter (nil: the config's).
	retryPolicy RetryPolicy
	backoffFunc BackoffFunc
	// mw is the endpoint's middleware chain, built on first use and
	// rebuilt when the plugins change.
	mw         atomic.Pointer[wrappedEndpoint]
	middleware []Middleware // WithEndpointMiddleware

	// transport and ownTransport are set at New for an endpoint whose
	// pool can fail to build (TLS files, pins, WithTLSConfig) or under
	// WithTransport; otherwise both are nil and the pool is built on the
	// endpoint's first call (lazy), so an idle endpoint costs little.
	transport http.RoundTripper
	// ownTransport is the pool this endpoint created (nil under
	// WithTransport); the Manager closes its idle connections when the
	// endpoint is retired or the Manager closes.
	ownTransport *http.Transport
	lazy         atomic.Pointer[endpointPool]
	lazyMu       sync.Mutex // serializes building lazy
	m            *Manager
	stats        *endpointStats
}

// headerValue is one header to set: its canonical name and its values,
// a slice built once per endpoint and shared (read-only) by every request.
type headerValue struct {
	name   string
	values []string
}

// compiledConfig is a validated Config with every endpoint resolved. It
// holds no resources; the Manager turns it into an endpointTable.
type compiledConfig struct {
	def       EndpointConfig
	endpoints map[string]compiledEndpoint // by normalized key
	redactor  *redact.Redactor
}

type compiledEndpoint struct {
	kind endpointKind
	cfg  EndpointConfig
}

func endpointPath(key string) string {
	if key == defaultKey {
		return defaultKey
	}
	return "endpoints[" + strconv.Quote(key) + "]"
}

// compile validates cfg and resolves every endpoint. It returns a
// *ConfigError listing every problem.
func compile(cfg Config) (*compiledConfig, error) {
	var p problems
	base := builtinDefaults()
	validateEndpoint(&p, defaultKey, cfg.Default)
	def := inherit(cfg.Default, base)
	checkResolved(&p, defaultKey, def)
	// A problem an endpoint only inherits from the default block is
	// reported once, there, not again for every endpoint.
	inherited := make(map[string]bool, len(p.list))
	for _, fe := range p.list {
		inherited[strings.TrimPrefix(fe.Path, defaultKey)+"\x00"+fe.Problem] = true
	}

	out := &compiledConfig{def: def, endpoints: make(map[string]compiledEndpoint, len(cfg.Endpoints))}
	original := make(map[string]string, len(cfg.Endpoints))
	keys := make([]string, 0, len(cfg.Endpoints))
	for k := range cfg.Endpoints {
		keys = append(keys, k)
	}
	// Sorted so problems come out in a stable order, and so that of two
	// keys differing only in case the one already in canonical form is
	// the one kept.
	sort.Slice(keys, func(i, j int) bool {
		li, lj := strings.ToLower(keys[i]), strings.ToLower(keys[j])
		if li != lj {
			return li < lj
		}
		return keys[i] > keys[j] // lower case sorts after upper case in ASCII
	})
	extraSecret := append([]string(nil), cfg.Redact.Headers...)
	for _, raw := range keys {
		path := endpointPath(raw)
		key, kind, problem := normalizeKey(raw)
		if problem != "" {
			p.add(path, "%s", problem)
			continue
		}
		if key == defaultKey {
			// Not path: endpointPath("default") names the default block.
			p.add("endpoints["+strconv.Quote(raw)+"]", `"default" is reserved: use Config.Default (the "default" block)`)
			continue
		}
		if prev, dup := original[key]; dup {
			p.add(path, "same endpoint as %q (keys are case-insensitive)", prev)
			continue
		}
		original[key] = raw
		ec := cfg.Endpoints[raw]
		validateEndpoint(&p, path, ec)
		resolved := inherit(ec, def)
		var rp problems
		checkResolved(&rp, path, resolved)
		for _, fe := range rp.list {
			if !inherited[strings.TrimPrefix(fe.Path, path)+"\x00"+fe.Problem] {
				p.list = append(p.list, fe)
			}
		}
		out.endpoints[key] = compiledEndpoint{kind: kind, cfg: resolved}
		if resolved.Auth.APIKey != "" {
			extraSecret = append(extraSecret, resolved.Auth.APIKeyHeader)
		}
	}
	if def.Auth.APIKey != "" {
		extraSecret = append(extraSecret, def.Auth.APIKeyHeader)
	}
	checkFallbacks(&p, cfg, original, out)
	checkBreakerGroups(&p, original, out)
	validateRedact(&p, cfg.Redact)
	validateRedis(&p, cfg.Redis)
	if err := p.err(); err != nil {
		return nil, err
	}
	out.redactor = redact.New(extraSecret, cfg.Redact.QueryKeys)
	return out, nil
}

// validateEndpoint checks the fields an endpoint (or the default) sets
// itself, naming each with its path. Zero fields inherit and are not checked.
func validateEndpoint(p *problems, path string, c EndpointConfig) {
	r := c.Retry
	rp := path + ".retry"
	if r.MaxAttempts < 0 {
		p.add(rp+".max_attempts", "must be >= 1, got %d", r.MaxAttempts)
	}
	if r.MaxAttempts > 100 {
		p.add(rp+".max_attempts", "must be <= 100, got %d", r.MaxAttempts)
	}
	nonNegative(p, rp+".initial_backoff", r.InitialBackoff)
	nonNegative(p, rp+".max_backoff", r.MaxBackoff)
	nonNegative(p, rp+".max_retry_after", r.MaxRetryAfter)
	checkStatuses(p, rp+".retry_on", r.RetryOn)
	if r.Budget.Ratio < 0 {
		p.add(rp+".budget.ratio", "must be >= 0, got %g", r.Budget.Ratio)
	}
	if r.Budget.MinPerSecond < 0 {
		p.add(rp+".budget.min_per_second", "must be >= 0, got %g", r.Budget.MinPerSecond)
	}

	a := c.Auth
	kinds := 0
	for _, set := range []bool{a.BearerToken != "", a.APIKey != "", a.Username != "" || a.Password != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		p.add(path+".auth", "set only one of bearer_token, api_key, username/password")
	}
	if a.Password != "" && a.Username == "" {
		p.add(path+".auth.username", "must be set when password is set")
	}
	if a.APIKeyHeader != "" && !validHeaderName(a.APIKeyHeader) {
		p.add(path+".auth.api_key_header", "not a valid header name")
	}
	for _, v := range []struct{ field, value string }{{"bearer_token", a.BearerToken}, {"api_key", a.APIKey}, {"username", a.Username}, {"password", a.Password}} {
		if !validHeaderValue(v.value) {
			p.add(path+".auth."+v.field, "must not contain control characters")
		}
	}
	for name, value := range c.Headers {
		hp := path + ".headers[" + strconv.Quote(name) + "]"
		if !validHeaderName(name) {
			p.add(hp, "not a valid header name")
		}
		if !validHeaderValue(value) {
			p.add(hp, "value must not contain control characters")
		}
	}

	t := c.Transport
	tp := path + ".transport"
	if t.MaxIdleConnsPerHost < 0 {
		p.add(tp+".max_idle_conns_per_host", "must be >= 0, got %d", t.MaxIdleConnsPerHost)
	}
	if t.MaxConnsPerHost < 0 {
		p.add(tp+".max_conns_per_host", "must be >= 0, got %d", t.MaxConnsPerHost)
	}
	nonNegative(p, tp+".idle_conn_timeout", t.IdleConnTimeout)
	nonNegative(p, tp+".dial_timeout", t.DialTimeout)
	nonNegative(p, tp+".keep_alive", t.KeepAlive)
	nonNegative(p, tp+".tls_handshake_timeout", t.TLSHandshakeTimeout)

	validateTLS(p, path+".tls", c.TLS)
	validateRateLimit(p, path+".rate_limit", c.RateLimit)
	validateBreaker(p, path+".circuit_breaker", c.CircuitBreaker)
	validateCache(p, path+".cache", c.Cache)

	validateUpstreams(p, path, c, path == defaultKey)
	nonNegative(p, path+".max_queue_wait", c.MaxQueueWait)
}

// checkResolved checks rules that involve several fields, after inheritance.
func checkResolved(p *problems, path string, c EndpointConfig) {
	if c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		p.add(path+".retry.max_backoff", "must be >= initial_backoff (%v), got %v", c.Retry.InitialBackoff, c.Retry.MaxBackoff)
	}
	checkResolvedTLS(p, path+".tls", c.TLS)
	checkResolvedRateLimit(p, path+".rate_limit", c.RateLimit)
	checkResolvedBreaker(p, path+".circuit_breaker", c.CircuitBreaker)
	if c.MaxQueue > 0 && c.MaxConcurrent <= 0 {
		p.add(path+".max_queue", "needs max_concurrent: there is no cap to queue for")
	}
}

// checkBreakerGroups checks that endpoints sharing breakers (the same
// circuit_breaker.group) agree on the breaker settings.
func checkBreakerGroups(p *problems, original map[string]string, out *compiledConfig) {
	first := map[string]string{} // group -> first key, in key order
	keys := make([]string, 0, len(out.endpoints))
	for key := range out.endpoints {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	keys = append([]string{defaultKey}, keys...)
	breakerOf := func(key string) BreakerConfig {
		if key == defaultKey {
			return out.def.CircuitBreaker
		}
		return out.endpoints[key].cfg.CircuitBreaker
	}
	pathOf := func(key string) string {
		if key == defaultKey {
			return defaultKey
		}
		return endpointPath(original[key])
	}
	for _, key := range keys {
		bc := breakerOf(key)
		if bc.Group == "" || (bc.Disabled != nil && *bc.Disabled) {
			continue
		}
		prev, seen := first[bc.Group]
		if !seen {
			first[bc.Group] = key
			continue
		}
		if !reflect.DeepEqual(breakerOf(prev), bc) {
			p.add(pathOf(key)+".circuit_breaker", "shares its group with %s but its settings differ", pathOf(prev))
		}
	}
}

func checkFallbacks(p *problems, cfg Config, original map[string]string, out *compiledConfig) {
	if cfg.Default.Fallback != "" {
		p.add("default.fallback", "only an endpoint can have a fallback")
	}
	chains := fallbackChains{out: out, state: make(map[string]chainState, len(out.endpoints))}
	for key, ce := range out.endpoints {
		fb := ce.cfg.Fallback
		if fb == "" {
			continue
		}
		path := endpointPath(original[key]) + ".fallback"
		norm, _, problem := normalizeKey(fb)
		if problem != "" {
			p.add(path, "%s", problem)
			continue
		}
		// The value is never quoted (it may be a secret put in the wrong
		// place); the endpoint key it names is, being a key of the file.
		if _, ok := out.endpoints[norm]; !ok {
			p.add(path, "names no endpoint")
			continue
		}
		if out.endpoints[norm].kind == kindWildcard {
			p.add(path, "must name a \"host\" or \"host:port\" endpoint, not the wildcard %q", original[norm])
			continue
		}
		if chains.cyclic(key) {
			p.add(path, "fallback cycle through %q", original[norm])
		}
	}
}

type chainState uint8

const (
	chainUnknown chainState = iota
	chainWalking
	chainEnds
	chainCycles
)

// fallbackChains finds the endpoints whose chain of fallbacks runs into a
// cycle, walking each endpoint once: a chain of n endpoints costs n, not
// n² (a 9000-endpoint chain took 13 s).
type fallbackChains struct {
	out   *compiledConfig
	state map[string]chainState // by normalized key
}

// next is the endpoint key's fallback, or "" when it has none that names
// an endpoint.
func (c *fallbackChains) next(key string) string {
	fb := c.out.endpoints[key].cfg.Fallback
	if fb == "" {
		return ""
	}
	norm, _, _ := normalizeKey(fb)
	if _, ok := c.out.endpoints[norm]; !ok {
		return ""
	}
	return norm
}

// cyclic reports whether the chain of fallbacks from key runs into a
// cycle (key itself need not be on it).
func (c *fallbackChains) cyclic(key string) bool {
	var walked []string
	k := key
	for k != "" && c.state[k] == chainUnknown {
		c.state[k] = chainWalking
		walked = append(walked, k)
		k = c.next(k)
	}
	// k is where the chain ended (""), met a key known to end or cycle,
	// or came back to a key of this walk: a cycle.
	cycles := k != "" && (c.state[k] == chainWalking || c.state[k] == chainCycles)
	result := chainEnds
	if cycles {
		result = chainCycles
	}
	for _, w := range walked {
		c.state[w] = result
	}
	return c.state[key] == chainCycles
}

func validateRedact(p *problems, r RedactConfig) {
	for i, h := range r.Headers {
		if !validHeaderName(h) {
			p.add(fmt.Sprintf("redact.headers[%d]", i), "not a valid header name")
		}
	}
	for i, k := range r.QueryKeys {
		if strings.TrimSpace(k) == "" {
			p.add(fmt.Sprintf("redact.query_keys[%d]", i), "must not be empty")
		}
	}
}

func nonNegative(p *problems, path string, d time.Duration) {
	if d < 0 {
		p.add(path, "must be >= 0, got %v", d)
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// headersToSet lists the auth and default headers of a resolved config,
// with canonical names.
func headersToSet(c EndpointConfig) []headerValue {
	var hs []headerValue
	a := c.Auth
	switch {
	case a.BearerToken != "":
		hs = append(hs, headerValue{"Authorization", []string{"Bearer " + a.BearerToken}})
	case a.APIKey != "":
		hs = append(hs, headerValue{http.CanonicalHeaderKey(a.APIKeyHeader), []string{a.APIKey}})
	case a.Username != "":
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(a.Username, a.Password)
		hs = append(hs, headerValue{"Authorization", []string{r.Header.Get("Authorization")}})
	}
	names := make([]string, 0, len(c.Headers))
	for name := range c.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		hs = append(hs, headerValue{http.CanonicalHeaderKey(name), []string{c.Headers[name]}})
	}
	return hs
}
