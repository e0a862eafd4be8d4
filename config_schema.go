package connmgr

import (
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/connmgr/connmgr/internal/envexpand"
	"github.com/connmgr/connmgr/internal/quote"
	"github.com/connmgr/connmgr/internal/suggest"
	"github.com/connmgr/connmgr/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

// The schema walk: the node tree checked against the Go type it decodes
// into, before the decoder sees it.

var durationType = reflect.TypeOf(time.Duration(0))

// walk checks the node tree against the Go type it will be decoded into:
// unknown and duplicate keys, durations without a unit, fractions for
// whole numbers. It expands ${VAR} in scalar values and records the line
// of every field path.
func (l *loader) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if depth > maxNodeDepth {
		l.add(n.Line, path, "nested too deeply")
		l.tooLarge = true
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.ScalarNode:
		l.scalar(n, t, path)
	case yaml.MappingNode:
		if len(n.Content)/2 > maxMappingEntries {
			l.add(n.Line, path, "more than %d keys", maxMappingEntries)
			l.tooLarge = true
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			l.walkStruct(n, t, path, depth, map[string]int{})
		case reflect.Map:
			seen := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind != yaml.ScalarNode {
					l.add(k.Line, path, "keys must be plain strings")
					continue
				}
				if len(k.Value) > maxKeyLength {
					l.add(k.Line, path+"["+quote.Short(k.Value)+"]", "a key is at most %d bytes", maxKeyLength)
					l.tooLarge = true
					continue
				}
				kp := path + "[" + strconv.Quote(k.Value) + "]"
				if prev, dup := seen[k.Value]; dup {
					l.add(k.Line, kp, "already set on line %d", prev)
					continue
				}
				seen[k.Value] = k.Line
				if strings.Contains(k.Value, "${") {
					l.add(k.Line, kp, "${...} is expanded in values only, not in keys")
				}
				l.mark(k.Line, kp)
				l.walk(v, t.Elem(), kp, depth+1)
			}
			yamlnode.Chunk(n, decodeChunk)
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for i, c := range n.Content {
				l.walk(c, t.Elem(), path+"["+strconv.Itoa(i)+"]", depth+1)
			}
		}
	}
	// Aliases are walked where their anchor is defined; type mismatches
	// are left to the decoder, which names the line.
}

// walkStruct checks a mapping that decodes into struct type t. seen holds
// the keys already set, across merge keys (<<).
func (l *loader) walkStruct(n *yaml.Node, t reflect.Type, path string, depth int, seen map[string]int) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.add(k.Line, path, "keys must be plain strings")
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			l.walkMerge(v, t, path, depth, seen)
			continue
		}
		if len(k.Value) > maxKeyLength {
			l.add(k.Line, path, "unknown key %s", quote.Short(k.Value))
			continue
		}
		fp := k.Value
		if path != "" {
			fp = path + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			l.add(k.Line, fp, "unknown key%s", suggest.Key(k.Value, slices.Collect(maps.Keys(fields))))
			continue
		}
		if prev, dup := seen[k.Value]; dup && prev > 0 {
			l.add(k.Line, fp, "already set on line %d", prev)
			continue
		}
		seen[k.Value] = k.Line
		l.mark(k.Line, fp)
		l.walk(v, f.Type, fp, depth+1)
	}
}

// walkMerge checks the mappings a merge key (<<) brings into a struct.
func (l *loader) walkMerge(v *yaml.Node, t reflect.Type, path string, depth int, seen map[string]int) {
	if depth > maxNodeDepth {
		return
	}
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias != nil {
			l.walkMerge(v.Alias, t, path, depth+1, seen)
		}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			l.walkMerge(c, t, path, depth+1, seen)
		}
	case yaml.MappingNode:
		// A mapping merged in many places (or into itself) is checked
		// once per type, so merges cannot multiply the work.
		mk := mergeKey{v, t}
		if l.merged[mk] {
			return
		}
		l.merged[mk] = true
		// Keys a merge brings in may be overridden by the mapping itself,
		// so they are not duplicates: walk them with a scratch set.
		l.walkStruct(v, t, path, depth+1, map[string]int{})
	}
}

// yamlFields maps the keys of struct type t to its fields, following the
// yaml tags as the decoder does (",inline" structs contribute their keys).
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

// scalar expands ${VAR} in a scalar value and checks it against the Go
// type it decodes into.
func (l *loader) scalar(n *yaml.Node, t reflect.Type, path string) {
	if l.visited[n] {
		return
	}
	l.visited[n] = true
	fromEnv := false
	if strings.Contains(n.Value, "${") {
		if l.tooLarge {
			return // over the budget already: expand no more
		}
		out, probs := envexpand.Expand(n.Value, l.env.lookup)
		for _, p := range probs {
			l.add(n.Line, path, "%s", p)
		}
		if len(probs) > 0 {
			return
		}
		if l.expandedBytes += len(out); l.expandedBytes > l.budget {
			l.tooLarge = true
			l.add(n.Line, path, "values from the environment add up to more than %d KiB in all (the limit is the larger of 1 MiB and twice the file)", l.budget>>10)
			return
		}
		fromEnv = out != n.Value
		n.Value = out
		if n.Style&yaml.TaggedStyle == 0 {
			// Typed as if written unquoted; a null-looking value stays
			// a string rather than silently meaning "unset".
			n.Tag, n.Style = "", 0
			switch out {
			case "~", "null", "Null", "NULL":
				n.Tag = "!!str"
			}
		}
		if fromEnv {
			l.expanded[n.Line] = true
			l.envPaths[path] = true
			l.envText[out] = true
		}
	}
	if problem := checkScalar(n, t, fromEnv); problem != "" {
		l.add(n.Line, path, "%s", problem)
	}
}

// checkScalar catches what the YAML decoder would let through or explain
// poorly: durations without a unit and fractions in whole-number fields.
func checkScalar(n *yaml.Node, t reflect.Type, fromEnv bool) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	shown := quote.Short(n.Value)
	if fromEnv {
		shown = "a value from the environment"
	}
	var v any
	if t == durationType || isIntKind(t.Kind()) {
		if err := yamlnode.Decode(n, &v); err != nil {
			return "" // the decoder will report it
		}
	}
	switch {
	case t == durationType:
		switch x := v.(type) {
		case int, int64, uint64, float64:
			return "a duration needs a unit, as in 10s, 250ms or 1m30s; got " + shown
		case string:
			if _, err := time.ParseDuration(x); err != nil {
				return "not a duration: want a number with a unit, as in 10s, 250ms or 1m30s; got " + shown
			}
		}
	case isIntKind(t.Kind()):
		if f, ok := v.(float64); ok && f != math.Trunc(f) {
			return "must be a whole number, got " + shown
		}
	}
	// Decode the value alone, so a type mismatch is reported with the
	// field's path rather than only its line.
	if err := yamlnode.Decode(n, reflect.New(t).Interface()); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) || len(te.Errors) == 0 {
			return ""
		}
		switch k := t.Kind(); {
		case isIntKind(k):
			return "must be a whole number, got " + shown
		case k == reflect.Float32 || k == reflect.Float64:
			return "must be a number, got " + shown
		case k == reflect.Bool:
			return "must be true or false, got " + shown
		case k == reflect.Slice:
			return "must be a list, got " + shown
		case k == reflect.Map || k == reflect.Struct:
			return "must be a mapping, got " + shown
		}
		_, msg := yamlnode.SplitLine(te.Errors[0])
		if fromEnv {
			msg = yamlnode.Scrub(msg)
		}
		return msg
	}
	return ""
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}
