package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// statusReport mirrors `tcauth cluster status --json`.
type statusReport struct {
	Leader string `json:"leader"`
	Quorum bool   `json:"quorum"`
	Voters int    `json:"voters"`
	Nodes  []struct {
		ID          string `json:"id"`
		RaftAddress string `json:"raftAddress"`
		APIURL      string `json:"apiUrl"`
		Error       string `json:"error"`
		Lag         *int   `json:"lag"`
		Status      *struct {
			ID                 string  `json:"id"`
			State              string  `json:"state"`
			Term               uint64  `json:"term"`
			CommitIndex        uint64  `json:"commitIndex"`
			AppliedIndex       uint64  `json:"appliedIndex"`
			LastContactSeconds float64 `json:"lastContactSeconds"`
		} `json:"status"`
	} `json:"nodes"`
	Problem string `json:"problem"`
}

func clusterStatus(t *testing.T, c *harness.Cluster, i int) (statusReport, string, int) {
	t.Helper()
	out, err := c.CLI(i, "cluster", "status", "--json")
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cluster status: %v", err)
	}
	var rep statusReport
	// stderr (the one-line error) follows the JSON on no quorum.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); err != nil {
		t.Fatalf("cluster status --json: %v\n%s", err, out)
	}
	return rep, out, code
}

// TestClusterStatus: every member answers with its own figures (each row's
// status.id is the row's node, and the followers' last contact is their
// own), through any node; the table form prints every node; with two of
// three nodes killed the command says there is no quorum and exits 1,
// with the dead nodes as rows saying they are unreachable.
func TestClusterStatus(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{})
	if _, err := createClient(ctx(t), c.Client(0, nil), "status/writer", "a:b"); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, via := range []int{0, 2} {
		var rep statusReport
		// The join's apiUrl and the last write reach every node shortly.
		err := harness.Eventually(15*time.Second, func() error {
			var out string
			var code int
			rep, out, code = clusterStatus(t, c, via)
			if code != 0 || !rep.Quorum || len(rep.Nodes) != 3 {
				return fmt.Errorf("via node %d: exit %d: %s", via, code, out)
			}
			for _, n := range rep.Nodes {
				if n.Status == nil || n.Lag == nil || *n.Lag != 0 {
					return fmt.Errorf("via node %d: node %s not caught up or not answering: %s", via, n.ID, out)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Leader != c.Nodes[leader].ID || rep.Voters != 3 {
			t.Fatalf("via node %d: leader %q voters %d, want %s and 3", via, rep.Leader, rep.Voters, c.Nodes[leader].ID)
		}
		for _, n := range rep.Nodes {
			st := n.Status
			if st.ID != n.ID {
				t.Errorf("row %s carries node %s's figures", n.ID, st.ID)
			}
			wantState := "Follower"
			if n.ID == rep.Leader {
				wantState = "Leader"
			}
			if st.State != wantState || st.Term == 0 || st.AppliedIndex == 0 || st.CommitIndex < st.AppliedIndex {
				t.Errorf("node %s: %+v, want state %s and indexes", n.ID, *st, wantState)
			}
			if wantState == "Follower" && (st.LastContactSeconds < 0 || st.LastContactSeconds > 5) {
				t.Errorf("follower %s: last contact %.3fs", n.ID, st.LastContactSeconds)
			}
		}
	}
	table, err := c.CLI(1, "cluster", "status")
	if err != nil {
		t.Fatalf("table: %v\n%s", err, table)
	}
	t.Logf("cluster status:\n%s", table)
	for _, want := range append([]string{"NODE", "LAST CONTACT", "LAG", "quorum: yes"}, c.Nodes[0].ID, c.Nodes[1].ID, c.Nodes[2].ID) {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	// Kill two nodes, the leader among them: the survivor cannot win an
	// election, and says so.
	survivor := (leader + 1) % 3
	for i := range c.Nodes {
		if i != survivor {
			c.Nodes[i].Kill()
		}
	}
	err = harness.Eventually(20*time.Second, func() error {
		rep, out, code := clusterStatus(t, c, survivor)
		if code != 1 || rep.Quorum || rep.Problem == "" {
			return fmt.Errorf("exit %d, quorum %v: %s", code, rep.Quorum, out)
		}
		if !strings.Contains(out, "no quorum") {
			return fmt.Errorf("no one-line reason on stderr: %s", out)
		}
		unreachable := 0
		for _, n := range rep.Nodes {
			if n.Status == nil && strings.Contains(n.Error, "unreachable") {
				unreachable++
			}
		}
		if unreachable != 2 {
			return fmt.Errorf("%d rows unreachable, want 2: %s", unreachable, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := c.CLI(survivor, "cluster", "status")
	t.Logf("without quorum:\n%s", out)
	if !strings.Contains(out, "quorum: NO") || strings.Count(out, "unreachable:") != 2 {
		t.Errorf("table without quorum:\n%s", out)
	}
}

// TestClusterMetricsAndLogs: after real traffic, a node's /metrics has
// Raft's own series (from hashicorp/raft through go-metrics) and the
// node's figures with Prometheus names and types, the Go and process
// collectors, and authenticateHawk outcomes; every stderr line of every
// node is JSON with time/level/msg, raft's included.
func TestClusterMetricsAndLogs(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{})
	cl := c.Client(0, nil)
	for i := 0; i < 5; i++ {
		if _, err := createClient(ctx(t), cl, fmt.Sprintf("metrics/c%d", i), "a:b"); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := c.Leader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	families := scrape(t, c.Nodes[leader].URL()+"/metrics")
	for name, typ := range map[string]string{
		"tcauth_raft_commit_duration_seconds":    "histogram",
		"tcauth_raft_fsm_apply_duration_seconds": "histogram",
		"tcauth_raft_apply_total":                "counter",
		"tcauth_raft_state_transitions_total":    "counter",
		"tcauth_raft_term":                       "gauge",
		"tcauth_raft_commit_index":               "gauge",
		"tcauth_raft_last_contact_seconds":       "gauge",
		"tcauth_raft_leader_changes_total":       "counter",
		"tcauth_raft_peers":                      "gauge",
		"go_goroutines":                          "gauge",
		"process_resident_memory_bytes":          "gauge",
	} {
		if got := families[name]; got != typ {
			t.Errorf("%s: type %q, want %q", name, got, typ)
		}
	}
	// A follower reports its own contact with the leader.
	follower := (leader + 1) % 3
	if families := scrape(t, c.Nodes[follower].URL()+"/metrics"); families["tcauth_raft_last_contact_seconds"] != "gauge" {
		t.Errorf("follower lacks tcauth_raft_last_contact_seconds")
	}
	for _, n := range c.Nodes {
		for i, line := range strings.Split(strings.TrimSpace(n.Log()), "\n") {
			if strings.HasPrefix(line, "=== ") {
				continue // the harness's own start/stop markers
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("%s line %d is not JSON: %q", n.ID, i+1, line)
				continue
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("%s line %d lacks %q: %q", n.ID, i+1, k, line)
				}
			}
		}
	}
}

// scrape returns the metric families of a /metrics page with their types.
func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return metricTypes(t, resp.Body)
}

func metricTypes(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}
