package connmgr

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRootImportGraph keeps heavy optional dependencies out of the root
// package: the OpenTelemetry API is allowed, its SDK and exporters, Redis
// clients and browser drivers are not (they belong in tests, examples and
// subpackages).
func TestRootImportGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps .: %v", err)
	}
	var api bool
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"otel/sdk", "otel/exporters", "redis", "chromedp", "prometheus"} {
			if strings.Contains(pkg, banned) {
				t.Errorf("the root package depends on %s", pkg)
			}
		}
		api = api || pkg == "go.opentelemetry.io/otel/trace"
	}
	if !api {
		t.Error("the root package no longer imports the OpenTelemetry API: is the observer gone?")
	}
}
