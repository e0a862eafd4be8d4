// Package examples_test builds and runs every example program under
// examples/ and checks what it prints. It is skipped with -short.
package examples_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runTimeout bounds each example's run.
const runTimeout = 20 * time.Second

// want lists, for each example directory, patterns its output must match.
// Every directory with a main.go must have an entry, so that a new
// example is not silently left untested.
var want = map[string][]string{
	"cache_proxy": {
		`(?m)^request 1: 200 OK "hello"  \[Cache-Status: connmgr; fwd=uri-miss; fwd-status=200; stored\]$`,
		`(?m)^request 3: 200 OK "hello"  \[Cache-Status: connmgr; hit; ttl=\d+\]$`,
		`(?m)^the origin saw 1 request\(s\); the cache counted 2 hits$`,
	},
	"ttl_cache": {
		`(?m)^MISS GET /get\?param=value \(en\) -> \{"answer":1,"lang":"en"\}  \[Cache-Status: connmgr; fwd=uri-miss; fwd-status=200; stored\]$`,
		`(?m)^HIT  GET /get\?param=value \(en\) -> \{"answer":1,"lang":"en"\}  \[Cache-Status: connmgr; hit; ttl=59\d\]$`,
		`(?m)^MISS GET /get\?param=value \(fr\) -> \{"answer":2,"lang":"fr"\}  \[Cache-Status: connmgr; fwd=vary-miss`,
		`(?m)^HIT  GET /get\?param=value \(fr\) -> \{"answer":2,"lang":"fr"\}`,
		`(?m)^the API saw 4 requests for 6 calls; hits 2, misses 4, stored 2$`,
		`(?m)^Manager.Stats\(\).Plugins\["cache"\] has the same numbers: true$`,
	},
	"cache_stale_if_error": {
		`(?m)^call 1: 200 \{"price":42\}  \[Cache-Status: connmgr; fwd=uri-miss; fwd-status=200; stored\]$`,
		`(?m)^call 2: 200 \{"price":42\}  \[Cache-Status: connmgr; hit; ttl=[01]\]$`,
		`(?m)^call 3: 200 \{"price":42\}  \[Cache-Status: connmgr; fwd=stale; fwd-status=503; ttl=-\d+; detail=stale-if-error\]$`,
		`(?m)^call 6: 200 \{"price":42\}  \[Cache-Status: connmgr; fwd=stale; ttl=-\d+; detail=stale-if-error\]$`,
		`(?m)^breaker open; the upstream saw 3 requests for 6 calls$`,
		`(?m)^cache: 1 hit, 1 miss, 4 stale-if-error$`,
	},
	"quickstart": {
		`(?m)^200 OK hello, world \(the upstream saw 2 requests\)$`,
		`"retries": 1,`,
		`"127\.0\.0\.1:\d+": \{`,
	},
	"request_id": {
		`(?m)^plugins: \[request_id\]$`,
		`GET /orders/1 X-Request-ID=[0-9a-f]{32} X-Attempt=3`,
		`GET /orders/3 X-Request-ID=from-the-caller X-Attempt=1`,
		`(?m)^call 1: attempts \[1 2 3\], distinct request IDs: 1$`,
		`(?m)^call 1: 200 OK; the caller's request still has X-Attempt=""$`,
	},
	"response_time_logging": {
		`"msg":"response".*"path":"/v1/slow","status":200,"attempt":1,"duration_ms":\d{3,}`,
		`"msg":"attempt failed".*"path":"/v1/flaky","attempt":1,"error":"upstream answered Service Unavailable \(503\)","will_retry":true`,
		`"msg":"response".*"path":"/v1/flaky","status":200,"attempt":2`,
		`"msg":"call failed".*"url":"http://REDACTED@127\.0\.0\.1:\d+/v1/orders\?api_key=REDACTED&page=2","attempts":2,"retries_exhausted":true`,
		`no password, api_key or bearer token in them`,
	},
	"retry_on_429": {
		`200 OK \{"items":\[1,2,3\]\} after 2 attempts in [12]\.\ds: connmgr waited out Retry-After: 1 by itself`,
		`hook: attempt 1 of POST /v1/orders got 429, Retry-After 1s; policy says retry=false`,
		`201 Created \{"order":42\} after 2 attempts in [12]\.\ds; the upstream got the same body both times: true`,
		`429 Too Many Requests after 1 attempt, at once`,
	},
	"breaker_alerts": {
		`(?m)^ALERT: circuit breaker for 127\.0\.0\.1:\d+ opened \(was closed\): upstream answered Service Unavailable \(503\)$`,
		`(?m)^call  4: fail fast, circuit open \(next probe in ~\d+ms\)$`,
		`(?m)^INFO: circuit breaker for 127\.0\.0\.1:\d+ is half-open: probing$`,
		`(?m)^ALERT: circuit breaker for 127\.0\.0\.1:\d+ opened \(was half-open\)`,
		`(?m)^INFO: service 127\.0\.0\.1:\d+ recovered \(breaker closed; it opened 2 time\(s\), refused 4 call\(s\)\)$`,
		`(?m)^call 12: 200 ok$`,
		`(?m)^the upstream saw 8 requests for 12 calls$`,
	},
	"primary_fallback": {
		`(?m)^call 3: 500 primary is down$`,
		`(?m)^call 4: 200 fallback answered /v1/resource/4 \(tenant acme\)$`,
		`(?m)^primary: 3 requests reached it, breaker open, 2 calls sent to the fallback$`,
		`(?m)^fallback: 2 calls, 2 successes$`,
	},
	"adaptive_ratelimit": {
		`(?m)^   current rate \d+/s after [1-9]\d* decrease\(s\)`,
		`each 429 halved the rate and paused the bucket for its Retry-After`,
		`(?m)^   \d+ ok, [01] answered 429, \d+ refused locally; current rate \d+/s$`,
		`the limiter slowed down before the upstream said no`,
	},
	"per_user_ratelimit": {
		`(?m)^alice call 3: 200 OK$`,
		`(?m)^alice call 4: rate limited \(next token in 20s\)$`,
		`(?m)^bob call 1: 200 OK$`,
		`(?m)^anonymous call 1: 200 OK$`,
		`(?m)^buckets: 2 users; 5 allowed, 2 refused; the upstream saw 5 requests$`,
	},
	"fallback_response": {
		`(?m)^   GET /products/1: 200 OK \{"product":"1","price":10\}$`,
		`GET /products/1: 200 OK \{"product":"1","price":10\} \(X-Fallback: last-good, Age: \d+\)`,
		`GET /products/2: 503 Service Unavailable maintenance`,
		`GET /products/2: error after 2 attempts \(retries exhausted: true\): .*connection refused`,
	},
	"tls_custom": {
		`(?m)^valid certificate\s+hello over TLS 1\.2 with TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384$`,
		`(?m)^expired certificate\s+refused: expired$`,
		`tls expired "127\.0\.0\.1": the server's certificate has expired or is not yet valid`,
		`(?m)^certificate for another name\s+refused: name_mismatch$`,
	},
	"tls_mtls": {
		`(?m)^first certificate:\s+server says: hello, billing-service \(first\)$`,
		`level=INFO msg="connmgr: TLS material reloaded from disk" endpoint=127\.0\.0\.1 what="client certificate"`,
		`(?m)^after renewal:\s+server says: hello, billing-service \(renewed\)$`,
		`level=WARN msg="connmgr: TLS files changed but cannot be used; keeping the previous material"`,
		`(?m)^after a bad write:\s+server says: hello, billing-service \(renewed\)$`,
		`stats: reloads=1 reload_errors=1 last_reload_error="cert_file .*no PEM CERTIFICATE block found"`,
	},
	"tls_pinning": {
		`(?m)^  - sha256/[A-Za-z0-9+/]{43}=$`,
		`(?m)^server on the current key\s+200 OK$`,
		`(?m)^server rotated to the backup key\s+200 OK$`,
		`(?m)^server with an unpinned key\s+refused: 127\.0\.0\.1 presented \[sha256/[A-Za-z0-9+/]{43}=\]$`,
		`(?m)^pin failures counted: 1$`,
	},
	"hot_reload": {
		`(?m)^  probe: 503 Service Unavailable after 1 attempt$`,
		`(?m)^  probe: failed after 3 attempts: the last one timed out$`,
		`(?m)^reload refused, the running config stays: connmgr: invalid config in .*orders-client\.yaml \(2 problems\):$`,
		`(?m)^  line 4: endpoints\["127\.0\.0\.1"\]\.timeout: a duration needs a unit, as in 10s, 250ms or 1m30s; got "1"$`,
		`(?m)^  line 7: endpoints\["127\.0\.0\.1"\]\.retry\.inital_backoff: unknown key \(did you mean "initial_backoff"\?\)$`,
		`Stats\(\)\.Reload: successes=2 failures=1 last_error="connmgr: invalid config in `,
		`(?m)^  probe: 200 OK after 2 attempts$`,
		`Stats\(\)\.Reload: successes=3 failures=1 last_error=""`,
		`(?m)^ +[1-9]\d*  503 Service Unavailable after 1 attempt$`,
		`(?m)^  0 failed for any other reason`,
	},
	"env_config": {
		`(?m)^  ORDERS_API_TOKEN=\(21 characters, not shown\)$`,
		`(?m)^  timeout +750ms +from \$MYSVC_ENDPOINTS__127_0_0_1__TIMEOUT`,
		`(?m)^  retry\.max_attempts +4 +from \$MYSVC_DEFAULT__RETRY__MAX_ATTEMPTS`,
		`(?m)^  auth\.bearer_token +REDACTED `,
		`(?m)^  headers\.User-Agent +billing/dev `,
		`(?m)^call: 200 OK \{"orders":\[\]\} after 4 attempts$`,
		`the upstream saw User-Agent "billing/dev" and the token from ORDERS_API_TOKEN: true`,
		`line 10: endpoints\["127\.0\.0\.1"\]\.auth\.bearer_token: environment variable ORDERS_API_TOKEN is not set \(write \$\{ORDERS_API_TOKEN:-default\} to give a default\)`,
		`line 3: default\.timeout: a duration needs a unit, as in 10s, 250ms or 1m30s; got a value from the environment`,
		`line 10: endpoints\["127\.0\.0\.1"\]\.auth\.bearer_token: environment variable ORDERS_API_TOKEN contains control characters`,
		`\$MYSVC_DEFAULT__RETRY__MAX_ATEMPTS: default\.retry has no key "max_atempts" \(did you mean "max_attempts"\?\)`,
		`(?m)^the error quotes the token: false$`,
	},
	"graceful_shutdown": {
		`(?m)^  \[[^]]+\] no SIGTERM \(nobody sends one here\): shutting down anyway$`,
		`(?m)^  \[[^]]+\] draining: 3 call\(s\) in flight$`,
		`(?m)^  \[[^]]+\] a new call is refused with ErrClosed: connmgr: GET http://127\.0\.0\.1:\d+/slow/0s \(endpoint default\): manager closed$`,
		`(?m)^  \[[^]]+\] GET /slow/1s: 200 OK done$`,
		`(?m)^  \[[^]]+\] Shutdown returned nil: every call finished$`,
		`(?m)^  \[[^]]+\] GET /slow/500ms: 200 OK done$`,
		`(?m)^  \[[^]]+\] Shutdown after 600ms: connmgr: shutdown: 2 calls still in flight: context deadline exceeded$`,
		`(?m)^  \[[^]]+\] GET /hang: abandoned \(context canceled\)\n(?s:.*)GET /hang: abandoned \(context canceled\)`,
		`(?m)^  in flight now: 0\n(?s:.*)^  in flight now: 0$`,
	},
	"fleet_quota": {
		`(?m)^second 3: replica-1 +\d+, replica-2 +\d+, replica-3 +\d+, fleet +\d+/s$`,
		`(?m)^fleet: \d+ calls in 3s; within 5% of the quota: true$`,
		`(?m)^no replica starved \(each got at least half an equal share\): true$`,
	},
	"lb_round_robin": {
		`(?m)^Request 0: 200 "data from api1", sent to api1 as /data/0 \(the caller's URL is still http://api/data/0\)$`,
		`(?m)^Request 1: 200 "data from api2", sent to api2 as /data/1 `,
		`(?m)^Request 2: 200 "data from api3", sent to api3 as /data/2 `,
		`(?m)^Request 3: 200 "data from api1", sent to api1 as /data/3 `,
		`(?m)^Request 6: 200 "data from api4", sent to api4 as /data/6 `,
		`(?m)^api1: 3 attempts, 0 failed$`,
		`(?m)^api4: 2 attempts, 1 failed$`,
	},
	"lb_health_aware": {
		`api2 reports itself unhealthy:\n  api1: healthy\n  api2: unhealthy \(status 503\)\n  api3: healthy\n  30 calls went to \[api1 api3\]\n`,
		`(?m)^  endpoint unhealthy, panic mode true\n  30 calls went to \[api1 api2 api3\]$`,
		`all recover:\n  api1: healthy\n  api2: healthy\n  api3: healthy\n  30 calls went to \[api1 api2 api3\]\n`,
	},
	"health_monitor": {
		`after the first round of checks:\n  auth-service: healthy \(2 of 2 upstreams usable\)\n    auth-1: healthy\n    auth-2: healthy\n  payment-service: degraded \(2 of 2 upstreams usable\)\n    pay-1: healthy\n    pay-2: degraded, last error: status 500\n  overall: degraded\n`,
		`after the second round:\n(?:.*\n){3}  payment-service: degraded \(1 of 2 upstreams usable\)\n    pay-1: healthy\n    pay-2: unhealthy, last error: status 500\n  overall: degraded\n`,
	},
	"performance_metrics": {
		`(?m)^120 calls in [\d.]+m?s, \d+ ended in an error`,
		`(?m)^catalog +60 +0 +0\.0% +0 +[\d.]+ms +[\d.]+ms +[\d.]+ms +200=54 404=6 +closed, opened 0 times$`,
		`(?m)^pricing +60 +\d+ +[\d.]+% +[1-9]\d* +[\d.]+ms +[\d.]+ms +[\d.]+ms +200=\d+`,
		`(?m)^GET http://127\.0\.0\.1:PORT/stats: 200 OK application/json$`,
		`"catalog": \{\s+"host": "127\.0\.0\.1:\d+",\s+"request_count": 60,\s+"error_count": 0,`,
		`"status_codes": \{\s+"200": 54,\s+"404": 6\s+\}`,
		`"pricing": \{\s+"host": "127\.0\.0\.1:\d+",\s+"request_count": 60,`,
		`(?m)^stats server stopped$`,
	},
	"tracing": {
		`(?m)^call 1: 200 OK \{"order":42\}$`,
		`(?m)^call 2: refused by the open breaker: true$`,
		`(?m)^  attempt 3 traceparent 00-[0-9a-f]{32}-[0-9a-f]{16}-01$`,
		`(?m)^    connmgr GET \(internal\) span [0-9a-f]{16}: http\.response\.status_code=200 connmgr\.outcome=success url\.full=http://127\.0\.0\.1:\d+/v1/orders/42\?session=REDACTED event connmgr\.backoff\(status\) event connmgr\.backoff\(status\)$`,
		`(?m)^      GET \(client\) span [0-9a-f]{16}: connmgr\.attempt=1 http\.response\.status_code=503 error\.type=503 `,
		`(?m)^      GET \(client\) span [0-9a-f]{16}: connmgr\.attempt=3 http\.request\.resend_count=2 http\.response\.status_code=200 `,
		`(?m)^    connmgr GET \(internal\) span [0-9a-f]{16}: error\.type=circuit_open connmgr\.outcome=refused connmgr\.refusal\.reason=circuit_open .*event connmgr\.refused\(circuit_open\)$`,
		`"Name": "connmgr GET",`,
		`"Key": "http\.request\.resend_count",`,
	},
	"prometheus_metrics": {
		`(?m)^GET http://127\.0\.0\.1:PORT/metrics: 200 OK$`,
		`(?m)^connmgr_client_breaker_state\{connmgr_endpoint="FAILING",connmgr_upstream="FAILING"\} 2$`,
		`(?m)^connmgr_client_calls_total\{connmgr_endpoint="HEALTHY",connmgr_outcome="success"\} 20$`,
		`(?m)^connmgr_client_refusals_total\{connmgr_endpoint="FAILING",connmgr_refusal_reason="circuit_open"\} 4$`,
		`(?m)^http_client_request_duration_seconds_count\{connmgr_endpoint="HEALTHY",http_request_method="GET",http_response_status_code="200",server_address="127\.0\.0\.1",server_port="HEALTHY_PORT"\} 20$`,
		`(?m)^  healthy  20 attempts,  0 failed, mean [\d.]+ms; calls success=20$`,
		`(?m)^  failing   4 attempts,  4 failed, mean [\d.]+ms; calls failure=2 refused=4$`,
	},
}

// needsRedis names the examples that start a redis-server (or use
// $REDIS_URL).
var needsRedis = map[string]bool{"fleet_quota": true}

func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every example; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}

	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(e.Name(), "main.go")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("found no examples")
	}

	// Build them all at once: one go command, one link per example;
	// with the race detector when the test has it.
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	for _, n := range names {
		args = append(args, "./"+n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if needsRedis[name] && os.Getenv("REDIS_URL") == "" {
				if _, err := exec.LookPath("redis-server"); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatal("redis-server not found: .ci/run installs it")
					}
					t.Skip("SKIPPING: redis-server not found in PATH: install it (apt-get install -y redis-server) to run this example")
				}
			}
			t.Parallel()
			patterns, ok := want[name]
			if !ok {
				t.Fatalf("examples/%s has no expected output in want", name)
			}
			exe := filepath.Join(bin, name)
			if runtime.GOOS == "windows" {
				exe += ".exe"
			}
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			t.Logf("ran in %v", time.Since(start).Round(time.Millisecond))
			if ctx.Err() != nil {
				t.Fatalf("still running after %v\nstdout:\n%s\nstderr:\n%s", runTimeout, stdout.String(), stderr.String())
			}
			if err != nil {
				t.Fatalf("exit: %v, want status 0\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			for _, p := range patterns {
				if !regexp.MustCompile(p).Match(stdout.Bytes()) {
					t.Errorf("output does not match %q\nstdout:\n%s", p, stdout.String())
				}
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
}
