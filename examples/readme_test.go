package examples_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// firstGoBlock returns the first ```go block of a Markdown file.
func firstGoBlock(markdown []byte) (string, bool) {
	_, rest, ok := bytes.Cut(markdown, []byte("\n```go\n"))
	if !ok {
		return "", false
	}
	block, _, ok := bytes.Cut(rest, []byte("\n```\n"))
	if !ok {
		return "", false
	}
	return string(block) + "\n", true
}

// TestReadmeQuickStartCompiles pastes the README's quick start (its first
// Go block) into a new module that requires connmgr from this tree, as a
// user's own program would, and type-checks it with go vet: the quick
// start must compile as it is pasted.
func TestReadmeQuickStartCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, ok := firstGoBlock(readme)
	if !ok {
		t.Fatal("README.md has no ```go block")
	}
	if !strings.HasPrefix(src, "package main\n") {
		t.Fatalf("the README's first Go block starts %q, want a whole program (package main) a user can paste", strings.SplitN(src, "\n", 2)[0])
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module example.com/quickstart\n\ngo 1.24\n\n" +
		"require github.com/connmgr/connmgr v0.0.0\n\n" +
		"replace github.com/connmgr/connmgr => " + root + "\n"
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(src)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "vet", ".")
	cmd.Dir = dir
	// -mod=mod lets the go command add connmgr's own requirements to the
	// new go.mod, from the module cache this tree's build filled.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README quick start does not compile as pasted: go vet: %v\n%s\nmain.go:\n%s", err, out, src)
	}
}

func TestFirstGoBlock(t *testing.T) {
	md := []byte("# x\n\n```sh\ngo get x\n```\n\n```go\npackage main\n\nfunc main() {}\n```\n\n```go\nsecond\n```\n")
	got, ok := firstGoBlock(md)
	if want := "package main\n\nfunc main() {}\n"; !ok || got != want {
		t.Errorf("firstGoBlock = %q, %v; want %q", got, ok, want)
	}
	if _, ok := firstGoBlock([]byte("no code\n")); ok {
		t.Error("firstGoBlock found a block in text without one")
	}
}
