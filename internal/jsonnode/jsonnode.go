// Package jsonnode reads JSON into the node tree the YAML parser
// (go.yaml.in/yaml/v3) would build, with line numbers, so that a config
// loader checks and decodes JSON and YAML with the same code. JSON's own
// rules for strings and escapes apply: the text is read with
// encoding/json.
package jsonnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrEmpty is returned for input that holds no JSON value at all (only
// white space).
var ErrEmpty = errors.New("jsonnode: no value")

// SyntaxError is invalid JSON, with the line it was found on.
type SyntaxError struct {
	Line int    // 1-based
	Msg  string // what is wrong, from encoding/json
}

func (e *SyntaxError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Msg }

// Parse reads one JSON value from data, which must hold nothing else.
// Objects become mapping nodes (keys double-quoted scalars), arrays
// sequence nodes, strings !!str, numbers !!int or !!float, true and false
// !!bool, null !!null; every node has its line. The error is ErrEmpty or
// a *SyntaxError.
func Parse(data []byte) (*yaml.Node, error) {
	p := &parser{dec: json.NewDecoder(bytes.NewReader(data)), data: data, line: 1}
	p.dec.UseNumber()
	root, err := p.value()
	if err == nil {
		if _, terr := p.dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the top-level value")
			if terr != nil {
				err = terr
			}
		}
	}
	if err == nil {
		return root, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, &SyntaxError{Line: lineAt(data, se.Offset), Msg: se.Error()}
	case err == io.EOF && p.tokens == 0:
		return nil, ErrEmpty
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &SyntaxError{Line: lineAt(data, int64(len(data))), Msg: "unexpected end of file"}
	}
	return nil, &SyntaxError{Line: p.line, Msg: err.Error()}
}

// lineAt returns the 1-based line holding byte offset off of data.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

type parser struct {
	dec    *json.Decoder
	data   []byte
	off    int64 // input offset after the last token
	line   int   // line of the last token
	tokens int   // tokens read
}

// token reads the next token and the line it is on. A JSON token never
// spans lines, so the line where it ends is the line where it starts.
func (p *parser) token() (json.Token, int, error) {
	t, err := p.dec.Token()
	if err == nil {
		p.tokens++
	}
	off := p.dec.InputOffset()
	if off > p.off && off <= int64(len(p.data)) {
		p.line += bytes.Count(p.data[p.off:off], []byte{'\n'})
		p.off = off
	}
	return t, p.line, err
}

func (p *parser) value() (*yaml.Node, error) {
	t, line, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.node(t, line)
}

func (p *parser) node(t json.Token, line int) (*yaml.Node, error) {
	switch v := t.(type) {
	case json.Delim:
		return p.collection(v, line)
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle, Line: line, Column: 1}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(v), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v), Line: line, Column: 1}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v), Line: line, Column: 1}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line, Column: 1}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", t)
}

// collection reads an object or array whose opening delimiter was read.
func (p *parser) collection(open json.Delim, line int) (*yaml.Node, error) {
	n := &yaml.Node{Line: line, Column: 1}
	switch open {
	case '{':
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
	case '[':
		n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
	default:
		return nil, fmt.Errorf("unexpected %q", open)
	}
	for p.dec.More() {
		if n.Kind == yaml.MappingNode {
			kt, kline, err := p.token()
			if err != nil {
				return nil, err
			}
			key, ok := kt.(string)
			if !ok {
				return nil, fmt.Errorf("object key is not a string")
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Style: yaml.DoubleQuotedStyle, Line: kline, Column: 1})
		}
		c, err := p.value()
		if err != nil {
			return nil, err
		}
		n.Content = append(n.Content, c)
	}
	if _, _, err := p.token(); err != nil { // the closing delimiter
		return nil, err
	}
	return n, nil
}
