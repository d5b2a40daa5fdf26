// Package peers runs the real programs that tests talk to (storage
// emulators, S3 servers, brokers) as separate processes: found through an
// environment variable that `make deps-*` fills, skipped without it, and
// a failure instead of a skip when TCAUTH_REQUIRE_PEERS=1 (as `make test`
// sets it, so that CI never passes by skipping). It imports nothing of
// tcauth, so any package's tests can use it.
package peers

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Need returns the value of env (a program's path), or skips the test
// with hint (how to get the program) — fails it under TCAUTH_REQUIRE_PEERS=1.
func Need(t testing.TB, env, hint string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		msg := env + " is not set (" + hint + ")"
		if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

// FreePorts returns n distinct loopback ports that were free a moment ago.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	nums, err := FreePortNumbers(n)
	if err != nil {
		t.Fatal(err)
	}
	ports := make([]string, len(nums))
	for i, p := range nums {
		ports[i] = fmt.Sprint(p)
	}
	return ports
}

// FreePortNumbers is FreePorts for code that has no testing.TB at hand.
// The listeners are held until all n are found, so the ports are distinct.
func FreePortNumbers(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Run starts cmd with its output in a log file; the process is killed
// when the test ends, and its output logged if the test failed. The
// channel is closed when it exits.
func Run(t testing.TB, name string, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s output:\n%s", name, b)
		}
	})
	return exited
}

// WaitListening waits until addr accepts TCP connections, failing the
// test if the process exits first or limit passes.
func WaitListening(t testing.TB, name, addr string, exited <-chan struct{}, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s", name, addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within %s: %v", name, addr, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
