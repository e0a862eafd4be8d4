// Command env_config shows a config file that takes its secrets and its
// per-environment values from environment variables, and environment
// overrides applied on top of it with a prefix.
//
// It is the Go counterpart of the seed's "Environment Variable
// Processing" (Environment Configuration) and "4. Use Environment
// Configuration" (Best Practices) in go-plugins' advanced components
// guide:
//
//   - ExpandEnvironmentVariables("${HOME}/plugins") is ${VAR} and
//     ${VAR:-default} in the file's values, expanded by LoadConfig after
//     parsing, so a variable can never add keys or structure;
//   - ProcessConfigurationWithEnv with Prefix "MYAPP_" is
//     LoadConfigEnv(path, "MYSVC_"): MYSVC_DEFAULT__TIMEOUT=5s and the
//     like override single settings, typed and validated like the file;
//   - FailOnMissing is always on: a ${VAR} with no default that is unset
//     is an error naming the variable and the line. Values taken from the
//     environment are never quoted in errors, in case they are secrets.
//
// The program sets the variables itself (os.Setenv) before loading, prints
// the effective settings (secrets redacted), makes a call with them to a
// local upstream, and then shows the errors for a missing variable, a bad
// value and a misspelt override. Run it with
//
//	go run ./examples/env_config
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// configFile is the service's config. The endpoint key "127.0.0.1"
// matches the local upstream whatever its port; in real life it is
// "api.orders.example".
const configFile = `# orders service client
default:
  timeout: ${HTTP_TIMEOUT:-10s}
  retry:
    max_attempts: ${HTTP_MAX_ATTEMPTS:-3}
endpoints:
  "127.0.0.1":
    timeout: ${ORDERS_TIMEOUT:-2s}
    auth:
      bearer_token: "${ORDERS_API_TOKEN}"
    headers:
      User-Agent: "${SERVICE_NAME:-orders-worker}/${SERVICE_VERSION:-dev}"
`

// prefix names the override variables.
const prefix = "MYSVC_"

// token stands for a secret the deployment injects.
const token = "tok_live_8c2f0e9a41b7"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "env_config:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "connmgr-env-config")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "orders.yaml")
	if err := os.WriteFile(path, []byte(configFile), 0o600); err != nil {
		return err
	}
	fmt.Print("the file:\n\n", indent(configFile), "\n")

	// The environment a deployment would give the process. Start clean, so
	// that variables from the shell running the example change nothing.
	clearEnv()
	setenv := func(k, v string) {
		os.Setenv(k, v)
		fmt.Printf("  %s=%s\n", k, shown(k, v))
	}
	fmt.Println("\nthe environment:")
	setenv("ORDERS_API_TOKEN", token)
	setenv("HTTP_TIMEOUT", "5s")
	setenv("SERVICE_NAME", "billing")
	// HTTP_MAX_ATTEMPTS, ORDERS_TIMEOUT and SERVICE_VERSION are unset: the
	// file's defaults apply. Then two overrides, on top of the file:
	setenv(prefix+"DEFAULT__RETRY__MAX_ATTEMPTS", "4")
	setenv(prefix+"ENDPOINTS__127_0_0_1__TIMEOUT", "750ms")

	cfg, err := connmgr.LoadConfigEnv(path, prefix)
	if err != nil {
		return err
	}
	eff, err := cfg.Effective() // as the Manager runs it: every inherited field filled in
	if err != nil {
		return err
	}
	eff = eff.Redacted() // for printing: no token on the terminal
	ep := eff.Endpoints["127.0.0.1"]
	fmt.Println("\neffective settings for 127.0.0.1:")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  timeout\t%v\tfrom $%sENDPOINTS__127_0_0_1__TIMEOUT (the file's ${ORDERS_TIMEOUT:-2s} gave 2s)\n", ep.Timeout, prefix)
	fmt.Fprintf(tw, "  retry.max_attempts\t%d\tfrom $%sDEFAULT__RETRY__MAX_ATTEMPTS, inherited from default (the file's ${HTTP_MAX_ATTEMPTS:-3} gave 3)\n", ep.Retry.MaxAttempts, prefix)
	fmt.Fprintf(tw, "  retry.initial_backoff\t%v\tbuilt-in default\n", ep.Retry.InitialBackoff)
	fmt.Fprintf(tw, "  auth.bearer_token\t%s\tfrom ${ORDERS_API_TOKEN}, redacted for printing\n", ep.Auth.BearerToken)
	fmt.Fprintf(tw, "  headers.User-Agent\t%s\tfrom ${SERVICE_NAME} and ${SERVICE_VERSION:-dev}\n", ep.Headers["User-Agent"])
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("and for every other host: timeout %v (from ${HTTP_TIMEOUT}), max_attempts %d\n", eff.Default.Timeout, eff.Default.Retry.MaxAttempts)

	if err := callWith(cfg); err != nil {
		return err
	}

	// What goes wrong, and what the errors say.
	fmt.Println("\nORDERS_API_TOKEN unset (the deployment forgot the secret):")
	os.Unsetenv("ORDERS_API_TOKEN")
	_, err = connmgr.LoadConfigEnv(path, prefix)
	if err := showError(err, dir); err != nil {
		return err
	}

	fmt.Println("\na token read from a file with its newline, a timeout without a unit, and a misspelt override:")
	badToken := token + "\n"
	os.Setenv("ORDERS_API_TOKEN", badToken)
	os.Setenv("HTTP_TIMEOUT", "30")
	os.Setenv(prefix+"DEFAULT__RETRY__MAX_ATEMPTS", "5")
	_, err = connmgr.LoadConfigEnv(path, prefix)
	if err := showError(err, dir); err != nil {
		return err
	}
	fmt.Printf("the error quotes the token: %v\n", strings.Contains(err.Error(), token))
	return nil
}

// callWith makes one call with cfg to a local upstream that fails three
// times before answering: with the file's 3 attempts it would fail, with
// the override's 4 it succeeds.
func callWith(cfg connmgr.Config) error {
	upstream := connmgrtest.NewServer(
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Status: http.StatusServiceUnavailable},
		connmgrtest.Step{Body: `{"orders":[]}`},
	)
	defer upstream.Close()
	m, err := connmgr.New(cfg)
	if err != nil {
		return err
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.Get(ctx, upstream.URL+"/v1/orders")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	last := upstream.Requests()[upstream.Count()-1]
	fmt.Printf("\ncall: %s %s after %d attempts\n", resp.Status, body, upstream.Count())
	fmt.Printf("the upstream saw User-Agent %q and the token from ORDERS_API_TOKEN: %v\n",
		last.Header.Get("User-Agent"), last.Header.Get("Authorization") == "Bearer "+token)
	return nil
}

// showError prints a load error, with the temporary directory shortened.
func showError(err error, dir string) error {
	var ce *connmgr.ConfigError
	if !errors.As(err, &ce) {
		return fmt.Errorf("want a *connmgr.ConfigError, got %v", err)
	}
	fmt.Println(indent(strings.ReplaceAll(err.Error(), dir, "$TMPDIR")))
	return nil
}

// clearEnv unsets the variables this example uses, and every override
// with its prefix.
func clearEnv() {
	for _, k := range []string{"HTTP_TIMEOUT", "HTTP_MAX_ATTEMPTS", "ORDERS_TIMEOUT", "ORDERS_API_TOKEN", "SERVICE_NAME", "SERVICE_VERSION"} {
		os.Unsetenv(k)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, prefix) {
			os.Unsetenv(k)
		}
	}
}

// shown hides a secret's value when printing the environment.
func shown(k, v string) string {
	if strings.Contains(k, "TOKEN") {
		return "(" + fmt.Sprint(len(v)) + " characters, not shown)"
	}
	return v
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
