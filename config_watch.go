package connmgr

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"
)

// defaultWatchDebounce is how long Watch waits after the last change in a
// burst before it reads the file: editors and deploy tools write a file
// in several steps.
const defaultWatchDebounce = 100 * time.Millisecond

// maxWatchDelay bounds the wait from the first change of a burst to the
// read, however long the burst goes on.
const maxWatchDelay = time.Second

// ReloadStats counts config reloads: every call of Reload, and every
// change Watch saw in the file it follows.
type ReloadStats struct {
	// Successes and Failures count reloads applied and refused. A refused
	// reload changed nothing: the previous config is still running.
	Successes uint64 `json:"successes"`
	Failures  uint64 `json:"failures"`
	// LastAttempt and LastSuccess are when the last reload was tried and
	// the last one applied (zero: never).
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success"`
	// LastError is why the last reload was refused, or "" when it was
	// applied, cut to 4 KiB. It never quotes a value taken from the
	// environment (${VAR} or an override), nor any string setting:
	// validation names the field and the rule.
	LastError string `json:"last_error,omitempty"`
	// WatchedFile is the file Watch follows, or "".
	WatchedFile string `json:"watched_file,omitempty"`
}

// WithReloadListener has the Manager call fn after every reload, from
// Reload or from Watch, with nil when it was applied and the error when
// it was refused (the previous config then keeps running). fn runs
// outside the Manager's locks, on the goroutine that reloaded (Watch's
// own for file changes), and must not call Close or Shutdown, which wait
// for that goroutine.
func WithReloadListener(fn func(error)) Option {
	return optionFunc(func(o *options) { o.reloadListener = fn })
}

// WithConfigEnvPrefix has Watch load its file as LoadConfigEnv does with
// prefix: environment overrides such as PREFIXDEFAULT__TIMEOUT=5s apply
// on every reload.
func WithConfigEnvPrefix(prefix string) Option {
	return optionFunc(func(o *options) { o.configEnvPrefix = prefix })
}

// configWatch is the Manager's record of reloads and the file watcher it
// may run.
type configWatch struct {
	// statsMu guards stats.
	statsMu sync.Mutex
	stats   ReloadStats

	// watchMu serializes Watch and stopping the watcher, and guards
	// watcher.
	watchMu sync.Mutex
	watcher *fileWatcher
	// debounce overrides defaultWatchDebounce when > 0 (tests).
	debounce time.Duration
}

// maxLastErrorSize caps ReloadStats.LastError: Stats is polled and
// served, and a config with many problems makes a long error.
const maxLastErrorSize = 4 << 10

// truncateText cuts s to at most max bytes, at a character boundary,
// saying that it did.
func truncateText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const more = " [... cut]"
	cut := max - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// recordReload counts a reload attempt and tells the listener. It must
// be called without holding reloadMu.
func (m *Manager) recordReload(err error) {
	now := m.now()
	w := &m.cfgWatch
	w.statsMu.Lock()
	w.stats.LastAttempt = now
	if err == nil {
		w.stats.Successes++
		w.stats.LastSuccess = now
		w.stats.LastError = ""
	} else {
		w.stats.Failures++
		w.stats.LastError = truncateText(err.Error(), maxLastErrorSize)
	}
	w.statsMu.Unlock()
	if fn := m.opts.reloadListener; fn != nil {
		fn(err)
	}
}

func (m *Manager) reloadStats() ReloadStats {
	m.cfgWatch.statsMu.Lock()
	defer m.cfgWatch.statsMu.Unlock()
	return m.cfgWatch.stats
}

// Watch loads the config file at path (as LoadConfig does, or
// LoadConfigEnv with WithConfigEnvPrefix), applies it with Reload, and
// then follows the file until the Manager is closed: each change is
// loaded, validated and swapped in whole. It returns the error of that
// first load, and then follows nothing.
//
// Watch watches directories, not the file, so that the file being
// replaced by a rename (how editors and deploy tools write) is seen. It
// resolves the path component by component and also watches the
// directory of every symlink met and of the file reached, so that
// Kubernetes' swap of a ConfigMap's ..data symlink and the swap of a
// symlinked parent directory ("ln -sfn releases/v2 current") are seen.
// Only events for those names count (and Kubernetes' ..data): other files
// in the directories, such as a log written every millisecond, are
// ignored. Bursts of changes are debounced (100ms after the last, and no
// more than 1s after the first); a change that leaves the bytes as they
// were is ignored.
//
// A file that does not load or validate changes nothing: the running
// config stays, the error is logged (once while it repeats), counted in
// Stats().Reload, and passed to the WithReloadListener callback; the next
// change is tried again, even to the same bytes, since what failed may be
// outside the file (a certificate not yet mounted). Endpoints whose settings did not change keep their
// state (breaker, limiter, retry budget, connections), and calls in
// flight finish under the config they started with, as with Reload.
//
// A Manager follows one file: a second Watch fails. Watch after Close
// fails with ErrClosed. Close stops the watcher and waits for it.
func (m *Manager) Watch(path string) error {
	w := &m.cfgWatch
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	if w.watcher != nil {
		return fmt.Errorf("connmgr: Watch: already watching %s", w.watcher.path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("connmgr: Watch: %w", err)
	}
	format, err := configFormat(abs)
	if err != nil {
		return err
	}
	fw := &fileWatcher{
		m:        m,
		path:     abs,
		format:   format,
		prefix:   m.opts.configEnvPrefix,
		debounce: w.debounce,
		dirs:     map[string]bool{},
		names:    map[string]bool{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if fw.debounce <= 0 {
		fw.debounce = defaultWatchDebounce
	}
	// Start watching before the first read, so a change made between the
	// read and the watch is not missed.
	if fw.fsw, err = fsnotify.NewWatcher(); err != nil {
		return fmt.Errorf("connmgr: Watch %s: %w", abs, err)
	}
	if err := fw.syncDirs(); err != nil {
		_ = fw.fsw.Close()
		return fmt.Errorf("connmgr: Watch %s: %w", abs, err)
	}
	data, err := readConfigFile(abs)
	if err == nil {
		var cfg Config
		if cfg, err = parseConfig(data, format, abs, fw.prefix, osEnvironment()); err != nil {
			m.recordReload(err)
		} else {
			err = m.Reload(cfg)
		}
	} else {
		m.recordReload(err)
	}
	if err != nil {
		_ = fw.fsw.Close()
		return err
	}
	fw.last = data
	w.watcher = fw
	w.statsMu.Lock()
	w.stats.WatchedFile = abs
	w.statsMu.Unlock()
	go fw.run()
	return nil
}

// stopWatch stops the watcher, if any, and waits for it to end. Close
// calls it.
func (m *Manager) stopWatch() {
	w := &m.cfgWatch
	w.watchMu.Lock()
	fw := w.watcher
	w.watchMu.Unlock()
	if fw == nil {
		return
	}
	fw.stopOnce.Do(func() { close(fw.stop) })
	<-fw.done
}

// fileWatcher follows one config file. Its fields other than stop and
// done belong to its goroutine once run starts.
type fileWatcher struct {
	m        *Manager
	path     string // absolute
	format   string
	prefix   string
	debounce time.Duration
	fsw      *fsnotify.Watcher
	dirs     map[string]bool // directories being watched
	names    map[string]bool // the path, and the symlinks and file it resolves through
	// last is what the running config was loaded from; nil after a
	// failure, so that the same bytes written again are tried again (what
	// failed may be outside the file: a TLS file not there yet).
	last []byte
	// lastFailure is the text of the last failure since the last success:
	// a failure that repeats is counted and told to the listener but
	// logged once, and a read error that repeats (a missing file) is
	// reported once.
	lastFailure string
	stop        chan struct{}
	stopOnce    sync.Once
	done        chan struct{}
}

func (fw *fileWatcher) run() {
	defer close(fw.done)
	defer fw.fsw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// burst is when the first change of the pending burst was seen (zero:
	// none pending). The read waits for a quiet debounce, but never more
	// than maxWatchDelay from it.
	var burst time.Time
	arm := func() {
		now := time.Now()
		if burst.IsZero() {
			burst = now
		}
		wait := fw.debounce
		if left := burst.Add(maxWatchDelay).Sub(now); left < wait {
			wait = max(left, 0)
		}
		timer.Reset(wait)
	}
	for {
		select {
		case <-fw.stop:
			return
		case ev, ok := <-fw.fsw.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod || !fw.concerns(ev.Name) {
				continue // permissions do not change a config, nor other files
			}
			arm()
		case err, ok := <-fw.fsw.Errors:
			if !ok {
				return
			}
			// An overflowed event queue may have lost the change: look.
			fw.m.logger.Warn("connmgr: config watcher", slog.String("file", fw.path), slog.String("error", err.Error()))
			arm()
		case <-timer.C:
			burst = time.Time{}
			fw.reload()
		}
	}
}

// concerns reports whether an event for name can change what the path
// reads: the path, a symlink it resolves through, the file it reaches, a
// watched directory itself, or Kubernetes' ..data (swapped by a rename
// of ..data_tmp, which may be seen before the names are synced).
func (fw *fileWatcher) concerns(name string) bool {
	return fw.names[name] || fw.dirs[name] || filepath.Base(name) == "..data"
}

// reload loads the file if its contents changed and applies it.
func (fw *fileWatcher) reload() {
	m := fw.m
	// Follow a swapped symlink before reading through it: a change made
	// after this is seen by the watcher, one made before by the read.
	if err := fw.syncDirs(); err != nil {
		m.logger.Warn("connmgr: config watcher", slog.String("file", fw.path), slog.String("error", err.Error()))
	}
	data, err := readConfigFile(fw.path)
	if err != nil {
		if err.Error() == fw.lastFailure {
			return
		}
		fw.last = nil
		fw.logFailure(err)
		m.recordReload(err)
		return
	}
	if fw.last != nil && bytes.Equal(data, fw.last) {
		return // what is running
	}
	cfg, err := parseConfig(data, fw.format, fw.path, fw.prefix, osEnvironment())
	if err != nil {
		m.recordReload(err)
	} else {
		err = m.Reload(cfg)
	}
	switch {
	case errors.Is(err, ErrClosed):
	case err != nil:
		fw.last = nil
		fw.logFailure(err)
	default:
		fw.last, fw.lastFailure = data, ""
		m.logger.Info("connmgr: config reloaded", slog.String("file", fw.path))
	}
}

// logFailure logs a failed reload, unless it failed as the last one did.
func (fw *fileWatcher) logFailure(err error) {
	if msg := err.Error(); msg != fw.lastFailure {
		fw.lastFailure = msg
		fw.m.logger.Error("connmgr: config reload failed; the previous config is still in use",
			slog.String("file", fw.path), slog.String("error", msg))
	}
}

// syncDirs watches the directories that what the path reads depends on
// (see resolveWatchedPath), which move when a symlink is swapped, and
// stops watching those it no longer needs. It returns the first error.
func (fw *fileWatcher) syncDirs() error {
	wp, firstErr := resolveWatchedPath(fw.path)
	fw.names = make(map[string]bool, len(wp.names)+1)
	fw.names[fw.path] = true
	for _, name := range wp.names {
		fw.names[name] = true
	}
	want := make(map[string]bool, len(wp.dirs))
	for _, dir := range wp.dirs {
		want[dir] = true
		if fw.dirs[dir] {
			continue
		}
		if err := fw.fsw.Add(dir); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		fw.dirs[dir] = true
	}
	for dir := range fw.dirs {
		if !want[dir] {
			_ = fw.fsw.Remove(dir) // fails harmlessly when the directory is gone
			delete(fw.dirs, dir)
		}
	}
	return firstErr
}
