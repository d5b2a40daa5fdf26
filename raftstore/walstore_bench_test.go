package raftstore

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// raft-wal (walstore.go), the log store, measured against raft.db (the
// log store of earlier releases) in both log store benchmarks.

func walVariant() logStoreVariant {
	return logStoreVariant{name: "raft-wal", open: func(dir string, _ bool) (raft.LogStore, func() error, error) {
		w, err := openWAL(dir, hclog.NewNullLogger())
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

// BenchmarkMigrateToWAL times the one-way copy of an earlier release's
// raft.db into wal/ at start (walstore.go) for BENCH_MIGRATE_ENTRIES
// entries (default 100,000) of a createClient's size:
// `go test -run '^$' -bench MigrateToWAL -benchtime 1x ./raftstore/`.
func BenchmarkMigrateToWAL(b *testing.B) {
	n := uint64(envInt("BENCH_MIGRATE_ENTRIES", 100000))
	data := []byte(`{"op":"create-client","v":1,"client":{"clientId":"bench/` + strings.Repeat("x", 24) +
		`","description":"` + strings.Repeat("d", 80) + `","scopes":["assume:project:bench","queue:create-task:*"],` +
		`"sealedToken":"` + strings.Repeat("s", 96) + `"}}`)
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFileName), NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]*raft.Log, 0, 1024)
		for i := uint64(1); i <= n; i++ {
			batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data})
			if len(batch) == cap(batch) || i == n {
				if err := bolt.StoreLogs(batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := bolt.SetUint64([]byte("CurrentTerm"), 1); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := migrateToWAL(dir, bolt, hclog.NewNullLogger()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds()*1e5/float64(n), "s/100k-entries")
		b.StopTimer()
		bolt.Close()
	}
}
