package connmgr

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
)

// maxDrain is how much of a discarded response body is read so its
// connection can be reused; past that the connection is closed instead.
const maxDrain = 4 << 10

// drainAndClose reads a little of a discarded body, then closes it.
func drainAndClose(rc io.ReadCloser) {
	if rc == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, rc, maxDrain)
	_ = rc.Close()
}

// closeRequestBody closes the caller's request body, as the RoundTripper
// contract requires on every path.
func closeRequestBody(body io.ReadCloser) {
	if body != nil {
		_ = body.Close()
	}
}

// bufferBodyUntil is bufferBody bounded by ctx and the call's deadline
// (zero for none). A body that has not delivered by then (a stream whose
// producer is slow) is closed, which unblocks a pipe's Read, and the call
// fails with the context's error; the read goroutine ends when the
// body's Read returns, as net/http's own body writer does.
func bufferBodyUntil(ctx context.Context, deadline time.Time, body io.ReadCloser, limit int64) (func() (io.ReadCloser, error), io.ReadCloser, error) {
	type result struct {
		getBody func() (io.ReadCloser, error)
		once    io.ReadCloser
		err     error
	}
	done := make(chan result, 1)
	go func() {
		gb, once, err := bufferBody(body, limit)
		done <- result{gb, once, err}
	}()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-done:
		return r.getBody, r.once, r.err
	case <-ctx.Done():
		_ = body.Close()
		return nil, nil, context.Cause(ctx)
	case <-expired:
		_ = body.Close()
		return nil, nil, fmt.Errorf("reading the request body to buffer it for retries: %w", context.DeadlineExceeded)
	}
}

// bufferBody reads up to limit+1 bytes of body. It returns a GetBody
// function when the whole body fit, or else a reader that yields the
// whole body once.
func bufferBody(body io.ReadCloser, limit int64) (getBody func() (io.ReadCloser, error), once io.ReadCloser, err error) {
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, body, limit+1)
	if err != nil && err != io.EOF {
		_ = body.Close()
		return nil, nil, err
	}
	if n <= limit {
		_ = body.Close()
		data := buf.Bytes()
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, nil, nil
	}
	return nil, &stitchedBody{Reader: io.MultiReader(bytes.NewReader(buf.Bytes()), body), closer: body}, nil
}

// stitchedBody is a buffered prefix followed by the rest of the original body.
type stitchedBody struct {
	io.Reader
	closer io.Closer
}

func (s *stitchedBody) Close() error { return s.closer.Close() }
