package envexpand

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func lookupIn(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestExpand(t *testing.T) {
	env := lookupIn(map[string]string{"A": "x", "EMPTY": "", "NL": "a\nb", "SECRET": "hunter2"})
	tests := []struct {
		in, want string
		probs    []string
	}{
		{"${A}-${A}", "x-x", nil},
		{"${EMPTY:-d}", "d", nil},
		{"${U:-${V:-${A}}}", "x", nil},
		{"$${A} $A $", "${A} $A $", nil},
		{"${U}", "", []string{"environment variable U is not set"}},
		{"${NL}", "", []string{"environment variable NL contains control characters"}},
		{"${A", "", []string{"unclosed ${"}},
		{"${9}", "", []string{`"9" is not a variable name`}},
		{strings.Repeat("${U:-", 9) + "x" + strings.Repeat("}", 9), "", []string{"nested too deeply"}},
	}
	for _, tt := range tests {
		got, probs := Expand(tt.in, env)
		if len(probs) != len(tt.probs) {
			t.Errorf("Expand(%q) problems = %q, want %q", tt.in, probs, tt.probs)
			continue
		}
		for i, p := range probs {
			if !strings.Contains(p, tt.probs[i]) {
				t.Errorf("Expand(%q) problem %q, want it to contain %q", tt.in, p, tt.probs[i])
			}
		}
		if len(probs) == 0 && got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestProblemsNeverQuoteValues(t *testing.T) {
	env := lookupIn(map[string]string{"S": "hunter2\n", "BIG": strings.Repeat("hunter2", MaxValueSize/7+1)})
	for _, in := range []string{"${S}", "${BIG}", "${BIG:-x}"} {
		_, probs := Expand(in, env)
		if len(probs) == 0 {
			t.Errorf("Expand(%q): no problem", in)
		}
		for _, p := range probs {
			if strings.Contains(p, "hunter2") {
				t.Errorf("Expand(%q) problem quotes the value: %q", in, p)
			}
		}
	}
}

func TestCheckValue(t *testing.T) {
	tests := map[string]string{
		"ok\tvalue":                         "",
		"a\x7f":                             "contains control characters",
		"\xff":                              "is not valid UTF-8",
		strings.Repeat("a", MaxValueSize+1): "is longer than 64 KiB",
	}
	for in, want := range tests {
		if got := CheckValue(in); got != want {
			t.Errorf("CheckValue(%.10q) = %q, want %q", in, got, want)
		}
	}
}
