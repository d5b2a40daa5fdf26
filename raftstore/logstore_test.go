package raftstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// boltFreelistPage is the freelist page raft.db's current meta page
// names (boltNoFreelist: the freelist is not persisted).
func boltFreelistPage(t *testing.T, dir string) uint64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, boltFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := readBoltMeta(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return m.freelist
}

// TestFreelistNotPersisted: by default raft.db's freelist is not written
// on commit — the rewrite of a freelist grown by log truncation after a
// snapshot is what halved the write rate (DESIGN.md "Log store").
func TestFreelistNotPersisted(t *testing.T) {
	if c := DefaultConfig(); c.FreelistSync {
		t.Fatal("DefaultConfig().FreelistSync is on")
	}
	cfg := Config{NodeID: "n", DataDir: t.TempDir(), AllowInsecure: true}
	if err := cfg.fill(); err != nil {
		t.Fatal(err)
	}
	if cfg.boltFreelist != bbolt.FreelistMapType {
		t.Fatalf("bbolt freelist type %q, want the hashmap", cfg.boltFreelist)
	}
	s, cfg := singleNode(t)
	for i := range 20 {
		createClient(t, s, fmt.Sprintf("c/%d", i), "tok-0123456789abcdefghij")
	}
	s.Close()
	if p := boltFreelistPage(t, cfg.DataDir); p != boltNoFreelist {
		t.Fatalf("raft.db persists its freelist (page %d)", p)
	}
}

// TestFreelistSyncSwitchKeepsState: a data directory written with the
// freelist persisted (every directory of earlier releases) opens with the
// default, which stops persisting it, and the other way round (an earlier
// release, or FreelistSync, on a directory written by this one): nothing
// is lost either way and writes go on.
func TestFreelistSyncSwitchKeepsState(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, then bool // FreelistSync of the first and the second run
	}{
		{"persisted-then-not", true, false},
		{"not-then-persisted", false, true},
		{"persisted-twice", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.NodeID, cfg.DataDir, cfg.AllowInsecure, cfg.Bootstrap, cfg.Keyring = "solo", t.TempDir(), true, true, TestKeyring(t)
			FastTimeouts(&cfg)
			runs := []bool{tc.first, tc.then, tc.first}
			for run, sync := range runs {
				cfg.FreelistSync = sync
				s, err := Open(cfg)
				if err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
				waitLeader(t, s)
				// The log is applied once this leader commits in its term.
				if err := s.LinearizableRead(context.Background()); err != nil {
					s.Close()
					t.Fatal(err)
				}
				if got := s.ClientCount(); got != run*10 {
					s.Close()
					t.Fatalf("run %d: %d clients, want %d", run, got, run*10)
				}
				for i := range 10 {
					createClient(t, s, fmt.Sprintf("c/%d/%d", run, i), "tok-0123456789abcdefghij")
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if p := boltFreelistPage(t, cfg.DataDir); (p == boltNoFreelist) == sync {
					t.Fatalf("run %d (FreelistSync %v): meta names freelist page %d", run, sync, p)
				}
			}
		})
	}
}
