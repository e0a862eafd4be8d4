package connmgrtest

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Step is what the server does for one request. The zero Step answers 200
// with an empty body.
//
// The faults are applied in this order: Hang (which overrides everything
// else), then Delay, then one of Reset, ResetMidBody or ChunkDelay (in that
// order of precedence), else a plain answer. Status, Header and the
// Retry-After fields apply to every step that writes headers.
//
// A wait (Hang, Delay, ChunkDelay) that is cut short because the client
// went away or the server is closing drops the connection without
// finishing the answer.
type Step struct {
	// Status is the response status code; 0 means 200.
	Status int
	// Body is the response body; empty means none.
	Body string
	// Header holds extra response headers, set before Retry-After.
	Header http.Header
	// Delay is how long to wait before writing the headers; 0 means no
	// wait. The wait ends early, dropping the connection, when the client
	// goes away or the server closes.
	Delay time.Duration
	// RetryAfter, if > 0, sets "Retry-After: <seconds>", rounded up to a
	// whole second (1500ms gives "2").
	RetryAfter time.Duration
	// RetryAfterDate, if non-zero, sets Retry-After as an HTTP-date (RFC
	// 9110 IMF-fixdate, in UTC). It wins over RetryAfter when both are set.
	RetryAfterDate time.Time
	// Reset aborts the connection without answering: the server hijacks
	// it, sets SO_LINGER to 0 and closes it, so the client sees a TCP RST
	// ("connection reset by peer") or an EOF.
	//
	// Note that net/http's Transport itself retries an idempotent request
	// (GET, HEAD, ... with no body or a GetBody) once when a reused
	// keep-alive connection fails before any response byte arrives; such
	// a request then consumes the next step too. The first request on a
	// fresh connection is never retried that way.
	Reset bool
	// ResetMidBody writes the headers, with a Content-Length of the full
	// Body, and the first half of Body, flushes them, then resets the
	// connection as Reset does. The client gets the status and then an
	// error (io.ErrUnexpectedEOF or "connection reset by peer") reading
	// the body. An empty Body is replaced by 64 bytes of "x" so that there
	// is something to cut.
	ResetMidBody bool
	// ChunkDelay makes a slow body: the headers are written and flushed at
	// once, then Body is written in Chunks pieces, each preceded by a wait
	// of ChunkDelay and followed by a flush. 0 means the body is written at
	// once.
	ChunkDelay time.Duration
	// Chunks is the number of pieces for ChunkDelay; 0 means 4. A body
	// shorter than Chunks bytes is written one byte per piece.
	Chunks int
	// Hang never answers: the handler returns, dropping the connection,
	// only when the client goes away or the server closes.
	Hang bool
}

// midBodyFiller is the body ResetMidBody cuts when Step.Body is empty.
var midBodyFiller = strings.Repeat("x", 64)

// Received is one request as the server saw it. Server.Requests returns
// copies, so callers may keep and change them.
type Received struct {
	// Method is the request method.
	Method string
	// Path is the URL path (decoded, as in url.URL.Path).
	Path string
	// RawQuery is the encoded query, without the '?'.
	RawQuery string
	// Host is the Host header (or :authority) the client sent.
	Host string
	// Header holds the request headers.
	Header http.Header
	// Body is the request body, read in full up to maxRecordedBody bytes;
	// the rest, if any, is read and discarded.
	Body []byte
	// At is when the request reached the handler.
	At time.Time
	// Proto is the protocol version, such as "HTTP/1.1".
	Proto string
}

// clone returns a deep copy of rc.
func (rc Received) clone() Received {
	rc.Header = rc.Header.Clone()
	if rc.Body != nil {
		rc.Body = append([]byte(nil), rc.Body...)
	}
	return rc
}

// defaultChunks is the number of body pieces when Step.Chunks is 0.
const defaultChunks = 4

// serve carries out st for one request. done is closed when the server
// starts closing. It may panic with http.ErrAbortHandler, which net/http
// turns into a silently dropped connection.
func (st Step) serve(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
	if st.Hang {
		select {
		case <-r.Context().Done():
		case <-done:
		}
		panic(http.ErrAbortHandler)
	}
	if st.Delay > 0 && !wait(r, done, st.Delay) {
		panic(http.ErrAbortHandler)
	}
	if st.Reset {
		resetConn(w)
		return
	}

	h := w.Header()
	for k, vs := range st.Header {
		h[k] = append([]string(nil), vs...)
	}
	if st.RetryAfter > 0 {
		secs := (st.RetryAfter + time.Second - 1) / time.Second
		h.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}
	if !st.RetryAfterDate.IsZero() {
		h.Set("Retry-After", st.RetryAfterDate.UTC().Format(http.TimeFormat))
	}
	status := st.Status
	if status == 0 {
		status = http.StatusOK
	}
	rc := http.NewResponseController(w)

	switch {
	case st.ResetMidBody:
		body := st.Body
		if body == "" {
			body = midBodyFiller
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body[:len(body)/2]))
		_ = rc.Flush()
		resetConn(w)
	case st.ChunkDelay > 0:
		w.WriteHeader(status)
		_ = rc.Flush()
		for _, piece := range split(st.Body, st.Chunks) {
			if !wait(r, done, st.ChunkDelay) {
				panic(http.ErrAbortHandler)
			}
			if _, err := w.Write([]byte(piece)); err != nil {
				return // client gone; nothing more to do
			}
			_ = rc.Flush()
		}
	default:
		w.WriteHeader(status)
		if st.Body != "" {
			_, _ = w.Write([]byte(st.Body))
		}
	}
}

// wait waits for d, or less if the client goes away or done is closed. It
// reports whether the whole of d passed.
func wait(r *http.Request, done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-done:
		return false
	}
}

// split cuts s into n pieces of nearly equal size (n <= 0 means
// defaultChunks). A string shorter than n gives one piece per byte; an
// empty one gives n empty pieces, so the waits still happen.
func split(s string, n int) []string {
	if n <= 0 {
		n = defaultChunks
	}
	if len(s) > 0 && len(s) < n {
		n = len(s)
	}
	pieces := make([]string, 0, n)
	for i := range n {
		lo, hi := i*len(s)/n, (i+1)*len(s)/n
		pieces = append(pieces, s[lo:hi])
	}
	return pieces
}

// resetConn hijacks the connection behind w and closes it with SO_LINGER
// set to 0, so the peer gets a TCP RST. Whatever w buffered is flushed
// first. If w cannot be hijacked it drops the connection the way net/http
// allows, by panicking with http.ErrAbortHandler.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		conn = nc.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
