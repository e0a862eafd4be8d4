package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connmgr/connmgr"
)

// "connmgr config sample | connmgr config check -" and the like: a config
// that is not in a file with a known extension.
func TestConfigCheckStandardInput(t *testing.T) {
	sample := connmgr.SampleConfig()
	check := func(t *testing.T, stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"config", "check"}, args...), strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	t.Run("dash", func(t *testing.T) {
		code, out, stderr := check(t, sample, "-")
		if code != exitOK || !strings.Contains(out, "# standard input is valid: 5 endpoints") {
			t.Errorf("exit %d\nstdout:\n%.300s\nstderr:\n%s", code, out, stderr)
		}
	})
	t.Run("/dev/stdin", func(t *testing.T) {
		if code, _, stderr := check(t, sample, "/dev/stdin"); code != exitOK {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		if code, _, stderr := check(t, `{"default": {"timeout": "2s"}}`, "--format", "json", "-"); code != exitOK {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
	t.Run("env overrides", func(t *testing.T) {
		t.Setenv("STDIN_CHECK_DEFAULT__TIMEOUT", "7s")
		code, out, stderr := check(t, "default: {timeout: 1s}\n", "--env-prefix", "STDIN_CHECK_", "--json", "-")
		if code != exitOK || !strings.Contains(out, `"timeout": "7s"`) {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		code, _, stderr := check(t, "default: {timeout: 5}\n", "-")
		want := "invalid config in standard input: line 1: default.timeout: a duration needs a unit"
		if code != exitFailed || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
		}
	})
	t.Run("file without an extension", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "connmgr-config")
		if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := check(t, "", path); code != exitFailed || !strings.Contains(stderr, "or --format yaml|json") {
			t.Errorf("exit %d: %s", code, stderr)
		}
		if code, _, stderr := check(t, "", "--format", "yaml", path); code != exitOK {
			t.Errorf("with --format: exit %d: %s", code, stderr)
		}
	})
	t.Run("bad --format", func(t *testing.T) {
		if code, _, stderr := check(t, sample, "--format", "toml", "-"); code != exitUsage || !strings.Contains(stderr, "--format must be yaml or json") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
	t.Run("too large", func(t *testing.T) {
		big := "default: {timeout: 1s}\n#" + strings.Repeat("x", 4<<20)
		if code, _, stderr := check(t, big, "-"); code != exitFailed || !strings.Contains(stderr, "larger than 4 MiB") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
}
