package connmgr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connmgr/connmgr/connmgrtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingObserver writes one line per event.
type recordingObserver struct {
	mu     sync.Mutex
	events []string
	panics bool
	// panicsAfterStart panics at every point but the call's start, so
	// that the call stays observed.
	panicsAfterStart bool
}

func (o *recordingObserver) add(format string, args ...any) {
	o.mu.Lock()
	o.events = append(o.events, fmt.Sprintf(format, args...))
	started := len(o.events) > 1
	o.mu.Unlock()
	if o.panics || o.panicsAfterStart && started {
		var typedNil *StatusError
		panic(typedNil)
	}
}

func (o *recordingObserver) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...)
}

func (o *recordingObserver) StartCall(ev *CallEvent) CallObserver {
	o.add("call %s", ev.Endpoint)
	return o
}

func (o *recordingObserver) Refused(ev RefusalEvent) { o.add("refused %s %d", ev.Reason, ev.Attempt) }

func (o *recordingObserver) AttemptStart(ev *AttemptEvent) AttemptObserver {
	o.add("attempt %d", ev.Attempt)
	ev.Request.Header.Set("X-Trace", "t")
	return attemptRecorder{o}
}

func (o *recordingObserver) Retry(ev RetryEvent) {
	o.add("retry %d %s %d", ev.Attempt, ev.Reason, ev.StatusCode)
}

func (o *recordingObserver) End(ev CallEndEvent) {
	o.add("end attempts=%d err=%v", ev.Attempts, ev.Err != nil)
}

type attemptRecorder struct{ o *recordingObserver }

func (a attemptRecorder) Headers(ev HeadersEvent) {
	if ev.Response != nil {
		a.o.add("headers %d", ev.Response.StatusCode)
	} else {
		a.o.add("headers err")
	}
}

func (a attemptRecorder) End(ev AttemptEndEvent) {
	a.o.add("attempt end %d canceled=%v failed=%v", ev.StatusCode, ev.Canceled, ev.Failed)
}

func TestObserverSeesEveryPoint(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{Status: 200, Body: "ok"})
	defer srv.Close()
	o := &recordingObserver{}
	m := newTestManager(t, Config{Default: fastRetries(3)}, WithObserver(o))
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	before := o.list()
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Equal(t, []string{
		"call default",
		"attempt 1", "headers 503", "attempt end 503 canceled=true failed=true", "retry 1 status 503",
		"attempt 2", "headers 200", "end attempts=2 err=false",
	}, before, "the attempt is not over while its body is open")
	assert.Equal(t, "attempt end 200 canceled=false failed=false", o.list()[len(before)], "it ends at the body's end")
	assert.Equal(t, "t", srv.Requests()[0].Header.Get("X-Trace"), "an observer may add headers")
}

func TestObserverSeesRefusals(t *testing.T) {
	o := &recordingObserver{}
	m := newTestManager(t, Config{}, WithObserver(o), WithTransport(&fakeTransport{}),
		WithBreakerFactory(func(string, string) Breaker { return &countingBreaker{refuse: errors.New("open")} }))
	_, err := get(t, m, "http://x.test/")
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, []string{"call default", "refused circuit_open 1", "end attempts=0 err=true"}, o.list())
}

func TestObserverPanicsAreRecovered(t *testing.T) {
	o := &recordingObserver{panics: true}
	ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
	m := newTestManager(t, Config{}, WithObserver(o), WithTransport(ft))
	resp, err := get(t, m, "http://x.test/")
	require.NoError(t, err)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Contains(t, o.list(), "call default")
}

func TestNoObserverAddsNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil })
	m := newTestManager(t, Config{}, WithTransport(ft))
	req, _ := http.NewRequest("GET", "http://x.test/", nil)
	base := testing.AllocsPerRun(200, func() {
		resp, _ := ft.RoundTrip(req)
		_ = resp.Body.Close()
	})
	got := testing.AllocsPerRun(200, func() {
		resp, err := m.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
		}
	})
	// The call (with its first attempt and body wrapper), the attempt's
	// request copy, and its per-try context and timer (which the
	// baseline's caller pays for with context.WithTimeout).
	assert.LessOrEqual(t, got-base, 6.0, "allocations per call over the transport's own")
}

// An observer that adds a header (trace context) writes to the attempt's
// own request, never to the caller's, even when no hook runs.
func TestObserverHeadersNeverReachCallersRequest(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	rt := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Trace"))
		mu.Unlock()
		return cannedResponse(r, http.StatusOK, "ok"), nil
	})
	m := newTestManager(t, Config{}, WithTransport(rt), WithObserver(&recordingObserver{}))
	req, err := http.NewRequest(http.MethodGet, "http://api.test/x", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain")
	resp, err := m.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"t"}, seen, "the transport sees the observer's header")
	assert.Empty(t, req.Header.Get("X-Trace"), "the caller's request was written to")
	assert.Len(t, req.Header, 1)
}

type endCountObserver struct{ starts, ends *atomic.Int32 }

func (o endCountObserver) StartCall(*CallEvent) CallObserver { o.starts.Add(1); return endCountCall(o) }

type endCountCall endCountObserver

func (o endCountCall) Refused(RefusalEvent)                       {}
func (o endCountCall) AttemptStart(*AttemptEvent) AttemptObserver { return nil }
func (o endCountCall) Retry(RetryEvent)                           {}
func (o endCountCall) End(CallEndEvent)                           { o.ends.Add(1) }

// TestCapRefusalsEndTheCallsObservation: a call the concurrency cap
// refused (at once, to the fallback endpoint, or after a wait in the
// queue the caller gave up) was started on the observer and never ended,
// so a tracer leaked its call span and an active-requests gauge grew.
func TestCapRefusalsEndTheCallsObservation(t *testing.T) {
	for _, mode := range []string{"refused", "fallback", "queue cancel"} {
		t.Run(mode, func(t *testing.T) {
			o := endCountObserver{new(atomic.Int32), new(atomic.Int32)}
			cfg := fastRetries(1)
			cfg.MaxConcurrent = 1
			if mode == "fallback" {
				cfg.Fallback = "b.test"
			}
			if mode == "queue cancel" {
				cfg.MaxQueue = 1
			}
			entered, release := make(chan struct{}), make(chan struct{})
			ft := &fakeTransport{fn: func(n int, r *http.Request) (*http.Response, error) {
				if n == 1 {
					close(entered)
					<-release
				}
				return cannedResponse(r, 200, "ok"), nil
			}}
			m := newTestManager(t, Config{Endpoints: map[string]EndpointConfig{"a.test": cfg, "b.test": {}}}, WithTransport(ft), WithObserver(o))
			done := make(chan struct{})
			go func() {
				defer close(done)
				resp, err := get(t, m, "http://a.test/")
				if err == nil {
					readAll(t, resp)
				}
			}()
			<-entered
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			resp, err := m.Get(ctx, "http://a.test/")
			cancel()
			if err == nil {
				readAll(t, resp)
			}
			close(release)
			<-done
			assert.Equal(t, o.starts.Load(), o.ends.Load(), "every observed call ends")
		})
	}
}

func TestOneObserverCostsTwoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	ft := RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, ""), nil })
	req, _ := http.NewRequest("GET", "http://x.test/", nil)
	perCall := func(m *Manager) float64 {
		return testing.AllocsPerRun(200, func() {
			resp, err := m.RoundTrip(req)
			if err == nil {
				_ = resp.Body.Close()
			}
		})
	}
	base := perCall(newTestManager(t, Config{}, WithTransport(ft)))
	got := perCall(newTestManager(t, Config{}, WithTransport(ft), WithObserver(nopObserver{})))
	// The call's side struct (with the call and first attempt events in
	// it) and the attempt's own header map, which an observer may add to:
	// no list for a single observer, no event on the heap of its own.
	assert.LessOrEqual(t, got-base, 2.0, "allocations per call for one observer that does nothing")
}

// TestAPanickingObserverDoesNotSilenceTheOthers: with several observers,
// one that panics at every point is recovered point by point, and the
// next one still sees every point of the call.
func TestAPanickingObserverDoesNotSilenceTheOthers(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Status: 503}, connmgrtest.Step{Status: 200, Body: "ok"})
	defer srv.Close()
	bad, good := &recordingObserver{panicsAfterStart: true}, &recordingObserver{}
	m := newTestManager(t, Config{Default: fastRetries(3)}, WithObserver(bad), WithObserver(good))
	resp, err := get(t, m, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Equal(t, []string{
		"call default",
		"attempt 1", "headers 503", "attempt end 503 canceled=true failed=true", "retry 1 status 503",
		"attempt 2", "headers 200", "end attempts=2 err=false", "attempt end 200 canceled=false failed=false",
	}, good.list())
	assert.Equal(t, []string{"call default", "attempt 1", "retry 1 status 503", "attempt 2", "end attempts=2 err=false"}, bad.list(),
		"the panicking one is still called at every point of the call (its AttemptStart panicked: no attempt observer)")
}
