// Package connmgr is a resilient outbound HTTP client: per-host timeouts,
// safe retries, retry budgets, auth, and a hook chain, behind the
// standard http.RoundTripper interface.
//
// # The model
//
// A Manager holds a Config: settings for every host (Config.Default) and
// overrides per endpoint (Config.Endpoints), matched by the request URL's
// authority — exact "host:port", then "host", then the longest wildcard
// "*.example.com", then the default. A field an endpoint leaves at its
// zero value is inherited from the default, and from the built-in
// defaults after that (per-try timeout 10s, total 30s, 3 attempts,
// backoff 100ms to 5s with full jitter, a retry budget of 20% plus 10/s).
//
// Each call runs a pipeline:
//
//  1. resolve the endpoint;
//  2. start the total deadline (TotalTimeout, merged with the caller's
//     context);
//  3. for each attempt: request hooks on the attempt's own clone of the
//     request, the transport under the per-try timeout (which lasts until
//     the caller closes the body), classification, error or response
//     hooks, and the retry decision;
//  4. return the response, or an *Error that unwraps to a sentinel
//     (ErrRetriesExhausted, ErrClosed, ...) and to the cause.
//
// An attempt is retried only when that is safe: idempotent methods, a
// request with an Idempotency-Key header, an endpoint that opts in, or a
// connection that was never made. Bodies are replayed through
// Request.GetBody, or buffered up to a limit; a larger body is sent once,
// never truncated. Retry-After is honoured in both forms. A final failing
// status such as 503 is a response with a nil error, as in net/http.
//
// # Use
//
// Build a Manager once, share it, and close it when done:
//
//	m, err := connmgr.New(connmgr.Config{
//		Endpoints: map[string]connmgr.EndpointConfig{
//			"api.example.com": {Timeout: 2 * time.Second, Auth: connmgr.AuthConfig{BearerToken: token}},
//		},
//	})
//	if err != nil { ... } // a *ConfigError naming every bad field
//	defer m.Close()
//	resp, err := m.Get(ctx, "https://api.example.com/v1/items")
//
// m.Client() returns an *http.Client for libraries that take one. Hooks
// (OnRequest, OnResponse, OnError, or a Plugin) add request IDs, logging,
// signing, caching or fallbacks. Stats returns counters and latency
// percentiles per endpoint. Secrets (userinfo, Authorization, cookies,
// API keys, secret query parameters) never reach errors, logs or Stats.
//
// A Manager is safe for concurrent use; its endpoint table and hook chain
// are immutable snapshots swapped atomically by Reload and Use, so the
// request path takes no lock.
package connmgr
