// Package yamlnode holds what a config loader needs around the node tree
// of go.yaml.in/yaml/v3 to read hostile input safely: the parser and
// decoder with their panics turned into errors, cheap size checks made
// before and after parsing, a rewrite that keeps decoding large mappings
// linear, and the parsing of the decoder's messages.
package yamlnode

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode decodes n into v, turning a panic in the decoder into an error:
// bad input must give an error, never a crash.
func Decode(n *yaml.Node, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot decode config: %v", p)
		}
	}()
	return n.Decode(v)
}

// Next reads the next document of dec into n, turning a parser panic
// into an error.
func Next(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot parse config: %v", p)
		}
	}()
	return dec.Decode(n)
}

// CountSeparators counts the bytes that can start a YAML or JSON value:
// flow indicators, and the block indicators - ? : when followed by a
// space or a line end (so host names, times and URLs do not count). A
// document has at most a few values per separator, so this bounds what
// parsing it would cost before it is parsed.
func CountSeparators(data []byte) int {
	n := 0
	for i, c := range data {
		switch c {
		case ',', '[', '{':
			n++
		case '-', '?', ':':
			if i+1 == len(data) || data[i+1] == ' ' || data[i+1] == '\n' || data[i+1] == '\t' || data[i+1] == '\r' {
				n++
			}
		}
	}
	return n
}

// AtMost reports whether the tree under root has at most max nodes.
// Aliases count once, where they are: the decoder bounds their expansion.
func AtMost(root *yaml.Node, max int) bool {
	stack := []*yaml.Node{root}
	for count := 0; len(stack) > 0; {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if count++; count > max {
			return false
		}
		stack = append(stack, n.Content...)
	}
	return true
}

// Chunk rewrites a mapping of more than size entries, whose keys the
// caller has checked for duplicates, as a merge (<<) of mappings of size
// entries. The decoder checks a mapping's keys for duplicates pair by
// pair, in time that grows with the square of their number; after Chunk
// it checks them chunk by chunk, in linear time, and decodes the same
// map. A mapping that has merge keys of its own is left as it is.
func Chunk(n *yaml.Node, size int) {
	if len(n.Content) <= 2*size {
		return
	}
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Tag == "!!merge" {
			return
		}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column}
	for i := 0; i < len(n.Content); i += 2 * size {
		end := min(i+2*size, len(n.Content))
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: n.Content[i:end:end], Line: n.Content[i].Line, Column: n.Content[i].Column})
	}
	merge := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!merge", Value: "<<", Line: n.Line, Column: n.Column}
	n.Content = []*yaml.Node{merge, seq}
}

// SplitLine splits a decoder message "line 12: message" (perhaps after
// "yaml: ") into 12 and "message"; a message without a line is 0 and the
// message.
func SplitLine(msg string) (int, string) {
	msg = strings.TrimPrefix(msg, "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	if !ok {
		return 0, msg
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, msg
	}
	return n, text
}

// Scrub replaces the value a decoder message quotes in backquotes with
// "(a value from the environment)": it may be a secret.
func Scrub(msg string) string {
	i := strings.IndexByte(msg, '`')
	j := strings.LastIndexByte(msg, '`')
	if i < 0 || j <= i {
		return msg
	}
	return msg[:i] + "(a value from the environment)" + msg[j+1:]
}

// Quoted returns the value a decoder message quotes in backquotes, with
// the "..." the decoder puts after a value it cut short removed, or "".
func Quoted(msg string) string {
	i := strings.IndexByte(msg, '`')
	j := strings.LastIndexByte(msg, '`')
	if i < 0 || j <= i {
		return ""
	}
	return strings.TrimSuffix(msg[i+1:j], "...")
}
