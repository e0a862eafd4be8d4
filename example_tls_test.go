package connmgr_test

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

// Custom TLS per endpoint: a private CA bundle, TLS 1.3 only. The same
// settings go in a config file as
//
//	endpoints:
//	  "127.0.0.1":
//	    tls: {ca_file: /etc/ssl/internal-ca.pem, ca_mode: replace, min_version: "1.3"}
func ExampleTLSConfig() {
	dir, _ := os.MkdirTemp("", "connmgr-example")
	defer os.RemoveAll(dir)
	ca, _ := testpki.NewCA("internal CA")
	caFile, _ := ca.WriteCA(dir, "internal-ca")
	serverCert, _ := ca.Issue(testpki.Options{}) // for 127.0.0.1 and localhost
	srv := startExampleServer(serverCert, nil)
	defer srv.Close()

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{CAFile: caFile, CAMode: "replace", MinVersion: "1.3"}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	resp, err := m.Get(context.Background(), srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(tls.VersionName(resp.TLS.Version), string(body))

	// A server the CA did not sign is refused, and the error says why.
	stranger, _ := testpki.SelfSigned(testpki.Options{})
	other := startExampleServer(stranger, nil)
	defer other.Close()
	_, err = m.Get(context.Background(), other.URL)
	var tlsErr *connmgr.TLSError
	if errors.As(err, &tlsErr) {
		fmt.Println(tlsErr.Kind)
	}
	// Output:
	// TLS 1.3 hello, anonymous
	// unknown_authority
}

// Mutual TLS with a password-protected (encrypted PKCS#8) client key.
// The key password comes from the environment, as "${CLIENT_KEY_PASSWORD}"
// in a config file would. The files are re-read when they change on disk,
// so the certificate can be renewed without a restart.
func ExampleTLSConfig_mutualTLS() {
	dir, _ := os.MkdirTemp("", "connmgr-example")
	defer os.RemoveAll(dir)
	ca, _ := testpki.NewCA("internal CA")
	caFile, _ := ca.WriteCA(dir, "ca")
	serverCert, _ := ca.Issue(testpki.Options{})
	client, _ := ca.Issue(testpki.Options{Client: true, CommonName: "billing-service"})
	password := "correct horse battery staple" // os.Getenv("CLIENT_KEY_PASSWORD") in real code
	certFile, keyFile, _ := client.WriteFiles(dir, "client", testpki.EncryptedPKCS8, password)

	srv := startExampleServer(serverCert, func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = ca.Pool()
	})
	defer srv.Close()

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{
			CAFile:      caFile,
			CertFile:    certFile,
			KeyFile:     keyFile,
			KeyPassword: password,
		}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	resp, err := m.Get(context.Background(), srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	fmt.Println("client certificate valid until set:", !m.Stats().Endpoints["127.0.0.1"].TLS.ClientCertNotAfter.IsZero())

	// A wrong password is caught by New, naming the setting.
	_, err = connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{CertFile: certFile, KeyFile: keyFile, KeyPassword: "wrong"}},
	}})
	fmt.Println(err != nil)
	// Output:
	// hello, billing-service
	// client certificate valid until set: true
	// true
}

// Certificate pinning with a backup pin. List the pin of the key in use
// and the pin of the key you will rotate to; when the server switches to
// the backup key, nothing breaks. A key matching neither is refused with
// ErrCertificatePin, and the error lists the pins the server presented.
func ExampleTLSConfig_pinning() {
	ca, _ := testpki.NewCA("public CA")
	current, _ := ca.Issue(testpki.Options{})
	next, _ := ca.Issue(testpki.Options{}) // the backup key, deployed later
	pins := []string{connmgr.SPKIPin(current.Cert), connmgr.SPKIPin(next.Cert)}

	m, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		"127.0.0.1": {TLS: connmgr.TLSConfig{Pins: pins}},
	}}, connmgr.WithTLSConfig("127.0.0.1", &tls.Config{RootCAs: ca.Pool()})) // the "public" roots, for the example
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	for _, serverCert := range []*testpki.Leaf{current, next} {
		srv := startExampleServer(serverCert, nil)
		resp, err := m.Get(context.Background(), srv.URL)
		if err != nil {
			fmt.Println(err)
		} else {
			resp.Body.Close()
			fmt.Println(resp.Status)
		}
		srv.Close()
	}

	// A certificate from the same CA but with an unpinned key.
	rogue, _ := ca.Issue(testpki.Options{})
	srv := startExampleServer(rogue, nil)
	defer srv.Close()
	_, err = m.Get(context.Background(), srv.URL)
	var pinErr *connmgr.PinError
	if errors.Is(err, connmgr.ErrCertificatePin) && errors.As(err, &pinErr) {
		fmt.Println("refused; server presented its own pin:", pinErr.Presented[0] == connmgr.SPKIPin(rogue.Cert))
	}
	// Output:
	// 200 OK
	// 200 OK
	// refused; server presented its own pin: true
}

// startExampleServer starts an HTTPS server on 127.0.0.1 that greets the
// client by its certificate's common name.
func startExampleServer(cert *testpki.Leaf, tweak func(*tls.Config)) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "anonymous"
		if len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "hello, %s", name)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS()}}
	if tweak != nil {
		tweak(srv.TLS)
	}
	srv.StartTLS()
	return srv
}
