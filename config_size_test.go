package connmgr

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestConfigExpansionBudget: a 34 KiB file naming a 64 KiB variable 5000
// times asked for 320 MiB of values (3.2 GiB allocated, a 320 MB error).
// The values of a file may add up to the larger of 1 MiB and twice the
// file after expansion.
func TestConfigExpansionBudget(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	src := "default:\n  tls:\n    pins: [" + strings.Repeat(`"${A}",`, 5000) + "\"${A}\"]\n"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := parseConfig([]byte(src), "yaml", "f.yaml", "", fakeEnv(map[string]string{"A": big}))
	runtime.ReadMemStats(&after)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConfigError", err)
	}
	if want := "values from the environment add up to more than 1024 KiB in all"; !strings.Contains(err.Error(), want) {
		t.Errorf("error lacks %q:\n%.500s", want, err)
	}
	if n := len(err.Error()); n > 16<<10 {
		t.Errorf("error is %d KiB", n>>10)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("parsing allocated %d MiB for a %d KiB file", alloc>>20, len(src)>>10)
	}

	// Within the budget, expansion works as before.
	ok := "default:\n  headers: {"
	for i := 0; i < 100; i++ {
		ok += fmt.Sprintf("X-%d: \"${B}\", ", i)
	}
	ok += "}\n"
	cfg, err := parseConfig([]byte(ok), "yaml", "f.yaml", "", fakeEnv(map[string]string{"B": strings.Repeat("b", 8<<10)}))
	if err != nil || len(cfg.Default.Headers) != 100 {
		t.Errorf("100 values of 8 KiB: %d headers, %v", len(cfg.Default.Headers), err)
	}
}

// TestConfigErrorListsAtMost100Problems: every problem is listed, up to
// 100; the rest are counted.
func TestConfigErrorListsAtMost100Problems(t *testing.T) {
	var b strings.Builder
	b.WriteString("endpoints:\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "  h%03d.example.com: {timeout: 5}\n", i)
	}
	inCode := Config{Endpoints: map[string]EndpointConfig{}}
	for i := 0; i < 300; i++ {
		inCode.Endpoints[fmt.Sprintf("h%03d.example.com", i)] = EndpointConfig{Retry: RetryConfig{MaxAttempts: -1}}
	}
	_, fromFile := parseConfig([]byte(b.String()), "yaml", "f.yaml", "", fakeEnv(nil))
	for name, err := range map[string]error{"file": fromFile, "Validate": inCode.Validate()} {
		t.Run(name, func(t *testing.T) {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if len(ce.Problems) != 100 || ce.Omitted != 200 {
				t.Errorf("%d problems listed, %d omitted; want 100 and 200", len(ce.Problems), ce.Omitted)
			}
			msg := err.Error()
			if !strings.Contains(msg, "(300 problems):") || !strings.HasSuffix(msg, "\n  ... and 200 more") {
				t.Errorf("error = %.200s ... %s", msg, msg[max(0, len(msg)-100):])
			}
			if !strings.Contains(msg, `h000.example.com"]`) || strings.Contains(msg, `h299.example.com"]`) {
				t.Errorf("the first problems are not the ones listed:\n%.300s", msg)
			}
		})
	}
}

// TestConfigQuotesValuesShort: a value the loader quotes back is cut.
func TestConfigQuotesValuesShort(t *testing.T) {
	long := strings.Repeat("y", 5000)
	for _, src := range []string{
		"default: {timeout: " + long + "}\n",
		"default: {headers: {X: \"${" + long + "}\"}}\n",
	} {
		_, err := parseConfig([]byte(src), "yaml", "f.yaml", "", fakeEnv(nil))
		if err == nil {
			t.Fatal("no error")
		}
		want := `"` + strings.Repeat("y", 40) + `"... (5000 bytes)`
		if msg := err.Error(); len(msg) > 400 || !strings.Contains(msg, want) {
			t.Errorf("error (%d bytes) = %.400s; want it short, with %s", len(msg), msg, want)
		}
	}
}

func TestQuoteValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", `"short"`},
		{strings.Repeat("a", 40), `"` + strings.Repeat("a", 40) + `"`},
		{strings.Repeat("a", 41), `"` + strings.Repeat("a", 40) + `"... (41 bytes)`},
		{strings.Repeat("a", 39) + "éé", `"` + strings.Repeat("a", 39) + `"... (43 bytes)`},
	}
	for _, tt := range tests {
		if got := quoteValue(tt.in); got != tt.want {
			t.Errorf("quoteValue(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// timeLimit is d, scaled for the race detector, which makes the parser
// about ten times slower.
func timeLimit(d time.Duration) time.Duration {
	if raceEnabled {
		return 10 * d
	}
	return d
}

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

func TestCountSeparators(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"a: 1\nb: [1, 2]\n", 4},
		{"- a\n- b-c\n-\n", 3},
		{"url: https://a-b.example.com:8443/x\ntime: 10:30\n", 2},
		{`{"a":1,"b":[2]}`, 3},
		{"? a\n: b", 2},
	}
	for _, tt := range tests {
		if got := countSeparators([]byte(tt.in)); got != tt.want {
			t.Errorf("countSeparators(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
