// Command fallback_response shows an error hook that answers a failed
// call with the last good response instead of the error, marked so that
// the caller can tell.
//
// It corresponds to the seed's "Circuit Breaker with Fallback" and its
// RequestCache plugin (requests-connection-manager's advanced guide),
// done properly: the seed caught every exception at each call site and
// called a second service by hand; here one plugin does it for every
// call, in the pipeline:
//
//   - its response hook keeps the last 200 answer to each GET, bounded in
//     size, and hands the caller an intact body;
//   - its error hook runs on every failed attempt but steps in only on
//     the last one (ErrorContext.Retry is false), so retries get their
//     chance first; it sets ErrorContext.Fallback to a copy of the cached
//     answer with "X-Fallback: last-good" and an Age header;
//   - with nothing cached, it leaves the failure alone: the caller gets
//     the final 503 as a response, or a typed *connmgr.Error when the
//     upstream cannot be reached at all.
//
// (To send the call to another endpoint instead, the seed's
// api.fallback.com, see EndpointConfig.Fallback.)
//
// Run it with
//
//	go run ./examples/fallback_response
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// lastGood is a plugin that remembers the last good answer to each GET
// and serves it when a call to the same URL fails.
type lastGood struct {
	maxBody int64 // larger answers are not kept

	mu      sync.Mutex // guards entries
	entries map[string]entry
}

type entry struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newLastGood(maxBody int64) *lastGood {
	return &lastGood{maxBody: maxBody, entries: map[string]entry{}}
}

func (p *lastGood) Name() string { return "last_good" }

// OnResponse keeps a copy of each 200 answer to a GET.
func (p *lastGood) OnResponse(c *connmgr.ResponseContext) error {
	if c.Request.Method != http.MethodGet || c.Response.StatusCode != http.StatusOK {
		return nil
	}
	orig := c.Response.Body
	body, err := io.ReadAll(io.LimitReader(orig, p.maxBody+1))
	if err != nil {
		return err // the call ends with it; the Manager closes the body
	}
	if int64(len(body)) > p.maxBody {
		// Too big to keep: give the caller what was read and the rest.
		c.Response.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), orig), orig}
		return nil
	}
	orig.Close()
	c.Response.Body = io.NopCloser(bytes.NewReader(body))
	p.mu.Lock()
	p.entries[c.Request.URL.String()] = entry{header: c.Response.Header.Clone(), body: body, at: time.Now()}
	p.mu.Unlock()
	return nil
}

// OnError answers the call with the last good answer when its last
// attempt has failed.
func (p *lastGood) OnError(c *connmgr.ErrorContext) error {
	if c.Retry || c.Request.Method != http.MethodGet {
		return nil // attempts are left, or not ours to answer
	}
	p.mu.Lock()
	e, ok := p.entries[c.Request.URL.String()]
	p.mu.Unlock()
	if !ok {
		return nil
	}
	h := e.header.Clone()
	h.Set("X-Fallback", "last-good")
	h.Set("Age", strconv.Itoa(int(time.Since(e.at).Seconds())))
	c.Fallback = &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(e.body)),
		ContentLength: int64(len(e.body)),
		Request:       c.Request,
	}
	return nil
}

func main() {
	upstream := connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		return connmgrtest.Step{
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   `{"product":"` + r.URL.Path[len("/products/"):] + `","price":10}`,
		}
	})
	defer upstream.Close()

	m, err := connmgr.New(connmgr.Config{
		Default: connmgr.EndpointConfig{
			Timeout: 2 * time.Second,
			Retry:   connmgr.RetryConfig{MaxAttempts: 2, InitialBackoff: 20 * time.Millisecond},
			// This example is about error hooks. With the circuit breaker
			// on (the default) the 503s of scene 2 would open it, and scene
			// 3 would fail fast with ErrCircuitOpen before any attempt (and
			// so any error hook) ran: see examples/primary_fallback.
			CircuitBreaker: connmgr.BreakerConfig{Disabled: connmgr.Bool(true)},
		},
	}, connmgr.WithPlugins(newLastGood(64<<10)))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	get := func(path string) {
		resp, err := m.Get(ctx, upstream.URL+path)
		if err != nil {
			var e *connmgr.Error
			if errors.As(err, &e) {
				fmt.Printf("   GET %s: error after %d attempts (retries exhausted: %v): %v\n",
					path, e.Attempts, errors.Is(err, connmgr.ErrRetriesExhausted), e.Err)
				return
			}
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			log.Fatal(err)
		}
		if fb := resp.Header.Get("X-Fallback"); fb != "" {
			fmt.Printf("   GET %s: %s %s (X-Fallback: %s, Age: %s)\n", path, resp.Status, body, fb, resp.Header.Get("Age"))
			return
		}
		fmt.Printf("   GET %s: %s %s\n", path, resp.Status, body)
	}

	fmt.Println("1. the upstream is healthy:")
	get("/products/1")

	fmt.Println("2. the upstream answers 503 to everything:")
	upstream.Script(connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "maintenance"})
	get("/products/1") // served from the last good answer
	get("/products/2") // never fetched: the caller gets the 503

	fmt.Println("3. the upstream is gone:")
	upstream.Close()
	get("/products/1")
	get("/products/2")
}
