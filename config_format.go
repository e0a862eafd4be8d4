package connmgr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MarshalConfig writes cfg as a config file, format being "yaml" or
// "json", that ParseConfig and LoadConfig read back to an equal Config:
// durations as strings with a unit ("1m30s"), fields at their zero value
// left out (they inherit), and nil and empty lists told apart (an empty
// list is written as [] because it does not inherit). "${" in a value is
// written "$${" so that it is not expanded when read back. Secrets are
// written as they are: use cfg.Redacted() for anything a person reads.
//
// (yaml.Marshal and json.Marshal of a Config do not round-trip: the
// first drops empty lists, the second writes durations as nanoseconds.)
func MarshalConfig(cfg Config, format string) ([]byte, error) {
	n := configNode(reflect.ValueOf(cfg), false)
	if n == nil {
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	switch format {
	case "yaml":
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(n); err != nil {
			return nil, fmt.Errorf("connmgr: MarshalConfig: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("connmgr: MarshalConfig: %w", err)
		}
		return buf.Bytes(), nil
	case "json":
		var compact bytes.Buffer
		writeJSON(&compact, n)
		var out bytes.Buffer
		if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
			return nil, fmt.Errorf("connmgr: MarshalConfig: %w", err)
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	}
	return nil, fmt.Errorf(`connmgr: MarshalConfig: unknown format %q: want "yaml" or "json"`, format)
}

// configNode turns a config value into a YAML node, or nil when it is
// left out. keepZero writes a zero scalar (the value behind a *bool).
func configNode(v reflect.Value, keepZero bool) *yaml.Node {
	scalar := func(tag, value string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	}
	switch {
	case v.Type() == durationType:
		if v.Int() == 0 && !keepZero {
			return nil
		}
		return scalar("!!str", v.Interface().(fmt.Stringer).String())
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return configNode(v.Elem(), true)
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if c := configNode(v.Field(i), false); c != nil {
				n.Content = append(n.Content, scalar("!!str", name), c)
			}
		}
		if len(n.Content) == 0 && !keepZero {
			return nil
		}
		return n
	case reflect.Map:
		if v.Len() == 0 {
			return nil // maps merge key by key: empty and nil mean the same
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range keys {
			c := configNode(v.MapIndex(k), true)
			if c == nil {
				c = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
			}
			n.Content = append(n.Content, scalar("!!str", k.String()), c)
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			n.Content = append(n.Content, configNode(v.Index(i), true))
		}
		return n
	case reflect.String:
		if v.Len() == 0 && !keepZero {
			return nil
		}
		return scalar("!!str", strings.ReplaceAll(v.String(), "${", "$${"))
	case reflect.Bool:
		if !v.Bool() && !keepZero {
			return nil
		}
		return scalar("", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() == 0 && !keepZero {
			return nil
		}
		return scalar("", strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Uint() == 0 && !keepZero {
			return nil
		}
		return scalar("", strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		if v.Float() == 0 && !keepZero {
			return nil
		}
		return scalar("", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	return nil
}

// writeJSON writes a node built by configNode as compact JSON: scalars
// tagged !!str are strings, the others (numbers, booleans) are written
// as they are.
func writeJSON(b *bytes.Buffer, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, n.Content[i])
			b.WriteByte(':')
			writeJSON(b, n.Content[i+1])
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, c)
		}
		b.WriteByte(']')
	default:
		if n.Tag == "!!str" {
			s, _ := json.Marshal(n.Value)
			b.Write(s)
		} else {
			b.WriteString(n.Value)
		}
	}
}
