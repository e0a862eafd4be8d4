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
// # The pipeline
//
// This is the one description of the order; the code follows it (call.go
// for the call, attempt*.go for each attempt). For each call of
// RoundTrip, outermost first:
//
//  1. check the URL (no scheme or no host fails at once, not retried) and
//     resolve the endpoint by authority;
//  2. middleware: WithMiddleware, then WithEndpointMiddleware, then the
//     WrapCall of MiddlewarePlugins, around the rest of the call;
//  3. admission of the call: the Manager open (else ErrClosed), the
//     endpoint's concurrency cap (max_concurrent; a refusal goes to the
//     fallback endpoint, else to the error hooks, else ErrConcurrencyLimit);
//  4. the call's settings: the endpoint's, overridden by CallOptions from
//     the context; the total deadline (total_timeout, merged with the
//     caller's); the body made replayable (GetBody, or buffered);
//  5. for each attempt:
//     a. request hooks, on the attempt's own clone of the request (a hook
//     may answer the call with a response);
//     b. the pick: the endpoint's Picker when it has one, else the
//     request's host; either way an Upstream that holds its breaker;
//     c. admission of the attempt: an open or half-open breaker first (so
//     a refused call spends no token), then the rate limiter (wait up to
//     max_wait, never past the deadline; local or fleet scope), then a
//     closed breaker (built-in, or the BreakerFactory's). A refusal goes
//     to the fallback endpoint (breaker, balancer), else to the error
//     hooks (Retry false, Fallback honoured), else a typed error;
//     d. the observer's AttemptStart, the per-try timeout (it ends when
//     the caller closes the body), the transport;
//     e. settle: the outcome goes once to every permit (breaker, pick,
//     limiter feedback); an attempt the caller or connmgr cancelled is
//     Ignored;
//     f. classify (retry_on, or the RetryPolicy); a success runs the
//     response hooks and returns;
//     g. a failure: the retry decision (attempts left, safe to retry,
//     Retry-After, deadline, retry budget, backoff or BackoffFunc), then
//     the error hooks, which see it and may change it or answer with a
//     Fallback; a discarded response is drained, bounded in bytes and in
//     time;
//  6. return the response (a final failing status is a response, as in
//     net/http), or an *Error that unwraps to a sentinel (ErrRetriesExhausted,
//     ErrCircuitOpen, ...) and to the cause. The call ends, and its slots
//     are released, when the response body is closed or read to the end.
//
// docs/design.md draws the call and the attempt and names the extension
// points (Observer, Picker, RateLimitStore, BreakerStore, Middleware,
// Breaker, RetryPolicy, BackoffFunc, CallOptions).
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
