package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersionText(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil,
			"connmgr (devel)\ngo      go1.99 linux/amd64\n"},
		{"built from source", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: modulePath, Version: "(devel)"}},
			"connmgr (devel)\ngo      go1.26.8 linux/amd64\n"},
		{"installed at a release", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: modulePath, Version: "v0.1.0"}},
			"connmgr v0.1.0\ngo      go1.26.8 linux/amd64\n"},
		{"a checkout with changes", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: modulePath, Version: "v0.0.0-20261204230407-0123456789ab+dirty"},
			Settings:  []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}},
		}, "connmgr v0.0.0-20261204230407-0123456789ab+dirty\ngo      go1.26.8 linux/amd64\ncommit  0123456789ab (modified)\n"},
		{"a clean checkout", &debug.BuildInfo{
			Main:     debug.Module{Path: modulePath, Version: "v0.1.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}},
		}, "connmgr v0.1.0\ngo      go1.99 linux/amd64\ncommit  abc\n"},
		{"a dependency of another module", &debug.BuildInfo{
			Main: debug.Module{Path: "example.com/tools", Version: "v1.0.0"},
			Deps: []*debug.Module{{Path: "example.com/other", Version: "v9.9.9"}, {Path: modulePath, Version: "v0.2.0"}},
		}, "connmgr v0.2.0\ngo      go1.99 linux/amd64\n"},
		{"a dependency replaced by a directory", &debug.BuildInfo{
			Main: debug.Module{Path: "example.com/tools"},
			Deps: []*debug.Module{{Path: modulePath, Version: "v0.2.0", Replace: &debug.Module{Path: "../connmgr"}}},
		}, "connmgr (devel)\ngo      go1.99 linux/amd64\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionText(tt.bi, "go1.99", "linux/amd64"); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestCLIVersion runs the built binary: built from this source tree, it
// has no release to report.
func TestCLIVersion(t *testing.T) {
	cli(t, "", nil, "version").check(t, 0, []string{"connmgr ", "go      " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}, nil)
	cli(t, "", nil, "version", "--help").check(t, 0, []string{"Usage: connmgr version", "(devel)"}, nil)
	cli(t, "", nil, "version", "extra").check(t, 2, nil, []string{`connmgr version: unexpected argument "extra"`})
	cli(t, "", nil, "help").check(t, 0, []string{"version  print the version"}, nil)
}
