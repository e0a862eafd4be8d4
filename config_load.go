package connmgr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits that keep a hostile or broken file from costing much.
const (
	// maxConfigFileSize caps a config file.
	maxConfigFileSize = 4 << 20
	// maxEnvValueSize caps a value taken from the environment, and a
	// scalar after expansion.
	maxEnvValueSize = 64 << 10
	// maxMappingEntries caps the keys of one mapping.
	maxMappingEntries = 10_000
	// maxConfigNodes caps the values (keys, scalars, lists, mappings) of
	// a file: what parsing, checking and decoding cost grows with them.
	// A file with more separators (, : - ? [ {) than this is refused
	// before it is parsed, since each can start a value or two.
	maxConfigNodes = 100_000
	// maxKeyLength caps a key: a host name is at most 253 bytes.
	maxKeyLength = 512
	// decodeChunk is how many entries of a large mapping the decoder is
	// given at once: it checks a mapping's keys for duplicates pair by
	// pair, in time that grows with the square of their number.
	decodeChunk = 64
	// maxExpandDepth caps nested defaults: ${A:-${B:-${C}}}.
	maxExpandDepth = 8
	// maxNodeDepth caps the nesting the loader walks; Config itself is
	// far shallower.
	maxNodeDepth = 64
	// minExpandBudget is the least the values of a file may add up to
	// after ${VAR} expansion; the budget is twice the file's size when
	// that is more. Without it, a short file repeating a large variable
	// would cost its size times the variable's in memory.
	minExpandBudget = 1 << 20
	// maxQuotedValue caps the bytes of a value the loader quotes back.
	maxQuotedValue = 40
)

// LoadConfig reads a config file: YAML for .yaml and .yml, JSON for .json,
// in the shape of Config (keys are the yaml/json names of its fields).
//
// It is strict. A key Config does not have is an error naming its line;
// durations are strings with a unit ("10s", "1m30s", "250ms"), never bare
// numbers; a whole-number field does not take a fraction; an empty file
// is an error (write {} for "all defaults"), and so is a file holding more
// than one YAML document.
//
// In values (not keys), ${VAR} is replaced by the environment variable
// VAR and ${VAR:-default} by VAR, or default when VAR is unset or empty;
// defaults may nest. $${ is a literal ${. A variable that is unset and has
// no default is an error naming it. A variable's value may not hold
// control characters or be longer than 64 KiB, and the expanded values of
// a file may add up to 1 MiB (or twice the file's size, if more).
// Expansion happens after parsing, inside the one value, so a variable can
// never add keys or structure; after expansion the value is typed as if
// written unquoted (so "${MAX:-3}" is a number).
//
// Then the config is validated as New would. Every problem found (up to
// 100) is reported at once in a *ConfigError, each with its field path
// and, where the file sets it, its line. No problem quotes a value taken
// from the environment: it may be a secret put in the wrong place. Errors
// reading the file are returned as they are (errors.Is(err,
// fs.ErrNotExist) holds for a missing file).
func LoadConfig(path string) (Config, error) {
	return loadConfigFile(path, "", osEnvironment())
}

// LoadConfigEnv is LoadConfig followed by overrides from environment
// variables whose names start with prefix (see docs/config.md):
//
//	PREFIXDEFAULT__TIMEOUT=5s
//	PREFIXDEFAULT__RETRY__MAX_ATTEMPTS=5
//	PREFIXENDPOINTS__API_EXAMPLE_COM__RATE_LIMIT__RATE=50
//	PREFIXREDACT__HEADERS=X-Session,X-Signature
//
// After the prefix come a section (DEFAULT, ENDPOINTS or REDACT) and the
// field's keys, separated by double underscores, in upper case. Under
// ENDPOINTS the endpoint is named by its key with letters upper-cased,
// digits kept and every other character written as _ (so "*.internal.io"
// is __INTERNAL_IO, and its variables start PREFIXENDPOINTS____INTERNAL_IO__);
// an override changes an endpoint the file has and never adds one. Lists are comma-separated ("[]" is the empty list);
// maps cannot be overridden (use ${VAR} in the file). An empty variable
// changes nothing. Variables with the prefix but no double underscore
// (say CONNMGR_CONFIG) are ignored; any other that does not name a
// setting is an error. Overrides are applied before validation.
func LoadConfigEnv(path, prefix string) (Config, error) {
	return loadConfigFile(path, prefix, osEnvironment())
}

// ParseConfig parses data as LoadConfig parses a file's contents, format
// being "yaml" or "json", and validates the result.
func ParseConfig(data []byte, format string) (Config, error) {
	return parseConfig(data, format, "", "", osEnvironment())
}

// ParseConfigEnv is ParseConfig followed by the environment overrides of
// LoadConfigEnv, for a config that is not in a file (standard input, a
// secret store).
func ParseConfigEnv(data []byte, format, prefix string) (Config, error) {
	return parseConfig(data, format, "", prefix, osEnvironment())
}

// environment is where ${VAR} and overrides are looked up; tests and the
// fuzz target supply their own.
type environment struct {
	lookup  func(string) (string, bool)
	environ func() []string
}

func osEnvironment() environment {
	return environment{lookup: os.LookupEnv, environ: os.Environ}
}

// configFormat tells the format of a config file by its extension.
func configFormat(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return "yaml", nil
	case ".json":
		return "json", nil
	}
	return "", fmt.Errorf("connmgr: config file %s: want a .yaml, .yml or .json file", path)
}

func loadConfigFile(path, prefix string, env environment) (Config, error) {
	format, err := configFormat(path)
	if err != nil {
		return Config{}, err
	}
	data, err := readConfigFile(path)
	if err != nil {
		return Config{}, err
	}
	return parseConfig(data, format, path, prefix, env)
}

// readConfigFile reads at most maxConfigFileSize bytes of path.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("connmgr: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("connmgr: %w", err)
	}
	if len(data) > maxConfigFileSize {
		return nil, fmt.Errorf("connmgr: config file %s is larger than %d MiB", path, maxConfigFileSize>>20)
	}
	return data, nil
}

// parseConfig is the loader's core: bytes in, a validated Config or a
// *ConfigError out. It never touches the disk, so it can be fuzzed.
func parseConfig(data []byte, format, source, prefix string, env environment) (Config, error) {
	l := &loader{
		env:      env,
		lines:    map[string]int{},
		linePath: map[int]string{},
		bad:      map[int]bool{},
		expanded: map[int]bool{},
		visited:  map[*yaml.Node]bool{},
		fromEnv:  map[string]string{},
		envPaths: map[string]bool{},
		envText:  map[string]bool{},
		merged:   map[mergeKey]bool{},
		budget:   max(minExpandBudget, 2*len(data)),
	}
	cfg, decoded := l.decode(data, format)
	if decoded && prefix != "" {
		l.applyOverrides(&cfg, prefix)
	}
	if decoded {
		// Validate what could be decoded, so that every problem is listed
		// at once, leaving out fields that already have one.
		reported := map[string]bool{}
		for _, p := range l.problems {
			reported[p.Path] = true
		}
		if err := cfg.Validate(); err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				return Config{}, err
			}
			for _, p := range ce.Problems {
				if !coveredBy(p.Path, reported) {
					l.addProblem(l.annotate(p))
				}
			}
			l.omitted += ce.Omitted
		}
	}
	if len(l.problems) > 0 {
		return Config{}, l.err(source)
	}
	return cfg, nil
}

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
	i := strings.IndexByte(msg, '`')
	j := strings.LastIndexByte(msg, '`')
	if i < 0 || j <= i {
		return false
	}
	q := strings.TrimSuffix(msg[i+1:j], "...")
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

// decode parses data into a Config, collecting problems. It reports
// whether it got as far as decoding: then the Config holds every value
// that could be decoded, and is worth validating for more problems.
func (l *loader) decode(data []byte, format string) (Config, bool) {
	var cfg Config
	if len(data) > maxConfigFileSize {
		l.add(0, "", "file is larger than %d MiB", maxConfigFileSize>>20)
		return cfg, false
	}
	if n := countSeparators(data); n > maxConfigNodes {
		l.add(0, "", "file has more than %d separators (, : - ? [ {): a config has no use for so many values", maxConfigNodes)
		return cfg, false
	}
	var root *yaml.Node
	switch format {
	case "yaml":
		root = l.parseYAML(data)
	case "json":
		root = l.parseJSON(data)
	default:
		l.add(0, "", `unknown format %q: want "yaml" or "json"`, format)
	}
	if root == nil {
		return cfg, false
	}
	if root.Kind != yaml.MappingNode {
		l.add(root.Line, "", "the file must hold a mapping with default, endpoints and redact")
		return cfg, false
	}
	if !nodesAtMost(root, maxConfigNodes) {
		l.add(0, "", "file holds more than %d values", maxConfigNodes)
		return cfg, false
	}
	l.walk(root, reflect.TypeOf(cfg), "", 0)
	if l.tooLarge || l.omitted > 0 {
		// A file past a limit, or with more problems than are listed, is
		// not decoded: the decoder would only report more, at a cost (its
		// duplicate key check is quadratic) the limits are there to avoid.
		return cfg, false
	}
	if err := decodeNode(root, &cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			l.add(0, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return cfg, false
		}
		for _, msg := range te.Errors {
			line, text := splitYAMLLine(msg)
			if line > 0 && l.bad[line] {
				continue // the walk already said what is wrong here
			}
			if l.expanded[line] || l.quotesEnvText(text) {
				text = scrubValue(text)
			}
			l.add(line, l.linePath[line], "%s", text)
		}
	}
	return cfg, true
}

// countSeparators counts the bytes that can start a YAML or JSON value:
// flow indicators, and the block indicators - ? : when followed by a
// space or a line end (so host names, times and URLs do not count). A
// document has at most a few values per separator.
func countSeparators(data []byte) int {
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

// nodesAtMost reports whether the tree under root has at most max nodes.
// Aliases count once, where they are: the decoder bounds their expansion.
func nodesAtMost(root *yaml.Node, max int) bool {
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

// decodeNode decodes n into v, turning a panic in the decoder into an
// error: bad input must give an error, never a crash.
func decodeNode(n *yaml.Node, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot decode config: %v", p)
		}
	}()
	return n.Decode(v)
}

// splitYAMLLine splits "line 12: message" into 12 and "message".
func splitYAMLLine(msg string) (int, string) {
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

// scrubValue removes the value the YAML decoder quotes in backquotes, for
// lines whose value came from the environment: it may be a secret.
func scrubValue(msg string) string {
	i := strings.IndexByte(msg, '`')
	j := strings.LastIndexByte(msg, '`')
	if i < 0 || j <= i {
		return msg
	}
	return msg[:i] + "(a value from the environment)" + msg[j+1:]
}

func (l *loader) parseYAML(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeNode2(dec, &doc); err != nil {
		if err == io.EOF {
			l.add(0, "", "file has no settings: write {} for all defaults")
			return nil
		}
		l.addParseError(err)
		return nil
	}
	var extra yaml.Node
	switch err := decodeNode2(dec, &extra); {
	case err == io.EOF:
	case err != nil:
		l.addParseError(err)
		return nil
	default:
		l.add(extra.Line, "", "file holds more than one YAML document")
		return nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	l.add(doc.Line, "", "file has no settings: write {} for all defaults")
	return nil
}

// decodeNode2 reads the next document, turning a parser panic into an error.
func decodeNode2(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot parse config: %v", p)
		}
	}()
	return dec.Decode(n)
}

func (l *loader) addParseError(err error) {
	line, text := splitYAMLLine(err.Error())
	if strings.Contains(text, "cannot start any token") {
		text += " (YAML is indented with spaces, not tabs)"
	}
	l.add(line, "", "%s", text)
}

// parseJSON builds the same node tree the YAML parser would, with lines,
// from JSON read with encoding/json: JSON's own rules for strings and
// escapes apply, and the rest of the loader is shared.
func (l *loader) parseJSON(data []byte) *yaml.Node {
	p := &jsonParser{dec: json.NewDecoder(bytes.NewReader(data)), data: data, line: 1}
	p.dec.UseNumber()
	root, err := p.value()
	if err == nil {
		if _, terr := p.dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the top-level value")
			if terr != nil && terr != io.EOF {
				err = terr
			}
		}
	}
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			l.add(lineAt(data, se.Offset), "", "invalid JSON: %s", se.Error())
		case err == io.EOF && p.tokens == 0:
			l.add(0, "", "file has no settings: write {} for all defaults")
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			l.add(lineAt(data, int64(len(data))), "", "invalid JSON: unexpected end of file")
		default:
			l.add(p.line, "", "invalid JSON: %s", err.Error())
		}
		return nil
	}
	return root
}

// lineAt returns the 1-based line holding byte offset off of data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

type jsonParser struct {
	dec    *json.Decoder
	data   []byte
	off    int64 // input offset after the last token
	line   int   // line of the last token
	tokens int   // tokens read
}

// token reads the next token and the line it is on. A JSON token never
// spans lines, so the line where it ends is the line where it starts.
func (p *jsonParser) token() (json.Token, int, error) {
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

func (p *jsonParser) value() (*yaml.Node, error) {
	t, line, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.node(t, line)
}

func (p *jsonParser) node(t json.Token, line int) (*yaml.Node, error) {
	switch v := t.(type) {
	case json.Delim:
		n := &yaml.Node{Line: line, Column: 1}
		switch v {
		case '{':
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		case '[':
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		default:
			return nil, fmt.Errorf("unexpected %q", v)
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
					l.add(k.Line, path+"["+quoteValue(k.Value)+"]", "a key is at most %d bytes", maxKeyLength)
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
			chunkMapping(n)
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
			l.add(k.Line, path, "unknown key %s", quoteValue(k.Value))
			continue
		}
		fp := k.Value
		if path != "" {
			fp = path + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			l.add(k.Line, fp, "unknown key%s", suggestKey(k.Value, fields))
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

// chunkMapping rewrites a large mapping, whose keys the walk has checked
// for duplicates, as a merge (<<) of mappings of decodeChunk entries:
// the decoder then checks its keys chunk by chunk, in linear time, and
// decodes the same map. A mapping that has merge keys of its own is left
// as it is.
func chunkMapping(n *yaml.Node) {
	if len(n.Content) <= 2*decodeChunk {
		return
	}
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Tag == "!!merge" {
			return
		}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column}
	for i := 0; i < len(n.Content); i += 2 * decodeChunk {
		end := min(i+2*decodeChunk, len(n.Content))
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: n.Content[i:end:end], Line: n.Content[i].Line, Column: n.Content[i].Column})
	}
	merge := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!merge", Value: "<<", Line: n.Line, Column: n.Column}
	n.Content = []*yaml.Node{merge, seq}
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

// suggestKey says which known key a misspelt one probably meant.
func suggestKey(key string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestDist := "", 3
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	for _, k := range names {
		if norm(k) == norm(key) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return "; known keys here: " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance, for short keys only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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
		out, probs := expandEnv(n.Value, l.env.lookup, 0)
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
	shown := quoteValue(n.Value)
	if fromEnv {
		shown = "a value from the environment"
	}
	var v any
	if t == durationType || isIntKind(t.Kind()) {
		if err := decodeNode(n, &v); err != nil {
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
	if err := decodeNode(n, reflect.New(t).Interface()); err != nil {
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
		_, msg := splitYAMLLine(te.Errors[0])
		if fromEnv {
			msg = scrubValue(msg)
		}
		return msg
	}
	return ""
}

// quoteValue quotes what a file says, for a problem: cut to 40 bytes
// (at a character boundary), saying how long it was, so that a problem
// stays short whatever the file holds.
func quoteValue(s string) string {
	if len(s) <= maxQuotedValue {
		return strconv.Quote(s)
	}
	cut := maxQuotedValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// expandEnv replaces ${VAR} and ${VAR:-default} in s. The default is
// used when VAR is unset or empty, and may itself hold ${...}. $${ is a
// literal ${; a $ not followed by { is itself. It returns the problems
// found, each naming the variable, never its value.
func expandEnv(s string, lookup func(string) (string, bool), depth int) (string, []string) {
	var b strings.Builder
	var probs []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
			continue
		case !strings.HasPrefix(s[i:], "${"):
			b.WriteByte(s[i])
			i++
			continue
		}
		end := closingBrace(s, i+2)
		if end < 0 {
			probs = append(probs, "unclosed ${ (write $${ for a literal ${)")
			return "", probs
		}
		inner := s[i+2 : end]
		i = end + 1
		name, def, hasDef := strings.Cut(inner, ":-")
		if !validVarName(name) {
			probs = append(probs, quoteValue(name)+" is not a variable name: use ${NAME} or ${NAME:-default}, NAME made of letters, digits and _")
			continue
		}
		v, set := lookup(name)
		switch {
		case (!set || v == "") && hasDef:
			if depth >= maxExpandDepth {
				probs = append(probs, "defaults nested too deeply in ${"+name+":-...}")
				continue
			}
			dv, dp := expandEnv(def, lookup, depth+1)
			probs = append(probs, dp...)
			b.WriteString(dv)
		case !set:
			probs = append(probs, fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name))
		default:
			if problem := checkEnvValue(v); problem != "" {
				probs = append(probs, "environment variable "+name+" "+problem)
				continue
			}
			b.WriteString(v)
		}
		if b.Len() > maxEnvValueSize {
			probs = append(probs, fmt.Sprintf("value is longer than %d KiB after expansion", maxEnvValueSize>>10))
			return "", probs
		}
	}
	return b.String(), probs
}

// closingBrace returns the index of the } that closes the ${ whose body
// starts at from, allowing nested ${...}, or -1.
func closingBrace(s string, from int) int {
	depth := 1
	for k := from; k < len(s); k++ {
		switch {
		case s[k] == '$' && k+1 < len(s) && s[k+1] == '{':
			depth++
			k++
		case s[k] == '}':
			depth--
			if depth == 0 {
				return k
			}
		}
	}
	return -1
}

func validVarName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkEnvValue rejects environment values no setting could want: control
// characters (a header value with a newline is a request smuggling risk),
// invalid UTF-8, and absurd sizes. It returns "" for a good value.
func checkEnvValue(v string) string {
	if len(v) > maxEnvValueSize {
		return fmt.Sprintf("is longer than %d KiB", maxEnvValueSize>>10)
	}
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return "contains control characters"
		}
	}
	return ""
}
