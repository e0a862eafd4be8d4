package connmgr

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
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

// callBody wraps the body of the response a call returns. It ends the
// attempt's context (the per-try timeout) and marks the call finished
// when the caller closes the body or reads it to the end, whichever is
// first, exactly once.
type callBody struct {
	rc       io.ReadCloser
	cancel   context.CancelFunc
	m        *Manager
	ep       *endpoint
	finished atomic.Bool
}

func (b *callBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish()
	}
	return n, err
}

func (b *callBody) Close() error {
	err := b.rc.Close()
	b.finish()
	return err
}

func (b *callBody) finish() {
	if b.finished.CompareAndSwap(false, true) {
		b.cancel()
		b.m.release(b.ep)
	}
}

// callBodyWriter keeps io.Writer for bodies that have it (101 Switching
// Protocols), so upgraded connections still work through the Manager.
type callBodyWriter struct {
	*callBody
}

func (b callBodyWriter) Write(p []byte) (int, error) {
	return b.rc.(io.Writer).Write(p)
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
