package cache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// A flight is one origin request made on behalf of every caller that
// wanted the same URI at the time (request coalescing). Its context is
// its own, detached from the caller that started it: a caller leaving
// (its context ends, or it closes the body) never cancels it while
// others still take part. It is cancelled when the last one leaves
// before the body is read, and when the Cache closes.
//
// A storable response is read into a buffer by the flight's goroutine
// and each caller reads its own copy from it at its own pace, with its
// own deadline; at the end of the body the response is stored. A
// response that may not be shared goes to the caller that started the
// flight only; the others send their own request. A failure is shared
// as the failure it is, each caller free to answer it with its own
// stale response.
type flight struct {
	c          *Cache
	key        string
	req        *http.Request // the request that started it: its Vary values are stored
	out        *http.Request // what is sent: req, with validators when validated
	rcc        directives
	selected   *entry
	vs         *variants
	s          settings
	validated  bool
	background bool // a stale-while-revalidate refresh: no caller waits
	registered bool // in Cache.flights

	ctx       context.Context
	cancel    context.CancelFunc
	stopClose func() bool

	ready chan struct{} // closed once the fields below are set
	kind  outcome
	err   error
	resp  *http.Response // outSolo: the creator's; outStream: the origin's, body owned by fill
	entry *entry         // outEntry
	vary  varyKey        // outStream: the selection stored
	hdr   http.Header    // outStream: the fields to store
	times [2]time.Time   // request_time, response_time
	age   time.Duration  // outStream: corrected_initial_age, for Age

	// mu guards what follows.
	mu           sync.Mutex
	participants int
	creatorGone  bool
	soloTaken    bool
	joinable     bool
	storing      bool
	done         bool
	bodyErr      error
	buf          []byte
	base         int64 // offset of buf[0] in the body, once trimmed
	readers      []*flightBody
	wake         chan struct{} // closed (and replaced) when data arrives
	room         chan struct{} // closed (and replaced) when a reader advances
}

type outcome int

const (
	outError  outcome = iota + 1 // the origin request failed
	outEntry                     // a 304 freshened the stored response
	outStream                    // a storable response, read by every participant
	outSolo                      // a response only the creator may have
	outRetry                     // a 304 that matched nothing stored
)

var errAbandoned = errors.New("cache: every caller left before the body was read")

func (c *Cache) newFlight(key string, req *http.Request, selected *entry, vs *variants, s *settings, validate bool, rcc directives) *flight {
	ctx, cancel := context.WithCancel(context.WithoutCancel(req.Context()))
	f := &flight{
		c: c, key: key, req: req, out: req, rcc: rcc, selected: selected, vs: vs, s: *s, validated: validate,
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), joinable: true,
		wake: make(chan struct{}), room: make(chan struct{}),
	}
	if validate {
		f.out = conditionalRequest(req, selected, vs)
	}
	f.stopClose = context.AfterFunc(c.closing, cancel)
	return f
}

// start runs the flight on a goroutine the Cache owns; false when the
// Cache is closed. done, if set, runs when the goroutine ends.
func (f *flight) start(next http.RoundTripper, timeout time.Duration, done func()) bool {
	c := f.c
	c.flightsMu.Lock()
	if c.closed.Load() {
		c.flightsMu.Unlock()
		f.cancel()
		f.stopClose()
		if done != nil {
			done()
		}
		return false
	}
	c.wg.Add(1)
	c.flightsMu.Unlock()
	go func() {
		defer c.wg.Done()
		if done != nil {
			defer done()
		}
		f.run(next, timeout)
	}()
	return true
}

func (f *flight) run(next http.RoundTripper, timeout time.Duration) {
	c := f.c
	ctx := f.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	f.times[0] = c.now()
	var resp *http.Response
	var err error
	if recovered(func() { resp, err = next.RoundTrip(f.out.WithContext(ctx)) }) {
		err = errors.New("cache: the transport panicked")
	}
	f.times[1] = c.now()
	switch {
	case err != nil:
		f.settle(outError, err)
	case resp.StatusCode == http.StatusNotModified && f.validated:
		f.revalidated(resp)
	default:
		f.received(resp)
	}
	if f.background {
		f.cancel()
	}
}

// settle publishes the outcome to the participants.
func (f *flight) settle(kind outcome, err error) {
	f.mu.Lock()
	f.kind, f.err = kind, err
	if kind != outStream {
		f.joinable = false
	}
	f.mu.Unlock()
	if kind != outStream {
		f.unregister()
	}
	close(f.ready)
	if kind == outSolo {
		f.mu.Lock()
		closeIt := (f.background || f.creatorGone) && !f.soloTaken
		f.soloTaken = f.soloTaken || closeIt
		f.mu.Unlock()
		if closeIt {
			drainClose(f.resp.Body)
		}
	}
	if kind != outStream && kind != outSolo {
		f.stopClose()
	}
}

func (f *flight) unregister() {
	if !f.registered {
		return
	}
	c := f.c
	c.flightsMu.Lock()
	if c.flights[f.key] == f {
		delete(c.flights, f.key)
	}
	c.flightsMu.Unlock()
}

// revalidated handles a 304 to our conditional request (section 4.3.4).
func (f *flight) revalidated(resp *http.Response) {
	c := f.c
	drainClose(resp.Body)
	vs, ok := c.backend.load(f.ctx, f.key)
	if !ok {
		vs = f.vs
	}
	targets := select304(vs, resp.Header)
	if len(targets) == 0 || (f.selected == nil && resp.Header.Get("Etag") == "") {
		f.settle(outRetry, nil) // nothing stored is named: ask again, unconditionally
		return
	}
	if f.selected == nil {
		f.varyMatched(vs, targets[0], resp.Header)
		return
	}
	next := vs
	var mine *entry
	var ttl time.Duration
	for _, old := range targets {
		u := freshen(old, resp.Header, f.times[0], f.times[1], &f.s, c.cfg.HeuristicMax)
		next = next.replace(old, u)
		ttl = max(ttl, storeTTL(u, &f.s))
		if old == f.selected || (mine == nil && u.vary.matches(f.req.Header)) {
			mine = u
		}
	}
	c.backend.save(f.ctx, f.key, next, ttl)
	c.stats.revalidated.Add(1)
	if mine == nil {
		f.settle(outRetry, nil)
		return
	}
	f.entry = mine
	f.settle(outEntry, nil)
}

// varyMatched handles a 304 to a Vary miss validated with the stored
// entity tags (sections 4.3.1, 4.3.4): the origin names the stored
// response that also suits this request, which is stored again under
// this request's selection and served.
func (f *flight) varyMatched(vs *variants, named *entry, h http.Header) {
	c := f.c
	u := freshen(named, h, f.times[0], f.times[1], &f.s, c.cfg.HeuristicMax)
	u.vary = newVaryKey(named.vary.names, f.req.Header)
	c.backend.save(f.ctx, f.key, vs.with(u, c.cfg.MaxVariants), storeTTL(u, &f.s))
	c.stats.revalidated.Add(1)
	f.entry = u
	f.settle(outEntry, nil)
}

// replace returns a copy of v with old swapped for u.
func (v *variants) replace(old, u *entry) *variants {
	out := &variants{list: make([]*entry, len(v.list))}
	copy(out.list, v.list)
	for i, e := range out.list {
		if e == old {
			out.list[i] = u
		}
	}
	return out
}

// received handles a full response: stream and store it when it may be
// stored, else hand it to the creator alone.
func (f *flight) received(resp *http.Response) {
	c := f.c
	if f.validated {
		c.stats.replaced.Add(1)
	}
	cc := parseDirectives(resp.Header["Cache-Control"])
	ok := c.storable(f.req, &f.rcc, resp.StatusCode, resp.Header, &cc, &f.s)
	if ok && f.s.maxObject >= 0 && resp.ContentLength > f.s.maxObject {
		c.stats.tooLarge.Add(1)
		ok = false
	}
	if !ok {
		f.resp = resp
		f.settle(outSolo, nil)
		return
	}
	names, _ := varyNames(resp.Header)
	names = mergeNames(names, c.keyHeaders)
	f.vary = newVaryKey(names, f.req.Header)
	f.hdr = storedHeader(resp.Header, &cc, f.s.shared)
	f.age = computeFreshness(resp.StatusCode, resp.Header, &cc, f.s.shared, f.times[0], f.times[1], 0).initialAge
	f.resp = resp
	f.mu.Lock()
	f.storing = true
	f.mu.Unlock()
	f.settle(outStream, nil)
	f.fill(resp.Body)
}

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

// tryJoin adds a participant to a flight still open to them. Requires
// c.flightsMu (not f.mu).
func (f *flight) tryJoin() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.joinable {
		return false
	}
	f.participants++
	return true
}

// participant is one caller's part in a flight.
type participant struct {
	f       *flight
	creator bool
	once    sync.Once
	stop    func() bool // guarded by f.mu
	reader  *flightBody // guarded by f.mu
}

// newParticipant ties a counted participant to ctx: when ctx ends, it leaves.
func (f *flight) newParticipant(ctx context.Context, creator bool) *participant {
	p := &participant{f: f, creator: creator}
	f.mu.Lock() // leave, which AfterFunc may start at once, reads p.stop under f.mu
	p.stop = context.AfterFunc(ctx, p.leave)
	f.mu.Unlock()
	return p
}

// leave ends a caller's part, once. The last one to leave before the body
// is read cancels the flight; a solo response nobody took is closed.
func (p *participant) leave() {
	p.once.Do(func() {
		f := p.f
		f.mu.Lock()
		stop := p.stop
		f.mu.Unlock()
		stop()
		f.mu.Lock()
		f.participants--
		if p.creator {
			f.creatorGone = true
		}
		if p.reader != nil {
			for i, r := range f.readers {
				if r == p.reader {
					f.readers = append(f.readers[:i], f.readers[i+1:]...)
					break
				}
			}
		}
		close(f.room)
		f.room = make(chan struct{})
		closeSolo := f.kind == outSolo && p.creator && !f.soloTaken
		f.soloTaken = f.soloTaken || closeSolo
		cancel := f.participants == 0 && !f.background && !f.done
		if cancel {
			f.joinable = false
		}
		f.mu.Unlock()
		if closeSolo {
			drainClose(f.resp.Body)
		}
		if cancel {
			f.cancel()
			f.stopClose()
		}
	})
}

// takeSolo hands the solo response to its creator.
func (f *flight) takeSolo() *http.Response {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.soloTaken {
		return nil
	}
	f.soloTaken = true
	return f.resp
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
