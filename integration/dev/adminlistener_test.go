package dev

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// adminProbe is one request of TestAdminListener: on is "api" (the
// --http-addr listener) or "admin" (--admin-addr).
type adminProbe struct {
	on, path string
	want     int
}

// TestAdminListener: `tcauth controlplane` and `tcauth dev` serve Go's
// profiles only on the admin listener (--admin-addr / TCAUTH_ADMIN_ADDR)
// and there only with --pprof; the API listener never serves them, with or
// without --pprof. /metrics is on both listeners.
func TestAdminListener(t *testing.T) {
	bin := harness.Bin(t)
	const cmdline = "/debug/pprof/cmdline"
	cases := []struct {
		name   string
		args   func(dir, api, admin string) []string
		env    func(admin string) []string
		probes []adminProbe
	}{
		{"controlplane without flags", controlplaneArgs(), nil,
			[]adminProbe{{"api", cmdline, 404}, {"api", "/debug/pprof/", 404}, {"api", "/metrics", 200}}},
		{"controlplane --admin-addr", controlplaneArgs("--admin-addr"), nil,
			[]adminProbe{{"admin", "/metrics", 200}, {"admin", cmdline, 404}, {"api", cmdline, 404}, {"api", "/metrics", 200}}},
		{"controlplane --admin-addr --pprof", controlplaneArgs("--admin-addr", "--pprof"), nil,
			[]adminProbe{{"admin", cmdline, 200}, {"admin", "/debug/pprof/", 200}, {"admin", "/metrics", 200},
				{"admin", "/api/auth/v1/ping", 404}, {"api", cmdline, 404}, {"api", "/debug/pprof/", 404}}},
		{"controlplane TCAUTH_ADMIN_ADDR TCAUTH_PPROF", controlplaneArgs(),
			func(admin string) []string { return []string{"TCAUTH_ADMIN_ADDR=" + admin, "TCAUTH_PPROF=true"} },
			[]adminProbe{{"admin", cmdline, 200}, {"api", cmdline, 404}}},
		{"dev --admin-addr --pprof", func(dir, api, admin string) []string {
			return []string{"dev", "--data-dir", dir, "--http-addr", api, "--raft-addr", "127.0.0.1:0", "--sidecar-addr", "",
				"--admin-addr", admin, "--pprof"}
		}, nil, []adminProbe{{"admin", cmdline, 200}, {"admin", "/metrics", 200}, {"api", cmdline, 404}}},
		{"dev without flags", func(dir, api, admin string) []string {
			return []string{"dev", "--data-dir", dir, "--http-addr", api, "--raft-addr", "127.0.0.1:0", "--sidecar-addr", ""}
		}, nil, []adminProbe{{"api", cmdline, 404}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api, admin := harness.FreeAddr(t), harness.FreeAddr(t)
			cmd := exec.Command(bin, tc.args(t.TempDir(), api, admin)...)
			if tc.env != nil {
				cmd.Env = append(os.Environ(), tc.env(admin)...)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := harness.WaitHTTP(ctx, "http://"+api+"/__lbheartbeat__", 200, 30*time.Second); err != nil {
				t.Fatalf("not started: %v\n%s", err, stderr.String())
			}
			// The admin listener opens right after the API's: a probe is
			// retried briefly, so a wrong status fails after 5 s.
			for _, p := range tc.probes {
				addr := map[string]string{"api": api, "admin": admin}[p.on]
				if err := harness.WaitHTTP(ctx, "http://"+addr+p.path, p.want, 5*time.Second); err != nil {
					t.Errorf("%s listener: %v", p.on, err)
				}
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr.String())
			}
		})
	}
}

// controlplaneArgs is a single-node `tcauth controlplane` with extra
// flags; "--admin-addr" is followed by the admin address.
func controlplaneArgs(extra ...string) func(dir, api, admin string) []string {
	return func(dir, api, admin string) []string {
		args := []string{"controlplane", "--node-id", "solo", "--data-dir", dir, "--http-addr", api,
			"--raft-addr", "127.0.0.1:0", "--insecure-raft", "--bootstrap"}
		for _, f := range extra {
			args = append(args, f)
			if f == "--admin-addr" {
				args = append(args, admin)
			}
		}
		return args
	}
}

// TestPprofNeedsAdminAddr: --pprof without an admin listener is a usage
// error (exit 2, naming --admin-addr), reported by --check-config too,
// rather than a flag that silently does nothing.
func TestPprofNeedsAdminAddr(t *testing.T) {
	bin := harness.Bin(t)
	cases := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantOut  string
	}{
		{"controlplane --pprof", controlplaneArgs("--pprof")(t.TempDir(), harness.FreeAddr(t), ""), nil, 2, "--pprof needs --admin-addr"},
		{"controlplane --pprof --check-config", controlplaneArgs("--pprof", "--check-config")(t.TempDir(), harness.FreeAddr(t), ""), nil, 2, "--pprof needs --admin-addr"},
		{"controlplane TCAUTH_PPROF", controlplaneArgs("--check-config")(t.TempDir(), harness.FreeAddr(t), ""), []string{"TCAUTH_PPROF=true"}, 2, "--pprof needs --admin-addr"},
		{"controlplane --admin-addr bad", controlplaneArgs("--check-config", "--admin-addr")(t.TempDir(), harness.FreeAddr(t), "nonsense"), nil, 2, `--admin-addr "nonsense"`},
		{"dev --pprof", []string{"dev", "--data-dir", t.TempDir(), "--http-addr", harness.FreeAddr(t), "--sidecar-addr", "", "--pprof"}, nil, 2, "--pprof needs --admin-addr"},
		// The control: with an admin address the same flags are accepted.
		{"controlplane --pprof --admin-addr --check-config", controlplaneArgs("--pprof", "--check-config", "--admin-addr")(t.TempDir(), harness.FreeAddr(t), "127.0.0.1:0"), nil, 0, "configuration OK"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantOut) {
				t.Errorf("exit %d, want %d with %q; output:\n%s", code, tc.wantCode, tc.wantOut, out)
			}
		})
	}
}
