package raftstore

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// github.com/hashicorp/raft-wal, measured against raft.db in both log
// store benchmarks. It is a log of append-only segment files (64 MiB
// each) with a small bbolt file of metadata beside them: an append
// writes the entries once and fsyncs them, and a head truncation (what
// raft's DeleteRange after a snapshot is) moves the first index in the
// metadata and deletes only the segments that lie wholly below it, so it
// leaves no free pages behind for later appends to account for.

// walStore is a raft-wal log whose Close closes all of it: WAL.Close
// (v0.4.0) leaves the metadata's bbolt file open, and with it bbolt's
// flock, so that opening the directory again in the same process (the
// benchmark's reopen after the fill) waited on that lock forever.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (w walStore) Close() error { return errors.Join(w.WAL.Close(), w.meta.Close()) }

// openWAL opens (or creates) a raft-wal log in dir. It fsyncs every
// StoreLogs call; there is no way to skip that for a fill.
func openWAL(dir string) (walStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return walStore{}, err
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta),
		wal.WithLogger(hclog.New(&hclog.LoggerOptions{Name: "wal", Level: hclog.Warn, Output: os.Stderr})))
	if err != nil {
		meta.Close()
		return walStore{}, err
	}
	return walStore{w, meta}, nil
}

func walVariant() logStoreVariant {
	return logStoreVariant{name: "raft-wal", open: func(dir string, _ bool) (raft.LogStore, func() error, error) {
		w, err := openWAL(dir)
		if err != nil {
			return nil, nil, err
		}
		return w, w.Close, nil
	}}
}

// walSegmentFiles counts the segment files in dir: how many a head
// truncation left.
func walSegmentFiles(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	return len(m)
}
