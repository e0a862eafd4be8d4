package connmgrtest

import (
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// maxRecordedBody bounds how much of each request body is recorded.
const maxRecordedBody = 10 << 20 // 10 MiB

// Server is a scripted or computed HTTP upstream on a loopback port. See
// the package documentation for the model. Create one with NewServer,
// NewServerFunc or NewTLSServer and stop it with Close; the zero Server is
// not usable. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:PORT" (or https for a TLS
	// server), with no trailing slash.
	URL string

	ts *httptest.Server
	// closing is closed when Close starts; every wait in a handler selects
	// on it, so Close never waits for a hanging or delayed request.
	closing   chan struct{}
	closeOnce sync.Once

	// mu guards steps, fn, pos, count and received. It is never held
	// while a handler waits, writes, or calls fn.
	mu sync.Mutex
	// steps is the script; fn, when non-nil, replaces it.
	steps []Step
	fn    func(n int64, r *http.Request) Step
	// pos is the index in steps of the next request's step; it stops at
	// the last step, which then repeats.
	pos int
	// count is the number of requests received since the last Reset.
	count int64
	// received holds the requests since the last Reset, in arrival order.
	received []Received
}

// NewServer starts a plain-HTTP Server that runs a script: request i gets
// steps[i], and after the script ends the last step repeats. With no steps
// every request gets 200 "ok".
func NewServer(steps ...Step) *Server {
	return start(false, steps, nil)
}

// NewServerFunc starts a plain-HTTP Server that asks f for each request's
// step. n counts requests from 1 (restarting after Reset); f runs on the
// request's own goroutine, concurrently with other requests, and must not
// read r.Body (the server has already recorded it). A nil f answers every
// request with 200 "ok".
func NewServerFunc(f func(n int64, r *http.Request) Step) *Server {
	if f == nil {
		f = func(int64, *http.Request) Step { return Step{Body: "ok"} }
	}
	return start(false, nil, f)
}

// NewTLSServer is NewServer over HTTPS with httptest's self-signed
// certificate for 127.0.0.1. Trust it with Certificate or use Client. The
// server speaks HTTP/1.1 only, so Reset and ResetMidBody can cut the
// connection.
func NewTLSServer(steps ...Step) *Server {
	return start(true, steps, nil)
}

// start creates the server, binds it to 127.0.0.1 and starts it.
func start(useTLS bool, steps []Step, fn func(int64, *http.Request) Step) *Server {
	s := &Server{
		closing: make(chan struct{}),
		steps:   append([]Step(nil), steps...),
		fn:      fn,
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	// httptest may fall back to [::1] or to the -httptest.serve address;
	// this server promises 127.0.0.1 only.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("connmgrtest: failed to listen on a loopback port: %v", err))
	}
	_ = ts.Listener.Close()
	ts.Listener = l
	// Faults provoke connection errors on purpose (failed TLS handshakes,
	// aborted writes); logging them would only bury the test output.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	s.ts = ts
	s.URL = ts.URL
	return s
}

// handle records the request, picks its step and carries it out.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	rec := Received{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Host:     r.Host,
		Header:   r.Header.Clone(),
		At:       time.Now(),
		Proto:    r.Proto,
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRecordedBody))
	if err != nil {
		// The client went away while sending; there is no one to answer.
		panic(http.ErrAbortHandler)
	}
	_, _ = io.Copy(io.Discard, r.Body) // beyond the recorded bound
	rec.Body = body

	s.mu.Lock()
	s.count++
	n := s.count
	s.received = append(s.received, rec)
	fn := s.fn
	var st Step
	if fn == nil {
		st = s.nextStepLocked()
	}
	s.mu.Unlock()

	if fn != nil {
		st = fn(n, r)
	}
	st.serve(w, r, s.closing)
}

// nextStepLocked returns the script's step for the next request and
// advances the script. It requires that s.mu is held.
func (s *Server) nextStepLocked() Step {
	if len(s.steps) == 0 {
		return Step{Body: "ok"}
	}
	st := s.steps[s.pos]
	if s.pos < len(s.steps)-1 {
		s.pos++
	}
	return st
}

// Script replaces the server's behaviour with a new script, restarted from
// its first step; a server made with NewServerFunc becomes scripted. The
// requests received so far and Count are kept. Requests already being
// served finish with the step they had.
func (s *Server) Script(steps ...Step) {
	steps = append([]Step(nil), steps...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = steps
	s.fn = nil
	s.pos = 0
}

// Requests returns copies of the requests received since the server
// started or was last Reset, in arrival order.
func (s *Server) Requests() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.received))
	for i, rc := range s.received {
		out[i] = rc.clone()
	}
	return out
}

// Count returns the number of requests received since the server started
// or was last Reset.
func (s *Server) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Reset forgets the requests received, sets Count to 0 (so a
// NewServerFunc function sees n = 1 again) and restarts the script from its
// first step.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = nil
	s.count = 0
	s.pos = 0
}

// Close stops the server: it ends every wait (Hang, Delay, ChunkDelay),
// closes every connection, including those of requests still in flight,
// and returns when all handlers have returned. It is idempotent. Requests
// and Count still work after Close.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		// Also unblocks handlers stuck reading a request body that the
		// client stopped sending, which httptest's Close would wait for.
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// Addr returns the server's "host:port", such as "127.0.0.1:34567".
func (s *Server) Addr() string {
	return s.ts.Listener.Addr().String()
}

// Certificate returns the TLS server's certificate, to add to a
// x509.CertPool; it is nil for a plain-HTTP server.
func (s *Server) Certificate() *x509.Certificate {
	return s.ts.Certificate()
}

// Client returns an *http.Client set up for the server: for a TLS server
// it trusts Certificate. Close closes its idle connections. Each call
// returns the same client.
func (s *Server) Client() *http.Client {
	return s.ts.Client()
}
