package raftstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestCluster is a reusable in-process cluster harness: n real Stores with
// real bolt files and snapshot directories under t.TempDir(), talking Raft
// over mutual TLS on loopback. Used by this package's multi-node tests and
// by other packages' tests that need a real store.
type TestCluster struct {
	T       testing.TB
	Nodes   []*Store
	Configs []Config
	Keyring *Keyring
	PKI     string
}

// FastTimeouts are raft timeouts suited to loopback tests.
func FastTimeouts(c *Config) {
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// TestKeyring returns a keyring with one random key.
func TestKeyring(t testing.TB) *Keyring {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring(1, map[uint32][]byte{1: key})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewTestCluster starts n nodes; node 0 bootstraps and the others join.
// It waits for a leader and registers cleanup.
func NewTestCluster(t testing.TB, n int) *TestCluster {
	t.Helper()
	dir := t.TempDir()
	c := &TestCluster{T: t, Keyring: TestKeyring(t), PKI: filepath.Join(dir, "pki")}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node%d", i)
	}
	if err := GenerateDevPKI(c.PKI, names); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		tlsCfg, err := LoadTLSConfig(filepath.Join(c.PKI, "ca.pem"), filepath.Join(c.PKI, name+".pem"), filepath.Join(c.PKI, name+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.NodeID, cfg.DataDir, cfg.TLS, cfg.Keyring = name, filepath.Join(dir, name), tlsCfg, c.Keyring
		cfg.Bootstrap = i == 0
		// Raft's warnings on stderr, as before it logged through
		// Config.Logger; its elections at info would drown test output.
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		FastTimeouts(&cfg)
		c.Configs = append(c.Configs, cfg)
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Keep the port the node got, so a restart comes back at the same
		// address its peers know.
		c.Configs[i].RaftBind = s.RaftAddr()
		c.Configs[i].Bootstrap = false
		c.Nodes = append(c.Nodes, s)
		if i == 0 {
			c.WaitLeader()
		} else if err := c.join(name, s.RaftAddr()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, s := range c.Nodes {
			if s != nil {
				s.Close()
			}
		}
	})
	return c
}

// join adds a node through whichever node leads, retrying: on a busy
// machine the leader can step down (lease timeout) while a join is under
// way.
func (c *TestCluster) join(name, addr string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = c.WaitLeader().Join(context.Background(), name, addr); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Leader returns the current leader among running nodes, or nil.
func (c *TestCluster) Leader() *Store {
	for _, s := range c.Nodes {
		if s != nil && s.IsLeader() {
			return s
		}
	}
	return nil
}

// WaitLeader waits up to 10 s for a leader.
func (c *TestCluster) WaitLeader() *Store {
	c.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.T.Fatal("no leader elected within 10s")
	return nil
}

// Stop closes node i (it keeps its data directory).
func (c *TestCluster) Stop(i int) {
	if c.Nodes[i] != nil {
		c.Nodes[i].Close()
		c.Nodes[i] = nil
	}
}

// Restart reopens node i from its data directory.
func (c *TestCluster) Restart(i int) *Store {
	c.T.Helper()
	s, err := Open(c.Configs[i])
	if err != nil {
		c.T.Fatal(err)
	}
	c.Nodes[i] = s
	return s
}

// AppendTestLogEntry writes one command entry after the last one in the
// log of a stopped node whose Config.DataDir is dataDir, as a newer leader
// would have replicated it: how tests feed a node an entry of a format it
// does not know.
func AppendTestLogEntry(t testing.TB, dataDir, data string) {
	t.Helper()
	var ls logStore
	var err error
	if isDir(filepath.Join(dataDir, walDirName)) {
		ls, err = openWAL(filepath.Join(dataDir, walDirName), hclog.NewNullLogger())
	} else {
		ls, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, boltFileName)})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	last, err := ls.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := ls.GetLog(last, &l); err != nil {
		t.Fatal(err)
	}
	if err := ls.StoreLog(&raft.Log{Index: last + 1, Term: l.Term, Type: raft.LogCommand, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
}
