package connmgr

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a plugin with all three hooks that logs what it saw.
type recorder struct {
	name string
	mu   sync.Mutex // guards log
	log  *[]string
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) add(s string) {
	r.mu.Lock()
	*r.log = append(*r.log, r.name+":"+s)
	r.mu.Unlock()
}
func (r *recorder) OnRequest(c *RequestContext) error   { r.add("request"); return nil }
func (r *recorder) OnResponse(c *ResponseContext) error { r.add("response"); return nil }
func (r *recorder) OnError(c *ErrorContext) error       { r.add("error"); return nil }

func TestHookOrderPerAttempt(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{})
	defer srv.Close()
	var log []string
	m := newTestManager(t, Config{Default: fastRetries(3)},
		WithPlugins(&recorder{name: "a", log: &log}, &recorder{name: "b", log: &log}))
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, []string{
		"a:request", "b:request", "a:error", "b:error", // attempt 1: 503
		"a:request", "b:request", "a:response", "b:response", // attempt 2: 200
	}, log)
	assert.Equal(t, []string{"a", "b"}, m.Plugins())
}

func TestRequestHookChangesOnlyTheClone(t *testing.T) {
	srv := connmgrtest.NewServer()
	defer srv.Close()
	m := newTestManager(t, Config{})
	attempts := map[int]bool{}
	m.OnRequest(func(c *RequestContext) error {
		c.Request.Header.Set("X-Request-ID", "rid-1")
		c.Request.URL.Path = "/rewritten"
		c.Values["seen"] = true
		attempts[c.Attempt] = true
		return nil
	})
	var sawValue bool
	m.OnResponse(func(c *ResponseContext) error { sawValue, _ = c.Values["seen"].(bool); return nil })
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/original", nil)
	require.NoError(t, err)
	req.Header.Set("X-Caller", "1")
	resp, err := m.Do(req)
	require.NoError(t, err)
	readAll(t, resp)

	got := srv.Requests()[0]
	assert.Equal(t, "/rewritten", got.Path)
	assert.Equal(t, "rid-1", got.Header.Get("X-Request-ID"))
	assert.Equal(t, "1", got.Header.Get("X-Caller"))
	assert.Equal(t, "/original", req.URL.Path, "the caller's request is never modified")
	assert.Empty(t, req.Header.Get("X-Request-ID"))
	assert.True(t, sawValue, "Values are shared by the contexts of one call")
	assert.Equal(t, map[int]bool{1: true}, attempts)
}

func TestRequestHookShortCircuits(t *testing.T) {
	var transport fakeTransport
	transport.fn = func(int, *http.Request) (*http.Response, error) { return nil, errors.New("network touched") }
	m := newTestManager(t, Config{}, WithTransport(&transport))
	var later, response bool
	m.OnRequest(func(c *RequestContext) error {
		c.Response = cannedResponse(c.Request, 200, "cached")
		return nil
	})
	m.OnRequest(func(*RequestContext) error { later = true; return nil })
	m.OnResponse(func(c *ResponseContext) error { response = c.Attempt == 0; return nil })
	resp, err := get(t, m, "http://api.test/x")
	require.NoError(t, err)
	assert.Equal(t, "cached", readAll(t, resp))
	assert.Zero(t, transport.count())
	assert.False(t, later, "the remaining request hooks are skipped")
	assert.True(t, response, "the response hooks still run")
	assert.EqualValues(t, 0, m.Stats().InFlight)
}

func TestErrorHookRetryAndFallback(t *testing.T) {
	t.Run("a hook can ask for a retry the policy would not make", func(t *testing.T) {
		srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{Body: "ok"})
		defer srv.Close()
		m := newTestManager(t, Config{Default: fastRetries(3)})
		var policy []bool
		m.OnError(func(c *ErrorContext) error {
			policy = append(policy, c.Retry)
			var se *StatusError
			require.ErrorAs(t, c.Err, &se)
			assert.Equal(t, 503, se.StatusCode)
			assert.Equal(t, 503, c.Response.StatusCode)
			c.Retry = true
			return nil
		})
		resp, err := m.Post(context.Background(), srv.URL, "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		assert.Equal(t, "ok", readAll(t, resp))
		assert.Equal(t, []bool{false}, policy, "POST: the policy said no, the hook said yes")
		assert.EqualValues(t, 2, srv.Count())
	})
	t.Run("a hook can veto a retry", func(t *testing.T) {
		srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{})
		defer srv.Close()
		m := newTestManager(t, Config{Default: fastRetries(3)})
		m.OnError(func(c *ErrorContext) error { c.Retry = false; return nil })
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, 503, resp.StatusCode)
		assert.EqualValues(t, 1, srv.Count())
	})
	t.Run("retries asked for by a hook stay bounded", func(t *testing.T) {
		srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
		defer srv.Close()
		m := newTestManager(t, Config{Default: fastRetries(3)})
		m.OnError(func(c *ErrorContext) error { c.Retry = true; return nil })
		resp, err := get(t, m, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
		assert.EqualValues(t, 3, srv.Count())
	})
	t.Run("a fallback answers instead of the error", func(t *testing.T) {
		addr := refusedAddr(t)
		m := newTestManager(t, Config{Default: fastRetries(2)})
		var errs int
		m.OnError(func(c *ErrorContext) error {
			errs++
			if c.Attempt == 2 {
				c.Fallback = cannedResponse(c.Request, 200, `{"cached":true}`)
			}
			return nil
		})
		resp, err := get(t, m, "http://"+addr)
		require.NoError(t, err)
		assert.Equal(t, `{"cached":true}`, readAll(t, resp))
		assert.Equal(t, 2, errs)
		assert.EqualValues(t, 0, m.Stats().InFlight)
	})
}

func TestHookErrorsEndTheCall(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "body"})
	defer srv.Close()
	tests := []struct {
		name    string
		install func(m *Manager)
		stage   string
	}{
		{"request", func(m *Manager) { m.OnRequest(func(*RequestContext) error { return io.ErrUnexpectedEOF }) }, "OnRequest"},
		{"response", func(m *Manager) { m.OnResponse(func(*ResponseContext) error { return io.ErrUnexpectedEOF }) }, "OnResponse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestManager(t, Config{})
			tt.install(m)
			resp, err := get(t, m, srv.URL)
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "the hook's error is wrapped")
			var he *HookError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tt.stage, he.Stage)
			assert.EqualValues(t, 0, m.Stats().InFlight, "the body was closed and the call released")
		})
	}
}

func TestHookPanicIsRecovered(t *testing.T) {
	srv := connmgrtest.NewServer()
	defer srv.Close()
	for _, stage := range []string{"OnRequest", "OnResponse", "OnError"} {
		t.Run(stage, func(t *testing.T) {
			m := newTestManager(t, Config{Default: fastRetries(1)})
			boom := func() { panic("boom in " + stage) }
			switch stage {
			case "OnRequest":
				m.OnRequest(func(*RequestContext) error { boom(); return nil })
			case "OnResponse":
				m.OnResponse(func(*ResponseContext) error { boom(); return nil })
			case "OnError":
				m.OnError(func(*ErrorContext) error { boom(); return nil })
			}
			url := srv.URL
			if stage == "OnError" {
				url = "http://" + refusedAddr(t)
			}
			_, err := get(t, m, url)
			require.Error(t, err)
			var he *HookError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, "boom in "+stage, he.Panic)
			assert.Contains(t, err.Error(), "panicked")
			assert.EqualValues(t, 1, m.Stats().Endpoints["default"].HookPanics)
		})
	}
}

func TestUseRemovePlugins(t *testing.T) {
	m := newTestManager(t, Config{})
	var log []string
	require.NoError(t, m.Use(&recorder{name: "a", log: &log}))
	m.OnRequest(func(*RequestContext) error { return nil })
	assert.ErrorContains(t, m.Use(&recorder{name: "a", log: &log}), `already in use`)
	assert.ErrorContains(t, m.Use(nil), "nil")
	assert.ErrorContains(t, m.Use(namedOnly("x")), "implements none")
	assert.ErrorContains(t, m.Use(&recorder{name: "", log: &log}), "empty name")
	assert.Equal(t, []string{"a", "on_request#1"}, m.Plugins())

	c := &closingPlugin{}
	require.NoError(t, m.Use(c))
	assert.True(t, m.Remove("closer"))
	assert.True(t, c.closed, "Remove closes a plugin that has Close")
	assert.False(t, m.Remove("closer"))
	assert.True(t, m.Remove("a"))
	assert.Equal(t, []string{"on_request#1"}, m.Plugins())

	c2 := &closingPlugin{}
	require.NoError(t, m.Use(c2))
	require.NoError(t, m.Close())
	assert.True(t, c2.closed, "Close closes plugins")
}

type namedOnly string

func (n namedOnly) Name() string { return string(n) }

type closingPlugin struct{ closed bool }

func (*closingPlugin) Name() string                    { return "closer" }
func (*closingPlugin) OnRequest(*RequestContext) error { return nil }
func (c *closingPlugin) Close() error                  { c.closed = true; return nil }

func TestChainChangesDuringCalls(t *testing.T) {
	srv := connmgrtest.NewServer()
	defer srv.Close()
	m := newTestManager(t, Config{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				resp, err := get(t, m, srv.URL)
				if assert.NoError(t, err) {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		m.OnRequest(func(*RequestContext) error { return nil })
		m.Remove("on_request#" + strconv.Itoa(i+1))
	}
	wg.Wait()
	assert.Empty(t, m.Plugins())
}

func TestErrorHookSeesFinalDecision(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503})
	defer srv.Close()
	def := fastRetries(3)
	// A budget that pays for no retry at all: every first attempt is the last.
	def.Retry.Budget = RetryBudgetConfig{Ratio: 0.001, MinPerSecond: 0.001, Disabled: Bool(false)}
	m := newTestManager(t, Config{Default: def})
	m.table.Load().def.budget.floor.AllowN(time.Now(), 1) // spend the floor's one token
	m.OnError(func(c *ErrorContext) error {
		if !c.Retry {
			c.Fallback = cannedResponse(c.Request, 200, "fallback")
		}
		return nil
	})
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "fallback", readAll(t, resp), "Retry was false because the budget refused: the hook knew it was final")
	assert.EqualValues(t, 1, srv.Count())
}

func TestRetryBudgetAccounting(t *testing.T) {
	b := newRetryBudget(RetryBudgetConfig{Ratio: 0.5, MinPerSecond: 0.0001})
	now := time.Now()
	require.True(t, b.floor.AllowN(now, 1), "spend the floor's burst")
	assert.Equal(t, noToken, b.withdraw(now), "nothing deposited yet")
	b.deposit()
	assert.Equal(t, noToken, b.withdraw(now), "half a token is not enough")
	b.deposit()
	tok := b.withdraw(now)
	assert.Equal(t, balanceToken, tok)
	assert.Equal(t, noToken, b.withdraw(now))
	b.refund(tok)
	assert.Equal(t, balanceToken, b.withdraw(now), "a refunded token can be spent again")
	b.refund(floorToken)
	b.refund(noToken)
	assert.Equal(t, noToken, b.withdraw(now), "floor tokens and refusals give nothing back")
	for i := 0; i < 10000; i++ {
		b.deposit()
	}
	assert.LessOrEqual(t, b.balance.Load(), int64(budgetCapMilli), "savings are capped")
	var nilBudget *retryBudget
	assert.Equal(t, freeToken, nilBudget.withdraw(now), "a disabled budget allows every retry")
}

// TestRequestHookReplacingTheBodyStillClosesTheCallers: a request hook
// that reads the body and replaces it (to sign it) left the caller's own
// body unclosed, breaking the RoundTripper contract: it is closed by the
// end of the call, on success and on error.
func TestRequestHookReplacingTheBodyStillClosesTheCallers(t *testing.T) {
	for _, status := range []int{200, 0} {
		ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) {
			if status == 0 {
				return nil, errors.New("down")
			}
			return cannedResponse(r, status, "ok"), nil
		}}
		m := newTestManager(t, Config{Default: fastRetries(1)}, WithTransport(ft))
		m.OnRequest(func(rc *RequestContext) error {
			b, err := io.ReadAll(rc.Request.Body)
			rc.Request.Body = io.NopCloser(bytes.NewReader(b))
			return err
		})
		body := newTrackedBody("payload")
		req, _ := http.NewRequest("POST", "http://x.test/", body)
		resp, err := m.RoundTrip(req)
		if status == 0 {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
			readAll(t, resp)
		}
		assert.GreaterOrEqual(t, body.closed.Load(), int32(1), "status %d: the caller's body is closed", status)
	}
}
