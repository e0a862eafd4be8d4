package quote

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestQuoteValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", `"short"`},
		{strings.Repeat("a", 40), `"` + strings.Repeat("a", 40) + `"`},
		{strings.Repeat("a", 41), `"` + strings.Repeat("a", 40) + `"... (41 bytes)`},
		{strings.Repeat("a", 39) + "éé", `"` + strings.Repeat("a", 39) + `"... (43 bytes)`},
	}
	for _, tt := range tests {
		if got := Short(tt.in); got != tt.want {
			t.Errorf("Short(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
