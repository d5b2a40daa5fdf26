package cluster

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// TestOfficialClientTour runs integration/node/tour.js — the official
// taskcluster-client, unpatched — against a follower of a three-node
// cluster, so every write is forwarded and every credential must work on
// the node that forwarded it.
func TestOfficialClientTour(t *testing.T) {
	node := harness.NeedNode(t)
	c := harness.StartCluster(t, harness.ClusterConfig{})
	leader, err := c.Leader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % len(c.Nodes)
	cmd := exec.Command(node, "tour.js")
	cmd.Dir = harness.NodeDir()
	cmd.Env = append(os.Environ(), "TASKCLUSTER_ROOT_URL="+c.Nodes[follower].URL(),
		"TASKCLUSTER_CLIENT_ID="+harness.RootClientID, "TASKCLUSTER_ACCESS_TOKEN="+c.RootToken)
	out, err := cmd.CombinedOutput()
	t.Logf("tour.js against follower %s:\n%s", c.Nodes[follower].ID, out)
	if err != nil {
		t.Fatalf("tour.js: %v", err)
	}
}
