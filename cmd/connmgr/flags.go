package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/connmgr/connmgr/internal/redact"
)

// Exit codes of the commands. They are documented in the usage text.
const (
	exitOK        = 0 // success; for requests, a status below 400
	exitFailed    = 1 // config check found problems; a request got a status >= 400, or its body could not be written
	exitUsage     = 2 // bad flags or arguments, or a --config file that does not load
	exitTransport = 3 // a request got no response: connection, timeout, breaker, limiter
)

// headerList is a repeatable -H flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }

// Set records a header. It accepts anything: the flag package would
// quote a bad value in its error, and a header is often a secret
// ("Authorization Bearer ..." with the colon forgotten); check says what
// is wrong without it.
func (h *headerList) Set(v string) error {
	*h = append(*h, v)
	return nil
}

// check returns an error for the first header that is not "Name: value",
// naming it by its position, never by its text.
func (h headerList) check() error {
	for i, v := range h {
		name, _, ok := strings.Cut(v, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("-H/--header #%d: want \"Name: value\" (not shown: it may hold a secret)", i+1)
		}
	}
	return nil
}

// argText quotes a command-line argument for a message. An argument that
// is a URL has its userinfo and secret query values redacted, as -v and
// the errors of the library do.
func argText(s string) string {
	u, err := url.Parse(s)
	switch {
	case err == nil && (u.User != nil || u.RawQuery != "" || u.Fragment != ""):
		s = redact.New(nil, nil).URL(u)
	case err != nil && strings.ContainsAny(s, "@?#"):
		s = redact.Mask // cannot be inspected, so cannot be shown
	}
	return strconv.Quote(s)
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

// parseNoArgs parses the arguments of a command that takes none, and no
// flag but --help, which prints usage. It returns done, with the exit
// code, when the command must not go on: after --help, or on an argument.
func parseNoArgs(name, usage string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	rest, code, done := parseArgs(fs, args, stdout, stderr)
	switch {
	case done:
		return code, true
	case len(rest) > 0:
		return usageError(fs, stderr, "unexpected argument %s", argText(rest[0])), true
	}
	return exitOK, false
}

// usageError writes a usage problem and the command's usage to stderr.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.SetOutput(stderr)
	fs.Usage()
	return exitUsage
}
