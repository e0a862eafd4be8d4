package connmgr

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/connmgr/connmgr/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

// Problems: what the loader found, each pointed at its field path and
// line, or at the environment variable that set it.

// loader carries one parse: the problems found so far and what is needed
// to point each at its line.
type loader struct {
	env      environment
	problems []FieldError
	lines    map[string]int      // field path -> line of its key
	linePath map[int]string      // line -> last field path set on it
	bad      map[int]bool        // lines that already have a problem
	expanded map[int]bool        // lines with a value taken from the environment
	visited  map[*yaml.Node]bool // scalars already expanded (anchors are shared)
	fromEnv  map[string]string   // field path -> the variable that overrode it
	envPaths map[string]bool     // field paths whose value ${VAR} expanded
	envText  map[string]bool     // every value taken from the environment, as text
	merged   map[mergeKey]bool   // mappings already checked as merge sources
	omitted  int                 // problems found past maxProblems

	budget        int  // bytes that expanded values may add up to
	expandedBytes int  // bytes that expanded values add up to so far
	tooLarge      bool // a size limit was passed: the file is not decoded
}

type mergeKey struct {
	n *yaml.Node
	t reflect.Type
}

func (l *loader) add(line int, path, format string, args ...any) {
	if line > 0 {
		l.bad[line] = true
	}
	if len(l.problems) >= maxProblems {
		l.omitted++
		return
	}
	l.problems = append(l.problems, FieldError{Path: path, Line: line, Problem: fmt.Sprintf(format, args...)})
}

// addProblem adds a problem validation found.
func (l *loader) addProblem(p FieldError) {
	if len(l.problems) >= maxProblems {
		l.omitted++
		return
	}
	l.problems = append(l.problems, p)
}

// err sorts the problems, file lines first, and wraps them.
func (l *loader) err(source string) error {
	sort.SliceStable(l.problems, func(i, j int) bool {
		a, b := l.problems[i], l.problems[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Path < b.Path
	})
	return &ConfigError{Source: source, Problems: l.problems, Omitted: l.omitted}
}

// mark records where a field path is set in the file.
func (l *loader) mark(line int, path string) {
	if _, ok := l.lines[path]; !ok {
		l.lines[path] = line
	}
	if line > 0 {
		l.linePath[line] = path // the innermost on the line
	}
}

// annotate points a validation problem at the file: at the line of its
// field, or of the closest enclosing block the file sets, or at the
// environment variable that set it. Validation quotes no strings, but it
// does say "got 5" of a number: that is cut when the number came from the
// environment.
func (l *loader) annotate(p FieldError) FieldError {
	if i := strings.LastIndex(p.Problem, ", got "); i >= 0 {
		if l.envText[p.Problem[i+len(", got "):]] || coveredBy(p.Path, l.envPaths) || l.fromEnv[p.Path] != "" {
			p.Problem = p.Problem[:i]
		}
	}
	for path := p.Path; path != ""; path = parentPath(path) {
		if name, ok := l.fromEnv[path]; ok {
			p.Problem += " (set by $" + name + ")"
			return p
		}
		if line, ok := l.lines[path]; ok {
			p.Line = line
			return p
		}
	}
	return p
}

// quotesEnvText reports whether a decoder message quotes (between
// backquotes, perhaps cut short with "...") a value that came from the
// environment.
func (l *loader) quotesEnvText(msg string) bool {
	q := yamlnode.Quoted(msg)
	if q == "" {
		return false
	}
	for v := range l.envText {
		if strings.HasPrefix(v, q) {
			return true
		}
	}
	return false
}

// coveredBy reports whether path or a block enclosing it is in paths.
func coveredBy(path string, paths map[string]bool) bool {
	for ; path != ""; path = parentPath(path) {
		if paths[path] {
			return true
		}
	}
	return false
}

// parentPath strips the last element of a field path:
// endpoints["a.b"].retry.max_attempts -> endpoints["a.b"].retry ->
// endpoints["a.b"] -> endpoints -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, `"]`) {
		// strconv.Quote escapes every '"' inside a key, so `["` only
		// starts a quoted key.
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	}
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	j := strings.LastIndexByte(p, ']')
	if i := strings.LastIndexByte(p[j+1:], '.'); i >= 0 {
		return p[:j+1+i]
	}
	return ""
}
