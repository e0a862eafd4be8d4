package main

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runCLI runs the program with args and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // substrings
		wantStderr []string
	}{
		{"no command", nil, 2, nil, []string{"Usage:", "demo"}},
		{"help", []string{"help"}, 0, []string{"Usage:", "demo", "go run ./cmd/connmgr demo"}, nil},
		{"--help", []string{"--help"}, 0, []string{"Usage:", "demo"}, nil},
		{"-h", []string{"-h"}, 0, []string{"Usage:"}, nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`, "Usage:"}},
		{"help for demo", []string{"help", "demo"}, 0, []string{"connmgr demo [flags]", "-duration", "-workers", "-seed", "Example:"}, nil},
		{"help for unknown", []string{"help", "nope"}, 2, nil, []string{`unknown command "nope"`}},
		{"demo --help", []string{"demo", "--help"}, 0, []string{"connmgr demo [flags]", "-duration", "Example:"}, nil},
		{"demo bad flag", []string{"demo", "--bogus"}, 2, nil, []string{"flag provided but not defined: -bogus", "connmgr demo [flags]"}},
		{"demo bad duration", []string{"demo", "--duration", "0s"}, 2, nil, []string{"--duration must be > 0"}},
		{"demo bad workers", []string{"demo", "--workers", "0"}, 2, nil, []string{"--workers must be between 1 and 256"}},
		{"demo extra argument", []string{"demo", "now"}, 2, nil, []string{`unexpected argument "now"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if len(tt.wantStdout) == 0 && stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if len(tt.wantStderr) == 0 && stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
		})
	}
}

// TestDemo runs the demo for two seconds. Seed 1 makes the assertions
// reliable rather than likely: the flaky upstream fails its first three
// requests, so the first call to it is retried, and the resetting
// upstream resets its first two connections, so the first call to it
// fails both of its attempts and gets the fallback answer.
func TestDemo(t *testing.T) {
	code, stdout, stderr := runCLI(t, "demo", "--duration", "2s", "--workers", "4", "--seed", "1")
	if code != 0 {
		t.Fatalf("exit code = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
	t.Logf("output:\n%s", stdout)

	for _, s := range []string{
		"connmgr demo: 5 local upstreams, 4 workers, 2s, seed 1",
		"[1s]  ", // the first per-second table
		"2s is up: no new calls",
		"what happened:",
		"flaky: ",
		"X-Request-ID: all ",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	// The first call to the resetting upstream is answered by the fallback.
	if !strings.Contains(stdout, "resetting: attempt 2 failed too (connection reset); the error hook answered with a cached fallback") {
		t.Errorf("output lacks the fallback event")
	}

	summary := parseSummary(t, stdout)
	for _, name := range []string{"healthy", "flaky", "slow", "limited", "resetting"} {
		row, ok := summary[name]
		if !ok {
			t.Errorf("summary lacks endpoint %q", name)
			continue
		}
		if row.nums["calls"] == 0 {
			t.Errorf("%s: calls = 0, want > 0", name)
		}
		if !strings.HasPrefix(row.address, "127.0.0.1:") {
			t.Errorf("%s: address = %q, want a loopback address", name, row.address)
		}
	}
	if got := summary["flaky"].nums["retries"]; got == 0 {
		t.Errorf("flaky: retries = 0, want > 0")
	}
	if got := summary["resetting"].nums["fallbacks"]; got == 0 {
		t.Errorf("resetting: fallbacks = 0, want > 0")
	}
	if got := summary["healthy"].nums["failed"]; got != 0 {
		t.Errorf("healthy: failed = %d, want 0", got)
	}
}

// summaryRow is one endpoint's row of the summary table: its address and
// numeric columns by header name.
type summaryRow struct {
	address string
	nums    map[string]uint64
}

// parseSummary reads the summary table that follows the "summary" line.
func parseSummary(t *testing.T, out string) map[string]summaryRow {
	t.Helper()
	_, after, ok := strings.Cut(out, "\nsummary (")
	if !ok {
		t.Fatalf("no summary in output")
	}
	lines := strings.Split(after, "\n")[1:] // skip the rest of the title line
	if len(lines) == 0 {
		t.Fatalf("summary has no header")
	}
	header := strings.Fields(lines[0])
	if len(header) < 2 || header[0] != "endpoint" || header[1] != "address" {
		t.Fatalf("summary header = %q, want endpoint, address, ...", lines[0])
	}
	rows := map[string]summaryRow{}
	for _, line := range lines[1:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		f := strings.Fields(line)
		if len(f) < len(header) {
			t.Fatalf("summary row %q has %d fields, want %d", line, len(f), len(header))
		}
		row := summaryRow{address: f[1], nums: map[string]uint64{}}
		for i, col := range header[2:] {
			if n, err := strconv.ParseUint(f[i+2], 10, 64); err == nil {
				row.nums[col] = n
			}
		}
		rows[f[0]] = row
	}
	return rows
}

// TestDemoInterrupted stops the demo early, as Ctrl-C does: the calls in
// flight are cancelled, and the summary is still printed.
func TestDemoInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	stopped := false
	start := time.Now()
	err := demoMain(ctx, func() { stopped = true }, demoOptions{duration: time.Minute, workers: 4, seed: 1}, &out, io.Discard)
	if err != nil {
		t.Fatalf("demoMain: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("demo took %v to stop after the interrupt, want well under 3s", elapsed)
	}
	if !stopped {
		t.Errorf("signal handling not restored after the interrupt")
	}
	for _, s := range []string{"interrupted after", "\nsummary (", "what happened:"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}
