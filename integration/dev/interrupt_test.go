package dev

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// TestDevInterruptDuringStart: an interrupt while `tcauth dev` is still
// starting (the node is ready, the sidecar is not yet in sync, the banner
// not printed) stops it cleanly, with exit status 0 and no error. Each
// round sends SIGINT at another moment after the control plane first
// answers /readyz with 200, which is where the sidecar's start runs.
func TestDevInterruptDuringStart(t *testing.T) {
	bin := harness.Bin(t)
	for _, delay := range []time.Duration{0, 5 * time.Millisecond, 10 * time.Millisecond, 15 * time.Millisecond, 20 * time.Millisecond, 25 * time.Millisecond, 30 * time.Millisecond, 80 * time.Millisecond} {
		addr := harness.FreeAddr(t)
		cmd := exec.Command(bin, "dev", "--data-dir", t.TempDir(), "--http-addr", addr, "--raft-addr", "127.0.0.1:0", "--sidecar-addr", "127.0.0.1:0")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitReadyz(t, "http://"+addr+"/readyz", 30*time.Second) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("delay %s: the control plane never became ready\n%s", delay, stderr.String())
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			// readyz answered, so the handler is installed: the signal
			// must not end the process by itself.
			if err != nil {
				t.Errorf("delay %s: exit: %v\n%s", delay, err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("delay %s: did not stop within 20s of SIGINT", delay)
		}
	}
}

// waitReadyz polls url every 2 ms (closer than harness.WaitHTTP, so that
// the first interrupt lands right after the node became ready).
func waitReadyz(t *testing.T, url string, timeout time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		if resp, err := cl.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}
