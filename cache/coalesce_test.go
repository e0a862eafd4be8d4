package cache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// participants reports how many callers take part in the flight for path.
func (h *harness) participants(path string) int {
	key := primaryKey(http.MethodGet, mustURL(h.t, h.o.srv.URL+path))
	h.c.flightsMu.Lock()
	f := h.c.flights[key]
	h.c.flightsMu.Unlock()
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.participants
}

// gate makes the origin wait for release before answering.
func (h *harness) gate(cc string, body string) (release func()) {
	ch := make(chan struct{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", cc)
		io.WriteString(w, body)
	})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// TestCoalescingThousandMisses: 1,000 concurrent misses for one URI make
// one origin request, and every caller reads the whole body.
func TestCoalescingThousandMisses(t *testing.T) {
	h := newHarness(t, Config{})
	body := strings.Repeat("0123456789", 10_000)
	release := h.gate("max-age=60", body)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.client.Get(h.o.srv.URL + "/hot")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && string(b) != body {
				err = errors.New("a caller got a different body")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	eventually(t, "every caller to join the flight", func() bool { return h.participants("/hot") == n })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := h.o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	if st := h.c.Stats(); st.Coalesced != n-1 || st.Stored != 1 {
		t.Errorf("Stats: coalesced %d stored %d, want %d and 1", st.Coalesced, st.Stored, n-1)
	}
}

// TestCoalescingFollowerLeaves: a follower whose context ends leaves
// without cancelling the leader, whose response is still stored.
func TestCoalescingFollowerLeaves(t *testing.T) {
	h := newHarness(t, Config{})
	release := h.gate("max-age=60", "shared")
	leader := make(chan response, 1)
	go func() { leader <- h.get("/f") }()
	eventually(t, "the leader's flight", func() bool { return h.participants("/f") == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	followerErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.o.srv.URL+"/f", nil)
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		followerErr <- err
	}()
	eventually(t, "the follower to join", func() bool { return h.participants("/f") == 2 })
	cancel()
	if err := <-followerErr; !errors.Is(err, context.Canceled) {
		t.Errorf("follower err = %v, want context.Canceled", err)
	}
	release()
	if r := <-leader; r.body != "shared" {
		t.Errorf("leader got %q", r.body)
	}
	if h.c.Stats().Stored != 1 {
		t.Error("the leader's response was not stored")
	}
}

// TestCoalescingLeaderLeaves: the caller that started the request leaves;
// a follower with its own deadline still gets the whole response.
func TestCoalescingLeaderLeaves(t *testing.T) {
	h := newHarness(t, Config{})
	release := h.gate("max-age=60", "kept")
	ctx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.o.srv.URL+"/l", nil)
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		leaderErr <- err
	}()
	eventually(t, "the leader's flight", func() bool { return h.participants("/l") == 1 })
	follower := make(chan response, 1)
	go func() { follower <- h.get("/l") }()
	eventually(t, "the follower to join", func() bool { return h.participants("/l") == 2 })
	cancel()
	<-leaderErr
	release()
	if r := <-follower; r.body != "kept" {
		t.Errorf("follower got %q", r.body)
	}
	if h.o.hits.Load() != 1 {
		t.Errorf("origin hits %d, want 1", h.o.hits.Load())
	}
}

// TestCoalescingLeaderFailure: a failed origin request is shared as the
// failure it is, never as a response; nothing is stored.
func TestCoalescingLeaderFailure(t *testing.T) {
	h := newHarness(t, Config{})
	ch := make(chan struct{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		<-ch
		panic(http.ErrAbortHandler) // the connection drops: a transport error
	})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.client.Get(h.o.srv.URL + "/fail")
			if err == nil {
				resp.Body.Close()
				err = errors.New("a failure was shared as a response")
				errs <- err
			}
		}()
	}
	eventually(t, "callers to join", func() bool { return h.participants("/fail") == 10 })
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h.c.Stats().Stored != 0 {
		t.Error("a failure was stored")
	}
}

// TestCoalescingPrivateNotShared: a response that may not be stored (here
// private, in a shared cache) goes to the caller that asked for it only;
// the others send their own requests.
func TestCoalescingPrivateNotShared(t *testing.T) {
	h := newHarness(t, Config{})
	release := h.gate("private, max-age=60", "mine")
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.get("/p"); r.body != "mine" {
				t.Errorf("got %q", r.body)
			}
		}()
	}
	eventually(t, "callers to join", func() bool { return h.participants("/p") == 3 })
	release()
	wg.Wait()
	if h.o.hits.Load() != 3 {
		t.Errorf("origin hits %d, want 3: a private response is never handed to another caller", h.o.hits.Load())
	}
	if h.c.Stats().Coalesced != 0 {
		t.Errorf("coalesced = %d, want 0", h.c.Stats().Coalesced)
	}
}

// TestStreamingNotReadToEnd: a body the caller does not read to the end
// is not stored.
func TestStreamingNotReadToEnd(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=60")
	big := strings.Repeat("x", 1<<19)
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for i := 0; i < len(big); i += 4096 {
			if _, err := io.WriteString(w, big[i:i+4096]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Microsecond)
		}
	})
	resp, err := h.client.Get(h.o.srv.URL + "/half")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	r := h.get("/half")
	if len(r.body) != len(big) {
		t.Fatalf("second caller got %d bytes, want %d", len(r.body), len(big))
	}
	if h.o.hits.Load() != 2 {
		t.Errorf("origin hits %d, want 2: the first body was not read to the end, so not stored", h.o.hits.Load())
	}
}

// TestStreamingTooLarge: a body past max_object_size reaches the caller
// whole (with or without Content-Length) and is not stored.
func TestStreamingTooLarge(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(map[bool]string{false: "content-length", true: "chunked"}[chunked], func(t *testing.T) {
			h := newHarness(t, Config{MaxObjectSize: 1000})
			var body strings.Builder
			for i := 0; body.Len() < 300_000; i++ {
				body.WriteString(itoa(int64(i)))
				body.WriteByte(',')
			}
			want := body.String()
			h.o.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				if chunked {
					for i := 0; i < len(want); i += 7000 {
						io.WriteString(w, want[i:min(i+7000, len(want))])
						w.(http.Flusher).Flush()
					}
					return
				}
				io.WriteString(w, want)
			})
			resp, err := h.client.Get(h.o.srv.URL + "/big")
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			chunk := make([]byte, 512)
			for {
				n, err := resp.Body.Read(chunk)
				got.Write(chunk[:n])
				if err != nil {
					break
				}
				time.Sleep(time.Microsecond) // a slow reader
			}
			resp.Body.Close()
			if got.String() != want {
				t.Fatalf("the caller got %d bytes, want %d: never truncated", got.Len(), len(want))
			}
			h.get("/big")
			if h.o.hits.Load() != 2 || h.c.Stats().TooLarge == 0 {
				t.Errorf("origin hits %d, too large %d: want not stored", h.o.hits.Load(), h.c.Stats().TooLarge)
			}
		})
	}
}

// TestHitBodyIsFresh: every hit reads the stored body from its start.
func TestHitBodyIsFresh(t *testing.T) {
	h := newHarness(t, Config{})
	h.serve("Cache-Control", "max-age=60")
	h.get("/b")
	for i := 0; i < 3; i++ {
		if r := h.get("/b"); r.body != "body-1" {
			t.Fatalf("hit %d got %q", i, r.body)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCoalescingFollowerDeadline: a follower reading a slow shared body
// stops at its own deadline; the leader reads on to the end, and the
// response is stored.
func TestCoalescingFollowerDeadline(t *testing.T) {
	h := newHarness(t, Config{})
	release := make(chan struct{})
	h.o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "first half,")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second half")
	})
	leader, err := h.client.Get(h.o.srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.o.srv.URL+"/slow", nil)
	follower, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(follower.Header.Get("Cache-Status"), "collapsed") {
		t.Errorf("the follower did not share the request: %v", follower.Header["Cache-Status"])
	}
	_, err = io.ReadAll(follower.Body)
	follower.Body.Close()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("follower read err = %v, want its own deadline", err)
	}
	close(release)
	b, err := io.ReadAll(leader.Body)
	if err != nil || string(b) != "first half,second half" {
		t.Fatalf("leader got %q, %v", b, err)
	}
	if h.c.Stats().Stored != 1 || h.o.hits.Load() != 1 {
		t.Errorf("stored %d, origin hits %d: want 1 and 1", h.c.Stats().Stored, h.o.hits.Load())
	}
}
