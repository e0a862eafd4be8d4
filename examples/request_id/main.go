// Command request_id shows a request hook that tags every attempt with a
// request ID, as a connmgr.Plugin.
//
// It is the seed's add_request_id_hook ("Creating Custom Plugins" in
// requests-connection-manager's advanced guide), done properly:
//
//   - the ID is 128 bits from crypto/rand, hex-encoded, not a guessable
//     counter or a time-based UUID;
//   - it is made once per call and kept in RequestContext.Values, so every
//     retry of a call carries the same X-Request-ID and the upstream's logs
//     can join them, while X-Attempt says which try each one was; an ID
//     the caller set (propagated from its own inbound request) is kept;
//   - the hook sets the header on the attempt's own clone of the request:
//     the caller's *http.Request is never modified.
//
// It starts a local upstream that fails the first call twice (503, then
// 502) before answering, makes three calls, and prints what
// the upstream received. Run it with
//
//	go run ./examples/request_id
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// requestID is a plugin whose request hook sets Header to a random ID,
// the same for every attempt of a call, and AttemptHeader to the attempt
// number.
type requestID struct {
	Header        string
	AttemptHeader string
}

// valueKey is where the call's ID is kept in RequestContext.Values.
const valueKey = "request_id.id"

func (p requestID) Name() string { return "request_id" }

func (p requestID) OnRequest(c *connmgr.RequestContext) error {
	id, ok := c.Values[valueKey].(string)
	if !ok {
		// First attempt: keep an ID the caller brought, else make one.
		id = c.Request.Header.Get(p.Header)
		if id == "" {
			var b [16]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("request_id: %w", err)
			}
			id = hex.EncodeToString(b[:])
		}
		c.Values[valueKey] = id
	}
	c.Request.Header.Set(p.Header, id)
	c.Request.Header.Set(p.AttemptHeader, strconv.Itoa(c.Attempt))
	return nil
}

func main() {
	// Call 1 gets a 503, then a 502, then an answer; the other calls are
	// answered at once.
	upstream := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusBadGateway},
		connmgrtest.Step{Body: `{"ok":true}`},
	)
	defer upstream.Close()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{
			Timeout: 2 * time.Second,
			Retry:   connmgr.RetryConfig{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond},
		},
	}, connmgr.WithPlugins(requestID{Header: "X-Request-ID", AttemptHeader: "X-Attempt"}))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Println("plugins:", m.Plugins())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/orders/"+strconv.Itoa(i), nil)
		if err != nil {
			log.Fatal(err)
		}
		if i == 3 {
			req.Header.Set("X-Request-ID", "from-the-caller") // propagated from an inbound request
		}
		resp, err := m.Do(req)
		if err != nil {
			log.Fatalf("call %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("call %d: %s; the caller's request still has X-Attempt=%q\n", i, resp.Status, req.Header.Get("X-Attempt"))
	}

	fmt.Println("the upstream received:")
	attempts := map[string][]string{} // by path: one call per path
	ids := map[string]map[string]bool{}
	for _, r := range upstream.Requests() {
		id, attempt := r.Header.Get("X-Request-ID"), r.Header.Get("X-Attempt")
		fmt.Printf("  %s %s X-Request-ID=%s X-Attempt=%s\n", r.Method, r.Path, id, attempt)
		attempts[r.Path] = append(attempts[r.Path], attempt)
		if ids[r.Path] == nil {
			ids[r.Path] = map[string]bool{}
		}
		ids[r.Path][id] = true
	}
	for i := 1; i <= 3; i++ {
		path := "/orders/" + strconv.Itoa(i)
		fmt.Printf("call %d: attempts %v, distinct request IDs: %d\n", i, attempts[path], len(ids[path]))
	}
}
