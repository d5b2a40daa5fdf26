package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2025-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name                string
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		want                Info
	}{
		{"nothing known", "", "", nil, Info{Version: "dev"}},
		{"go run: no stamp", "", "", &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: "(devel)"}}, Info{Version: "dev", GoVersion: "go1.26"}},
		{"go build in a checkout", "", "", stamped,
			Info{Version: "dev", Commit: "0123456789abcdef0123456789abcdef01234567", Time: "2025-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26"}},
		{"go install @version", "", "", &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: "v1.2.3"}}, Info{Version: "v1.2.3", GoVersion: "go1.26"}},
		{"ldflags win", "v2.0.0-3-gabc", "abc", stamped,
			Info{Version: "v2.0.0-3-gabc", Commit: "abc", Time: "2025-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.ldVersion, tc.ldCommit, tc.bi)
			if tc.bi == nil {
				got.GoVersion = "" // runtime.Version() varies
			}
			if got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	in := Info{Version: "v1.2.3", Commit: "abc", Time: "2025-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26"}
	if got, want := in.String(), "tcauth v1.2.3 (commit abc, 2025-01-02T03:04:05Z, modified) go1.26"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (Info{Version: "dev", GoVersion: "go1.26"}).String(); got != "tcauth dev go1.26" {
		t.Errorf("String = %q", got)
	}
	d := in.Dockerflow()
	if d["version"] != "v1.2.3" || d["commit"] != "abc" || !strings.HasPrefix(d["source"], "https://") {
		t.Errorf("Dockerflow = %v", d)
	}
}
