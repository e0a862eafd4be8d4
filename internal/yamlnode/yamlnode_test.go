package yamlnode

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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
		if got := CountSeparators([]byte(tt.in)); got != tt.want {
			t.Errorf("CountSeparators(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestChunkKeepsTheMapping(t *testing.T) {
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "k%d: %d\n", i, i)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Content[0]
	Chunk(m, 64)
	if len(m.Content) != 2 || m.Content[0].Tag != "!!merge" || len(m.Content[1].Content) != 4 {
		t.Fatalf("after Chunk: %d entries, want one merge of 4 chunks", len(m.Content)/2)
	}
	var got map[string]int
	if err := Decode(m, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || got["k0"] != 0 || got["k199"] != 199 {
		t.Errorf("decoded %d keys (k199 = %d), want the 200 written", len(got), got["k199"])
	}
}

func TestAtMost(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: [1, 2]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	// document, mapping, key a, sequence, 1, 2
	if !AtMost(&doc, 6) || AtMost(&doc, 5) {
		t.Errorf("AtMost(6), AtMost(5) = %v, %v; want true, false", AtMost(&doc, 6), AtMost(&doc, 5))
	}
}

func TestSplitLineScrubQuoted(t *testing.T) {
	line, msg := SplitLine("yaml: line 12: cannot unmarshal !!str `abc...` into int")
	if line != 12 || msg != "cannot unmarshal !!str `abc...` into int" {
		t.Errorf("SplitLine = %d, %q", line, msg)
	}
	if line, msg := SplitLine("line x: y"); line != 0 || msg != "line x: y" {
		t.Errorf("SplitLine without a number = %d, %q", line, msg)
	}
	if got := Scrub(msg); got != "cannot unmarshal !!str (a value from the environment) into int" {
		t.Errorf("Scrub = %q", got)
	}
	if got := Quoted(msg); got != "abc" {
		t.Errorf("Quoted = %q, want abc", got)
	}
}

type panicky struct{}

func (*panicky) UnmarshalYAML(*yaml.Node) error { panic("boom") }

func TestDecodeTurnsAPanicIntoAnError(t *testing.T) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "x"}
	err := Decode(n, new(panicky))
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Decode = %v, want an error naming the panic", err)
	}
}
