// Command tls_custom shows per-endpoint TLS settings: a private CA bundle
// trusted instead of the system roots, TLS 1.2 only with chosen cipher
// suites for a legacy upstream, and what the errors say when the server
// is not who it should be.
//
// It is self-contained: it generates a throw-away CA and certificates,
// starts its own HTTPS servers on 127.0.0.1, and exits.
//
//	go run ./examples/tls_custom
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/internal/testpki"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tls_custom:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "connmgr-tls-custom")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := testpki.NewCA("internal CA")
	if err != nil {
		return err
	}
	caFile, err := ca.WriteCA(dir, "internal-ca")
	if err != nil {
		return err
	}

	good, err := ca.Issue(testpki.Options{})
	if err != nil {
		return err
	}
	expired, err := ca.Issue(testpki.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		return err
	}
	wrongName, err := ca.Issue(testpki.Options{DNSNames: []string{"billing.internal"}, IPs: []net.IP{}})
	if err != nil {
		return err
	}

	// The config, as it would be in a YAML file:
	//
	//   endpoints:
	//     "127.0.0.1":
	//       tls:
	//         ca_file: internal-ca.pem
	//         ca_mode: replace
	//         max_version: "1.2"
	//         cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{
			CAFile:       caFile,
			CAMode:       "replace",
			MaxVersion:   "1.2",
			CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
		}},
	}})
	if err != nil {
		return err
	}
	defer m.Close()

	for _, c := range []struct {
		name string
		cert *testpki.Leaf
	}{{"valid certificate", good}, {"expired certificate", expired}, {"certificate for another name", wrongName}} {
		srv := start(c.cert)
		resp, err := m.Get(context.Background(), srv.URL)
		srv.Close()
		if err != nil {
			var tlsErr *connmgr.TLSError
			if errors.As(err, &tlsErr) {
				fmt.Printf("%-30s refused: %s\n    %v\n", c.name, tlsErr.Kind, err)
				continue
			}
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%-30s %s over %s with %s\n", c.name, body, tls.VersionName(resp.TLS.Version), tls.CipherSuiteName(resp.TLS.CipherSuite))
	}
	return nil
}

func start(cert *testpki.Leaf) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS()}}
	srv.StartTLS()
	return srv
}
