// Command connmgr is the command-line companion of the connmgr library.
//
// Usage:
//
//	connmgr <command> [flags]
//
// The commands are:
//
//	get, head, post, put, delete
//	        send a request through connmgr's policy, like curl
//	request send a request with any method (-X METHOD)
//	config  print a sample config (sample) or check a config file (check)
//	demo    run local faulty upstreams and watch connmgr cope with them
//	version print the version of connmgr and of the Go that built it
//	help    show this help, or a command's: connmgr help get
//
// Start with
//
//	go run ./cmd/connmgr demo
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order the usage text shows them.
func commands() []command {
	return []command{
		{"get", "send a GET through connmgr's policy, like curl", requestCommand("get", http.MethodGet)},
		{"head", "send a HEAD", requestCommand("head", http.MethodHead)},
		{"post", "send a POST (--data)", requestCommand("post", http.MethodPost)},
		{"put", "send a PUT (--data)", requestCommand("put", http.MethodPut)},
		{"delete", "send a DELETE", requestCommand("delete", http.MethodDelete)},
		{"request", "send a request with any method: -X METHOD", requestCommand("request", "")},
		{"config", "print a sample config, or check a config file", runConfig},
		{"demo", "run local faulty upstreams and watch connmgr cope with them",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) int { return runDemo(args, stdout, stderr) }},
		{"version", "print the version of connmgr and of the Go that built it", runVersion},
	}
}

// run is the whole program, minus the process: it returns the exit code,
// 0 on success, 1 when a command failed (a config check found problems,
// a request got a status >= 400), 2 for a usage error, and 3 when a
// request got no response.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			// "connmgr help demo" is "connmgr demo --help".
			for _, c := range commands() {
				if c.name == rest[0] {
					return c.run([]string{"--help"}, stdin, stdout, stdout)
				}
			}
			fmt.Fprintf(stderr, "connmgr: unknown command %s\n\n", argText(rest[0]))
			usage(stderr)
			return 2
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(rest, stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "connmgr: unknown command %s\n\n", argText(name))
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, "connmgr: resilient outbound HTTP, from the command line.\n\n")
	fmt.Fprint(w, "Usage:\n\n\tconnmgr <command> [flags]\n\nCommands:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-9s%s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\t%-9s%s\n", "help", "show this help, or a command's: connmgr help demo")
	fmt.Fprint(w, "\nRun \"connmgr <command> --help\" for a command's flags. Start with:\n\n\tgo run ./cmd/connmgr demo\n")
	fmt.Fprint(w, `
Examples:

	connmgr get -v https://api.example.com/v1/items
	connmgr config sample > connmgr.yaml
	connmgr config check connmgr.yaml
	connmgr post --config connmgr.yaml -d @order.json https://api.example.com/v1/orders
	connmgr demo --config connmgr.yaml

Exit codes: 0 success; 1 the command failed (a config check found
problems, a request got a status >= 400 or its body could not be
written); 2 usage error; 3 a request got no response (connection,
timeout, breaker, rate limit).
`)
}
