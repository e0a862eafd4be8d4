package jsonnode

import (
	"errors"
	"testing"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseKeepsLinesAndTypes(t *testing.T) {
	src := "{\n  \"a\": 1,\n  \"b\": [2.5, true,\n    null],\n  \"c\": \"x\\u0041\"\n}\n"
	root, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if root.Kind != yaml.MappingNode || len(root.Content) != 6 {
		t.Fatalf("root = kind %v with %d children, want a mapping of 3", root.Kind, len(root.Content))
	}
	b := root.Content[3]
	checks := []struct {
		n          *yaml.Node
		tag, value string
		line       int
	}{
		{root.Content[0], "!!str", "a", 2},
		{root.Content[1], "!!int", "1", 2},
		{b.Content[0], "!!float", "2.5", 3},
		{b.Content[1], "!!bool", "true", 3},
		{b.Content[2], "!!null", "null", 4},
		{root.Content[5], "!!str", "xA", 5},
	}
	for _, c := range checks {
		if c.n.Tag != c.tag || c.n.Value != c.value || c.n.Line != c.line {
			t.Errorf("node %s %q line %d, want %s %q line %d", c.n.Tag, c.n.Value, c.n.Line, c.tag, c.value, c.line)
		}
	}
	var got map[string]any
	if err := root.Decode(&got); err != nil || got["c"] != "xA" {
		t.Errorf("decoded %v, err %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		line int // 0: ErrEmpty
	}{
		{" \n ", 0},
		{"{\n  \"a\": 1,\n}\n", 3},
		{"{\"a\":\n", 2},
		{"{}\n{}\n", 1}, // the line of the value before it
		{"[1] x", 1},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.src))
		var se *SyntaxError
		switch {
		case tt.line == 0:
			if !errors.Is(err, ErrEmpty) {
				t.Errorf("Parse(%q) = %v, want ErrEmpty", tt.src, err)
			}
		case !errors.As(err, &se) || se.Line != tt.line:
			t.Errorf("Parse(%q) = %v, want a *SyntaxError on line %d", tt.src, err, tt.line)
		}
	}
}
