package raftstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// preparedDir makes a stopped node's data directory: client "a-in-snap" is in
// a snapshot (when snapshot is set), client "b-in-log" only in the log after it.
func preparedDir(t *testing.T, snapshot bool) Config {
	t.Helper()
	return preparedDirWith(t, snapshot, func(*Config) {})
}

// preparedBoltDir is preparedDir as an earlier release left it: the log in
// raft.db. Opened with the defaults, it is migrated to raft-wal.
func preparedBoltDir(t *testing.T, snapshot bool) Config {
	t.Helper()
	cfg := preparedDirWith(t, snapshot, func(c *Config) { c.boltLog = true })
	cfg.boltLog = false
	return cfg
}

func preparedDirWith(t *testing.T, snapshot bool, set func(*Config)) Config {
	t.Helper()
	s, cfg := singleNodeWith(t, set)
	createClient(t, s, "a-in-snap", "tok-0123456789abcdefghijkl")
	if snapshot {
		if err := s.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	createClient(t, s, "b-in-log", "tok-0123456789abcdefghijkl")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Bootstrap = false
	return cfg
}

// copyDir copies a data directory so that each case breaks its own.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// dirDigest fingerprints every file but the lock file (whose pid changes).
func dirDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != LockFileName {
			b, _ := os.ReadFile(p)
			out[p] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		return nil
	})
	return out
}

func newestSnapshotDir(t *testing.T, dir string) string {
	t.Helper()
	names, err := snapshotDirs(dir)
	if err != nil || len(names) == 0 {
		t.Fatalf("no snapshot in %s: %v", dir, err)
	}
	return filepath.Join(dir, "snapshots", names[len(names)-1])
}

func truncateTo(t *testing.T, path string, size func(int64) int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size(st.Size())); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesBrokenDataDir breaks a stopped node's directory in each
// way an operator has met, and checks that Open refuses it at once with
// the right sentinel and a message naming the file, and changes nothing.
func TestOpenRefusesBrokenDataDir(t *testing.T) {
	withSnap, logOnly, boltLogOnly := preparedDir(t, true), preparedDir(t, false), preparedBoltDir(t, false)
	walMeta := func(c *Config) string { return filepath.Join(c.DataDir, walDirName, "wal-meta.db") }
	garbage := []byte(strings.Repeat("not a database, just bytes\n", 2000))
	cases := []struct {
		name   string
		base   Config
		breakt func(t *testing.T, cfg *Config)
		want   error
		inMsg  []string
	}{
		{"other node id", withSnap, func(t *testing.T, c *Config) { c.NodeID = "intruder" }, ErrNodeIDMismatch,
			[]string{`belongs to node "solo"`, "--node-id solo"}},
		{"legacy dir, not in the stored configuration", withSnap, func(t *testing.T, c *Config) {
			os.Remove(filepath.Join(c.DataDir, NodeIDFileName))
			c.NodeID = "intruder"
		}, ErrNodeIDMismatch, []string{"Raft configuration lists solo"}},
		{"another keyring, token in the snapshot", withSnap, func(t *testing.T, c *Config) { c.Keyring = TestKeyring(t) },
			ErrKeyringMismatch, []string{"state.bin", "client a-in-snap", "--keyring"}},
		{"another keyring, token in the log", logOnly, func(t *testing.T, c *Config) { c.Keyring = TestKeyring(t) },
			ErrKeyringMismatch, []string{walDirName, "client a-in-snap", "--keyring"}},
		{"another keyring, token in raft.db", boltLogOnly, func(t *testing.T, c *Config) { c.Keyring = TestKeyring(t) },
			ErrKeyringMismatch, []string{"raft.db", "client a-in-snap", "--keyring"}},
		{"wal-meta.db missing", logOnly, func(t *testing.T, c *Config) { os.Remove(walMeta(c)) },
			ErrCorruptDataDir, []string{"wal-meta.db is missing", "snapshot restore"}},
		{"wal-meta.db garbage", logOnly, func(t *testing.T, c *Config) { os.WriteFile(walMeta(c), garbage, 0o600) },
			ErrCorruptDataDir, []string{"wal-meta.db", "not a bbolt file"}},
		{"wal-meta.db truncated to half", logOnly, func(t *testing.T, c *Config) {
			truncateTo(t, walMeta(c), func(n int64) int64 { return n / 2 })
		}, ErrCorruptDataDir, []string{"wal-meta.db", "truncated"}},
		{"wal directory missing", logOnly, func(t *testing.T, c *Config) { os.RemoveAll(filepath.Join(c.DataDir, walDirName)) },
			ErrCorruptDataDir, []string{"the log is missing"}},
		{"raft.db truncated to half", boltLogOnly, func(t *testing.T, c *Config) {
			truncateTo(t, filepath.Join(c.DataDir, "raft.db"), func(n int64) int64 { return n / 2 })
		}, ErrCorruptDataDir, []string{"raft.db", "truncated", "snapshot restore"}},
		{"raft.db truncated to its meta pages", boltLogOnly, func(t *testing.T, c *Config) {
			truncateTo(t, filepath.Join(c.DataDir, "raft.db"), func(int64) int64 { return int64(2 * os.Getpagesize()) })
		}, ErrCorruptDataDir, []string{"raft.db"}},
		{"raft.db cut inside a meta page", boltLogOnly, func(t *testing.T, c *Config) {
			truncateTo(t, filepath.Join(c.DataDir, "raft.db"), func(int64) int64 { return 40 })
		}, ErrCorruptDataDir, []string{"raft.db"}},
		{"raft.db empty", boltLogOnly, func(t *testing.T, c *Config) {
			truncateTo(t, filepath.Join(c.DataDir, "raft.db"), func(int64) int64 { return 0 })
		}, ErrCorruptDataDir, []string{"raft.db is empty"}},
		{"raft.db missing", boltLogOnly, func(t *testing.T, c *Config) { os.Remove(filepath.Join(c.DataDir, "raft.db")) },
			ErrCorruptDataDir, []string{"the log is missing"}},
		{"raft.db garbage", boltLogOnly, func(t *testing.T, c *Config) {
			os.WriteFile(filepath.Join(c.DataDir, "raft.db"), garbage, 0o600)
		}, ErrCorruptDataDir, []string{"not a bbolt file"}},
		{"snapshot truncated", withSnap, func(t *testing.T, c *Config) {
			truncateTo(t, filepath.Join(newestSnapshotDir(t, c.DataDir), "state.bin"), func(n int64) int64 { return n / 2 })
		}, ErrCorruptDataDir, []string{"state.bin", "snapshot"}},
		{"snapshot garbage", withSnap, func(t *testing.T, c *Config) {
			os.WriteFile(filepath.Join(newestSnapshotDir(t, c.DataDir), "state.bin"), garbage, 0o600)
		}, ErrCorruptDataDir, []string{"state.bin"}},
		{"snapshot metadata garbage", withSnap, func(t *testing.T, c *Config) {
			os.WriteFile(filepath.Join(newestSnapshotDir(t, c.DataDir), "meta.json"), []byte("{garbage"), 0o600)
		}, ErrCorruptDataDir, []string{"meta.json"}},
		{"node-id file empty", withSnap, func(t *testing.T, c *Config) {
			os.WriteFile(filepath.Join(c.DataDir, NodeIDFileName), nil, 0o600)
		}, ErrCorruptDataDir, []string{NodeIDFileName}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.base
			cfg.DataDir = copyDir(t, tc.base.DataDir)
			tc.breakt(t, &cfg)
			before := dirDigest(t, cfg.DataDir)
			start := time.Now()
			s, err := Open(cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted the broken directory")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var de *DataDirError
			if !errors.As(err, &de) || strings.Contains(err.Error(), "\n") {
				t.Errorf("not a one-line DataDirError: %q", err)
			}
			for _, w := range tc.inMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q: %s", w, err)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusal took %v", d)
			}
			if after := dirDigest(t, cfg.DataDir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the refused directory changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	// The unbroken directories still open and hold both clients.
	for _, base := range []Config{withSnap, logOnly, boltLogOnly} {
		cfg := base
		cfg.DataDir = copyDir(t, base.DataDir)
		s, err := Open(cfg)
		if err != nil {
			t.Fatalf("intact directory refused: %v", err)
		}
		waitLeader(t, s)
		if err := s.LinearizableRead(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.AccessToken("b-in-log"); !ok || err != nil {
			t.Errorf("in-log after reopen: %v %v", ok, err)
		}
		s.Close()
	}
}

// TestLockDataDir: a second opener is refused at once with the holder's
// pid; the lock is released by Close.
func TestLockDataDir(t *testing.T) {
	s, cfg := singleNode(t)
	start := time.Now()
	_, err := Open(cfg)
	if !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("second Open: %v, want ErrDataDirLocked", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("message lacks the holder's pid: %s", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v (bbolt's lock timeout?)", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

// TestHasState: fresh and empty directories have none; a used one has.
func TestHasState(t *testing.T) {
	for name, dir := range map[string]string{"absent": filepath.Join(t.TempDir(), "x"), "empty": t.TempDir()} {
		if has, err := HasState(dir); has || err != nil {
			t.Errorf("%s: HasState = %v, %v", name, has, err)
		}
	}
	cfg := preparedDir(t, false)
	if has, err := HasState(cfg.DataDir); !has || err != nil {
		t.Errorf("used directory: HasState = %v, %v", has, err)
	}
}

// FuzzCheckBoltFile: the raft.db check never panics, and whatever it
// accepts is read (log replay included) without a panic escaping.
func FuzzCheckBoltFile(f *testing.F) {
	// The seed is a real log file, written by raft-boltdb directly (no
	// raft node in every fuzz worker).
	seed := filepath.Join(f.TempDir(), "raft.db")
	b, err := raftboltdb.New(raftboltdb.Options{Path: seed})
	if err != nil {
		f.Fatal(err)
	}
	for i := uint64(1); i <= 50; i++ {
		if err := b.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(`{"op":"delete-role","id":"x"}`)}); err != nil {
			f.Fatal(err)
		}
	}
	b.Close()
	real, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(real[:len(real)/2])
	f.Add(real[:3*os.Getpagesize()])
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "raft.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if checkBoltFile(path, dir, true) != nil {
			return
		}
		// Read-only, as the start-up check reads it (a read-write open
		// fsyncs, which makes fuzzing crawl); any panic fails the target.
		cfg := Config{NodeID: "x", DataDir: dir, SnapshotRetain: 1}
		_ = checkExistingState(cfg, "x", nil)
	})
}
