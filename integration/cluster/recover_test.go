package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// nodeStatus is node i's own Raft figures (GET /tcauth/cluster/status).
func nodeStatus(c *harness.Cluster, i int) (state string, applied, lastLog uint64, err error) {
	var out struct {
		Node struct {
			State        string `json:"state"`
			AppliedIndex uint64 `json:"appliedIndex"`
			LastLogIndex uint64 `json:"lastLogIndex"`
		} `json:"node"`
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Client(i, nil).Do(cctx, http.MethodGet, "/tcauth/cluster/status", nil, nil, &out)
	return out.Node.State, out.Node.AppliedIndex, out.Node.LastLogIndex, err
}

// recoverCmd runs `tcauth controlplane recover` on node n's data directory.
func recoverCmd(c *harness.Cluster, n *harness.Node, peers string, extra ...string) (string, int) {
	args := append([]string{"controlplane", "recover", "--data-dir", n.Dir, "--peers", peers}, extra...)
	out, err := exec.Command(c.Bin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return string(out), code
}

// TestRecoverLostQuorum: a three-node cluster takes writes, loses two
// nodes for good, and is recovered from the survivor with a peers file:
// the survivor starts alone, leads, serves every write it acknowledged,
// takes new writes, and a fresh node joins it.
func TestRecoverLostQuorum(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{})
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w := startWriters(c, 4)
	time.Sleep(2 * time.Second)
	acked := w.stop()
	if len(acked) < 10 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	// The survivor is a follower that has applied everything the leader
	// holds (a commit needs only two of three: the other follower could
	// be the one without the newest writes, and is not the test's point).
	survivor := (leader + 1) % 3
	if err := harness.Eventually(30*time.Second, func() error {
		_, _, leaderLast, err := nodeStatus(c, leader)
		if err != nil {
			return err
		}
		_, applied, _, err := nodeStatus(c, survivor)
		if err == nil && applied < leaderLast {
			err = fmt.Errorf("survivor applied %d of %d", applied, leaderLast)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s := c.Nodes[survivor]
	for i, n := range c.Nodes {
		if i != survivor {
			n.Kill()
		}
	}
	t.Logf("killed every node but %s; %d writes acknowledged", s.ID, len(acked))

	peers := filepath.Join(c.Dir, "peers.json")
	if err := os.WriteFile(peers, []byte(fmt.Sprintf(`[{"id": %q, "address": %q}]`, s.ID, s.RaftAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Refused while the node runs; a bad peers file (also one without this
	// node) is bad input, exit 2.
	if out, code := recoverCmd(c, s, peers); code != 1 || !strings.Contains(out, "in use") && !strings.Contains(out, "locked") {
		t.Fatalf("recover of a running node: exit %d, %s", code, out)
	}
	s.Kill()
	bad := filepath.Join(c.Dir, "bad-peers.json")
	for _, content := range []string{`[`, `[{"id": "n9", "address": "127.0.0.1:1"}]`, `[{"id": "n1", "adress": "127.0.0.1:1"}]`} {
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, code := recoverCmd(c, s, bad); code != 2 || !strings.Contains(out, "peers file") {
			t.Fatalf("peers file %s: exit %d, %s", content, code, out)
		}
	}
	out, code := recoverCmd(c, s, peers, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: node "+s.ID) {
		t.Fatalf("dry run: exit %d, %s", code, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	out, code = recoverCmd(c, s, peers)
	if code != 0 || !strings.Contains(out, "recovered node "+s.ID) {
		t.Fatalf("recover: exit %d, %s", code, out)
	}
	t.Logf("%s", strings.TrimSpace(out))

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(survivor, 1, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Leader(30 * time.Second); err != nil || l != survivor {
		t.Fatalf("leader %d (%v), want the survivor %d", l, err, survivor)
	}
	checkAcked(t, c, acked)
	if err := createRole(ctx(t), c.Client(survivor, nil), "after-recovery", "it:after"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}

	// A fresh node joins the recovered cluster and gets everything.
	n4 := c.AddNode()
	if err := c.Join(n4, s); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(len(c.Nodes)-1, 2, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, c, append(acked, "after-recovery"))
}

// TestAutopilotCleanupDeadServers: with the clean-up on, the leader
// removes a killed follower after the threshold, counts it in its
// metrics, and the node comes back by joining again.
func TestAutopilotCleanupDeadServers(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{ExtraArgs: []string{"--autopilot-cleanup-dead-servers",
		"--autopilot-dead-server-threshold", "5s", "--autopilot-min-quorum", "2"}})
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Live members stay, however long.
	time.Sleep(7 * time.Second)
	if err := c.WaitMembers(leader, 3, time.Second); err != nil {
		t.Fatalf("a live member was removed: %v", err)
	}
	dead := (leader + 1) % 3
	c.Nodes[dead].Kill()
	killed := time.Now()
	leader, err = c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(leader, 2, 90*time.Second); err != nil {
		t.Fatalf("the dead node was not removed: %v", err)
	}
	if took := time.Since(killed); took < 5*time.Second {
		t.Fatalf("removed %s after the kill, before the 5s threshold", took)
	}
	t.Logf("%s removed %s after the kill", c.Nodes[leader].ID, time.Since(killed).Round(time.Second))
	if v := metricValue(t, c.Nodes[leader].URL()+"/metrics", "tcauth_autopilot_dead_servers_removed_total"); v != "1" {
		t.Fatalf("tcauth_autopilot_dead_servers_removed_total = %q, want 1", v)
	}
	if !strings.Contains(c.Nodes[leader].Log(), "autopilot: removed a dead server") {
		t.Fatal("no log line for the removal")
	}
	// The removed node rejoins with its data directory.
	if err := c.Join(c.Nodes[dead], c.Nodes[leader]); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(leader, 3, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestAutopilotOffKeepsDeadServers: without the flag (the default) a
// killed follower stays a member.
func TestAutopilotOffKeepsDeadServers(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{ExtraArgs: []string{"--autopilot-dead-server-threshold", "2s", "--autopilot-min-quorum", "1"}})
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Nodes[(leader+1)%3].Kill()
	time.Sleep(10 * time.Second)
	leader, err = c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(leader, 3, time.Second); err != nil {
		t.Fatalf("dead member removed with the clean-up off: %v", err)
	}
	if v := metricValue(t, c.Nodes[leader].URL()+"/metrics", "tcauth_autopilot_dead_servers_removed_total"); v != "0" {
		t.Fatalf("tcauth_autopilot_dead_servers_removed_total = %q, want 0", v)
	}
}

// metricValue is the value of an unlabelled series on a /metrics page.
func metricValue(t *testing.T, url, name string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("no series %s at %s", name, url)
	return ""
}
