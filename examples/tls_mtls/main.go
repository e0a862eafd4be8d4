// Command tls_mtls shows mutual TLS with a password-protected client key
// (encrypted PKCS#8), and the client certificate being renewed on disk
// while the program runs: the next connection uses the new certificate,
// and a broken file is reported while the old certificate stays in use.
//
// It is self-contained: it generates a throw-away CA and certificates,
// starts its own HTTPS server on 127.0.0.1 that requires a client
// certificate, and exits.
//
//	go run ./examples/tls_mtls
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/internal/testpki"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tls_mtls:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "connmgr-tls-mtls")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := testpki.NewCA("internal CA")
	if err != nil {
		return err
	}
	caFile, err := ca.WriteCA(dir, "ca")
	if err != nil {
		return err
	}
	serverCert, err := ca.Issue(testpki.Options{})
	if err != nil {
		return err
	}
	const password = "correct horse battery staple" // in real life: key_password: "${CLIENT_KEY_PASSWORD}"
	first, err := ca.Issue(testpki.Options{Client: true, CommonName: "billing-service (first)"})
	if err != nil {
		return err
	}
	certFile, keyFile, err := first.WriteFiles(dir, "client", testpki.EncryptedPKCS8, password)
	if err != nil {
		return err
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert.TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	srv.StartTLS()
	defer srv.Close()

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, KeyPassword: password}},
	}}, connmgr.WithLogger(logger))
	if err != nil {
		return err
	}
	defer m.Close()

	call := func(step string) error {
		m.CloseIdleConnections() // so that the call makes a new connection
		resp, err := m.Get(context.Background(), srv.URL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		fmt.Printf("%-28s server says: %s\n", step, body)
		return err
	}
	if err := call("first certificate:"); err != nil {
		return err
	}

	// Renew: write the new key, then the new certificate (rename into
	// place, as certificate tooling does).
	renewed, err := ca.Issue(testpki.Options{Client: true, CommonName: "billing-service (renewed)"})
	if err != nil {
		return err
	}
	newCert, newKey, err := renewed.WriteFiles(dir, "renewed", testpki.EncryptedPKCS8, password)
	if err != nil {
		return err
	}
	if err := os.Rename(newKey, keyFile); err != nil {
		return err
	}
	if err := os.Rename(newCert, certFile); err != nil {
		return err
	}
	if err := call("after renewal:"); err != nil {
		return err
	}

	// A broken file: the renewed certificate stays in use.
	if err := os.WriteFile(certFile, []byte("oops"), 0o600); err != nil {
		return err
	}
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(certFile, later, later)
	if err := call("after a bad write:"); err != nil {
		return err
	}
	st := m.Stats().Endpoints["127.0.0.1"].TLS
	fmt.Printf("stats: reloads=%d reload_errors=%d last_reload_error=%q\n", st.Reloads, st.ReloadErrors, st.LastReloadError)
	return nil
}
