package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The request was sent and answered; failing to write the body where -o
// says is the command failing (1), with the file named, never "no
// response" (3) or a usage error (2).
func TestOutputWriteErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<16))
	}))
	defer srv.Close()
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "out.bin")
	tests := []struct {
		name, output, want string
	}{
		{"directory missing", missing, "writing " + missing + ": "},
		{"device full", "/dev/full", "writing /dev/full: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat("/dev/full"); tt.output == "/dev/full" && err != nil {
				t.Skip("no /dev/full here")
			}
			code, _, stderr := runCLI(t, "get", "-o", tt.output, srv.URL)
			if code != exitFailed {
				t.Errorf("exit %d, want %d: %s", code, exitFailed, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
		})
	}
	t.Run("good file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.bin")
		if code, _, stderr := runCLI(t, "get", "-o", path, srv.URL); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != 1<<16 {
			t.Errorf("file: %v, %v", fi, err)
		}
	})
}
