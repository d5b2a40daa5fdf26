package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestRecoverCLIRefusals: `controlplane recover` refuses bad input with
// exit 2 and a directory without state with exit 1, changing nothing.
func TestRecoverCLIRefusals(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "peers.json")
	writeFile(t, good, `[{"id": "n1", "address": "127.0.0.1:7801"}]`)
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, `[{"id": "n1", "address": "127.0.0.1:7801", "voter": true}]`)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no peers flag", []string{"--data-dir", empty}, 2, "--peers is required"},
		{"no data dir flag", []string{"--peers", good}, 2, "--data-dir is required"},
		{"missing peers file", []string{"--data-dir", empty, "--peers", filepath.Join(dir, "nope.json")}, 2, "no such file"},
		{"unknown key", []string{"--data-dir", empty, "--peers", bad}, 2, `unknown field "voter"`},
		{"data dir missing", []string{"--data-dir", filepath.Join(dir, "nope"), "--peers", good}, 2, "not a directory"},
		{"no state", []string{"--data-dir", empty, "--peers", good}, 1, "no Raft state"},
		{"extra argument", []string{"--data-dir", empty, "--peers", good, "x"}, 2, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, msg, code := runCLI(t, "", append([]string{"controlplane", "recover"}, tc.args...)...)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("exit %d %q, want %d and %q", code, msg, tc.code, tc.msg)
			}
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("recover left files in a directory without state: %v", entries)
	}
}

func TestAutopilotFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		ok       bool
		on       bool
		thr      time.Duration
		minQ     int
		interval time.Duration
	}{
		{"defaults", nil, true, false, 24 * time.Hour, 3, 2 * time.Second},
		{"on, short threshold", []string{"--autopilot-cleanup-dead-servers", "--autopilot-dead-server-threshold", "4s", "--autopilot-min-quorum", "2"}, true, true, 4 * time.Second, 2, time.Second},
		{"fromNow syntax", []string{"--autopilot-dead-server-threshold", "2 days"}, true, false, 48 * time.Hour, 3, 2 * time.Second},
		{"threshold below the minimum", []string{"--autopilot-dead-server-threshold", "500ms"}, false, false, 0, 0, 0},
		{"zero threshold", []string{"--autopilot-dead-server-threshold", "0s"}, false, false, 0, 0, 0},
		{"min quorum 0", []string{"--autopilot-min-quorum", "0"}, false, false, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &cli.App{Flags: autopilotFlags(), Action: func(c *cli.Context) error {
				cfg, err := autopilotConfig(c)
				if tc.ok != (err == nil) {
					t.Fatalf("autopilotConfig: %v, want ok=%v", err, tc.ok)
				}
				if err != nil {
					if exitCode(err) != 2 {
						t.Fatalf("exit %d, want 2", exitCode(err))
					}
					return nil
				}
				if cfg.CleanupDeadServers != tc.on || cfg.DeadServerLastContactThreshold != tc.thr || cfg.MinQuorum != tc.minQ || cfg.CheckInterval != tc.interval {
					t.Fatalf("config %+v", cfg)
				}
				return nil
			}}
			if err := app.Run(append([]string{"x"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
