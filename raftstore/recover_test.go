package raftstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"one voter", `[{"id":"n1","address":"10.0.0.1:7801"}]`, true},
		{"voters and a non-voter", `[{"id":"n1","address":"10.0.0.1:7801"},{"id":"n2","address":"h2:7801","non_voter":true}]`, true},
		{"ipv6", `[{"id":"n1","address":"[::1]:7801"}]`, true},
		{"whitespace after", "[{\"id\":\"n1\",\"address\":\"a:1\"}]\n\n", true},
		{"empty file", ``, false},
		{"empty list", `[]`, false},
		{"object, not list", `{"id":"n1","address":"a:1"}`, false},
		{"old style list of addresses", `["10.0.0.1:7801"]`, false},
		{"unknown key (misspelt non_voter)", `[{"id":"n1","address":"a:1","nonvoter":true}]`, false},
		{"trailing data", `[{"id":"n1","address":"a:1"}] []`, false},
		{"missing id", `[{"address":"a:1"}]`, false},
		{"bad id", `[{"id":"n 1","address":"a:1"}]`, false},
		{"missing port", `[{"id":"n1","address":"a"}]`, false},
		{"port 0", `[{"id":"n1","address":"a:0"}]`, false},
		{"port too big", `[{"id":"n1","address":"a:65536"}]`, false},
		{"no host", `[{"id":"n1","address":":7801"}]`, false},
		{"duplicate id", `[{"id":"n1","address":"a:1"},{"id":"n1","address":"b:1"}]`, false},
		{"duplicate address", `[{"id":"n1","address":"a:1"},{"id":"n2","address":"a:1"}]`, false},
		{"only non-voters", `[{"id":"n1","address":"a:1","non_voter":true}]`, false},
		{"too large", `[` + strings.Repeat(" ", maxPeersFileBytes) + `]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePeers([]byte(tc.in))
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrBadPeersFile) {
				t.Fatalf("ParsePeers = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func FuzzParsePeers(f *testing.F) {
	f.Add([]byte(`[{"id":"n1","address":"10.0.0.1:7801"},{"id":"n2","address":"h2:7801","non_voter":true}]`))
	f.Add([]byte(`[{"id":"n1","address":"[::1]:1"}]`))
	f.Add([]byte(`["a:1"]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		peers, err := ParsePeers(data)
		if err != nil {
			if !errors.Is(err, ErrBadPeersFile) {
				t.Fatalf("error %v is not ErrBadPeersFile", err)
			}
			return
		}
		if len(peers) == 0 || selfCheck(peers) != nil {
			t.Fatalf("accepted an unusable configuration %+v", peers)
		}
	})
}

// selfCheck re-checks what ParsePeers promises.
func selfCheck(peers []PeerSpec) error {
	voters, ids := 0, map[string]bool{}
	for _, p := range peers {
		if ids[p.ID] || p.ID == "" || p.Address == "" {
			return errors.New("bad")
		}
		ids[p.ID] = true
		if !p.NonVoter {
			voters++
		}
	}
	if voters == 0 {
		return errors.New("no voter")
	}
	return nil
}

// TestRecoverSurvivor: a three-node cluster loses two nodes for good; the
// survivor, recovered with a single-server configuration, starts, leads
// and holds every acknowledged write, and takes new ones.
func TestRecoverSurvivor(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	leader := c.WaitLeader()
	ctx := context.Background()
	var ids []string
	for i := 0; i < 20; i++ {
		id := "rec/c" + string(rune('a'+i))
		sealed, _ := leader.SealToken(id, "token-0123456789abcdefghij")
		if _, err := leader.Apply(ctx, Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: id, SealedToken: sealed}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// The survivor is a follower: it must have every acknowledged write.
	survivor := -1
	for i, s := range c.Nodes {
		if s != leader {
			survivor = i
		}
	}
	waitFor(t, "replication", func() bool { return c.Nodes[survivor].AppliedIndex() >= leader.AppliedIndex() })
	for i := range c.Nodes {
		c.Stop(i)
	}
	cfg := c.Configs[survivor]
	peers := []PeerSpec{{ID: cfg.NodeID, Address: cfg.RaftBind}}

	// While the node runs, recovery is refused and changes nothing.
	s := c.Restart(survivor)
	if _, err := Recover(RecoverConfig{DataDir: cfg.DataDir, Peers: peers}); !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("recover of a running node: %v, want ErrDataDirLocked", err)
	}
	c.Stop(survivor)
	_ = s
	// This node must vote in the new configuration.
	if _, err := Recover(RecoverConfig{DataDir: cfg.DataDir, Peers: []PeerSpec{{ID: "other", Address: "127.0.0.1:1"}}}); !errors.Is(err, ErrBadPeersFile) {
		t.Fatalf("recover without this node: %v", err)
	}
	if _, err := Recover(RecoverConfig{DataDir: cfg.DataDir, NodeID: "other", Peers: []PeerSpec{{ID: "other", Address: "127.0.0.1:1"}}}); !errors.Is(err, ErrNodeIDMismatch) {
		t.Fatalf("recover with another node id: %v", err)
	}
	dry, err := Recover(RecoverConfig{DataDir: cfg.DataDir, Peers: peers, DryRun: true})
	if err != nil || dry.Clients != len(ids) || dry.LastIndex == 0 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	res, err := Recover(RecoverConfig{DataDir: cfg.DataDir, Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != len(ids) || res.LastIndex != dry.LastIndex || res.NodeID != cfg.NodeID {
		t.Fatalf("recovered %+v, dry run said %+v", res, dry)
	}
	s = c.Restart(survivor)
	waitFor(t, "the survivor to lead", s.IsLeader)
	for _, id := range ids {
		if _, ok := s.Client(id); !ok {
			t.Fatalf("acknowledged client %s lost", id)
		}
	}
	if got := members(s); len(got) != 1 || got[0] != cfg.NodeID {
		t.Fatalf("members after recovery %v", got)
	}
	sealed, _ := s.SealToken("rec/after", "token-0123456789abcdefghij")
	if _, err := s.Apply(ctx, Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: "rec/after", SealedToken: sealed}}); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
}

func TestRecoverRefusesEmptyDir(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		_, err := Recover(RecoverConfig{DataDir: dir, NodeID: "n1", Peers: []PeerSpec{{ID: "n1", Address: "127.0.0.1:1"}}})
		if !errors.Is(err, ErrNothingToRecover) {
			t.Fatalf("%s: %v, want ErrNothingToRecover", dir, err)
		}
		// Nothing was created.
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%s: recovery left %v", dir, entries)
		}
	}
}
