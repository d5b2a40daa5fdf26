// Package buildinfo says which build of tcauth is running: `tcauth
// version`, `tcauth --version` and the control plane's /__version__ all
// read it.
//
// The version and commit come from, in order: the linker (`make build`
// passes -ldflags "-X github.com/tcauth/tcauth/protocol/buildinfo.version=…
// -X …commit=…", from `git describe`), then the Go toolchain's own stamp
// (runtime/debug.ReadBuildInfo: the module version for `go install
// github.com/tcauth/tcauth/cmd/tcauth@v1.2.3`, and the vcs.revision,
// vcs.time and vcs.modified settings of a `go build` inside a git
// checkout). `go run` and test binaries carry neither, and say "dev".
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Set with -ldflags -X; empty when not.
var (
	version string
	commit  string
	// build is Dockerflow's "build": a link to the CI run that made it.
	build string
)

// Source is the repository /__version__ names.
const Source = "https://github.com/tcauth/tcauth"

// Info is what is known about this build.
type Info struct {
	// Version is a release ("v1.2.3"), a `git describe` string, or "dev".
	Version string
	// Commit is the full git commit hash, "" when unknown.
	Commit string
	// Time is the commit's time (RFC 3339), "" when unknown.
	Time string
	// Modified says the working tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

var (
	once sync.Once
	info Info
)

// Get returns this build's Info.
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo()
		info = resolve(version, commit, bi)
	})
	return info
}

// resolve combines the linker's values with the toolchain's stamp; the
// linker's win, as they come from the release process.
func resolve(ldVersion, ldCommit string, bi *debug.BuildInfo) Info {
	in := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version()}
	if bi != nil {
		in.GoVersion = bi.GoVersion
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	return in
}

// String is the one line `tcauth version` prints:
// "tcauth v1.2.3 (commit 0123abc…, 2025-01-02T03:04:05Z, modified) go1.26".
func (in Info) String() string {
	var details []string
	if in.Commit != "" {
		details = append(details, "commit "+in.Commit)
	}
	if in.Time != "" {
		details = append(details, in.Time)
	}
	if in.Modified {
		details = append(details, "modified")
	}
	s := "tcauth " + in.Version
	if len(details) > 0 {
		s += " (" + strings.Join(details, ", ") + ")"
	}
	return s + " " + in.GoVersion
}

// Dockerflow is the body of /__version__ (the members of Dockerflow's
// version.json: source, version, commit, build).
func (in Info) Dockerflow() map[string]string {
	return map[string]string{"source": Source, "version": in.Version, "commit": in.Commit, "build": build}
}
