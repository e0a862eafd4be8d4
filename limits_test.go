package connmgr

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLimitsValidationNamesTheField(t *testing.T) {
	tests := []struct {
		name string
		cfg  EndpointConfig
		want string
	}{
		{"ratio above 1", EndpointConfig{CircuitBreaker: BreakerConfig{FailureRatio: 1.5}}, `circuit_breaker.failure_ratio: must be <= 1`},
		{"negative min_requests", EndpointConfig{CircuitBreaker: BreakerConfig{MinRequests: -1}}, `circuit_breaker.min_requests: must be >= 1`},
		{"both trip rules off", EndpointConfig{CircuitBreaker: BreakerConfig{ConsecutiveFailures: -1, FailureRatio: -1}}, `circuit_breaker: consecutive_failures and failure_ratio are both off`},
		{"success threshold above probes", EndpointConfig{CircuitBreaker: BreakerConfig{HalfOpenRequests: 2, SuccessThreshold: 3}}, `circuit_breaker.success_threshold: must be <= half_open_requests (2), got 3`},
		{"bad failure status", EndpointConfig{CircuitBreaker: BreakerConfig{FailureStatuses: []int{503, 7}}}, `circuit_breaker.failure_statuses[1]: must be an HTTP status`},
		{"negative slow call", EndpointConfig{CircuitBreaker: BreakerConfig{SlowCall: -time.Second}}, `circuit_breaker.slow_call: must be >= 0`},
		{"bad key", EndpointConfig{RateLimit: RateLimitConfig{Rate: 1, Key: "cookie:sid"}}, `rate_limit.key: must be "header:NAME"`},
		{"bad key header", EndpointConfig{RateLimit: RateLimitConfig{Rate: 1, Key: "header:X User"}}, `rate_limit.key: must be "header:NAME"`},
		{"min rate above rate", EndpointConfig{RateLimit: RateLimitConfig{Rate: 5, Adaptive: AdaptiveConfig{Enabled: Bool(true), MinRate: 10}}}, `rate_limit.adaptive.min_rate: must be <= rate (5), got 10`},
		{"decrease factor", EndpointConfig{RateLimit: RateLimitConfig{Rate: 5, Adaptive: AdaptiveConfig{DecreaseFactor: 1}}}, `rate_limit.adaptive.decrease_factor: must be between 0 and 1`},
		{"negative max keys", EndpointConfig{RateLimit: RateLimitConfig{MaxKeys: -1}}, `rate_limit.max_keys: must be >= 1`},
		{"queue without cap", EndpointConfig{MaxQueue: 3}, `max_queue: needs max_concurrent`},
		{"negative queue wait", EndpointConfig{MaxConcurrent: 1, MaxQueueWait: -time.Second}, `max_queue_wait: must be >= 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Endpoints: map[string]EndpointConfig{"api.test": tt.cfg}}.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), `endpoints["api.test"].`+tt.want)
		})
	}
	require.NoError(t, Config{Default: EndpointConfig{CircuitBreaker: BreakerConfig{ConsecutiveFailures: -1, FailureRatio: -1, Disabled: Bool(true)}}}.Validate(),
		"a disabled breaker may have no trip rule")
}

func TestFallbackValidation(t *testing.T) {
	tests := []struct {
		name      string
		endpoints map[string]EndpointConfig
		want      string
	}{
		{"self", map[string]EndpointConfig{"a.test": {Fallback: "a.test"}}, `endpoints["a.test"].fallback: fallback cycle`},
		{"long cycle", map[string]EndpointConfig{
			"a.test": {Fallback: "b.test"}, "b.test": {Fallback: "c.test"}, "c.test": {Fallback: "A.test"},
		}, `endpoints["a.test"].fallback: fallback cycle`},
		{"unknown", map[string]EndpointConfig{"a.test": {Fallback: "b.test"}}, `names no endpoint`},
		{"wildcard", map[string]EndpointConfig{"a.test": {Fallback: "*.b.test"}, "*.b.test": {}}, `not the wildcard "*.b.test"`},
		{"a chain is fine", map[string]EndpointConfig{"a.test": {Fallback: "b.test"}, "b.test": {Fallback: "c.test:8080"}, "c.test:8080": {}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Endpoints: tt.endpoints}.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	err := Config{Default: EndpointConfig{Fallback: "a.test"}, Endpoints: map[string]EndpointConfig{"a.test": {}}}.Validate()
	require.ErrorContains(t, err, "default.fallback: only an endpoint can have a fallback")
}

func TestBreakerGroupsMustAgree(t *testing.T) {
	err := Config{Endpoints: map[string]EndpointConfig{
		"a.test": {CircuitBreaker: BreakerConfig{Group: "g"}},
		"b.test": {CircuitBreaker: BreakerConfig{Group: "g", ConsecutiveFailures: 9}},
	}}.Validate()
	require.ErrorContains(t, err, `endpoints["b.test"].circuit_breaker: shares its group with endpoints["a.test"] but its settings differ`)
}

func TestConcurrencyCapRejectsOverTheCap(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "slow", Delay: 200 * time.Millisecond})
	defer srv.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		srv.Addr(): {MaxConcurrent: 2},
	}})
	results := make(chan error, 3)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.Get(context.Background(), srv.URL)
			if err == nil {
				readAll(t, resp)
			}
			results <- err
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(results)
	var limited int
	for err := range results {
		if errors.Is(err, ErrConcurrencyLimit) {
			limited++
		} else {
			require.NoError(t, err)
		}
	}
	assert.Equal(t, 1, limited)
	st := m.Stats().Endpoints[srv.Addr()]
	require.NotNil(t, st.Concurrency)
	assert.EqualValues(t, 1, st.Concurrency.Rejected)
	assert.Zero(t, st.Concurrency.InUse, "every slot came back")
	assert.EqualValues(t, 2, srv.Count())
}

func TestConcurrencySlotHeldUntilBodyClosed(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "x"})
	defer srv.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{srv.Addr(): {MaxConcurrent: 1}}})
	resp, err := m.Get(context.Background(), srv.URL)
	require.NoError(t, err)
	_, err = m.Get(context.Background(), srv.URL)
	require.ErrorIs(t, err, ErrConcurrencyLimit, "the first call still holds its slot: its body is open")
	require.NoError(t, resp.Body.Close())
	resp, err = m.Get(context.Background(), srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
}

func TestConcurrencyQueue(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "x", Delay: 100 * time.Millisecond})
	defer srv.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		srv.Addr(): {MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: time.Second},
	}})
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.Get(context.Background(), srv.URL)
			if err == nil {
				readAll(t, resp)
			}
			errs[i] = err
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	assert.NoError(t, errs[0])
	assert.NoError(t, errs[1], "queued behind the first")
	assert.ErrorIs(t, errs[2], ErrConcurrencyLimit, "the queue was full")

	// A queued call gives up after max_queue_wait.
	m2 := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		srv.Addr(): {MaxConcurrent: 1, MaxQueue: 5, MaxQueueWait: 30 * time.Millisecond},
	}})
	held, err := m2.Get(context.Background(), srv.URL)
	require.NoError(t, err)
	start := time.Now()
	_, err = m2.Get(context.Background(), srv.URL)
	require.ErrorIs(t, err, ErrConcurrencyLimit)
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	readAll(t, held)
	st := m2.Stats().Endpoints[srv.Addr()].Concurrency
	assert.Zero(t, st.Queued)
	assert.Zero(t, st.InUse)
}

func TestFallbackWhenBreakerOpen(t *testing.T) {
	primary := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer primary.Close()
	fallback := connmgrtest.NewServer(connmgrtest.Step{Body: "from fallback"})
	defer fallback.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		primary.Addr():  noRetriesFallback(fallback.Addr()),
		fallback.Addr(): {Headers: map[string]string{"X-Via": "fallback"}},
	}})
	got, err := status(t, m, primary.URL+"/v1/items?id=7")
	require.NoError(t, err)
	assert.Equal(t, 503, got, "the breaker opens on this failure")

	resp, err := m.Get(context.Background(), primary.URL+"/v1/items?id=7")
	require.NoError(t, err)
	assert.Equal(t, "from fallback", readAll(t, resp))
	reqs := fallback.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/v1/items", reqs[0].Path)
	assert.Equal(t, "id=7", reqs[0].RawQuery)
	assert.Equal(t, "fallback", reqs[0].Header.Get("X-Via"), "the fallback's own policies apply")
	assert.EqualValues(t, 1, primary.Count(), "the primary was not called again")

	st := m.Stats()
	assert.EqualValues(t, 1, st.Endpoints[primary.Addr()].Fallbacks)
	assert.EqualValues(t, 1, st.Endpoints[fallback.Addr()].Requests)
	assert.EqualValues(t, 1, st.Endpoints[fallback.Addr()].Successes)
	assert.Zero(t, st.InFlight)
}

func noRetriesFallback(fb string) EndpointConfig {
	ep := noRetries(BreakerConfig{ConsecutiveFailures: 1})
	ep.Fallback = fb
	return ep
}

func TestFallbackWhenConcurrencyCapFullKeepsTheBody(t *testing.T) {
	primary := connmgrtest.NewServer(connmgrtest.Step{Body: "primary"})
	defer primary.Close()
	fallback := connmgrtest.NewServer(connmgrtest.Step{Body: "fallback"})
	defer fallback.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		primary.Addr():  {MaxConcurrent: 1, Fallback: fallback.Addr()},
		fallback.Addr(): {},
	}})
	held, err := m.Get(context.Background(), primary.URL)
	require.NoError(t, err)
	resp, err := m.Post(context.Background(), primary.URL+"/submit", "text/plain", strings.NewReader("payload"))
	require.NoError(t, err)
	assert.Equal(t, "fallback", readAll(t, resp))
	require.Len(t, fallback.Requests(), 1)
	assert.Equal(t, "payload", string(fallback.Requests()[0].Body))
	assert.Equal(t, http.MethodPost, fallback.Requests()[0].Method)
	readAll(t, held)
	assert.Zero(t, m.Stats().InFlight)
}

func TestFallbackChainsAndReportsTheLastEndpoint(t *testing.T) {
	a := connmgrtest.NewServer(connmgrtest.Step{Status: 500})
	defer a.Close()
	b := connmgrtest.NewServer(connmgrtest.Step{Status: 500})
	defer b.Close()
	m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{
		a.Addr(): noRetriesFallback(b.Addr()),
		b.Addr(): noRetries(BreakerConfig{ConsecutiveFailures: 1}),
	}})
	_, _ = status(t, m, a.URL) // opens a
	_, _ = status(t, m, b.URL) // opens b
	_, err := status(t, m, a.URL)
	require.ErrorIs(t, err, ErrCircuitOpen)
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, b.Addr(), cerr.Endpoint, "a went to b, whose breaker is open too")
	assert.Zero(t, m.Stats().InFlight)
}
