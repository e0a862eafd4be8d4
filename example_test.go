package connmgr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func ExampleNew() {
	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{Timeout: 5 * time.Second},
		Endpoints: map[string]connmgr.EndpointConfig{
			"api.example.com": {
				Retry: connmgr.RetryConfig{MaxAttempts: 5},
				Auth:  connmgr.AuthConfig{BearerToken: "token"},
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println(m.Plugins())

	// Bad settings are an error naming every field at fault.
	_, err = connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"api.example.com": {Retry: connmgr.RetryConfig{MaxAttempts: -1}},
	}})
	fmt.Println(err)
	// Output:
	// []
	// connmgr: invalid config: endpoints["api.example.com"].retry.max_attempts: must be >= 1, got -1
}

func ExampleManager_Get() {
	// An upstream that fails twice, then answers.
	upstream := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusBadGateway},
		connmgrtest.Step{Body: "hello"},
	)
	defer upstream.Close()

	m, _ := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
	}})
	defer m.Close()

	resp, err := m.Get(context.Background(), upstream.URL+"/greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("attempts:", upstream.Count(), "retries:", m.Stats().Endpoints["default"].Retries)
	// Output:
	// 200 hello
	// attempts: 3 retries: 2
}

func ExampleManager_Do() {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusCreated, Body: `{"id":1}`})
	defer upstream.Close()
	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()

	req, _ := http.NewRequest(http.MethodPost, upstream.URL+"/orders", strings.NewReader(`{"sku":"A"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "order-42") // makes the POST safe to retry
	resp, err := m.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 201 Created {"id":1}
}

func ExampleManager_Client() {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Body: "via http.Client"})
	defer upstream.Close()
	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()

	// Any library that takes an *http.Client gets the whole pipeline.
	client := m.Client()
	resp, err := client.Get(upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: via http.Client
}

func ExampleManager_OnRequest() {
	upstream := connmgrtest.NewServer()
	defer upstream.Close()
	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()

	m.OnRequest(func(c *connmgr.RequestContext) error {
		c.Request.Header.Set("X-Request-ID", fmt.Sprintf("req-%d", c.Attempt))
		return nil
	})
	m.OnResponse(func(c *connmgr.ResponseContext) error {
		fmt.Println("response", c.Response.StatusCode, "on attempt", c.Attempt)
		return nil
	})
	resp, err := m.Get(context.Background(), upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("upstream saw", upstream.Requests()[0].Header.Get("X-Request-ID"))
	fmt.Println(m.Plugins())
	// Output:
	// response 200 on attempt 1
	// upstream saw req-1
	// [on_request#1 on_response#2]
}

func ExampleManager_OnError() {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	defer upstream.Close()
	m, _ := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
	}})
	defer m.Close()

	// Answer with a fallback once the last attempt has failed.
	m.OnError(func(c *connmgr.ErrorContext) error {
		fmt.Println("attempt", c.Attempt, "failed:", c.Err, "retry:", c.Retry)
		if !c.Retry {
			c.Fallback = &http.Response{
				StatusCode: http.StatusOK,
				Header:     http.Header{"X-Fallback": {"true"}},
				Body:       io.NopCloser(strings.NewReader(`{"items":[]}`)),
			}
		}
		return nil
	})
	resp, err := m.Get(context.Background(), upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get("X-Fallback"), string(body))
	// Output:
	// attempt 1 failed: upstream answered Service Unavailable (503) retry: true
	// attempt 2 failed: upstream answered Service Unavailable (503) retry: false
	// 200 true {"items":[]}
}

func ExampleManager_DoAll() {
	upstream := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		return connmgrtest.Step{Body: "item " + r.URL.Query().Get("id")}
	})
	defer upstream.Close()
	m, _ := connmgr.New(connmgr.Config{})
	defer m.Close()

	var reqs []*http.Request
	for _, id := range []string{"a", "b", "c", "d"} {
		req, _ := http.NewRequest(http.MethodGet, upstream.URL+"/items?id="+id, nil)
		reqs = append(reqs, req)
	}
	for i, res := range m.DoAll(context.Background(), reqs, 2) {
		if res.Err != nil {
			fmt.Println(i, res.Err)
			continue
		}
		body, _ := io.ReadAll(res.Response.Body)
		res.Response.Body.Close()
		fmt.Println(i, string(body))
	}
	// Output:
	// 0 item a
	// 1 item b
	// 2 item c
	// 3 item d
}

func ExampleError() {
	m, _ := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		Retry: connmgr.RetryConfig{MaxAttempts: 1},
	}})
	m.Close()
	_, err := m.Get(context.Background(), "https://user:secret@api.example.com/v1?token=abc&page=2")
	fmt.Println(errors.Is(err, connmgr.ErrClosed))
	var e *connmgr.Error
	if errors.As(err, &e) {
		fmt.Println(e.Endpoint, e.Method, e.URL)
	}
	// Output:
	// true
	// default GET https://REDACTED@api.example.com/v1?token=REDACTED&page=2
}

func ExampleManager_Shutdown() {
	m, _ := connmgr.New(connmgr.Config{}, connmgr.WithDrainProgress(time.Second, func(remaining int64) {
		fmt.Println("waiting for", remaining, "calls")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(m.Shutdown(ctx))
	// Output:
	// waiting for 0 calls
	// <nil>
}
