package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// modulePath is the module the command reports the version of.
const modulePath = "github.com/connmgr/connmgr"

const versionUsage = `Usage: connmgr version

Prints the version of the connmgr module the command was built from, the
Go version that built it with the platform, and, when the build recorded
it, the commit (with "modified" for a tree with uncommitted changes).

The version is the module's release (v0.1.0) when the command was
installed with "go install github.com/connmgr/connmgr/cmd/connmgr@VERSION",
a pseudo-version (v0.0.0-20261204230407-feb229f3c3e1) when "go build" ran
in a git checkout, and (devel) when the build knew no version: "go run",
or a source tree without version control information.

Example:

	connmgr version
`

// runVersion is "connmgr version".
func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if code, done := parseNoArgs("connmgr version", versionUsage, args, stdout, stderr); done {
		return code
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprint(stdout, versionText(bi, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH))
	return exitOK
}

// versionText describes the build bi (nil when the binary carries no
// build information) of a binary that goVersion built for platform:
//
//	connmgr v0.1.0
//	go      go1.26.8 linux/amd64
//	commit  feb229f3c3e1 (modified)
func versionText(bi *debug.BuildInfo, goVersion, platform string) string {
	version, revision, modified := "", "", false
	if bi != nil {
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		switch {
		case bi.Main.Path == modulePath:
			version = bi.Main.Version
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					revision = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
		default: // built as a dependency of another module
			for _, d := range bi.Deps {
				if d.Path == modulePath {
					version = d.Version
					if d.Replace != nil {
						version = d.Replace.Version
					}
				}
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "connmgr %s\n", version)
	fmt.Fprintf(&b, "go      %s %s\n", goVersion, platform)
	if revision != "" {
		if len(revision) > 12 {
			revision = revision[:12]
		}
		if modified {
			revision += " (modified)"
		}
		fmt.Fprintf(&b, "commit  %s\n", revision)
	}
	return b.String()
}
