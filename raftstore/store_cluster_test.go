package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Multi-node tests: real stores, real bolt files, mutual TLS on loopback.

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClusterReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	leader := c.WaitLeader()
	ctx := context.Background()

	// Followers refuse writes and linearizable reads.
	for _, s := range c.Nodes {
		if s == leader {
			continue
		}
		if _, err := s.Apply(ctx, Command{Op: OpDeleteClient, ID: "x"}); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("follower apply: %v", err)
		}
		if err := s.LinearizableRead(ctx); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("follower linearizable read: %v", err)
		}
	}

	// Concurrent writes: every acknowledged one must survive.
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				id := fmt.Sprintf("w%d/c%d", w, i)
				sealed, _ := leader.SealToken(id, "token-0123456789abcdefghij")
				if _, err := leader.Apply(ctx, Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: id, SealedToken: sealed}}); err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	if len(acked) != 80 {
		t.Fatalf("only %d of 80 writes acknowledged with a stable leader", len(acked))
	}
	idx := leader.AppliedIndex()
	for i, s := range c.Nodes {
		if err := s.WaitForIndex(ctx, idx); err != nil {
			t.Fatal(err)
		}
		if n := s.ClientCount(); n != 80 {
			t.Fatalf("node %d has %d clients", i, n)
		}
		if tok, _, err := s.AccessToken("w3/c7"); err != nil || tok != "token-0123456789abcdefghij" {
			t.Fatalf("node %d token: %q %v", i, tok, err)
		}
	}

	// Kill the leader: a new one is elected among the two others and
	// nothing acknowledged is lost.
	old := -1
	for i, s := range c.Nodes {
		if s == leader {
			old = i
		}
	}
	c.Stop(old)
	newLeader := c.WaitLeader()
	if err := newLeader.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		if _, ok := newLeader.Client(id); !ok {
			t.Fatalf("acknowledged write %s lost", id)
		}
	}
	createClient(t, newLeader, "after-failover", "token-0123456789abcdefghij")

	// The old leader comes back from its data directory and catches up.
	back := c.Restart(old)
	target := newLeader.AppliedIndex()
	if err := back.WaitForIndex(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, ok := back.Client("after-failover"); !ok {
		t.Fatal("restarted node did not catch up")
	}
	peers, err := newLeader.Peers()
	if err != nil || len(peers) != 3 {
		t.Fatalf("peers = %+v %v", peers, err)
	}
}

func TestIsolatedLeaderRefusesLinearizableReads(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	leader := c.WaitLeader()
	for i, s := range c.Nodes {
		if s != leader {
			c.Stop(i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Without a quorum the leader must neither confirm a read nor
	// acknowledge a write.
	if err := leader.LinearizableRead(ctx); err == nil {
		t.Fatal("linearizable read served without a quorum")
	}
	if _, err := leader.Apply(ctx, Command{Op: OpDeleteClient, ID: "x", Time: t0}); err == nil {
		t.Fatal("write acknowledged without a quorum")
	}
}

func TestRaftPortRefusesPeersWithoutValidCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 1)
	leader := c.WaitLeader()
	addr := leader.RaftAddr()

	// A certificate from another CA.
	other := filepath.Join(t.TempDir(), "other")
	if err := GenerateDevPKI(other, []string{"intruder"}); err != nil {
		t.Fatal(err)
	}
	intruder, err := LoadTLSConfig(filepath.Join(other, "ca.pem"), filepath.Join(other, "intruder.pem"), filepath.Join(other, "intruder-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// Trust the real server so that only the client side is wrong.
	real, _ := LoadTLSConfig(filepath.Join(c.PKI, "ca.pem"), filepath.Join(c.PKI, "node0.pem"), filepath.Join(c.PKI, "node0-key.pem"))
	intruder.RootCAs = real.RootCAs
	intruder.ServerName = "localhost"
	if err := handshake(addr, intruder); err == nil {
		t.Fatal("peer with a foreign certificate completed the handshake")
	}
	noCert := &tls.Config{RootCAs: real.RootCAs, ServerName: "localhost"}
	if err := handshake(addr, noCert); err == nil {
		t.Fatal("peer without a certificate completed the handshake")
	}
	// A valid cluster certificate gets through (the test can fail).
	real.ServerName = "localhost"
	if err := handshake(addr, real); err != nil {
		t.Fatalf("valid peer refused: %v", err)
	}
	// A foreign node cannot be dialled as a peer either: the server's
	// certificate must come from the cluster CA.
	stream := &tlsStreamLayer{client: intruder}
	if conn, err := stream.Dial("127.0.0.1:1", time.Second); err == nil {
		conn.Close()
		t.Fatal("dial to nowhere succeeded")
	}
}

func handshake(addr string, cfg *tls.Config) error {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	// TLS 1.3 reports a rejected client certificate on the first read; a
	// connection the server keeps open (waiting for a Raft RPC) times out.
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte{0}); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	var ne interface{ Timeout() bool }
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}
