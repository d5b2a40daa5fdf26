// Package harness starts real tcauth processes for the integration tests:
// control-plane nodes (alone or as a three-node cluster with Raft mutual
// TLS), sidecars and the notes example. Every process runs the binary in
// $TCAUTH_BIN (make test-integration sets it) or one built once per test
// binary; its stderr goes to a log file in the test's directory, which is
// printed when the test fails.
//
// The shape follows hashicorp/raft's testing.go: a cluster value with
// helpers to find the leader, kill and restart nodes, and wait for a
// condition, so that each test says what it checks rather than how.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Bin returns the tcauth binary: $TCAUTH_BIN, or one built from this
// checkout into a temporary directory on first use.
func Bin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("TCAUTH_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(here), "..", "..")
		dir, err := os.MkdirTemp("", "tcauth-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tcauth")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/tcauth")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// handedOut remembers every address FreeAddr returned in this test
// process. A port is free only until the process it was meant for binds
// it, and the kernel may hand a just-closed port out again: a cluster's
// third node once got the first node's HTTP port as its Raft port.
var handedOut sync.Map // string → struct{}

// FreeAddr returns a loopback address with a port nobody listens on now
// and that no earlier call in this process returned.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, taken := handedOut.LoadOrStore(addr, struct{}{}); !taken {
			return addr
		}
	}
}

// Process is one running tcauth (or other) process.
type Process struct {
	Name    string
	Args    []string // without the binary
	Env     []string // added to the test process's environment
	Prefix  []string // run as Prefix... bin Args... (e.g. ip netns exec ns)
	LogPath string

	bin  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// NewProcess describes a process; Start runs it.
func NewProcess(t testing.TB, bin, name, logDir string, args ...string) *Process {
	return &Process{Name: name, Args: args, LogPath: filepath.Join(logDir, name+".log"), bin: bin}
}

// Start runs the process; its output is appended to LogPath.
func (p *Process) Start() error {
	if p.Running() {
		return fmt.Errorf("%s is already running", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	argv := append(append(append([]string{}, p.Prefix...), p.bin), p.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logf, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return nil
}

// Pid is the process's id (that of the first Prefix program, when set);
// 0 before Start.
func (p *Process) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process was started and has not exited.
func (p *Process) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the process exits.
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitErr is how the process ended (nil: exit status 0), once Exited is
// closed; nil before.
func (p *Process) ExitErr() error {
	if p.Running() || p.done == nil {
		return nil
	}
	return p.err
}

// Signal sends sig to the process group (so that a Prefix wrapper and
// its child both get it).
func (p *Process) Signal(sig syscall.Signal) {
	if p.Running() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to 20 s, then kills.
func (p *Process) Stop() {
	if !p.Running() {
		return
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// Log returns what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Eventually calls f until it returns nil or the timeout passes, and
// returns f's last error.
func Eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHTTP waits until url answers with the given status.
func WaitHTTP(ctx context.Context, url string, status int, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	return Eventually(timeout, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("%s: status %d, want %d", url, resp.StatusCode, status)
		}
		return nil
	})
}

// DumpLogsOnFailure prints each process's log tail when t fails.
func DumpLogsOnFailure(t testing.TB, procs func() []*Process) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range procs() {
			log := p.Log()
			if len(log) > 6000 {
				log = "…" + log[len(log)-6000:]
			}
			t.Logf("---- %s (%s) ----\n%s", p.Name, p.LogPath, log)
		}
	})
}

// ErrTimeout is returned by waits that ran out of time.
var ErrTimeout = errors.New("timed out")

// NodeDir is integration/node, where the npm peers are installed.
func NodeDir() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "node")
}

// NeedNode returns the node binary, with integration/node's packages
// installed. Without them the test skips — except when
// TCAUTH_REQUIRE_PEERS=1 (make test-integration sets it after installing
// them), where their absence is a failure.
func NeedNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(NodeDir(), "node_modules", "taskcluster-client"))
	}
	if err != nil {
		if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatalf("node and integration/node/node_modules are required (make deps): %v", err)
		}
		t.Skipf("needs node and integration/node/node_modules (run `make deps`): %v", err)
	}
	return node
}

// SaveHeapProfile writes the heap profile of the process whose admin
// listener (served with --pprof) is admin to path, after a GC.
func SaveHeapProfile(t testing.TB, admin, path string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("heap profile from %s: %s (was the process started with --pprof?)", admin, resp.Status)
	}
	f, err := os.Create(path)
	if err == nil {
		_, err = io.Copy(f, resp.Body)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
}
