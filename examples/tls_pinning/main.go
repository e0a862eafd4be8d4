// Command tls_pinning shows certificate pinning with a backup pin, and a
// rotation done right: the config pins both the key in use and the key
// the server will move to, so the server can switch keys without a
// client outage. A key matching neither pin is refused with
// ErrCertificatePin; the error names the host and the pins the server
// presented, which is what an operator needs to update the config once
// the new key is confirmed out of band.
//
// It is self-contained: it generates a throw-away CA and certificates,
// starts its own HTTPS servers on 127.0.0.1, and exits.
//
//	go run ./examples/tls_pinning
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/internal/testpki"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tls_pinning:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "connmgr-tls-pinning")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Stands in for a public CA: pinning is on top of normal verification.
	ca, err := testpki.NewCA("a public CA")
	if err != nil {
		return err
	}
	caFile, err := ca.WriteCA(dir, "ca")
	if err != nil {
		return err
	}
	current, err := ca.Issue(testpki.Options{})
	if err != nil {
		return err
	}
	backup, err := ca.Issue(testpki.Options{}) // generated now, deployed later
	if err != nil {
		return err
	}
	misissued, err := ca.Issue(testpki.Options{}) // valid, but not a key we pinned
	if err != nil {
		return err
	}

	pins := []string{connmgr.SPKIPin(current.Cert), connmgr.SPKIPin(backup.Cert)}
	fmt.Println("pins:")
	for _, p := range pins {
		fmt.Println("  -", p)
	}
	// In a config file:
	//
	//   endpoints:
	//     "127.0.0.1":
	//       tls: {ca_file: ca.pem, pins: ["sha256/...current...", "sha256/...backup..."]}
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{CAFile: caFile, Pins: pins}},
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	for _, c := range []struct {
		name string
		cert *testpki.Leaf
	}{
		{"server on the current key", current},
		{"server rotated to the backup key", backup},
		{"server with an unpinned key", misissued},
	} {
		srv := start(c.cert)
		resp, err := m.Get(context.Background(), srv.URL)
		srv.Close()
		var pinErr *connmgr.PinError
		switch {
		case errors.Is(err, connmgr.ErrCertificatePin) && errors.As(err, &pinErr):
			fmt.Printf("%-34s refused: %s presented %v\n", c.name, pinErr.Host, pinErr.Presented)
		case err != nil:
			return err
		default:
			resp.Body.Close()
			fmt.Printf("%-34s %s\n", c.name, resp.Status)
		}
	}
	fmt.Println("pin failures counted:", m.Stats().Endpoints["127.0.0.1"].TLS.PinFailures)
	return nil
}

func start(cert *testpki.Leaf) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS()}}
	srv.StartTLS()
	return srv
}
