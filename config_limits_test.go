package connmgr

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Hostile and huge files are refused, or read, cheaply.

// TestConfigHostileInputsAreCheap: a config file comes from a deploy
// tool, a ConfigMap or a colleague; one that is hostile or broken must be
// refused (or loaded) in well under a second, since Watch reloads it on
// the goroutine that Close waits for. A 4 MiB mapping of 300 000 keys
// took 82 s.
func TestConfigHostileInputsAreCheap(t *testing.T) {
	const size = 4 << 20
	keys := func(prefix string, n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%s  h%d: x\n", prefix, i)
		}
		return b.String()
	}
	fallbackChain := func(n int) string {
		var b strings.Builder
		b.WriteString("endpoints:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "  h%d.test: {fallback: h%d.test}\n", i, i+1)
		}
		fmt.Fprintf(&b, "  h%d.test: {fallback: h0.test}\n", n)
		return b.String()
	}
	unknownKeys := func(n int) string {
		var b strings.Builder
		b.WriteString("default:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "  k%d: x\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name, src, want string // want: a problem, or "" for a valid file
	}{
		{"a mapping of 300 000 keys", "default:\n  headers:\n" + keys("  ", 300_000)[:size-30], "separators"},
		{"a list of 2 million numbers", "default: {retry: {retry_on: [" + strings.Repeat("1,", size/2-40) + "1]}}\n", "separators"},
		{"a mapping just over the key limit", "default:\n  headers:\n" + keys("  ", 10_001), "more than 10000 keys"},
		{"four mappings at the key limit", func() string {
			var b strings.Builder
			b.WriteString("endpoints:\n")
			for e := 0; e < 4; e++ {
				fmt.Fprintf(&b, "  e%d.test:\n    headers:\n%s", e, keys("    ", 9_999))
			}
			return b.String()
		}(), ""},
		{"nine thousand unknown keys", unknownKeys(9_000), "... and 8900 more"},
		{"a fallback chain of 9000 endpoints", fallbackChain(9_000), "fallback cycle"},
		{"keys without values", "default: {headers: {" + strings.Repeat("a,", 60_000) + "a}}\n", "holds more than 100000 values"},
		{"deep nesting", "default: " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n", ""},
		{"one 4 MiB value", "default: {headers: {X: " + strings.Repeat("v", size-40) + "}}\n", ""},
		{"a key of 1 MiB", "default:\n  headers:\n    ? " + strings.Repeat("k", 1<<20) + "\n    : v\n", "a key is at most 512 bytes"},
		{"an unknown key of 1 MiB", "default:\n  ? " + strings.Repeat("k", 1<<20) + "\n  : v\n", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.src) > size {
				t.Fatalf("test input is %d bytes, more than the %d a file may have", len(tt.src), size)
			}
			start := time.Now()
			_, err := parseConfig([]byte(tt.src), "yaml", "f.yaml", "", fakeEnv(nil))
			took := time.Since(start)
			if limit := timeLimit(time.Second); took > limit {
				t.Errorf("took %v for %d KiB, want less than %v", took, len(tt.src)>>10, limit)
			}
			switch {
			case tt.want == "" && tt.name != "deep nesting" && err != nil:
				t.Errorf("err = %.300v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %.300v, want %q", err, tt.want)
			}
			if err != nil && len(err.Error()) > 64<<10 {
				t.Errorf("the error is %d KiB", len(err.Error())>>10)
			}
		})
	}
}

// TestConfigLargeMapsDecode: the decoder is given large mappings in
// chunks; what it decodes is the same, and problems are still found and
// placed at their line.
func TestConfigLargeMapsDecode(t *testing.T) {
	var b strings.Builder
	b.WriteString("endpoints:\n")
	const n = 1000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  h%04d.example.com: {timeout: %ds, headers: {X-N: \"%d\"}}\n", i, 1+i%7, i)
	}
	cfg, err := parseConfig([]byte(b.String()), "yaml", "f.yaml", "", fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Endpoints) != n {
		t.Fatalf("%d endpoints, want %d", len(cfg.Endpoints), n)
	}
	for i := 0; i < n; i++ {
		ec := cfg.Endpoints[fmt.Sprintf("h%04d.example.com", i)]
		if ec.Timeout != time.Duration(1+i%7)*time.Second || ec.Headers["X-N"] != fmt.Sprint(i) {
			t.Fatalf("endpoint %d = timeout %v, headers %v", i, ec.Timeout, ec.Headers)
		}
	}

	bad := strings.Replace(b.String(), "h0432.example.com: {timeout: 6s,", "h0432.example.com: {timeout: [6s],", 1)
	_, err = parseConfig([]byte(bad), "yaml", "f.yaml", "", fakeEnv(nil))
	if want := `line 434: endpoints["h0432.example.com"]`; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "into time.Duration") {
		t.Errorf("err = %v, want %q", err, want)
	}
	dup := b.String() + "  h0007.example.com: {}\n"
	_, err = parseConfig([]byte(dup), "yaml", "f.yaml", "", fakeEnv(nil))
	if want := `line 1002: endpoints["h0007.example.com"]: already set on line 9`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestParseConfigMergeBomb: merge keys that each merge the previous
// mapping twice would make a naive walk exponential.
func TestParseConfigMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("endpoints:\n  m0: &m0 {timeout: 1s}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("default:\n  <<: *m40\n")
	start := time.Now()
	_, _ = parseYAML(t, b.String(), nil) // the YAML decoder refuses the aliasing; that is fine
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
