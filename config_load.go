package connmgr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/connmgr/connmgr/internal/envexpand"
	"go.yaml.in/yaml/v3"
)

// Limits that keep a hostile or broken file from costing much.
const (
	// maxConfigFileSize caps a config file.
	maxConfigFileSize = 4 << 20
	// maxEnvValueSize caps a value taken from the environment, and a
	// scalar after expansion.
	maxEnvValueSize = envexpand.MaxValueSize
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
	// maxNodeDepth caps the nesting the loader walks; Config itself is
	// far shallower.
	maxNodeDepth = 64
	// minExpandBudget is the least the values of a file may add up to
	// after ${VAR} expansion; the budget is twice the file's size when
	// that is more. Without it, a short file repeating a large variable
	// would cost its size times the variable's in memory.
	minExpandBudget = 1 << 20
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
// *ConfigError out. It never touches the disk, so it can be fuzzed. Its
// parts: config_decode.go (parse, size checks, decode), config_schema.go
// (the walk: keys, types, ${VAR}), config_overrides.go (PREFIX...
// variables), config_problems.go (problems and their lines); what needs
// no Config is in internal/jsonnode, envexpand, suggest, quote and
// yamlnode.
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
