package raftstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// BenchmarkLogStoreAfterTruncation isolates the log store from the FSM:
// it fills a real log with BENCH_LOG_ENTRIES entries (default 300,000,
// written without fsync to save time), then times fsync'd appends of
// 64-entry batches (what raft writes under 64 concurrent writers) before
// and after truncating all but TrailingLogs of them — what raft does
// after each snapshot. A store whose appends get slower after the
// truncation is the drop in write throughput after the first snapshot.
//
//	go test -run '^$' -bench LogStoreAfterTruncation -benchtime 1x ./raftstore/
//
// Metrics: batches/s before and after, after/before, CPU per batch
// before and after, KiB written to disk per batch after (from
// /proc/self/io: the freelist rewrite shows here), and bbolt's free pages
// after the truncation. On a shared disk the rates are noisy; CPU and
// bytes written per batch are not.
func BenchmarkLogStoreAfterTruncation(b *testing.B) {
	for _, v := range logStoreVariants() {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				runLogStoreTruncation(b, v)
			}
		})
	}
}

type logStoreVariant struct {
	name string
	// open opens (or reopens) the store in dir; fill opens it for the
	// fill phase (no fsync where the store allows it).
	open func(dir string, fill bool) (raft.LogStore, func() error, error)
}

func boltVariant(name string, noFreelistSync bool, ft bbolt.FreelistType) logStoreVariant {
	return logStoreVariant{name: name, open: func(dir string, fill bool) (raft.LogStore, func() error, error) {
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFileName), NoSync: fill,
			BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: noFreelistSync, FreelistType: ft}})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}}
}

func logStoreVariants() []logStoreVariant {
	return []logStoreVariant{
		boltVariant("bolt-array-freelist-sync", false, bbolt.FreelistArrayType),
		boltVariant("bolt-array-no-freelist-sync", true, bbolt.FreelistArrayType),
		boltVariant("bolt-map-freelist-sync", false, bbolt.FreelistMapType),
		boltVariant("bolt-map-no-freelist-sync", true, bbolt.FreelistMapType),
	}
}

// benchEntry is a log entry of a createClient command's size.
func benchEntry(idx uint64) *raft.Log {
	data := []byte(`{"op":"createClient","time":"2026-01-01T00:00:00Z","client":{"clientId":"project/team-1/worker-` +
		strconv.FormatUint(idx, 10) + `","description":"a worker client","scopes":["assume:worker-pool:x","queue:claim-work:x"],` +
		`"sealedToken":"` + strings.Repeat("A", 120) + `"}}`)
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
}

func appendBatches(b *testing.B, s raft.LogStore, next uint64, batches, size int) (uint64, time.Duration) {
	start := time.Now()
	for range batches {
		logs := make([]*raft.Log, size)
		for i := range logs {
			logs[i] = benchEntry(next)
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	return next, time.Since(start)
}

// writtenBytes is this process's write_bytes from /proc/self/io: what
// reached the block layer.
func writtenBytes() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("write_bytes: ")); ok {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			return n
		}
	}
	return 0
}

func runLogStoreTruncation(b *testing.B, v logStoreVariant) {
	entries := uint64(envInt("BENCH_LOG_ENTRIES", 300000))
	batches := envInt("BENCH_LOG_BATCHES", 200)
	dir := b.TempDir()
	s, closeFn, err := v.open(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	// Large batches keep the fill short.
	next, _ := appendBatches(b, s, 1, int(entries/1024), 1024)
	if err := closeFn(); err != nil {
		b.Fatal(err)
	}
	if s, closeFn, err = v.open(dir, false); err != nil {
		b.Fatal(err)
	}
	defer func() { closeFn() }()
	c0 := processCPU()
	next, before := appendBatches(b, s, next, batches, 64)
	c1 := processCPU()
	if err := s.DeleteRange(1, next-1-10240); err != nil {
		b.Fatal(err)
	}
	w0, c2 := writtenBytes(), processCPU()
	_, after := appendBatches(b, s, next, batches, 64)
	w1, c3 := writtenBytes(), processCPU()
	b.ReportMetric(float64(c1-c0)/float64(time.Microsecond)/float64(batches), "cpu-µs/batch-before")
	b.ReportMetric(float64(c3-c2)/float64(time.Microsecond)/float64(batches), "cpu-µs/batch-after")
	b.ReportMetric(float64(batches)/before.Seconds(), "batches/s-before")
	b.ReportMetric(float64(batches)/after.Seconds(), "batches/s-after")
	b.ReportMetric(before.Seconds()/after.Seconds(), "after/before")
	b.ReportMetric(float64(w1-w0)/1024/float64(batches), "KiB-written/batch-after")
	if bs, ok := s.(*raftboltdb.BoltStore); ok {
		st := bs.Stats()
		b.ReportMetric(float64(st.FreePageN+st.PendingPageN), "free-pages")
	}
}
