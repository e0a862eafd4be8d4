package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes of the commands. They are documented in the usage text.
const (
	exitOK        = 0 // success; for requests, a status below 400
	exitFailed    = 1 // config check found problems; a request got a status >= 400
	exitUsage     = 2 // bad flags or arguments, or a --config file that does not load
	exitTransport = 3 // a request got no response: connection, timeout, breaker, limiter
)

// headerList is a repeatable -H flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }

func (h *headerList) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	*h = append(*h, v)
	return nil
}

// parseArgs parses args with fs, allowing flags after positional
// arguments too (connmgr get URL -v), as curl users expect. "--" ends the
// flags. It returns the positional arguments. On --help it writes the
// usage to stdout and returns done with exitOK; on a bad flag it writes
// the error and the usage to stderr and returns done with exitUsage.
func parseArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (positional []string, code int, done bool) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			out.Reset()
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, exitOK, true
		case err != nil:
			_, _ = stderr.Write(out.Bytes())
			return nil, exitUsage, true
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, exitOK, false
		}
		// flag stops at the first non-flag; "--" is consumed by Parse.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), exitOK, false
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError writes a usage problem and the command's usage to stderr.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.SetOutput(stderr)
	fs.Usage()
	return exitUsage
}
