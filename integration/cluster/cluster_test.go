package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

type clientOut struct {
	ClientID       string   `json:"clientId"`
	AccessToken    string   `json:"accessToken"`
	Scopes         []string `json:"scopes"`
	ExpandedScopes []string `json:"expandedScopes"`
}

type roleOut struct {
	RoleID string   `json:"roleId"`
	Scopes []string `json:"scopes"`
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func createClient(ctx context.Context, c *tcclient.Client, id string, scopes ...string) (clientOut, error) {
	var out clientOut
	err := c.Do(ctx, http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, map[string]any{
		"description": "integration test", "expires": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
		"scopes": scopes,
	}, &out)
	return out, err
}

func createRole(ctx context.Context, c *tcclient.Client, id string, scopes ...string) error {
	return c.Do(ctx, http.MethodPut, "/roles/"+tcclient.PathSegment(id), nil, map[string]any{
		"description": "integration test", "scopes": scopes}, nil)
}

func getRole(ctx context.Context, c *tcclient.Client, id string) (roleOut, error) {
	var out roleOut
	err := c.Do(ctx, http.MethodGet, "/roles/"+tcclient.PathSegment(id), nil, nil, &out)
	return out, err
}

// TestCluster walks one cluster through its life: replicated writes and
// reads, a killed leader under write load, the old leader rejoining,
// a full restart from disk, and a backup restored into a fresh cluster.
func TestCluster(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{})
	leader, err := c.Leader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % 3

	// A write through a follower is forwarded to the leader.
	made, err := createClient(ctx(t), c.Client(follower, nil), "it/app", "auth:current-scopes", "assume:it-role")
	if err != nil {
		t.Fatalf("createClient via follower %s: %v", c.Nodes[follower].ID, err)
	}
	if made.AccessToken == "" {
		t.Fatal("createClient answered no accessToken")
	}
	if err := createRole(ctx(t), c.Client(follower, nil), "it-role", "it:scope-from-role"); err != nil {
		t.Fatal(err)
	}
	appCreds := &protocol.Credentials{ClientID: "it/app", AccessToken: made.AccessToken}

	// Every node reads it (linearizable reads) and authenticates with it
	// (local state, so possibly a moment behind: Eventually).
	for i := range c.Nodes {
		var got clientOut
		if err := c.Client(i, nil).Do(ctx(t), http.MethodGet, "/clients/it%2Fapp", nil, nil, &got); err != nil {
			t.Fatalf("getClient on %s: %v", c.Nodes[i].ID, err)
		}
		if !contains(got.ExpandedScopes, "it:scope-from-role") {
			t.Errorf("%s: expandedScopes %v lack the role's scope", c.Nodes[i].ID, got.ExpandedScopes)
		}
		if err := harness.Eventually(5*time.Second, func() error {
			var cur struct{ Scopes []string }
			if err := c.Client(i, appCreds).Do(ctx(t), http.MethodGet, "/scopes/current", nil, nil, &cur); err != nil {
				return err
			}
			if !contains(cur.Scopes, "it:scope-from-role") {
				return fmt.Errorf("currentScopes %v", cur.Scopes)
			}
			return nil
		}); err != nil {
			t.Fatalf("the new client on %s: %v", c.Nodes[i].ID, err)
		}
	}

	// Kill the leader while writers keep writing through every node.
	w := startWriters(c, 4)
	time.Sleep(1500 * time.Millisecond)
	old := c.Nodes[leader]
	old.Kill()
	t.Logf("killed leader %s", old.ID)
	newLeader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == leader {
		t.Fatal("the killed node is still leader")
	}
	t.Logf("new leader %s", c.Nodes[newLeader].ID)
	time.Sleep(1500 * time.Millisecond) // writes under the new leader
	acked := w.stop()
	if len(acked) < 10 {
		t.Fatalf("only %d writes were acknowledged; the cluster did not take writes", len(acked))
	}
	t.Logf("%d writes acknowledged across the failover (%d failed, as writes to a dead node do)", len(acked), w.failed)

	// The old leader rejoins from its data directory and catches up.
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(leader, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, c, acked)

	// The whole cluster stopped and started from disk keeps everything.
	for _, n := range c.Nodes {
		n.Stop()
	}
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Leader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, c, acked)

	// Back up, restore into a fresh cluster with the same keyring: the
	// client's token works there.
	backup := filepath.Join(t.TempDir(), "backup.ndjson")
	if out, err := c.CLI(1, "cluster", "snapshot", "save", backup); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	fresh := harness.StartCluster(t, harness.ClusterConfig{Keyring: c.KeyringPath()})
	if out, err := fresh.CLI(2, "cluster", "snapshot", "restore", "--force", backup); err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	for i := range fresh.Nodes {
		if err := harness.Eventually(10*time.Second, func() error {
			var cur struct{ Scopes []string }
			return fresh.Client(i, appCreds).Do(ctx(t), http.MethodGet, "/scopes/current", nil, nil, &cur)
		}); err != nil {
			t.Errorf("restored cluster node %s does not accept it/app: %v", fresh.Nodes[i].ID, err)
		}
	}
	checkAcked(t, fresh, acked)

	// A backup restored with another keyring is refused and changes nothing.
	other := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	if out, err := other.CLI(0, "cluster", "snapshot", "restore", "--force", backup); err == nil {
		t.Errorf("restore into a cluster with a different keyring succeeded:\n%s", out)
	}
	if _, err := getRole(ctx(t), other.Client(0, nil), acked[0]); err == nil {
		t.Error("a refused restore left roles behind")
	}

	// No plaintext access token of a created client anywhere on disk or
	// in the logs (the root token file is the one place a token lives).
	for _, cl := range []*harness.Cluster{c, fresh} {
		for _, n := range cl.Nodes {
			n.Stop()
		}
		scanForSecret(t, cl.Dir, made.AccessToken)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writers create roles with unique ids through every node and remember
// the acknowledged ones.
type writers struct {
	mu     sync.Mutex
	acked  []string
	failed int
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startWriters(c *harness.Cluster, n int) *writers {
	w := &writers{}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for g := 0; g < n; g++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				node := (g + i) % len(c.Nodes)
				id := fmt.Sprintf("w%d-%d", g, i)
				cctx, done := context.WithTimeout(ctx, 5*time.Second)
				err := createRole(cctx, c.Client(node, nil), id, "it:w:"+id)
				done()
				w.mu.Lock()
				if err == nil {
					w.acked = append(w.acked, id)
				} else if ctx.Err() == nil {
					w.failed++
				}
				w.mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return w
}

func (w *writers) stop() []string {
	w.cancel()
	w.wg.Wait()
	return w.acked
}

// checkAcked reads every acknowledged role from every node.
func checkAcked(t *testing.T, c *harness.Cluster, acked []string) {
	t.Helper()
	for i, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		var roles []roleOut
		err := harness.Eventually(15*time.Second, func() error {
			return c.Client(i, nil).Do(ctx(t), http.MethodGet, "/roles/", nil, nil, &roles)
		})
		if err != nil {
			t.Fatalf("listRoles on %s: %v", n.ID, err)
		}
		have := map[string]bool{}
		for _, r := range roles {
			have[r.RoleID] = true
		}
		lost := 0
		for _, id := range acked {
			if !have[id] {
				lost++
				if lost <= 5 {
					t.Errorf("%s: acknowledged role %s is missing", n.ID, id)
				}
			}
		}
		if lost > 0 {
			t.Fatalf("%s lost %d of %d acknowledged writes", n.ID, lost, len(acked))
		}
	}
}

// scanForSecret fails if secret occurs in any file under dir other than
// the root token files.
func scanForSecret(t *testing.T, dir, secret string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			return fmt.Errorf("plaintext access token in %s", path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Error(err)
	}
	if files < 5 {
		t.Errorf("scanned only %d files under %s; expected data directories and logs", files, dir)
	}
}
