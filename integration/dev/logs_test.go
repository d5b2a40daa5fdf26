package dev

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// TestStartLogSchema: a normal single-node start (`tcauth dev`, and a
// fresh `tcauth controlplane --bootstrap`) writes only JSON lines on
// stderr, all with the same leading keys (raft's own lines included), no
// warning or error, and request lines with method, path, status, source
// and request id, the bewit of a query never among them.
func TestStartLogSchema(t *testing.T) {
	bin := harness.Bin(t)
	const bewit = "c2VjcmV0LWJld2l0LXZhbHVl" // must never reach a log
	cases := []struct {
		name string
		args func(dir, addr string) []string
	}{
		{"dev", func(dir, addr string) []string {
			return []string{"dev", "--data-dir", dir, "--http-addr", addr, "--raft-addr", "127.0.0.1:0", "--sidecar-addr", "127.0.0.1:0", "--log-level", "debug"}
		}},
		{"dev-default-level", func(dir, addr string) []string {
			return []string{"dev", "--data-dir", dir, "--http-addr", addr, "--raft-addr", "127.0.0.1:0", "--sidecar-addr", ""}
		}},
		{"controlplane-bootstrap", func(dir, addr string) []string {
			return []string{"controlplane", "--node-id", "solo", "--data-dir", dir, "--http-addr", addr, "--raft-addr", "127.0.0.1:0",
				"--insecure-raft", "--bootstrap", "--log-level", "debug"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := harness.FreeAddr(t)
			cmd := exec.Command(bin, tc.args(t.TempDir(), addr)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := harness.WaitHTTP(ctx, "http://"+addr+"/__heartbeat__", 200, 30*time.Second); err != nil {
				_ = cmd.Process.Kill()
				t.Fatalf("not up: %v\n%s", err, stderr.String())
			}
			// Wait until the node leads (its first election is what used to warn).
			_ = harness.WaitHTTP(ctx, "http://"+addr+"/readyz", 200, 30*time.Second)
			resp, err := http.Get("http://" + addr + "/api/auth/v1/scopes/current?bewit=" + bewit + "&x=1")
			if err == nil {
				resp.Body.Close()
			}
			_ = cmd.Process.Signal(os.Interrupt)
			// An interrupt that lands before the command installed its
			// handler ends it by the signal: not what this test is about.
			if err := cmd.Wait(); err != nil && !strings.Contains(err.Error(), "signal: interrupt") {
				t.Fatalf("exit: %v\n%s", err, stderr.String())
			}
			checkLogLines(t, stderr.String(), bewit, tc.name != "dev-default-level")
		})
	}
}

func checkLogLines(t *testing.T, out, secret string, wantRequests bool) {
	t.Helper()
	if strings.Contains(out, secret) {
		t.Errorf("a bewit reached the log:\n%s", out)
	}
	requests := 0
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line %d is not JSON: %q", i+1, line)
			continue
		}
		keys := []string{}
		for k := range rec {
			keys = append(keys, k)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if !slices.Contains(keys, k) {
				t.Errorf("line %d lacks %q: %s", i+1, k, line)
			}
		}
		for _, k := range []string{"@timestamp", "@level", "@message"} { // hclog's own JSON keys
			if slices.Contains(keys, k) {
				t.Errorf("line %d uses hclog's schema: %s", i+1, line)
			}
		}
		if lv := rec["level"]; lv == "WARN" || lv == "ERROR" {
			t.Errorf("line %d: %s on a normal start: %s", i+1, lv, line)
		}
		if rec["msg"] == "request" {
			requests++
			for _, k := range []string{"method", "path", "status", "source", "requestId"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("request line %d lacks %q: %s", i+1, k, line)
				}
			}
		}
	}
	if wantRequests && requests == 0 {
		t.Errorf("no request lines:\n%s", out)
	}
}
