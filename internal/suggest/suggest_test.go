package suggest

import (
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestKey(t *testing.T) {
	known := []string{"timeout", "total_timeout", "retry", "max_backoff"}
	tests := []struct{ key, want string }{
		{"Timeout", ` (did you mean "timeout"?)`},
		{"max-backoff", ` (did you mean "max_backoff"?)`},
		{"timout", ` (did you mean "timeout"?)`},
		{"rety", ` (did you mean "retry"?)`},
		{"zzzzzz", "; known keys here: max_backoff, retry, timeout, total_timeout"},
	}
	for _, tt := range tests {
		if got := Key(tt.key, known); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if known[0] != "timeout" {
		t.Errorf("Key sorted the caller's slice: %v", known)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"burst", "burts", 2},
		{strings.Repeat("a", 65), "a", math.MaxInt},
	}
	for _, tt := range tests {
		if got := EditDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
