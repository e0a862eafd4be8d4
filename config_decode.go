package connmgr

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"

	"github.com/connmgr/connmgr/internal/jsonnode"
	"github.com/connmgr/connmgr/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

// Parsing and decoding: YAML or JSON to one node tree, checked for size,
// walked (config_schema.go), then decoded into a Config.

// decode parses data into a Config, collecting problems. It reports
// whether it got as far as decoding: then the Config holds every value
// that could be decoded, and is worth validating for more problems.
func (l *loader) decode(data []byte, format string) (Config, bool) {
	var cfg Config
	if len(data) > maxConfigFileSize {
		l.add(0, "", "file is larger than %d MiB", maxConfigFileSize>>20)
		return cfg, false
	}
	if n := yamlnode.CountSeparators(data); n > maxConfigNodes {
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
	if !yamlnode.AtMost(root, maxConfigNodes) {
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
	if err := yamlnode.Decode(root, &cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			l.add(0, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return cfg, false
		}
		for _, msg := range te.Errors {
			line, text := yamlnode.SplitLine(msg)
			if line > 0 && l.bad[line] {
				continue // the walk already said what is wrong here
			}
			if l.expanded[line] || l.quotesEnvText(text) {
				text = yamlnode.Scrub(text)
			}
			l.add(line, l.linePath[line], "%s", text)
		}
	}
	return cfg, true
}

func (l *loader) parseYAML(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := yamlnode.Next(dec, &doc); err != nil {
		if err == io.EOF {
			l.add(0, "", "file has no settings: write {} for all defaults")
			return nil
		}
		l.addParseError(err)
		return nil
	}
	var extra yaml.Node
	switch err := yamlnode.Next(dec, &extra); {
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
func (l *loader) addParseError(err error) {
	line, text := yamlnode.SplitLine(err.Error())
	if strings.Contains(text, "cannot start any token") {
		text += " (YAML is indented with spaces, not tabs)"
	}
	l.add(line, "", "%s", text)
}

// parseJSON builds the same node tree the YAML parser would, with lines,
// from JSON, so that the rest of the loader is shared.
func (l *loader) parseJSON(data []byte) *yaml.Node {
	root, err := jsonnode.Parse(data)
	var se *jsonnode.SyntaxError
	switch {
	case err == nil:
		return root
	case errors.As(err, &se):
		l.add(se.Line, "", "invalid JSON: %s", se.Msg)
	default: // jsonnode.ErrEmpty
		l.add(0, "", "file has no settings: write {} for all defaults")
	}
	return nil
}
