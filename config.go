package connmgr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Config is everything a Manager needs to know about the hosts it calls:
// settings that apply to every host (Default) and per-endpoint overrides
// (Endpoints). It is plain data: build it in code, or load it from a YAML
// or JSON file with LoadConfig. Its zero value is valid and means "the
// built-in defaults for every host".
//
// Every field of an EndpointConfig left at its zero value inherits: an
// endpoint takes it from Default, and Default takes it from the built-in
// defaults documented on each field. Maps merge key by key (the endpoint's
// entry wins); a nil slice inherits, an empty one does not.
type Config struct {
	// Default applies to every request, matched or not, for each field
	// an endpoint leaves unset.
	Default EndpointConfig `yaml:"default,omitempty" json:"default,omitempty"`
	// Endpoints maps a key to the settings for requests whose URL
	// authority it matches. A key is "host:port" (exact), "host", or
	// "*.example.com" (any subdomain, the longest wildcard wins). Keys are
	// case-insensitive. A request no key matches uses Default.
	Endpoints map[string]EndpointConfig `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// Redact names what, besides the built-in list, must never reach a
	// log, an error, Stats, a span, a metric or the status page.
	Redact RedactConfig `yaml:"redact,omitempty" json:"redact,omitempty"`
	// Redis, when its URL is set, shares rate limits with `scope: fleet`
	// and breaker signals with a fleet of Managers (see RedisConfig).
	// Default: no fleet, everything in memory.
	Redis RedisConfig `yaml:"redis,omitempty" json:"redis,omitempty"`
}

// RedactConfig extends the built-in redaction lists. Userinfo,
// Authorization, Proxy-Authorization, Cookie and Set-Cookie, and the
// query keys listed in DefaultSecretQueryKeys are always redacted.
type RedactConfig struct {
	// Headers are further header names whose values are secret (case-insensitive).
	Headers []string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// QueryKeys are further URL query parameter names whose values are
	// secret (case-insensitive).
	QueryKeys []string `yaml:"query_keys,omitempty" json:"query_keys,omitempty"`
}

// Bool returns a pointer to b, for the *bool fields of a Config, where nil
// means "inherit".
func Bool(b bool) *bool { return &b }

// FieldError is one problem found in a Config: where, and what is wrong.
type FieldError struct {
	// Path names the field the way a config file spells it, for example
	// endpoints["api.example.com"].retry.max_attempts. It is empty for a
	// problem with the file as a whole (a YAML syntax error), and names
	// the variable ($PREFIX_DEFAULT__TIMEOUT) for a bad environment
	// override.
	Path string
	// Line is the line of the file where the field is set, or 0 when the
	// problem is not tied to a line (a Config built in code, a value
	// inherited from the default block, an environment override).
	Line int
	// Problem says what is wrong with the value.
	Problem string
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// maxProblems caps the problems a ConfigError lists: past that, a
// broken or hostile file would only make the error long.
const maxProblems = 100

// ConfigError lists every problem found in a Config, not only the first
// (up to 100 of them). New, Reload and LoadConfig return it; errors.As
// reaches it.
type ConfigError struct {
	// Source is the file the config came from, if any.
	Source string
	// Problems are sorted by Path (by line, for a file): at most 100.
	Problems []FieldError
	// Omitted counts the further problems found and not listed.
	Omitted int
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("connmgr: invalid config")
	if e.Source != "" {
		b.WriteString(" in ")
		b.WriteString(e.Source)
	}
	if len(e.Problems) == 1 && e.Omitted == 0 {
		b.WriteString(": ")
		b.WriteString(e.Problems[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, " (%d problems):", len(e.Problems)+e.Omitted)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.Omitted)
	}
	return b.String()
}

// problems collects FieldErrors during validation.
type problems struct {
	list []FieldError
}

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, FieldError{Path: path, Problem: fmt.Sprintf(format, args...)})
}

// err returns a *ConfigError, or nil when nothing was found.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool { return p.list[i].Path < p.list[j].Path })
	ce := &ConfigError{Problems: p.list}
	if n := len(ce.Problems); n > maxProblems {
		ce.Problems, ce.Omitted = ce.Problems[:maxProblems:maxProblems], n-maxProblems
	}
	return ce
}

// Validate checks cfg as New would and returns a *ConfigError listing
// every problem, or nil.
func (cfg Config) Validate() error {
	_, err := compile(cfg)
	return err
}
