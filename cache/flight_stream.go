package cache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The body of a shared response: read from the origin into one buffer by
// the flight, read from it by every participant at its own pace.

// fill reads the origin body into the buffer the participants read
// from, and stores the response at its end.
func (f *flight) fill(body io.ReadCloser) {
	defer f.stopClose()
	chunk := make([]byte, 32<<10)
	var err error
	for err == nil {
		var n int
		n, err = body.Read(chunk)
		if n > 0 && !f.push(chunk[:n]) {
			err = errAbandoned
		}
	}
	body.Close()
	if err == io.EOF {
		err = nil
	}
	// Store first, then tell the readers: a caller that has seen the end
	// of the body finds the response stored.
	f.mu.Lock()
	store := f.storing && err == nil
	data := f.buf
	f.mu.Unlock()
	if store {
		f.store(data)
	}
	f.mu.Lock()
	f.done, f.bodyErr = true, err
	f.joinable = false
	close(f.wake)
	f.mu.Unlock()
	f.unregister()
	f.cancel()
}

// push appends body bytes. Past max_object_size the response will not be
// stored, so the buffer keeps only what the slowest reader has not read,
// and the origin is read no faster than a window ahead of it.
func (f *flight) push(p []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, p...)
	if f.storing && f.s.maxObject >= 0 && f.base+int64(len(f.buf)) > f.s.maxObject {
		f.storing, f.joinable = false, false
		f.c.stats.tooLarge.Add(1)
	}
	close(f.wake)
	f.wake = make(chan struct{})
	if f.storing {
		return true
	}
	window := max(f.s.maxObject, 64<<10)
	for {
		f.trim()
		if int64(len(f.buf)) <= window || f.participants == 0 {
			return true
		}
		room := f.room
		f.mu.Unlock()
		select {
		case <-room:
		case <-f.ctx.Done():
			f.mu.Lock()
			return false
		}
		f.mu.Lock()
	}
}

// trim drops what every reader has read, once every participant reads
// (one that has not started yet starts at the beginning). Requires f.mu.
func (f *flight) trim() {
	if len(f.readers) == 0 || len(f.readers) < f.participants {
		return
	}
	low := f.readers[0].off
	for _, r := range f.readers[1:] {
		low = min(low, r.off)
	}
	if k := low - f.base; k > 0 {
		f.buf = append([]byte(nil), f.buf[k:]...)
		f.base = low
	}
}

func (f *flight) store(data []byte) {
	c := f.c
	e := buildEntry(f.resp.StatusCode, f.hdr, data, f.times[0], f.times[1], f.vary, f.s.shared, c.cfg.HeuristicMax, f.s.ttl)
	vs, ok := c.backend.load(f.ctx, f.key)
	if !ok {
		vs = &variants{}
	}
	c.backend.save(f.ctx, f.key, vs.with(e, c.cfg.MaxVariants), storeTTL(e, &f.s))
	c.stats.stored.Add(1)
}

// streamResponse is a participant's own response to a streamed flight:
// its own header copy and a reader of its own over the shared buffer.
func (f *flight) streamResponse(req *http.Request, p *participant, st cacheStatus) *http.Response {
	r := *f.resp
	r.Header = f.resp.Header.Clone()
	if _, ok := r.Header["Age"]; !ok && f.age >= time.Second {
		r.Header["Age"] = []string{strconv.FormatInt(ageSeconds(f.age), 10)} // 5.1: its age on arrival
	}
	st.fwdStatus, st.stored = f.resp.StatusCode, true
	addStatus(r.Header, f.c.cfg.Name, st)
	b := &flightBody{f: f, p: p, ctx: req.Context()}
	f.mu.Lock()
	p.reader = b
	f.readers = append(f.readers, b)
	f.mu.Unlock()
	r.Body = b
	r.Request = req
	return &r
}

// flightBody reads one participant's copy of a streamed body.
type flightBody struct {
	f      *flight
	p      *participant
	ctx    context.Context
	off    int64 // guarded by f.mu
	closed bool  // guarded by f.mu
}

var (
	errBodyClosed = errors.New("cache: read on closed response body")
	errLost       = errors.New("cache: response body lost") // cannot happen: trim keeps what readers need
)

func (b *flightBody) Read(out []byte) (int, error) {
	f := b.f
	f.mu.Lock()
	for {
		if b.closed {
			f.mu.Unlock()
			return 0, errBodyClosed
		}
		if b.off < f.base {
			f.mu.Unlock()
			return 0, errLost
		}
		if avail := f.base + int64(len(f.buf)) - b.off; avail > 0 {
			n := copy(out, f.buf[b.off-f.base:])
			b.off += int64(n)
			close(f.room)
			f.room = make(chan struct{})
			f.mu.Unlock()
			return n, nil
		}
		if f.done {
			err := f.bodyErr
			f.mu.Unlock()
			if err == nil {
				return 0, io.EOF
			}
			return 0, err
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-b.ctx.Done():
			return 0, context.Cause(b.ctx)
		}
		f.mu.Lock()
	}
}

func (b *flightBody) Close() error {
	b.f.mu.Lock()
	b.closed = true
	b.f.mu.Unlock()
	b.p.leave()
	return nil
}

// soloBody is the creator's body of a response that was not shared: its
// Close ends the creator's part in the flight.
type soloBody struct {
	io.ReadCloser
	p *participant
}

func (b *soloBody) Close() error {
	err := b.ReadCloser.Close()
	b.p.leave()
	return err
}

// drainClose reads a little of a discarded body, so the connection can
// be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	body.Close()
}
