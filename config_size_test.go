package connmgr

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
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
