package connmgr

import (
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/connmgr/connmgr/internal/envexpand"
	"github.com/connmgr/connmgr/internal/suggest"
	"github.com/connmgr/connmgr/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

// applyOverrides applies the environment overrides named with prefix
// (see LoadConfigEnv) to cfg, recording each in l.fromEnv and each bad
// one as a problem.
func (l *loader) applyOverrides(cfg *Config, prefix string) {
	vars := l.env.environ()
	sort.Strings(vars) // the same order, and so the same result, every time
	for _, kv := range vars {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		rest := strings.ToUpper(name[len(prefix):])
		if !strings.Contains(rest, "__") {
			continue // CONNMGR_CONFIG and the like are not overrides
		}
		l.override(cfg, name, rest, value)
	}
}

// override applies one variable: rest is its name after the prefix, in
// upper case.
func (l *loader) override(cfg *Config, name, rest, value string) {
	where := "$" + name
	if value == "" {
		return
	}
	l.envText[value] = true
	for _, item := range strings.Split(value, ",") {
		l.envText[strings.TrimSpace(item)] = true // list items are shown alone
	}
	if problem := envexpand.CheckValue(value); problem != "" {
		l.add(0, where, "value %s", problem)
		return
	}
	section, fields, _ := strings.Cut(rest, "__")
	switch section {
	case "DEFAULT":
		l.overrideField(reflect.ValueOf(&cfg.Default).Elem(), "default", fields, name, value)
	case "REDACT":
		l.overrideField(reflect.ValueOf(&cfg.Redact).Elem(), "redact", fields, name, value)
	case "ENDPOINTS":
		key, fields, problem := matchEndpointKey(cfg.Endpoints, fields)
		if problem != "" {
			l.add(0, where, "%s", problem)
			return
		}
		ec := cfg.Endpoints[key]
		if l.overrideField(reflect.ValueOf(&ec).Elem(), endpointPath(key), fields, name, value) {
			cfg.Endpoints[key] = ec
		}
	default:
		l.add(0, where, "%q is not a section: want DEFAULT__, ENDPOINTS__ or REDACT__ after the prefix", section)
	}
}

// mangleKey writes an endpoint key the way an override names it: letters
// upper-cased, digits kept, everything else _.
func mangleKey(key string) string {
	b := []byte(key)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// matchEndpointKey finds the endpoint an override names: rest is
// KEY__FIELD__... with KEY mangled. The longest matching key wins; two
// keys that mangle alike are ambiguous.
func matchEndpointKey(endpoints map[string]EndpointConfig, rest string) (key, fields, problem string) {
	best := ""
	var matches []string
	for k := range endpoints {
		m := mangleKey(k)
		if !strings.HasPrefix(rest, m+"__") {
			continue
		}
		switch {
		case len(m) > len(best):
			best, matches = m, []string{k}
		case len(m) == len(best):
			matches = append(matches, k)
		}
	}
	switch len(matches) {
	case 0:
		return "", "", "names no endpoint of the file (an override changes an endpoint the file has: write its key in upper case with every character other than a letter or digit as _)"
	case 1:
		return matches[0], rest[len(best)+2:], ""
	}
	sort.Strings(matches)
	return "", "", "is ambiguous: it names each of the endpoints " + strings.Join(quoteAll(matches), ", ")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = `"` + s + `"`
	}
	return out
}

// overrideField sets the field that fields (FIELD__SUB in upper case)
// names inside struct v to value. It reports whether it set it.
func (l *loader) overrideField(v reflect.Value, path, fields, name, value string) bool {
	where := "$" + name
	for _, seg := range strings.Split(fields, "__") {
		key := strings.ToLower(seg)
		if v.Kind() == reflect.Map {
			break // reported below
		}
		if v.Kind() != reflect.Struct {
			l.add(0, where, "%s has no field %q", path, key)
			return false
		}
		known := yamlFields(v.Type())
		f, ok := known[key]
		if !ok {
			l.add(0, where, "%s has no key %q%s", path, key, suggest.Key(key, slices.Collect(maps.Keys(known))))
			return false
		}
		v = v.FieldByIndex(f.Index)
		path += "." + key
	}
	t := v.Type()
	switch t.Kind() {
	case reflect.Struct:
		l.add(0, where, "%s is a block: name one of its keys", path)
		return false
	case reflect.Map:
		l.add(0, where, "%s is a map and cannot be set from the environment: use ${VAR} in the file", path)
		return false
	case reflect.Slice:
		list := reflect.MakeSlice(t, 0, 0)
		if strings.TrimSpace(value) != "[]" {
			for _, item := range strings.Split(value, ",") {
				elem, problem := decodeScalar(strings.TrimSpace(item), t.Elem())
				if problem != "" {
					l.add(0, where, "%s: %s", path, problem)
					return false
				}
				list = reflect.Append(list, elem)
			}
		}
		v.Set(list)
	default:
		x, problem := decodeScalar(value, t)
		if problem != "" {
			l.add(0, where, "%s: %s", path, problem)
			return false
		}
		v.Set(x)
	}
	l.fromEnv[path] = name
	return true
}

// decodeScalar decodes text, typed as if written unquoted in YAML, into a
// new value of type t. text comes from the environment: a problem never
// quotes it.
func decodeScalar(text string, t reflect.Type) (reflect.Value, string) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: text}
	if problem := checkScalar(n, t, true); problem != "" {
		return reflect.Value{}, problem
	}
	out := reflect.New(t)
	if err := yamlnode.Decode(n, out.Interface()); err != nil {
		_, msg := yamlnode.SplitLine(err.Error())
		msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
		_, msg = yamlnode.SplitLine(msg)
		return reflect.Value{}, yamlnode.Scrub(msg)
	}
	return out.Elem(), ""
}
