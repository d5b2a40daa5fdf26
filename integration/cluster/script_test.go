package cluster

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// TestLocalClusterScriptRestarts runs examples/cluster/run-local-cluster.sh
// on free ports, writes a client, stops it, runs it again on the same
// directory and checks that the same cluster comes back and serves the
// client — a second run used to fail ("did not reach 1 members").
func TestLocalClusterScriptRestarts(t *testing.T) {
	bin := harness.Bin(t)
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "examples", "cluster", "run-local-cluster.sh")
	dir := filepath.Join(t.TempDir(), "cluster")
	var httpPorts, raftPorts []string
	for i := 0; i < 3; i++ {
		httpPorts = append(httpPorts, port(t))
		raftPorts = append(raftPorts, port(t))
	}
	env := append(os.Environ(), "TCAUTH_BIN="+bin, "TCAUTH_CLUSTER_DIR="+dir,
		"TCAUTH_CLUSTER_HTTP_PORTS="+strings.Join(httpPorts, " "), "TCAUTH_CLUSTER_RAFT_PORTS="+strings.Join(raftPorts, " "))
	root := "http://127.0.0.1:" + httpPorts[1]

	stop := runScript(t, script, env)
	tok, err := os.ReadFile(filepath.Join(dir, "n1", "root-access-token"))
	if err != nil {
		t.Fatal(err)
	}
	c := &tcclient.Client{RootURL: root, Credentials: &protocol.Credentials{ClientID: harness.RootClientID, AccessToken: strings.TrimSpace(string(tok))}}
	if _, err := createClient(ctx(t), c, "script/kept", "queue:*"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".gitignore")); err != nil || !strings.Contains(string(b), "*") {
		t.Errorf("the secrets directory has no .gitignore: %q %v", b, err)
	}
	stop()

	stop = runScript(t, script, env)
	defer stop()
	var out clientOut
	if err := harness.Eventually(20*time.Second, func() error {
		return c.Do(ctx(t), "GET", "/clients/"+tcclient.PathSegment("script/kept"), nil, nil, &out)
	}); err != nil {
		t.Fatalf("the restarted cluster does not serve the kept client: %v", err)
	}
}

// runScript starts the script and waits until it reports the cluster up;
// the returned func stops it (SIGTERM: its trap stops the nodes).
func runScript(t *testing.T, script string, env []string) func() {
	t.Helper()
	cmd := exec.Command("bash", script)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Three nodes are up") {
				close(up)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	select {
	case <-up:
		return stop
	case err := <-done:
		t.Fatalf("the script exited (%v) before the cluster was up:\n%s", err, stderr.String())
	case <-time.After(90 * time.Second):
		stop()
		t.Fatalf("the cluster was not up within 90 s:\n%s", stderr.String())
	}
	return stop
}

func port(t *testing.T) string {
	_, p, err := net.SplitHostPort(harness.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(p)
}
