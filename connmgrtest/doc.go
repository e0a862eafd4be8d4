// Package connmgrtest provides a fault-injecting HTTP upstream for tests,
// examples and demos of connmgr (or of any HTTP client).
//
// # The model
//
// A [Server] is a real HTTP server on a loopback port (127.0.0.1, never
// another interface) built on [net/http/httptest]. For every request it
// receives, it first records the request (method, path, query, headers,
// body, arrival time; see [Server.Requests]) and then carries out one
// [Step]: what to answer and how to fail. A Step can set the status, body
// and headers, delay the answer, send Retry-After in either form, reset the
// TCP connection before answering or halfway through the body, dribble the
// body out slowly, or never answer at all.
//
// Which Step a request gets is decided in one of two ways:
//
//   - scripted ([NewServer], [NewTLSServer], [Server.Script]): request i
//     gets steps[i], and once the script has run out the last step repeats,
//     so NewServer(Step{Status: 503}, Step{}) fails once and then succeeds
//     forever. With no steps every request gets 200 "ok".
//   - computed ([NewServerFunc]): a function of the request number (counting
//     from 1) and the request picks the Step, for flaky, random or
//     path-based upstreams. [Flaky] builds a reproducible one from a seed.
//
// A Server is safe for concurrent use. [Server.Close] ends everything,
// including requests that hang or wait: nothing the package starts outlives
// Close, so tests that check for leaked goroutines (go.uber.org/goleak)
// pass.
//
// # Sketch
//
//	srv := connmgrtest.NewServer(
//		connmgrtest.Step{Status: http.StatusServiceUnavailable, RetryAfter: time.Second},
//		connmgrtest.Step{Reset: true},
//		connmgrtest.Step{Body: `{"ok":true}`},
//	)
//	defer srv.Close()
//
//	resp, err := client.Get(srv.URL + "/v1/charge") // exercise the client under test
//	...
//	got := srv.Requests() // what reached the upstream, in arrival order
//
// Constructors panic if no loopback port can be had, as httptest's do; they
// are meant for tests, where that is a broken machine.
package connmgrtest
