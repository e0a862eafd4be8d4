package connmgrtest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
)

// A scripted upstream: the first request is refused with 503 and a
// Retry-After, every later one succeeds.
func ExampleNewServer() {
	srv := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second},
		connmgrtest.Step{Body: "hello"},
	)
	defer srv.Close()

	client := &http.Client{}
	for range 3 {
		resp, err := client.Get(srv.URL + "/greeting")
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Printf("%d %q retry-after=%q\n", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	fmt.Println("requests:", srv.Count())
	// Output:
	// 503 "" retry-after="2"
	// 200 "hello" retry-after=""
	// 200 "hello" retry-after=""
	// requests: 3
}

// A flaky upstream that fails about 30% of the requests with 503, the
// same ones for the same seed, run after run.
func ExampleFlaky() {
	srv := connmgrtest.NewServerFunc(connmgrtest.Flaky(0, 0.3, connmgrtest.Step{Status: http.StatusServiceUnavailable}))
	defer srv.Close()

	client := &http.Client{}
	var statuses []string
	for range 10 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		_ = resp.Body.Close()
		statuses = append(statuses, fmt.Sprint(resp.StatusCode))
	}
	fmt.Println(strings.Join(statuses, " "))
	// Output:
	// 200 200 503 200 200 503 503 200 200 503
}

// A computed upstream: the answer depends on the path and on the request
// number n, which counts from 1.
func ExampleNewServerFunc() {
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/health" {
			return connmgrtest.Step{Body: "healthy"}
		}
		if n%2 == 1 {
			return connmgrtest.Step{Status: http.StatusTooManyRequests, RetryAfter: time.Second}
		}
		return connmgrtest.Step{Body: fmt.Sprintf("request %d", n)}
	})
	defer srv.Close()

	client := &http.Client{}
	for _, path := range []string{"/a", "/b", "/health"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Printf("%s %d %q\n", path, resp.StatusCode, body)
	}
	// Output:
	// /a 429 ""
	// /b 200 "request 2"
	// /health 200 "healthy"
}
