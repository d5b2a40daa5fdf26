package raftstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
)

// The log and stable store is github.com/hashicorp/raft-wal in DataDir/wal:
// append-only segment files (64 MiB each) and a small bbolt file of
// metadata (wal-meta.db: the segment list and raft's term and vote). An
// append writes the entries once and fsyncs them; a head truncation (raft's
// DeleteRange after a snapshot) moves the first index in the metadata and
// deletes only the segments wholly below it. Earlier releases kept both in
// raft.db (hashicorp/raft-boltdb); such a directory is migrated once, at
// start (migrateToWAL). DESIGN.md "Log store" has the figures behind it.
const (
	walDirName       = "wal"
	walMigratingName = "wal.migrating" // the copy being written; removed and redone if a start finds it
	boltMigratedName = "raft.db.migrated"
)

// openWAL opens (or, in an empty directory, creates) a raft-wal log in dir.
// raft-wal trusts its metadata completely (a missing wal-meta.db makes it
// start empty and delete the segments it does not list), so checkWALDir
// runs first wherever the directory may hold state.
func openWAL(dir string, logger hclog.Logger) (w *wal.WAL, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	meta := &metadb.BoltMetaDB{}
	defer func() {
		// bbolt panics on some damaged pages instead of returning an error.
		if r := recover(); r != nil {
			meta.Close()
			w, err = nil, fmt.Errorf("raft-wal: %v", r)
		}
	}()
	// WAL.Close closes meta too (v0.4.1 on; v0.4.0 left its flock held).
	w, err = wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(logger))
	if err != nil {
		meta.Close()
		return nil, err
	}
	return w, nil
}

// migrateToWAL copies raft.db's log and raft's stable keys (term and vote)
// into DataDir/wal and then moves raft.db aside. The copy is written under
// another name and renamed only when complete and synced, so a crash at any
// point leaves either the untouched raft.db (the next start begins again)
// or a complete wal/ (the next start only moves raft.db aside).
func migrateToWAL(dir string, bolt *raftboltdb.BoltStore, logger hclog.Logger) error {
	start := time.Now()
	tmp := filepath.Join(dir, walMigratingName)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	w, err := openWAL(tmp, logger)
	if err != nil {
		return fmt.Errorf("raftstore: migrating raft.db to %s: %w", walDirName, err)
	}
	if err := copyRaftState(w, bolt); err != nil {
		w.Close()
		return fmt.Errorf("raftstore: migrating raft.db to %s: %w", walDirName, err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDirName)); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	first, _ := bolt.FirstIndex()
	last, _ := bolt.LastIndex()
	logger.Info("migrated the log from raft.db to raft-wal", "entries", entriesBetween(first, last),
		"took", time.Since(start).Round(time.Millisecond), "kept", boltMigratedName)
	return moveBoltAside(dir)
}

// copyRaftState copies the stable keys raft writes (a key raft has not
// written yet, such as the vote of a node that never voted, stays unset)
// and every log entry. Not raft-wal's migrate.CopyStable: it fails on a
// key raft-boltdb has never been given (ErrKeyNotFound).
func copyRaftState(dst *wal.WAL, src *raftboltdb.BoltStore) error {
	for _, k := range []string{"CurrentTerm", "LastVoteTerm"} {
		v, err := src.GetUint64([]byte(k))
		if errors.Is(err, raftboltdb.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if err := dst.SetUint64([]byte(k), v); err != nil {
			return err
		}
	}
	if v, err := src.Get([]byte("LastVoteCand")); err == nil {
		if err := dst.Set([]byte("LastVoteCand"), v); err != nil {
			return err
		}
	} else if !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return err
	}
	if last, err := src.LastIndex(); err != nil || last == 0 {
		return err // an empty log: nothing to copy
	}
	return migrate.CopyLogs(context.Background(), dst, src, 1<<20, nil)
}

func entriesBetween(first, last uint64) uint64 {
	if first == 0 {
		return 0
	}
	return last - first + 1
}

// moveBoltAside renames raft.db to raft.db.migrated, for the operator to
// delete: nothing reads it again, and an earlier release refuses the
// directory without raft.db (its log and vote record are gone, it says)
// rather than start from an empty log.
func moveBoltAside(dir string) error {
	if err := os.Rename(filepath.Join(dir, boltFileName), filepath.Join(dir, boltMigratedName)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, so that renames and new files in it survive
// a power cut.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
