package connmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestResolveWatchedPath(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rel string) {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	mk("releases/v1")
	writeFile(t, filepath.Join(root, "releases/v1"), "config.yaml", "{}")
	ln("releases/v1", "current")                                  // relative, to a directory
	ln(filepath.Join(root, "current", "config.yaml"), "abs.yaml") // absolute, through a symlinked directory
	mk("k8s/..v1")
	writeFile(t, filepath.Join(root, "k8s/..v1"), "config.yaml", "{}")
	ln("..v1", "k8s/..data")
	ln("..data/config.yaml", "k8s/config.yaml")
	ln("loop-b", "loop-a")
	ln("loop-a", "loop-b")

	p := func(rel string) string { return filepath.Join(root, rel) }
	tests := []struct {
		path       string
		names      []string
		dirs       []string
		wantErr    bool
		resolvesTo string
	}{
		{p("releases/v1/config.yaml"), []string{p("releases/v1/config.yaml")}, []string{p("releases/v1")}, false, ""},
		{p("current/config.yaml"), []string{p("current"), p("releases/v1/config.yaml")}, []string{root, p("releases/v1")}, false, ""},
		{p("abs.yaml"), []string{p("abs.yaml"), p("current"), p("releases/v1/config.yaml")}, []string{root, p("releases/v1")}, false, ""},
		{p("k8s/config.yaml"), []string{p("k8s/config.yaml"), p("k8s/..data"), p("k8s/..v1/config.yaml")}, []string{p("k8s"), p("k8s/..v1")}, false, ""},
		{root + "/current/../v1/config.yaml", nil, nil, false, p("releases/v1/config.yaml")}, // ".." after a symlink is the target's parent
		{p("missing/config.yaml"), []string{p("missing")}, []string{root}, false, ""},
		{p("loop-a/config.yaml"), nil, nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w, err := resolveWatchedPath(tt.path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if tt.resolvesTo != "" {
				if last := w.names[len(w.names)-1]; last != tt.resolvesTo {
					t.Errorf("resolves to %s, want %s", last, tt.resolvesTo)
				}
				return
			}
			if tt.names != nil && !reflect.DeepEqual(w.names, tt.names) {
				t.Errorf("names = %q\nwant    %q", w.names, tt.names)
			}
			if tt.dirs != nil && !reflect.DeepEqual(w.dirs, tt.dirs) {
				t.Errorf("dirs = %q\nwant   %q", w.dirs, tt.dirs)
			}
		})
	}
}

// TestWatchSymlinkedDirectorySwap: a Capistrano-style layout, where the
// symlink swapped ("ln -sfn releases/v2 current", done atomically by a
// rename) is a parent directory of the config, not the config itself.
func TestWatchSymlinkedDirectorySwap(t *testing.T) {
	root := t.TempDir()
	for i, d := range []string{"v1", "v2", "v3"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, d), "config.yaml", timeoutYAML([]string{"1s", "2s", "3s"}[i]))
	}
	if err := os.Symlink("v1", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	m, r := watched(t, filepath.Join(root, "current", "config.yaml"))
	for _, next := range []string{"v2", "v3"} {
		tmp := filepath.Join(root, "current.tmp")
		if err := os.Symlink(next, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
			t.Fatal(err)
		}
		if err := r.next(t); err != nil {
			t.Fatalf("swap to %s: %v", next, err)
		}
		if got, want := defaultTimeout(m), map[string]time.Duration{"v2": 2 * time.Second, "v3": 3 * time.Second}[next]; got != want {
			t.Errorf("after the swap to %s: timeout %v, want %v", next, got, want)
		}
	}
	// The release now in use is followed too: an edit there applies.
	replaceConfig(t, filepath.Join(root, "v3", "config.yaml"), timeoutYAML("4s"))
	if err := r.next(t); err != nil || defaultTimeout(m) != 4*time.Second {
		t.Errorf("edit in the current release: %v, timeout %v", err, defaultTimeout(m))
	}
}

// TestWatchIgnoresOtherFiles: a file written often next to the config (a
// log) must not keep postponing the reload of a changed config.
func TestWatchIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "config.yaml", timeoutYAML("1s"))
	m, r := watched(t, path) // debounce 20ms
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.Create(filepath.Join(dir, "app.log"))
		if err != nil {
			return
		}
		defer f.Close()
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_, _ = f.WriteString("log line\n")
			}
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	replaceConfig(t, path, timeoutYAML("2s"))
	if err := r.next(t); err != nil {
		t.Fatal(err)
	}
	// The log's events are ignored, so the reload comes a debounce after
	// the change, well before the 1s cap on a burst.
	if took := time.Since(start); took > 800*time.Millisecond || defaultTimeout(m) != 2*time.Second {
		t.Errorf("reload after %v, timeout %v; want 2s within 800ms", took, defaultTimeout(m))
	}
}

// TestWatchBurstIsCapped: a config written again and again without a
// pause is still read, 1s after the burst began at most.
func TestWatchBurstIsCapped(t *testing.T) {
	path := writeFile(t, t.TempDir(), "config.yaml", timeoutYAML("1s"))
	m, r := watched(t, path) // debounce 20ms
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for i := 2; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				_ = os.WriteFile(path, []byte(timeoutYAML(fmt.Sprintf("%ds", i))), 0o600)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	select {
	case <-r.ch:
		if took := time.Since(start); took > maxWatchDelay+700*time.Millisecond {
			t.Errorf("first reload after %v, want about %v", took, maxWatchDelay)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no reload in 5s of constant writes; timeout still %v", defaultTimeout(m))
	}
}
