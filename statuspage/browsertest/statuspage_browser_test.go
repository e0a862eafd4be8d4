package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"github.com/chromedp/cdproto/cdp"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/cache"
	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/connmgr/connmgr/statuspage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// chromiumPath finds Debian's chromium (or another Chrome on PATH). It
// skips the test loudly when there is none, and fails it under CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true: .ci/run must install it (apt-get install -y chromium)")
	}
	t.Skip("SKIPPED LOUDLY: no chromium on PATH, so the status page was not checked in a real browser; install it with `apt-get install -y chromium`")
	return ""
}

// balancedServers are the upstreams of the load-balanced endpoint
// "payments", besides good: sick fails its health checks (unhealthy),
// flaky passes them but answers 503 (ejected by outlier detection).
type balancedServers struct{ sick, flaky *connmgrtest.Server }

// liveManager serves the status page of a Manager with a failing upstream
// whose breaker is open, and a healthy one; and a load-balanced endpoint
// "payments" over good, an unhealthy upstream and an ejected one.
func liveManager(t *testing.T) (m *connmgr.Manager, bad, good *connmgrtest.Server, lb balancedServers) {
	t.Helper()
	bad = connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable, Body: "down"})
	good = connmgrtest.NewServerFunc(func(n int64, _ *http.Request) connmgrtest.Step {
		return connmgrtest.Step{Body: "ok", Delay: time.Duration(n%7) * time.Millisecond}
	})
	lb.sick = connmgrtest.NewServer(connmgrtest.Step{Status: http.StatusServiceUnavailable})
	lb.flaky = connmgrtest.NewServerFunc(func(_ int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/health" {
			return connmgrtest.Step{}
		}
		return connmgrtest.Step{Status: http.StatusServiceUnavailable}
	})
	t.Cleanup(bad.Close)
	t.Cleanup(good.Close)
	t.Cleanup(lb.sick.Close)
	t.Cleanup(lb.flaky.Close)
	one := connmgr.RetryConfig{MaxAttempts: 1}
	m, err := connmgr.New(connmgr.Config{
		Endpoints: map[string]connmgr.EndpointConfig{
			bad.Addr():  {Retry: one, CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 3, RecoveryTimeout: time.Minute}, Auth: connmgr.AuthConfig{BearerToken: "tok-secret-456"}},
			good.Addr(): {Retry: one, RateLimit: connmgr.RateLimitConfig{Rate: 100, Per: time.Second, Burst: 50}, Cache: connmgr.CacheConfig{TTL: time.Minute}},
			"payments": {
				Upstreams:        []connmgr.UpstreamConfig{{URL: good.URL}, {URL: lb.sick.URL}, {URL: lb.flaky.URL}},
				Retry:            one,
				HealthCheck:      connmgr.HealthCheckConfig{Path: "/health", Interval: time.Second, UnhealthyThreshold: 1},
				OutlierDetection: connmgr.OutlierConfig{Consecutive5xx: 2, ConsecutiveGatewayFailure: 2, MaxEjectionPercent: 50},
				PanicThreshold:   -1,
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	c, err := cache.New(cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Use(c); err != nil {
		t.Fatal(err)
	}
	call := func(u string) {
		if resp, err := m.Get(context.Background(), u); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	for range 5 {
		call(bad.URL + "/v1/charge")
	}
	for i := range 40 {
		call(fmt.Sprintf("%s/v1/items/%d", good.URL, i))
	}
	for i := range 10 { // the good endpoint caches for a minute: hits
		call(fmt.Sprintf("%s/v1/items/%d", good.URL, i))
	}
	if st := m.Stats().Endpoints[bad.Addr()].Breaker.State; st != connmgr.BreakerOpen {
		t.Fatalf("breaker state %v, want open", st)
	}
	// The first round of health checks runs as the Manager starts.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if eh := m.Health().Endpoints["payments"]; eh.Upstreams[1].Status == connmgr.HealthUnhealthy &&
			eh.Upstreams[0].Status == connmgr.HealthHealthy && eh.Upstreams[2].Status == connmgr.HealthHealthy {
			break
		}
	}
	for i := 0; i < 60 && !m.Health().Endpoints["payments"].Upstreams[2].Ejected; i++ {
		call(fmt.Sprintf("http://payments/v1/charge/%d", i))
	}
	eh := m.Health().Endpoints["payments"]
	if eh.Upstreams[1].Status != connmgr.HealthUnhealthy || !eh.Upstreams[2].Ejected {
		t.Fatalf("payments: want its second upstream unhealthy and its third ejected, got %+v", eh)
	}
	return m, bad, good, lb
}

func TestStatusPageInChromium(t *testing.T) {
	exe := chromiumPath(t)
	m, bad, good, lb := liveManager(t)
	srv := httptest.NewServer(statuspage.Handler(m))
	defer srv.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1100),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Start the browser, then listen to the tab before the page loads.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, fmt.Sprintf("console.%s: %v", ev.Type, argsText(ev.Args)))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log %s (%s): %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("log.enable: %v", err)
	}

	wantRatio := fmt.Sprintf("%.1f%%", 100*m.CacheStats()["cache"].HitRatio())
	badRow := chromedp.CSS(fmt.Sprintf(`tr[data-upstream="%s"]`, bad.Addr()))
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(badRow)); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	badHeading := text(fmt.Sprintf(`h2[id="endpoint-%s"]`, bad.Addr()))
	badRowText := text(string(badRow))
	goodRowText := text(fmt.Sprintf(`tr[data-upstream="%s"]`, good.Addr()))
	sickRowText := text(fmt.Sprintf(`table.balanced tr[data-upstream="%s"]`, lb.sick.URL))
	flakyRowText := text(fmt.Sprintf(`table.balanced tr[data-upstream="%s"]`, lb.flaky.URL))
	sickStatus := text(fmt.Sprintf(`table.balanced tr[data-upstream="%s"] td:nth-child(2)`, lb.sick.URL))
	flakyStatus := text(fmt.Sprintf(`table.balanced tr[data-upstream="%s"] td:nth-child(2)`, lb.flaky.URL))
	overall := text(`#health-overall`)
	hitRatio := text(`div[data-cache="cache"] .hit-ratio`)
	config, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(`#config`)))
	if err != nil {
		t.Fatal(err)
	}
	badgeColor, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(
		`getComputedStyle(document.querySelector('%s .status-down')).backgroundColor`, badRow)))
	if err != nil {
		t.Fatal(err)
	}
	sickColor, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(
		`getComputedStyle(document.querySelector('table.balanced tr[data-upstream="%s"] .health-unhealthy')).backgroundColor`, lb.sick.URL)))
	if err != nil {
		t.Fatal(err)
	}
	// Let a refresh pass: the page must reload itself without errors.
	time.Sleep((statuspage.RefreshSeconds + 1) * time.Second)
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}

	if title != "connmgr status" {
		t.Errorf("title %q", title)
	}
	if !strings.Contains(badHeading, "breaker open") {
		t.Errorf("the failing endpoint's heading reads %q, want it to show the open breaker", badHeading)
	}
	for _, want := range []string{"down", "open", "Service Unavailable"} {
		if !strings.Contains(badRowText, want) {
			t.Errorf("the failing upstream's row reads %q, want %q in it", badRowText, want)
		}
	}
	if !strings.Contains(goodRowText, "up") || strings.Contains(goodRowText, "down") {
		t.Errorf("the healthy upstream's row reads %q, want it up", goodRowText)
	}
	for _, want := range []string{"down", "unhealthy", "status 503"} {
		if !strings.Contains(sickRowText, want) {
			t.Errorf("the unhealthy upstream's row reads %q, want %q in it", sickRowText, want)
		}
	}
	for _, want := range []string{"down", "healthy", "yes, for"} {
		if !strings.Contains(flakyRowText, want) {
			t.Errorf("the ejected upstream's row reads %q, want %q in it", flakyRowText, want)
		}
	}
	if strings.TrimSpace(sickStatus) != "down" || strings.TrimSpace(flakyStatus) != "down" {
		t.Errorf("the unhealthy and the ejected upstream read %q and %q in the status column, want both down", sickStatus, flakyStatus)
	}
	if hitRatio != wantRatio || hitRatio == "0.0%" {
		t.Errorf("the cache's hit ratio reads %q, want %q (and not 0)", hitRatio, wantRatio)
	}
	if !strings.Contains(overall, "degraded") {
		t.Errorf("the overall health reads %q, want degraded", overall)
	}
	if sickColor != "rgb(207, 34, 46)" {
		t.Errorf("the unhealthy badge's background is %q, want the page's red", sickColor)
	}
	// The stylesheet applied: the CSP hash matched, and "down" is red.
	if badgeColor != "rgb(207, 34, 46)" {
		t.Errorf("the down badge's background is %q, want the page's red: the stylesheet did not apply", badgeColor)
	}
	if strings.Contains(config, "tok-secret-456") || !strings.Contains(config, "bearer_token: REDACTED") {
		t.Errorf("the config shown is not redacted:\n%s", config)
	}
	mu.Lock()
	if len(problems) > 0 {
		t.Errorf("the page logged problems in the browser:\n%s", strings.Join(problems, "\n"))
	}
	mu.Unlock()

	if _, err := png.Decode(bytes.NewReader(shot)); err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	out := filepath.Join(t.TempDir(), "statuspage.png")
	if os.Getenv("CONNMGR_UPDATE_SCREENSHOT") == "1" {
		out = filepath.Join("..", "..", "docs", "statuspage.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
}

func argsText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		if a.Value != nil {
			parts = append(parts, string(a.Value))
		} else {
			parts = append(parts, a.Description)
		}
	}
	return strings.Join(parts, " ")
}
