package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore"
)

// requestOptions are the flags of get, head, post, put, delete and request.
type requestOptions struct {
	method    string
	headers   headerList
	data      string
	dataSet   bool
	output    string
	include   bool
	follow    bool
	verbose   bool
	config    string
	envPrefix string
}

const requestFlags = `Flags:

	-H, --header "Name: value"  add a request header (repeatable)
	-d, --data DATA             send DATA as the body; @FILE sends a file's bytes,
	                            @- standard input. Without a Content-Type header
	                            the body is sent as application/x-www-form-urlencoded,
	                            as curl does
	-o, --output FILE           write the body to FILE instead of stdout
	-i, --include               print the status line and headers before the body
	-L, --location              follow redirects (each hop goes through the policy)
	-v, --verbose               print each attempt on stderr: endpoint and its
	                            policy, upstream, status or error, timing, and the
	                            retry decision; secrets are redacted
	    --config FILE           the policy: a connmgr config file (.yaml or .json);
	                            without it the built-in defaults apply
	    --env-prefix PREFIX     apply environment overrides to --config, as
	                            connmgr.LoadConfigEnv does

Flags may come before or after the URL; "--" ends them.

Exit codes: 0 a response with a status below 400; 1 a response with a
status of 400 or more (its body is still written), or a body that could
not be written (to --output or stdout); 2 a usage error or a
--config file that does not load; 3 no response: connection refused or
reset, timeout, circuit breaker open, rate limited, concurrency limit.
`

// requestUsage is the usage text of one request command.
func requestUsage(name, method string) string {
	var b strings.Builder
	if name == "request" {
		b.WriteString("Usage: connmgr request -X METHOD [flags] URL\n\n")
		b.WriteString("Sends a request with any method through a connmgr.Manager: the timeouts,\n")
	} else {
		fmt.Fprintf(&b, "Usage: connmgr %s [flags] URL\n\n", name)
		fmt.Fprintf(&b, "Sends a %s through a connmgr.Manager: the timeouts,\n", method)
	}
	b.WriteString("retries, retry budget, circuit breaker, rate limit, auth and headers of\n")
	b.WriteString("the endpoint the URL matches in --config (or the built-in defaults), and\n")
	b.WriteString("writes the response body to stdout, like curl.\n\n")
	if name == "request" {
		b.WriteString("\t-X, --request METHOD        the method; default GET, or POST with --data\n")
	}
	b.WriteString(requestFlags)
	b.WriteString("\nExamples:\n\n")
	switch name {
	case "get":
		b.WriteString("\tconnmgr get https://api.example.com/v1/items\n")
		b.WriteString("\tconnmgr get -v --config connmgr.yaml https://api.example.com/v1/items\n")
		b.WriteString("\tconnmgr get -o items.json -H 'Accept: application/json' https://api.example.com/v1/items\n")
	case "head":
		b.WriteString("\tconnmgr head -i https://api.example.com/v1/items\n")
	case "post":
		b.WriteString("\tconnmgr post -H 'Content-Type: application/json' -d '{\"name\":\"a\"}' https://api.example.com/v1/items\n")
		b.WriteString("\tconnmgr post -d @order.json -H 'Idempotency-Key: 7f3c' --config connmgr.yaml https://api.example.com/v1/orders\n")
	case "put":
		b.WriteString("\tconnmgr put -H 'Content-Type: application/json' -d @item.json https://api.example.com/v1/items/42\n")
	case "delete":
		b.WriteString("\tconnmgr delete -v https://api.example.com/v1/items/42\n")
	case "request":
		b.WriteString("\tconnmgr request -X PATCH -H 'Content-Type: application/json' -d '{\"n\":1}' https://api.example.com/v1/items/42\n")
		b.WriteString("\tconnmgr request -X OPTIONS -i https://api.example.com/v1/items\n")
	}
	return b.String()
}

// requestCommand returns the run function of a request command; method
// is "" for "request", which takes -X.
func requestCommand(name, method string) func([]string, io.Reader, io.Writer, io.Writer) int {
	return func(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return runRequest(name, method, args, stdin, stdout, stderr)
	}
}

func runRequest(name, method string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "connmgr " + name
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), requestUsage(name, method)) }
	var o requestOptions
	for _, n := range []string{"H", "header"} {
		fs.Var(&o.headers, n, "")
	}
	dataFlag := func(v string) error { o.data, o.dataSet = v, true; return nil }
	fs.Func("d", "", dataFlag)
	fs.Func("data", "", dataFlag)
	for _, n := range []string{"o", "output"} {
		fs.StringVar(&o.output, n, "", "")
	}
	for _, n := range []string{"i", "include"} {
		fs.BoolVar(&o.include, n, false, "")
	}
	for _, n := range []string{"L", "location"} {
		fs.BoolVar(&o.follow, n, false, "")
	}
	for _, n := range []string{"v", "verbose"} {
		fs.BoolVar(&o.verbose, n, false, "")
	}
	fs.StringVar(&o.config, "config", "", "")
	fs.StringVar(&o.envPrefix, "env-prefix", "", "")
	if method == "" {
		for _, n := range []string{"X", "request"} {
			fs.StringVar(&o.method, n, "", "")
		}
	}
	rest, code, done := parseArgs(fs, args, stdout, stderr)
	if done {
		return code
	}

	switch {
	case len(rest) == 0:
		return usageError(fs, stderr, "missing URL")
	case len(rest) > 1:
		return usageError(fs, stderr, "unexpected argument %s (one URL per call)", argText(rest[1]))
	}
	target, err := url.Parse(rest[0])
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return usageError(fs, stderr, "%s is not an http:// or https:// URL", argText(rest[0]))
	}
	if err := o.headers.check(); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	switch {
	case method != "":
		o.method = method
	case o.method == "" && o.dataSet:
		o.method = http.MethodPost
	case o.method == "":
		o.method = http.MethodGet
	}
	o.method = strings.ToUpper(o.method)
	if !validMethod(o.method) {
		return usageError(fs, stderr, "%q is not an HTTP method", o.method)
	}
	if o.dataSet && (method == http.MethodGet || method == http.MethodHead) {
		return usageError(fs, stderr, "%s sends no body: use post, put or request -X METHOD with --data", name)
	}
	var body []byte
	if o.dataSet {
		if body, err = readData(o.data, stdin); err != nil {
			return usageError(fs, stderr, "--data: %v", err)
		}
	}

	cfg := connmgr.Config{}
	if o.config != "" {
		if cfg, err = loadConfig(o.config, o.envPrefix); err != nil {
			return configError(cmd, err, stderr)
		}
	}
	// A redis block in the file opens the fleet store (fleet mode).
	m, err := connmgr.New(cfg, connmgr.WithFleetConnector(redisstore.Connect))
	if err != nil {
		return configError(cmd, err, stderr)
	}
	defer m.Close()
	var tr *tracer
	if o.verbose {
		if tr, err = newTracer(stderr, cfg); err != nil {
			return configError(cmd, err, stderr)
		}
		tr.register(m)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, o.method, target.String(), nil)
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range o.headers {
		k, v, _ := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		if strings.EqualFold(k, "Content-Type") {
			req.Header.Del(k)
		}
		req.Header.Add(k, v)
	}

	client := m.Client()
	if !o.follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the Manager's error; its URL is already redacted
		}
		if tr != nil {
			tr.failed(err, time.Since(start))
		}
		fmt.Fprintf(stderr, "%s: %s\n", cmd, strings.TrimPrefix(err.Error(), "connmgr: "))
		return exitTransport
	}
	defer resp.Body.Close()

	// The request was sent and answered: from here a local failure to
	// write the body is the command failing (1), neither a usage error
	// nor a missing response.
	out := &outputWriter{w: stdout, name: "standard output"}
	var file *os.File
	if o.output != "" && o.output != "-" {
		if file, err = os.Create(o.output); err != nil {
			fmt.Fprintf(stderr, "%s: writing %s: %v\n", cmd, o.output, err)
			return exitFailed
		}
		out.w, out.name = file, o.output
	}
	if o.include {
		writeHead(out, resp)
	}
	n, err := io.Copy(out, resp.Body)
	if file != nil {
		if cerr := file.Close(); cerr != nil && out.err == nil {
			out.err = cerr // a full disk or quota may show only now
		}
	}
	switch {
	case out.err != nil:
		fmt.Fprintf(stderr, "%s: writing %s: %v\n", cmd, out.name, out.err)
		return exitFailed
	case err != nil:
		fmt.Fprintf(stderr, "%s: reading the body after %d bytes: %v\n", cmd, n, err)
		return exitTransport
	}
	if tr != nil {
		tr.done(resp, n, time.Since(start))
	}
	if resp.StatusCode >= 400 {
		return exitFailed
	}
	return exitOK
}

// outputWriter is where the body goes; it keeps the first write error,
// so that a failure to write is told apart from a failure to read.
type outputWriter struct {
	w    io.Writer
	name string // for messages: the file, or "standard output"
	err  error
}

func (o *outputWriter) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

// readData returns the body --data names: the text itself, @FILE, or @-
// for standard input.
func readData(data string, stdin io.Reader) ([]byte, error) {
	switch {
	case data == "@-":
		if stdin == nil {
			return nil, errors.New("no standard input")
		}
		return io.ReadAll(stdin)
	case strings.HasPrefix(data, "@"):
		return os.ReadFile(data[1:])
	}
	return []byte(data), nil
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// writeHead writes the status line and headers, as curl -i does.
func writeHead(w io.Writer, resp *http.Response) {
	fmt.Fprintf(w, "%s %s\r\n", resp.Proto, resp.Status)
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(w, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprint(w, "\r\n")
}
