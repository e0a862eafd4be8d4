package connmgr

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// maxSymlinkHops caps the symlinks followed in one path, as the kernel's
// ELOOP does.
const maxSymlinkHops = 40

// watchedPath is what a config file's path depends on: resolving it the
// way the kernel does, component by component, it meets symlinks (the
// file itself, a ConfigMap's ..data, a "current" directory swapped by a
// deploy tool) and ends at a file. A change to any of them can change
// what the path reads.
type watchedPath struct {
	// names are the symlinks met and the file reached (or the first
	// component found missing), each named under symlink-free
	// directories, as fsnotify names their events.
	names []string
	// dirs are the symlink-free directories holding them: watching
	// them sees each name replaced, renamed or written.
	dirs []string
}

// resolveWatchedPath resolves the absolute path abs component by
// component. A missing component ends the walk without an error: it is
// recorded, so that its creation is seen.
func resolveWatchedPath(abs string) (watchedPath, error) {
	var w watchedPath
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			w.names = append(w.names, name)
		}
		dir := filepath.Dir(name)
		if !seen["dir:"+dir] {
			seen["dir:"+dir] = true
			w.dirs = append(w.dirs, dir)
		}
	}
	resolved := filepath.VolumeName(abs) + string(filepath.Separator)
	rest := splitPath(abs[len(filepath.VolumeName(abs)):])
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved) // resolved has no symlinks: lexical is right
			continue
		}
		name := filepath.Join(resolved, c)
		fi, err := os.Lstat(name)
		if err != nil {
			add(name)
			if errors.Is(err, os.ErrNotExist) {
				return w, nil
			}
			return w, err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			resolved = name
			if len(rest) == 0 {
				add(name) // the file itself
			}
			continue
		}
		add(name)
		if hops++; hops > maxSymlinkHops {
			return w, errors.New("too many levels of symbolic links in " + abs)
		}
		target, err := os.Readlink(name)
		if err != nil {
			return w, err
		}
		if filepath.IsAbs(target) {
			vol := filepath.VolumeName(target)
			resolved, target = vol+string(filepath.Separator), target[len(vol):]
		}
		rest = append(splitPath(target), rest...)
	}
	return w, nil
}

// splitPath splits a path into its components, leaving out empty ones.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(filepath.ToSlash(p), "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
