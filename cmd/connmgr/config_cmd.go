package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/connmgr/connmgr"
)

const configUsage = `Usage: connmgr config <command> [flags]

Commands:

	sample   print a complete, commented sample config that loads as it is
	check    validate a config file and print the settings each endpoint gets

Run "connmgr config <command> --help" for a command's flags.

Examples:

	connmgr config sample > connmgr.yaml
	connmgr config check connmgr.yaml
	connmgr config sample | connmgr config check -
`

// runConfig is "connmgr config": it dispatches to sample and check.
func runConfig(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return exitUsage
	}
	switch args[0] {
	case "sample":
		return runConfigSample(args[1:], stdout, stderr)
	case "check":
		return runConfigCheck(args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return runConfig([]string{args[1], "--help"}, nil, stdout, stderr)
		}
		fmt.Fprint(stdout, configUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "connmgr config: unknown command %s\n\n%s", argText(args[0]), configUsage)
	return exitUsage
}

const configSampleUsage = `Usage: connmgr config sample

Prints a complete, commented sample config in YAML: every key, with its
built-in default or an example. It loads and validates as it is (the
${VAR:-default} references in it all have defaults), so it is a starting
point for your own file.

Example:

	connmgr config sample > connmgr.yaml
	connmgr config check connmgr.yaml
`

func runConfigSample(args []string, stdout, stderr io.Writer) int {
	if code, done := parseNoArgs("connmgr config sample", configSampleUsage, args, stdout, stderr); done {
		return code
	}
	if err := connmgr.WriteSampleConfig(stdout); err != nil {
		fmt.Fprintf(stderr, "connmgr config sample: %v\n", err)
		return exitFailed
	}
	return exitOK
}

const configCheckUsage = `Usage: connmgr config check [flags] FILE

Loads FILE (.yaml, .yml or .json) as connmgr.LoadConfig does: strict keys,
durations with units, ${VAR} and ${VAR:-default} expanded from the
environment. FILE "-" (or /dev/stdin) is standard input, read as YAML
unless --format says otherwise. If it is valid, prints the settings each
endpoint runs with after inheritance from the default block and the
built-in defaults, with secrets redacted, and exits 0. Otherwise it lists
every problem, each with its line and field path, on stderr and exits 1.

Flags:

	--env-prefix PREFIX   apply environment overrides named PREFIX...,
	                      as connmgr.LoadConfigEnv does
	                      (CONNMGR_DEFAULT__TIMEOUT=5s with CONNMGR_)
	--format yaml|json    the format of FILE: for standard input (default
	                      yaml) or a file named without .yaml, .yml or .json
	--json                print the effective settings as JSON

Exit codes: 0 valid, 1 invalid or unreadable, 2 usage error.

Examples:

	connmgr config check connmgr.yaml
	CONNMGR_DEFAULT__TIMEOUT=5s connmgr config check --env-prefix CONNMGR_ connmgr.yaml
	connmgr config check --json connmgr.json | jq '.endpoints'
	connmgr config sample | connmgr config check -
	kubectl get configmap app -o jsonpath='{.data.connmgr\.yaml}' | connmgr config check -
`

func runConfigCheck(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connmgr config check", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), configCheckUsage) }
	envPrefix := fs.String("env-prefix", "", "")
	format := fs.String("format", "", "")
	asJSON := fs.Bool("json", false, "")
	rest, code, done := parseArgs(fs, args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case len(rest) == 0:
		return usageError(fs, stderr, "missing FILE")
	case len(rest) > 1:
		return usageError(fs, stderr, "unexpected argument %s", argText(rest[1]))
	}
	if *format != "" && *format != "yaml" && *format != "json" {
		return usageError(fs, stderr, "--format must be yaml or json")
	}
	path := rest[0]
	cfg, name, err := loadConfigArg(path, *format, *envPrefix, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "connmgr config check: %s\n", strings.TrimPrefix(err.Error(), "connmgr: "))
		return exitFailed
	}
	eff, err := cfg.Effective()
	if err != nil { // LoadConfig validated it; cannot happen
		fmt.Fprintf(stderr, "connmgr config check: %v\n", err)
		return exitFailed
	}
	outFormat := "yaml"
	if *asJSON {
		outFormat = "json"
	}
	out, err := connmgr.MarshalConfig(eff.Redacted(), outFormat)
	if err != nil {
		fmt.Fprintf(stderr, "connmgr config check: %v\n", err)
		return exitFailed
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "# %s is valid: %s.\n", name, describeEndpoints(eff))
		fmt.Fprint(stdout, "# The settings each endpoint runs with, after inheritance from default and the\n")
		fmt.Fprint(stdout, "# built-in defaults. Secrets are REDACTED. Keys not shown are zero: off or none.\n")
	}
	_, _ = stdout.Write(out)
	return exitOK
}

// stdinName names standard input in messages.
const stdinName = "standard input"

// maxConfigRead is how much of standard input is read: one byte more
// than the library takes, so that it can say the input is too large.
const maxConfigRead = 4<<20 + 1

// loadConfigArg loads the FILE argument of config check: standard input
// for "-" and /dev/stdin (stdin is the process's standard input, and
// reading it through run's reader keeps the command testable), a file in
// the given format when there is one, else a file by its extension. It
// also returns the name to show for it.
func loadConfigArg(path, format, envPrefix string, stdin io.Reader) (connmgr.Config, string, error) {
	fromStdin := path == "-" || path == "/dev/stdin"
	if !fromStdin && format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
		default:
			return connmgr.Config{}, path, fmt.Errorf("%s: want a .yaml, .yml or .json file, or --format yaml|json", path)
		}
		cfg, err := loadConfig(path, envPrefix)
		return cfg, path, err
	}
	if format == "" {
		format = "yaml"
	}
	name := path
	var data []byte
	var err error
	if fromStdin {
		name = stdinName
		if stdin == nil {
			return connmgr.Config{}, name, errors.New("no standard input")
		}
		data, err = io.ReadAll(io.LimitReader(stdin, maxConfigRead))
	} else {
		data, err = readLimited(path)
	}
	if err != nil {
		return connmgr.Config{}, name, fmt.Errorf("reading %s: %w", name, err)
	}
	cfg, err := connmgr.ParseConfigEnv(data, format, envPrefix)
	var ce *connmgr.ConfigError
	if errors.As(err, &ce) {
		ce.Source = name
	}
	return cfg, name, err
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxConfigRead))
}

// loadConfig loads a config file, with environment overrides when a
// prefix is given.
func loadConfig(path, envPrefix string) (connmgr.Config, error) {
	if envPrefix != "" {
		return connmgr.LoadConfigEnv(path, envPrefix)
	}
	return connmgr.LoadConfig(path)
}

func describeEndpoints(cfg connmgr.Config) string {
	keys := make([]string, 0, len(cfg.Endpoints))
	for k := range cfg.Endpoints {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	switch len(keys) {
	case 0:
		return "no endpoints, every request uses default"
	case 1:
		return "1 endpoint (" + keys[0] + ") and default"
	}
	return fmt.Sprintf("%d endpoints (%s) and default", len(keys), strings.Join(keys, ", "))
}

// configError reports a --config FILE that cannot be used, for the
// request commands and the demo: a usage error.
func configError(cmd string, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "%s: --config: %s\n", cmd, strings.TrimPrefix(err.Error(), "connmgr: "))
	return exitUsage
}
