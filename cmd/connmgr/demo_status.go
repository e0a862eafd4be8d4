package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/statuspage"
)

// checkStatusAddr checks the --status address: host:port, where the port
// may be 0 (any free port).
func checkStatusAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--status wants host:port, such as 127.0.0.1:8081, got %s", argText(addr))
	}
	return nil
}

// startStatusPage serves the Manager's status page on addr while the demo
// runs, and says where. stop shuts the server down.
func startStatusPage(addr string, m *connmgr.Manager, con *console) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--status: %w", err)
	}
	srv := &http.Server{Handler: statuspage.Handler(m), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			con.printf("status page stopped: %v\n", err)
		}
	}()
	con.printf("status page: http://%s/ (JSON: http://%s/?format=json)\n", ln.Addr(), ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
