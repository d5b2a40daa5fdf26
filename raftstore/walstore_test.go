package raftstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// raftKeys reads the stable keys raft keeps (term and vote) and the log's
// bounds from a stopped node's store.
type raftKeys struct {
	term, voteTerm uint64
	voteCand       string
	first, last    uint64
}

func readRaftKeys(t *testing.T, ls logStore) raftKeys {
	t.Helper()
	var k raftKeys
	var err error
	if k.term, err = ls.GetUint64([]byte("CurrentTerm")); err != nil {
		t.Fatal(err)
	}
	if k.voteTerm, err = ls.GetUint64([]byte("LastVoteTerm")); err != nil {
		t.Fatal(err)
	}
	cand, err := ls.Get([]byte("LastVoteCand"))
	if err != nil {
		t.Fatal(err)
	}
	k.voteCand = string(cand)
	if k.first, err = ls.FirstIndex(); err != nil {
		t.Fatal(err)
	}
	if k.last, err = ls.LastIndex(); err != nil {
		t.Fatal(err)
	}
	return k
}

func boltKeys(t *testing.T, path string) raftKeys {
	t.Helper()
	b, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return readRaftKeys(t, b)
}

func walKeys(t *testing.T, dataDir string) raftKeys {
	t.Helper()
	w, err := openWAL(filepath.Join(dataDir, walDirName), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return readRaftKeys(t, w)
}

// reopenHolds opens cfg's directory, checks that it holds both clients of
// preparedDir and those in also, writes client c-after-<len(also)> and
// closes it.
func reopenHolds(t *testing.T, cfg Config, also ...string) {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	waitLeader(t, s)
	if err := s.LinearizableRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range append([]string{"a-in-snap", "b-in-log"}, also...) {
		if _, ok, err := s.AccessToken(id); !ok || err != nil {
			t.Fatalf("client %s after reopen: %v %v", id, ok, err)
		}
	}
	createClient(t, s, fmt.Sprintf("c-after-%d", len(also)), "tok-0123456789abcdefghijkl")
}

// TestMigrateFromBolt: an earlier release's directory (the log in raft.db)
// is migrated at start: the state, raft's term and vote and the log's
// bounds carry over, raft.db is kept aside, and the directory goes on
// working; the bolt log store then refuses it, as an earlier release does.
func TestMigrateFromBolt(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		cfg := preparedBoltDir(t, snapshot)
		before := boltKeys(t, filepath.Join(cfg.DataDir, boltFileName))
		if before.term == 0 || before.voteCand == "" || before.last == 0 {
			t.Fatalf("prepared raft.db has no term, vote or log: %+v", before)
		}
		s, err := Open(cfg)
		if err != nil {
			t.Fatalf("snapshot %v: Open: %v", snapshot, err)
		}
		s.Close()
		if exists(filepath.Join(cfg.DataDir, boltFileName)) || !exists(filepath.Join(cfg.DataDir, boltMigratedName)) {
			t.Fatalf("raft.db was not moved aside to %s", boltMigratedName)
		}
		if exists(filepath.Join(cfg.DataDir, walMigratingName)) {
			t.Fatalf("%s left behind", walMigratingName)
		}
		after := walKeys(t, cfg.DataDir)
		// The start itself may have run an election (a higher term) and
		// appended to the log; what was there must still be.
		if after.term < before.term || after.first != before.first || after.last < before.last {
			t.Errorf("snapshot %v: raft.db %+v, wal after a start %+v", snapshot, before, after)
		}
		reopenHolds(t, cfg)
		reopenHolds(t, cfg, "c-after-0")

		legacy := cfg
		legacy.boltLog = true
		if s, err := Open(legacy); err == nil {
			s.Close()
			t.Fatal("the bolt log store opened a migrated directory")
		}
	}
}

// TestMigrateCopiesExactly: the copy alone (no start after it) holds
// raft.db's term, vote and log bounds as they were.
func TestMigrateCopiesExactly(t *testing.T) {
	cfg := preparedBoltDir(t, true)
	path := filepath.Join(cfg.DataDir, boltFileName)
	before := boltKeys(t, path)
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateToWAL(cfg.DataDir, bolt, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	bolt.Close()
	if after := walKeys(t, cfg.DataDir); after != before {
		t.Errorf("raft.db %+v, wal %+v", before, after)
	}
}

// TestMigrateInterrupted: a start that finds what a crash in the middle of
// a migration leaves finishes it without losing anything: a partial copy
// (wal.migrating) is thrown away and the copy redone; a complete wal/ with
// raft.db still beside it (the crash came before raft.db was moved aside)
// is used, and raft.db moved aside then.
func TestMigrateInterrupted(t *testing.T) {
	base := preparedBoltDir(t, true)
	cases := []struct {
		name  string
		crash func(t *testing.T, dir string)
	}{
		{"partial copy", func(t *testing.T, dir string) {
			tmp := filepath.Join(dir, walMigratingName)
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmp, "wal-meta.db"), []byte("half"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"raft.db not yet moved aside", func(t *testing.T, dir string) {
			bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFileName)})
			if err != nil {
				t.Fatal(err)
			}
			if err := migrateToWAL(dir, bolt, hclog.NewNullLogger()); err != nil {
				t.Fatal(err)
			}
			bolt.Close()
			if err := os.Rename(filepath.Join(dir, boltMigratedName), filepath.Join(dir, boltFileName)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.DataDir = copyDir(t, base.DataDir)
			tc.crash(t, cfg.DataDir)
			reopenHolds(t, cfg)
			if exists(filepath.Join(cfg.DataDir, boltFileName)) || exists(filepath.Join(cfg.DataDir, walMigratingName)) {
				t.Error("raft.db or the partial copy is still there")
			}
			reopenHolds(t, cfg, "c-after-0")
		})
	}
}

// TestNewDirectoryIsWAL: a new node writes raft-wal and no raft.db.
func TestNewDirectoryIsWAL(t *testing.T) {
	s, cfg := singleNode(t)
	createClient(t, s, "x", "tok-0123456789abcdefghijkl")
	s.Close()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, boltFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a new directory has raft.db (%v)", err)
	}
	if k := walKeys(t, cfg.DataDir); k.last == 0 || k.term == 0 {
		t.Fatalf("wal holds no log or term: %+v", k)
	}
}

// TestWALReopensAfterTailTruncation: a follower that drops a conflicting
// suffix of its log (raft's DeleteRange at the tail) can still open its
// log afterwards. raft-wal v0.4.0 marked the segment sealed without
// writing its index, so the restarted node refused its own log ("sealed
// segment has no index block", hashicorp/raft-wal#31, fixed in v0.4.1);
// the reliability suite's rolling restart met it.
func TestWALReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	w, err := openWAL(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		if err := w.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, err = openWAL(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, i := range []uint64{1, 8} {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d after the tail truncation and a reopen: %v", i, err)
		}
	}
	if last, _ := w.LastIndex(); last != 8 {
		t.Fatalf("last index %d, want 8", last)
	}
}
