package cache

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/connmgrtest"
)

// managerSetup is a Manager with the cache joined to it (m.Use: the
// cache wraps every call, reads the endpoint's cache block, reports in
// Stats, closes with the Manager) and a client whose transport is the
// Manager.
type managerSetup struct {
	m      *connmgr.Manager
	c      *Cache
	clk    *clock
	client *http.Client
}

func newManagerSetup(t *testing.T, cfg connmgr.Config, ccfg Config) *managerSetup {
	t.Helper()
	m, err := connmgr.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	c.now = clk.Now
	if err := m.Use(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &managerSetup{m: m, c: c, clk: clk, client: &http.Client{Transport: m}}
}

func (s *managerSetup) get(t *testing.T, url string) (*http.Response, string, error) {
	t.Helper()
	resp, err := s.client.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestManagerStaleIfErrorWhileBreakerOpen: the origin fails, the breaker
// opens, and the stale response keeps answering, from the endpoint's
// stale_if_error, without calling the origin while the breaker is open.
func TestManagerStaleIfErrorWhileBreakerOpen(t *testing.T) {
	srv := connmgrtest.NewServer(
		connmgrtest.Step{Body: "v1", Header: http.Header{"Cache-Control": {"max-age=1"}}},
		connmgrtest.Step{Status: 503},
	)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := newManagerSetup(t, connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{host: {
		Retry:          connmgr.RetryConfig{MaxAttempts: 1},
		CircuitBreaker: connmgr.BreakerConfig{ConsecutiveFailures: 1, RecoveryTimeout: time.Hour},
		Cache:          connmgr.CacheConfig{StaleIfError: time.Minute},
	}}}, Config{})

	if _, body, err := s.get(t, srv.URL+"/p"); err != nil || body != "v1" {
		t.Fatalf("first call: %q %v", body, err)
	}
	s.clk.Advance(10 * time.Second)
	for i, want := range []string{"fwd-status=503", "fwd=stale; ttl"} {
		resp, body, err := s.get(t, srv.URL+"/p")
		if err != nil || body != "v1" || resp.StatusCode != 200 {
			t.Fatalf("call %d: %d %q %v, want the stale v1", i, statusOf(resp), body, err)
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=stale-if-error") || !strings.Contains(cs, want) {
			t.Errorf("call %d: Cache-Status = %q, want stale-if-error with %q", i, cs, want)
		}
	}
	if n := srv.Count(); n != 2 {
		t.Errorf("origin requests = %d, want 2: the last call was refused by the open breaker", n)
	}
	st := s.m.Stats()
	if b := st.Endpoints[host].Breaker; b == nil || b.State != connmgr.BreakerOpen {
		t.Errorf("breaker = %+v, want open", b)
	}
	cs, ok := st.Plugins["cache"].(Stats)
	if !ok || cs.StaleIfError != 2 {
		t.Errorf("Stats().Plugins[cache] = %#v, want 2 stale-if-error", st.Plugins["cache"])
	}
	// Past the window the refusal goes through, typed.
	s.clk.Advance(2 * time.Minute)
	if _, _, err := s.get(t, srv.URL+"/p"); !errors.Is(err, connmgr.ErrCircuitOpen) {
		t.Errorf("past stale_if_error: err = %v, want ErrCircuitOpen", err)
	}
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// TestManagerEndpointBlock: each endpoint's cache block overrides the
// cache's Config: off for one, TTL mode for another.
func TestManagerEndpointBlock(t *testing.T) {
	off := connmgrtest.NewServer(connmgrtest.Step{Body: "x", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer off.Close()
	ttl := connmgrtest.NewServer(connmgrtest.Step{Body: "y"}) // no freshness at all
	defer ttl.Close()
	s := newManagerSetup(t, connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		strings.TrimPrefix(off.URL, "http://"): {Cache: connmgr.CacheConfig{Enabled: connmgr.Bool(false)}},
		strings.TrimPrefix(ttl.URL, "http://"): {Cache: connmgr.CacheConfig{TTL: time.Minute}},
	}}, Config{})
	for i := 0; i < 2; i++ {
		s.get(t, off.URL+"/a")
		s.get(t, ttl.URL+"/a")
	}
	if off.Count() != 2 {
		t.Errorf("enabled: false: origin requests %d, want 2", off.Count())
	}
	if ttl.Count() != 1 {
		t.Errorf("ttl: 1m: origin requests %d, want 1", ttl.Count())
	}
}

// TestEntriesSurviveReload: the store is the cache's, not the Manager's.
func TestEntriesSurviveReload(t *testing.T) {
	srv := connmgrtest.NewServer(connmgrtest.Step{Body: "x", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer srv.Close()
	s := newManagerSetup(t, connmgr.Config{}, Config{})
	s.get(t, srv.URL+"/r")
	if err := s.m.Reload(connmgr.Config{Default: connmgr.EndpointConfig{Timeout: 3 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	if resp, _, _ := s.get(t, srv.URL+"/r"); srv.Count() != 1 || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("after Reload: origin requests %d, want 1 (a hit)", srv.Count())
	}
}

// TestAttachOneManager: a cache serves one Manager at a time; closing
// the Manager closes the cache.
func TestAttachOneManager(t *testing.T) {
	s := newManagerSetup(t, connmgr.Config{}, Config{})
	m2, err := connmgr.New(connmgr.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Use(s.c); !errors.Is(err, ErrAttached) {
		t.Errorf("Use on a second Manager: %v, want ErrAttached", err)
	}
	s.m.Close()
	if !s.c.closed.Load() {
		t.Error("closing the Manager did not close the cache")
	}
}

// TestConfigBlockValidated: a bad mode in the config file's cache block is
// an error naming the field.
func TestConfigBlockValidated(t *testing.T) {
	_, err := connmgr.New(connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{"api.test": {Cache: connmgr.CacheConfig{Mode: "public"}}}})
	if err == nil || !strings.Contains(err.Error(), `endpoints["api.test"].cache.mode: must be "shared" or "private"`) {
		t.Errorf("err = %v", err)
	}
}

// TestManagerCoalescing: concurrent misses through the Manager make one
// call of the pipeline and one origin request.
func TestManagerCoalescing(t *testing.T) {
	release := make(chan struct{})
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		<-release
		return connmgrtest.Step{Body: "one", Header: http.Header{"Cache-Control": {"max-age=60"}}}
	})
	defer srv.Close()
	s := newManagerSetup(t, connmgr.Config{}, Config{})
	const n = 200
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, body, err := s.get(t, srv.URL+"/c")
			if err == nil && body != "one" {
				err = errors.New("got " + body)
			}
			errs <- err
		}()
	}
	key := primaryKey(http.MethodGet, mustURL(t, srv.URL+"/c"))
	eventually(t, "every caller to join", func() bool {
		s.c.flightsMu.Lock()
		defer s.c.flightsMu.Unlock()
		f := s.c.flights[key]
		if f == nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.participants == n
	})
	close(release)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if srv.Count() != 1 || s.m.Stats().Endpoints["default"].Requests != 1 {
		t.Errorf("origin requests %d, Manager calls %d: want 1 and 1", srv.Count(), s.m.Stats().Endpoints["default"].Requests)
	}
}

// TestManagerStaleIfErrorWhenCapFull: a call the concurrency cap refuses
// locally (ErrConcurrencyLimit) is answered with the stale response.
func TestManagerStaleIfErrorWhenCapFull(t *testing.T) {
	hold := make(chan struct{})
	srv := connmgrtest.NewServerFunc(func(n int64, r *http.Request) connmgrtest.Step {
		if r.URL.Path == "/slow" {
			<-hold
		}
		return connmgrtest.Step{Body: "v1", Header: http.Header{"Cache-Control": {"max-age=1"}}}
	})
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := newManagerSetup(t, connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{host: {
		MaxConcurrent: 1,
		Cache:         connmgr.CacheConfig{StaleIfError: time.Minute},
	}}}, Config{})
	if _, body, err := s.get(t, srv.URL+"/p"); err != nil || body != "v1" {
		t.Fatalf("first call: %q %v", body, err)
	}
	s.clk.Advance(5 * time.Second)
	slow := make(chan struct{})
	go func() { // holds the only slot until hold is closed
		defer close(slow)
		if resp, err := s.client.Get(srv.URL + "/slow"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	defer func() { close(hold); <-slow }()
	eventually(t, "the slow call to hold the slot", func() bool { return s.m.Stats().Endpoints[host].InFlight == 1 })
	resp, body, err := s.get(t, srv.URL+"/p")
	if err != nil || body != "v1" || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=stale-if-error") {
		t.Fatalf("with the cap full: %q %v %v, want the stale v1", body, err, resp)
	}
	if c := s.m.Stats().Endpoints[host].Concurrency; c == nil || c.Rejected != 1 {
		t.Errorf("concurrency stats = %+v, want 1 rejected", c)
	}
}

// TestManagerEndpointCredentialsCountAsAuthorization: RFC 9111 section
// 3.5. An endpoint that adds its own bearer token sends Authorization,
// though the caller's request does not show it, so a shared cache does
// not store the answer unless the response allows it (public here).
func TestManagerEndpointCredentialsCountAsAuthorization(t *testing.T) {
	private := connmgrtest.NewServer(connmgrtest.Step{Body: "mine", Header: http.Header{"Cache-Control": {"max-age=60"}}})
	defer private.Close()
	public := connmgrtest.NewServer(connmgrtest.Step{Body: "ours", Header: http.Header{"Cache-Control": {"max-age=60, public"}}})
	defer public.Close()
	auth := connmgr.AuthConfig{BearerToken: "s3cret"}
	s := newManagerSetup(t, connmgr.Config{Endpoints: map[string]connmgr.EndpointConfig{
		strings.TrimPrefix(private.URL, "http://"): {Auth: auth},
		strings.TrimPrefix(public.URL, "http://"):  {Auth: auth},
	}}, Config{})
	for i := 0; i < 2; i++ {
		if _, _, err := s.get(t, private.URL+"/a"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.get(t, public.URL+"/a"); err != nil {
			t.Fatal(err)
		}
	}
	if got := private.Count(); got != 2 {
		t.Errorf("endpoint bearer token, max-age only: origin requests %d, want 2 (not stored)", got)
	}
	if got := public.Count(); got != 1 {
		t.Errorf("endpoint bearer token, public: origin requests %d, want 1 (stored)", got)
	}
}
