// Command per_user_ratelimit shows per-key rate limits, the Go version of
// the seed's PerUserRateLimiter: one token bucket per X-User-ID, in
// bounded memory (max_keys, least recently used dropped first), while
// requests without the header share the endpoint's bucket.
//
// Each user may make 3 calls per minute here. Alice makes 5 calls (the
// last 2 are refused with ErrRateLimited without reaching the upstream),
// Bob is not affected by Alice, and a request without the header uses
// the shared bucket.
//
// Run it with
//
//	go run ./examples/per_user_ratelimit
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "per_user_ratelimit:", err)
		os.Exit(1)
	}
}

func run() error {
	upstream := connmgrtest.NewServer(connmgrtest.Step{Body: "ok"})
	defer upstream.Close()

	// In a file: users-api: {rate_limit: {rate: 3, per: 1m, burst: 3, key: "header:X-User-ID"}}
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		upstream.Addr(): {RateLimit: connmgr.RateLimitConfig{
			Rate: 3, Per: time.Minute, Burst: 3, Key: "header:X-User-ID", MaxKeys: 10000,
		}},
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	call := func(user string) string {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, upstream.URL+"/v1/profile", nil)
		if user != "" {
			req.Header.Set("X-User-ID", user)
		}
		resp, err := m.Do(req)
		var rle *connmgr.RateLimitError
		switch {
		case errors.As(err, &rle):
			return fmt.Sprintf("rate limited (next token in %v)", rle.RetryIn.Round(time.Second))
		case err != nil:
			return err.Error()
		}
		_ = resp.Body.Close()
		return resp.Status
	}
	for i := 1; i <= 5; i++ {
		fmt.Printf("alice call %d: %s\n", i, call("alice"))
	}
	fmt.Printf("bob call 1: %s\n", call("bob"))
	fmt.Printf("anonymous call 1: %s\n", call(""))
	st := m.Stats().Endpoints[upstream.Addr()].RateLimit
	fmt.Printf("buckets: %d users; %d allowed, %d refused; the upstream saw %d requests\n", st.Keys, st.Allowed, st.Rejected, upstream.Count())
	return nil
}
