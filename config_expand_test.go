package connmgr

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ${VAR} expansion in values, and its budget.

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{
		"TOKEN":   "s3cr3t",
		"EMPTY":   "",
		"N":       "7",
		"D":       "250ms",
		"HOST":    "api.example.com",
		"NL":      "a\nb",
		"YAMLISH": "{bearer_token: x}",
		"NULLISH": "null",
		"DOLLAR":  "a$b${c",
		"BADUTF8": "\xff\xfe",
		"HUGE":    strings.Repeat("x", maxEnvValueSize+1),
		"HALF":    strings.Repeat("x", maxEnvValueSize/2+1),
	}
	ok := []struct {
		name, value string
		want        string
	}{
		{"plain", "${TOKEN}", "s3cr3t"},
		{"inside text", "Bearer-${TOKEN}-x", "Bearer-s3cr3t-x"},
		{"default unused", "${TOKEN:-d}", "s3cr3t"},
		{"default for unset", "${UNSET:-d}", "d"},
		{"default for empty", "${EMPTY:-d}", "d"},
		{"empty default", "${UNSET:-}", ""},
		{"set but empty", "x${EMPTY}y", "xy"},
		{"nested default", "${UNSET:-${ALSO_UNSET:-${TOKEN}}}", "s3cr3t"},
		{"default with colon and dash", "${UNSET:-a:-b}", "a:-b"},
		{"escaped", "$${TOKEN}", "${TOKEN}"},
		{"lone dollar", "cost $5 $", "cost $5 $"},
		{"$VAR is not expanded", "$TOKEN", "$TOKEN"},
		{"value keeps its dollars", "${DOLLAR}", "a$b${c"},
		{"structure stays a string", "${YAMLISH}", "{bearer_token: x}"},
		{"null stays a string", "${NULLISH}", "null"},
		{"two variables", "${HOST}/${N}", "api.example.com/7"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseYAML(t, "default:\n  headers:\n    X-V: '"+tt.value+"'\n", env)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Default.Headers["X-V"]; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	bad := []struct {
		name, value string
		want        []string
	}{
		{"unset without default", "${MISSING}", []string{"environment variable MISSING is not set", "${MISSING:-default}"}},
		{"control characters", "${NL}", []string{"environment variable NL contains control characters"}},
		{"invalid UTF-8", "${BADUTF8}", []string{"BADUTF8 is not valid UTF-8"}},
		{"too long", "${HUGE}", []string{"HUGE is longer than 64 KiB"}},
		{"too long after expansion", "${HALF}${HALF}", []string{"longer than 64 KiB after expansion"}},
		{"unclosed", "${TOKEN", []string{"unclosed ${"}},
		{"bad name", "${1X}", []string{`"1X" is not a variable name`}},
		{"unsupported operator", "${X:?oops}", []string{"is not a variable name"}},
		{"empty name", "${}", []string{`"" is not a variable name`}},
		{"too deep", strings.Repeat("${U:-", 10) + "x" + strings.Repeat("}", 10), []string{"nested too deeply"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseYAML(t, "default:\n  headers:\n    X-V: '"+tt.value+"'\n", env)
			wantProblem(t, err, 3, `default.headers["X-V"]`, tt.want...)
		})
	}

	t.Run("every missing variable is named", func(t *testing.T) {
		_, err := parseYAML(t, "default:\n  auth: {bearer_token: '${A1}${A2}'}\nendpoints:\n  x.com: {fallback: '${A3}'}\n", env)
		for _, v := range []string{"A1", "A2", "A3"} {
			if !strings.Contains(err.Error(), "environment variable "+v+" is not set") {
				t.Errorf("%s not named in %v", v, err)
			}
		}
	})
	t.Run("typed as if unquoted", func(t *testing.T) {
		cfg, err := parseYAML(t, "default:\n  timeout: \"${D}\"\n  retry: {max_attempts: '${N}'}\n  transport: {disable_http2: '${B:-true}'}\n", env)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Default.Timeout != 250*time.Millisecond || cfg.Default.Retry.MaxAttempts != 7 || !*cfg.Default.Transport.DisableHTTP2 {
			t.Errorf("got %+v", cfg.Default)
		}
		cfg, err = parseConfig([]byte(`{"default": {"retry": {"max_attempts": "${N:-3}"}}}`), "json", "f", "", fakeEnv(env))
		if err != nil || cfg.Default.Retry.MaxAttempts != 7 {
			t.Errorf("json: max_attempts = %d, err = %v", cfg.Default.Retry.MaxAttempts, err)
		}
	})
	t.Run("values from the environment are not quoted in errors", func(t *testing.T) {
		_, err := parseYAML(t, "default:\n  retry: {max_attempts: '${TOKEN}', max_backoff: 1}\n  timeout: ${TOKEN}\n  headers: ${TOKEN}\n", env)
		if err == nil || strings.Contains(err.Error(), "s3cr3") {
			t.Errorf("err = %v: it must fail without quoting the value", err)
		}
		wantProblem(t, err, 2, "default.retry.max_attempts", "a value from the environment")
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		cfg, err := parseYAML(t, "default:\n  headers:\n    $X: v\n", env)
		if err != nil || cfg.Default.Headers["$X"] != "v" {
			t.Errorf("cfg = %+v, err = %v", cfg.Default.Headers, err)
		}
	})
	t.Run("a value cannot add structure", func(t *testing.T) {
		// With text expansion before parsing this would set a second
		// key; here it is one string, which then fails validation as a
		// header value would.
		env := map[string]string{"UA": "x\n  auth: {bearer_token: stolen}"}
		cfg, err := parseYAML(t, "default:\n  headers: {User-Agent: '${UA}'}\n", env)
		if err == nil || cfg.Default.Auth.BearerToken != "" {
			t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
		}
		env = map[string]string{"UA": "x, auth: {bearer_token: stolen}"}
		cfg, err = parseYAML(t, "default:\n  headers:\n    User-Agent: ${UA}\n", env)
		if err != nil || cfg.Default.Auth.BearerToken != "" || cfg.Default.Headers["User-Agent"] != env["UA"] {
			t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
		}
	})
	t.Run("anchored value expanded once", func(t *testing.T) {
		env := map[string]string{"V": "$${NOT}"}
		cfg, err := parseYAML(t, "default:\n  headers: {X-A: &v '${V}'}\nendpoints:\n  a.com: {headers: {X-B: *v}}\n", env)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Endpoints["a.com"].Headers["X-B"]; got != "$${NOT}" {
			t.Errorf("alias value = %q, want the variable's value as it is", got)
		}
	})
}

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
