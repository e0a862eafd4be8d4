package cache

import (
	"context"
	"errors"
	"net/http"
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
		resp, err = nil, errors.New("cache: the transport panicked")
	}
	resp, err = sane(resp, err)
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
