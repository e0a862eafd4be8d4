// Command cache_proxy is a caching reverse proxy: httputil.ReverseProxy
// whose Transport is a connmgr.Manager with the cache plugin. It is how
// the public HTTP cache conformance suite (http-tests/cache-tests) can be
// pointed at the plugin:
//
//	go run ./examples/cache_proxy -listen 127.0.0.1:8080 -origin http://127.0.0.1:8000 -mode private
//	npm run --silent cli --base=http://127.0.0.1:8080   # in the suite's checkout, its server on :8000
//
// -stale-if-error sets cache.Config.StaleIfError: how long past freshness
// a stored response may answer when the origin fails or drops the
// connection (RFC 9111 section 4.2.4 lets a disconnected cache serve
// stale; RFC 5861 section 4). The proxy's default is 60s, as in the
// SPEC's sample cache block; the plugin's own default is 0 (only what
// responses allow), and -stale-if-error 0 restores it.
//
// Without -listen it shows itself: it starts a local origin, sends three
// requests through the proxy, prints what the cache did, and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/connmgrtest"
)

func main() {
	listen := flag.String("listen", "", "serve on this address until interrupted (default: a short demonstration)")
	origin := flag.String("origin", "", "the origin's base URL (with -listen)")
	mode := flag.String("mode", "shared", "cache mode: shared or private")
	staleIfError := flag.Duration("stale-if-error", 60*time.Second, "serve a stale response this long past freshness when the origin fails (0: only as the response allows)")
	flag.Parse()

	m, err := connmgr.New(connmgr.Config{Default: connmgr.EndpointConfig{
		// A proxy under test passes the origin's answers on as they are.
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
		CircuitBreaker: connmgr.BreakerConfig{Disabled: connmgr.Bool(true)},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := cache.New(cache.Config{Mode: cache.Mode(*mode), StaleIfError: *staleIfError})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Use(c); err != nil {
		log.Fatal(err)
	}

	if *listen == "" {
		demo(m, c)
		return
	}
	target, err := url.Parse(*origin)
	if err != nil || target.Host == "" {
		log.Fatalf("-origin must be a URL such as http://127.0.0.1:8000, got %q", *origin)
	}
	serve(*listen, proxy(target, m))
}

func proxy(target *url.URL, m *connmgr.Manager) *httputil.ReverseProxy {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = m
	return rp
}

func serve(addr string, h http.Handler) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("caching proxy on %s", addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func demo(m *connmgr.Manager, c *cache.Cache) {
	origin := connmgrtest.NewServer(connmgrtest.Step{Body: "hello", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer origin.Close()
	target, _ := url.Parse(origin.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: proxy(target, m), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := 1; i <= 3; i++ {
		resp, err := client.Get("http://" + ln.Addr().String() + "/greeting")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("request %d: %s %q  [Cache-Status: %s]\n", i, resp.Status, body, resp.Header.Get("Cache-Status"))
	}
	fmt.Printf("the origin saw %d request(s); the cache counted %d hits\n", origin.Count(), c.Stats().Hits)
}
