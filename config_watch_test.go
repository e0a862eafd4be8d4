package connmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reloads collects what the reload listener is told.
type reloads struct {
	ch chan error
}

func newReloads() *reloads { return &reloads{ch: make(chan error, 100)} }

func (r *reloads) option() Option { return WithReloadListener(func(err error) { r.ch <- err }) }

// next waits for the next reload result.
func (r *reloads) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
		return nil
	}
}

// none fails if a reload is reported within d.
func (r *reloads) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-r.ch:
		t.Fatalf("unexpected reload: %v", err)
	case <-time.After(d):
	}
}

// watched starts a Manager following path, with a short debounce.
func watched(t *testing.T, path string, opts ...Option) (*Manager, *reloads) {
	t.Helper()
	r := newReloads()
	m, err := New(Config{}, append(opts, r.option())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	m.cfgWatch.debounce = 20 * time.Millisecond
	if err := m.Watch(path); err != nil {
		t.Fatal(err)
	}
	if err := r.next(t); err != nil {
		t.Fatalf("first load: %v", err)
	}
	return m, r
}

func defaultTimeout(m *Manager) time.Duration { return m.table.Load().def.cfg.Timeout }

// replaceConfig writes content to path the way editors and deploy tools
// do: to a temporary file in the same directory, then a rename.
func replaceConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// k8sDir lays out a directory the way Kubernetes mounts a ConfigMap:
// dir/config.yaml -> ..data/config.yaml, ..data -> ..v1.
type k8sDir struct {
	dir     string
	version int
}

func newK8sDir(t *testing.T, content string) (*k8sDir, string) {
	t.Helper()
	k := &k8sDir{dir: t.TempDir()}
	k.swap(t, content)
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(k.dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	return k, filepath.Join(k.dir, "config.yaml")
}

// swap publishes content as Kubernetes does: a new versioned directory,
// a new symlink renamed over ..data, and the old directory removed.
func (k *k8sDir) swap(t *testing.T, content string) {
	t.Helper()
	k.version++
	vdir := fmt.Sprintf("..v%d", k.version)
	if err := os.Mkdir(filepath.Join(k.dir, vdir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.dir, vdir, "config.yaml"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(vdir, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if k.version > 1 {
		if err := os.RemoveAll(filepath.Join(k.dir, fmt.Sprintf("..v%d", k.version-1))); err != nil {
			t.Fatal(err)
		}
	}
}

func timeoutYAML(d string) string { return "default:\n  timeout: " + d + "\n" }

func TestWatchSeesChanges(t *testing.T) {
	t.Run("write in place", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "c.yaml", timeoutYAML("1s"))
		m, r := watched(t, path)
		if got := defaultTimeout(m); got != time.Second {
			t.Fatalf("timeout = %v after Watch, want 1s", got)
		}
		if err := os.WriteFile(path, []byte(timeoutYAML("2s")), 0o600); err != nil {
			t.Fatal(err)
		}
		// A write in place may be read half done; the next event fixes it.
		for defaultTimeout(m) != 2*time.Second {
			_ = r.next(t)
		}
	})
	t.Run("atomic rename", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "c.yaml", timeoutYAML("1s"))
		m, r := watched(t, path)
		replaceConfig(t, path, timeoutYAML("3s"))
		if err := r.next(t); err != nil {
			t.Fatal(err)
		}
		if got := defaultTimeout(m); got != 3*time.Second {
			t.Errorf("timeout = %v, want 3s", got)
		}
	})
	t.Run("kubernetes symlink swap", func(t *testing.T) {
		k, path := newK8sDir(t, timeoutYAML("1s"))
		m, r := watched(t, path)
		for i, d := range []string{"4s", "5s", "6s"} {
			k.swap(t, timeoutYAML(d))
			if err := r.next(t); err != nil {
				t.Fatalf("swap %d: %v", i, err)
			}
			if got, want := defaultTimeout(m).String(), d; got != want {
				t.Errorf("swap %d: timeout = %v, want %v", i, got, want)
			}
		}
	})
	t.Run("file is a symlink to another directory", func(t *testing.T) {
		target := writeFile(t, t.TempDir(), "real.yaml", timeoutYAML("1s"))
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		m, r := watched(t, path)
		replaceConfig(t, target, timeoutYAML("7s"))
		if err := r.next(t); err != nil {
			t.Fatal(err)
		}
		if got := defaultTimeout(m); got != 7*time.Second {
			t.Errorf("timeout = %v, want 7s", got)
		}
	})
	t.Run("json", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "c.json", `{"default": {"timeout": "1s"}}`)
		m, r := watched(t, path)
		replaceConfig(t, path, `{"default": {"timeout": "8s"}}`)
		if err := r.next(t); err != nil {
			t.Fatal(err)
		}
		if got := defaultTimeout(m); got != 8*time.Second {
			t.Errorf("timeout = %v, want 8s", got)
		}
	})
}

func TestWatchIgnoresWhatDoesNotChangeTheConfig(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.yaml", timeoutYAML("1s"))
	_, r := watched(t, path)
	replaceConfig(t, path, timeoutYAML("1s")) // same bytes
	writeFile(t, dir, "other.txt", "x")       // another file in the directory
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	r.none(t, 300*time.Millisecond)
}

func TestWatchBadFileKeepsOldConfig(t *testing.T) {
	path := writeFile(t, t.TempDir(), "c.yaml", "default:\n  timeout: 1s\nendpoints:\n  a.example.com: {timeout: 2s}\n")
	m, r := watched(t, path)
	before := m.table.Load()

	replaceConfig(t, path, "default:\n  timeout: 1s\n  retry: {max_attempts: -1}\nendpoints:\n  a.example.com: {timout: 2s}\n")
	err := r.next(t)
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("listener got %v, want a *ConfigError with both problems", err)
	}
	if m.table.Load() != before {
		t.Error("a bad file changed the running config")
	}
	st := m.Stats().Reload
	if st.Successes != 1 || st.Failures != 1 || !strings.Contains(st.LastError, "timout") || st.WatchedFile != path {
		t.Errorf("Stats().Reload = %+v", st)
	}
	if st.LastAttempt.IsZero() || st.LastSuccess.After(st.LastAttempt) {
		t.Errorf("times: %+v", st)
	}

	// The file goes missing: still the old config.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := r.next(t); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("listener got %v, want a missing file", err)
	}
	if m.table.Load() != before {
		t.Error("a missing file changed the running config")
	}

	// Fixed: the next change applies.
	replaceConfig(t, path, "default:\n  timeout: 5s\nendpoints:\n  a.example.com: {timeout: 2s}\n")
	if err := r.next(t); err != nil {
		t.Fatal(err)
	}
	if got := defaultTimeout(m); got != 5*time.Second {
		t.Errorf("timeout = %v, want 5s", got)
	}
	if st := m.Stats().Reload; st.Successes != 2 || st.Failures != 2 || st.LastError != "" {
		t.Errorf("Stats().Reload = %+v", st)
	}
}

func TestWatchErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "{}\n")
	bad := writeFile(t, dir, "bad.yaml", "default: {timeout: 1}\n")
	newM := func() *Manager {
		m, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}

	m := newM()
	var ce *ConfigError
	if err := m.Watch(bad); !errors.As(err, &ce) {
		t.Errorf("Watch(bad file) = %v, want a *ConfigError", err)
	}
	if err := m.Watch(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Watch(missing) = %v", err)
	}
	if err := m.Watch(filepath.Join(dir, "nodir", "c.yaml")); err == nil {
		t.Error("Watch in a missing directory: no error")
	}
	if err := m.Watch(writeFile(t, dir, "c.ini", "")); err == nil {
		t.Error("Watch(.ini): no error")
	}
	// After failures, a good file can still be watched, once.
	if err := m.Watch(good); err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(good); err == nil || !strings.Contains(err.Error(), "already watching") {
		t.Errorf("second Watch = %v", err)
	}

	m = newM()
	m.Close()
	if err := m.Watch(good); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
}

func TestWatchWithEnvPrefix(t *testing.T) {
	t.Setenv("CMWATCH_DEFAULT__TIMEOUT", "9s")
	path := writeFile(t, t.TempDir(), "c.yaml", timeoutYAML("1s"))
	m, r := watched(t, path, WithConfigEnvPrefix("CMWATCH_"))
	if got := defaultTimeout(m); got != 9*time.Second {
		t.Errorf("timeout = %v, want 9s", got)
	}
	replaceConfig(t, path, timeoutYAML("2s")+"  total_timeout: 1m\n")
	if err := r.next(t); err != nil {
		t.Fatal(err)
	}
	if got := *m.table.Load().def.cfg; got.Timeout != 9*time.Second || got.TotalTimeout != time.Minute {
		t.Errorf("timeout = %v, total = %v", got.Timeout, got.TotalTimeout)
	}
}

func TestCloseStopsWatcher(t *testing.T) {
	path := writeFile(t, t.TempDir(), "c.yaml", timeoutYAML("1s"))
	m, r := watched(t, path)
	// Changes keep coming while Close runs; Close waits for the watcher
	// (goleak in TestMain fails the package if it outlives Close).
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			replaceConfig(t, path, timeoutYAML(fmt.Sprintf("%ds", i+2)))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for len(r.ch) > 0 {
		<-r.ch
	}
	r.none(t, 100*time.Millisecond)
}

func TestReloadAllOrNothing(t *testing.T) {
	r := newReloads()
	m, err := New(Config{Endpoints: map[string]EndpointConfig{
		"a.example.com": {Timeout: time.Second},
		"b.example.com": {Timeout: time.Second},
	}}, r.option())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t0 := m.table.Load()
	a, b := t0.byKey["a.example.com"], t0.byKey["b.example.com"]
	b.stats.requests.Add(5)

	err = m.Reload(Config{Endpoints: map[string]EndpointConfig{
		"a.example.com": {Timeout: 2 * time.Second},
		"b.example.com": {Retry: RetryConfig{MaxAttempts: -1}},
	}})
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.As(<-r.ch, &ce) {
		t.Fatalf("Reload(invalid) = %v, want a *ConfigError, also for the listener", err)
	}
	if m.table.Load() != t0 {
		t.Fatal("a refused reload changed the table")
	}

	if err := m.Reload(Config{Endpoints: map[string]EndpointConfig{
		"a.example.com": {Timeout: time.Second},
		"b.example.com": {Timeout: 3 * time.Second},
		"c.example.com": {},
	}}); err != nil || <-r.ch != nil {
		t.Fatal(err)
	}
	t1 := m.table.Load()
	if t1.byKey["a.example.com"] != a {
		t.Error("an unchanged endpoint was rebuilt: its state is lost")
	}
	if t1.byKey["b.example.com"] == b || t1.byKey["b.example.com"].timeout != 3*time.Second {
		t.Error("a changed endpoint was not rebuilt")
	}
	if got := m.Stats().Endpoints["b.example.com"].Requests; got != 5 {
		t.Errorf("b's request count = %d after reload, want 5 (counters survive)", got)
	}
	if st := m.Stats().Reload; st.Successes != 1 || st.Failures != 1 || st.LastError != "" || st.WatchedFile != "" {
		t.Errorf("Stats().Reload = %+v", st)
	}
	m.Close()
	if err := m.Reload(Config{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close = %v, want ErrClosed", err)
	}
}

// TestReloadLastErrorIsCut: Stats is polled and served; a config with
// many problems must not make every snapshot carry a long error.
func TestReloadLastErrorIsCut(t *testing.T) {
	m := newTestManager(t, Config{})
	bad := Config{Endpoints: map[string]EndpointConfig{}}
	for i := 0; i < 200; i++ {
		bad.Endpoints[fmt.Sprintf("host-%03d.example.com", i)] = EndpointConfig{Retry: RetryConfig{MaxAttempts: -1}}
	}
	err := m.Reload(bad)
	if err == nil || len(err.Error()) <= maxLastErrorSize {
		t.Fatalf("Reload = %d bytes of error, want more than %d for this test", len(fmt.Sprint(err)), maxLastErrorSize)
	}
	got := m.Stats().Reload.LastError
	if len(got) > maxLastErrorSize || !strings.HasSuffix(got, "[... cut]") || !strings.HasPrefix(err.Error(), strings.TrimSuffix(got, " [... cut]")) {
		t.Errorf("LastError is %d bytes, ends %q; want at most %d, a prefix of the error, marked as cut", len(got), got[max(0, len(got)-20):], maxLastErrorSize)
	}
}

func TestTruncateText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 20, "short"},
		{"0123456789abcdefghijklmnop", 20, "0123456789 [... cut]"},
		{"012345678éééééééé", 20, "012345678 [... cut]"}, // not inside the é
	}
	for _, tt := range tests {
		if got := truncateText(tt.in, tt.max); got != tt.want {
			t.Errorf("truncateText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// TestReloadUnderLoad rewrites the watched file, by atomic rename and by
// symlink swap, while requests run, and checks that no request fails,
// that each change is applied, and that the endpoint whose settings never
// change keeps its state throughout.
func TestReloadUnderLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	stableKey, changingKey := "127.0.0.1:"+port, "localhost:"+port
	config := func(i int) string {
		return fmt.Sprintf("default:\n  timeout: 5s\nendpoints:\n  %q: {retry: {max_attempts: 3}}\n  %q: {timeout: %dms, headers: {X-Version: v%d}}\n",
			stableKey, changingKey, 5000+i, i)
	}
	k, path := newK8sDir(t, config(0))
	m, r := watched(t, path)
	stable := m.table.Load().byKey[stableKey]

	const workers = 8
	var (
		sent     [2]atomic.Int64 // to the stable and the changing endpoint
		failures atomic.Int64
		firstErr atomic.Value
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	urls := [2]string{"http://" + stableKey + "/", "http://" + changingKey + "/"}
	deadline := time.Now().Add(30 * time.Second)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				which := (w + i) % 2
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := m.Get(ctx, urls[which])
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				cancel()
				sent[which].Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(w)
	}

	const changes = 8
	for i := 1; i <= changes; i++ {
		time.Sleep(30 * time.Millisecond) // let requests run under each config
		if i%2 == 0 {
			k.swap(t, config(i))
		} else {
			// An atomic rename inside the directory the symlinks lead to.
			replaceConfig(t, filepath.Join(k.dir, "..data", "config.yaml"), config(i))
		}
		if err := r.next(t); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		tab := m.table.Load()
		if got := tab.byKey[changingKey].cfg.Headers["X-Version"]; got != fmt.Sprintf("v%d", i) {
			t.Errorf("change %d: X-Version = %q, the change was not applied", i, got)
		}
		if tab.byKey[stableKey] != stable {
			t.Errorf("change %d: the unchanged endpoint was rebuilt", i)
		}
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := failures.Load(); n > 0 {
		t.Errorf("%d requests failed across reloads; first: %v", n, firstErr.Load())
	}
	if sent[0].Load() == 0 || sent[1].Load() == 0 {
		t.Fatalf("requests sent: %d, %d", sent[0].Load(), sent[1].Load())
	}
	st := m.Stats()
	if got := st.Endpoints[stableKey].Requests; got != uint64(sent[0].Load()) {
		t.Errorf("stable endpoint counted %d requests, sent %d", got, sent[0].Load())
	}
	if got := st.Endpoints[changingKey].Requests; got != uint64(sent[1].Load()) {
		t.Errorf("changing endpoint counted %d requests, sent %d (counters must survive reloads)", got, sent[1].Load())
	}
	if st.Reload.Successes != changes+1 || st.Reload.Failures != 0 {
		t.Errorf("Stats().Reload = %+v", st.Reload)
	}
	t.Logf("%d + %d requests across %d reloads", sent[0].Load(), sent[1].Load(), changes)
}

// TestWatchRetriesARefusedReload: a reload refused for a reason outside
// the config file (its CA file not there yet) is tried again when the
// same bytes are written again, as a deploy tool does once the CA is in
// place.
func TestWatchRetriesARefusedReload(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "config.yaml", timeoutYAML("1s"))
	var logs bytes.Buffer
	m, r := watched(t, path, WithLogger(newTestLogger(&logs)))
	ca := filepath.Join(dir, "ca.pem")
	next := "default:\n  timeout: 2s\n  tls: {ca_file: " + ca + "}\n"
	for i := 0; i < 2; i++ {
		replaceConfig(t, path, next)
		if err := r.next(t); err == nil {
			t.Fatalf("write %d: reload applied, want a failure: ca_file is missing", i+1)
		}
	}
	data, err := os.ReadFile(newTestPKI(t).caFile("ca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, data, 0o600); err != nil {
		t.Fatal(err)
	}
	replaceConfig(t, path, next) // the same bytes again
	if err := r.next(t); err != nil {
		t.Fatalf("after the CA appeared: %v", err)
	}
	if got := defaultTimeout(m); got != 2*time.Second {
		t.Errorf("timeout = %v, want 2s", got)
	}
	st := m.Stats().Reload
	if st.Failures != 2 || st.Successes != 2 || st.LastError != "" {
		t.Errorf("Stats().Reload = %+v, want 2 failures, 2 successes", st)
	}
	m.Close() // the watcher logs after it tells the listener
	if n := strings.Count(logs.String(), "config reload failed"); n != 1 {
		t.Errorf("the same failure was logged %d times, want once:\n%s", n, logs.String())
	}
}
