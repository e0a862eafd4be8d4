package cache

import (
	"strings"
	"testing"
)

// TestConfigErrors: bad input is an error naming the field, never a panic.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Mode: "public"}, `cache: Mode: must be "shared" or "private"`},
		{Config{TTL: -1}, "cache: TTL: must be >= 0"},
		{Config{MaxBytes: -1}, "cache: MaxBytes: must be >= 0"},
		{Config{Statuses: []int{99}}, "cache: Statuses[0]: must be a final status"},
		{Config{Methods: []string{"G ET"}}, "cache: Methods[0]: not a method"},
		{Config{KeyHeaders: []string{"a:b"}}, "cache: KeyHeaders[0]: not a header name"},
		{Config{Name: "two words"}, "cache: Name: must be a token"},
		{Config{MaxVariants: -2}, "cache: MaxVariants: must be >= 0"},
		{Config{StoreTimeout: -1}, "cache: StoreTimeout: must be >= 0"},
		{Config{BackgroundTimeout: -1}, "cache: BackgroundTimeout: must be >= 0"},
	}
	for _, tt := range tests {
		c, err := New(tt.cfg)
		if err == nil {
			c.Close()
			t.Errorf("New(%+v) = nil error, want %q", tt.cfg, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %q, want it to contain %q", tt.cfg, err, tt.want)
		}
	}
}

// TestConfigDoesNotAliasCaller: New copies the slices it normalises.
func TestConfigDoesNotAliasCaller(t *testing.T) {
	methods := []string{"get"}
	c, err := New(Config{Methods: methods})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if methods[0] != "get" {
		t.Errorf("the caller's slice was changed to %q", methods[0])
	}
}
