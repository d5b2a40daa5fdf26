package raftstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
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
// in 1,024-entry batches, without fsync where the store allows it: bolt
// does, raft-wal does not), then times fsync'd appends of
// 64-entry batches (what raft writes under 64 concurrent writers) before
// and after truncating all but TrailingLogs of them — what raft does
// after each snapshot. A store whose appends get slower after the
// truncation is the drop in write throughput after the first snapshot.
//
//	go test -run '^$' -bench LogStoreAfterTruncation -benchtime 1x ./raftstore/
//
// Metrics: batches/s before and after, after/before, CPU per batch
// before and after, KiB written to disk per batch after (from
// /proc/self/io: the freelist rewrite shows here), and after the
// truncation bbolt's free pages or raft-wal's segment files (it drops
// only whole segments). On a shared disk the rates are noisy; CPU and
// bytes written per batch are not. One variant:
//
//	go test -run '^$' -bench 'LogStoreAfterTruncation/raft-wal$' -benchtime 1x ./raftstore/
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
		walVariant(),
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
	// Large batches keep the fill short (raft-wal fsyncs each one).
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
	// raft's DeleteRange after a snapshot: from the first index to the
	// one TrailingLogs (10,240) before the last.
	kept := next - 10240
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	if err := s.DeleteRange(1, kept-1); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "truncate-ms")
	runtime.ReadMemStats(&m1)
	// What the truncation allocates (bbolt holds every page it changes in
	// memory until the commit) and what of the log file the process maps
	// afterwards: both show in a node's RSS after a snapshot.
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(1<<20), "truncate-alloc-MiB")
	b.ReportMetric(float64(rssFileKiB())/1024, "rss-file-MiB")
	w0, c2 := writtenBytes(), processCPU()
	end, after := appendBatches(b, s, next, batches, 64)
	w1, c3 := writtenBytes(), processCPU()
	checkLogRange(b, s, kept, end-1)
	b.ReportMetric(float64(c1-c0)/float64(time.Microsecond)/float64(batches), "cpu-µs/batch-before")
	b.ReportMetric(float64(c3-c2)/float64(time.Microsecond)/float64(batches), "cpu-µs/batch-after")
	b.ReportMetric(float64(batches)/before.Seconds(), "batches/s-before")
	b.ReportMetric(float64(batches)/after.Seconds(), "batches/s-after")
	b.ReportMetric(before.Seconds()/after.Seconds(), "after/before")
	b.ReportMetric(float64(w1-w0)/1024/float64(batches), "KiB-written/batch-after")
	reportLogLeftover(b, s, dir)
}

// reportLogLeftover reports what a truncation left in the log store: bbolt's
// free pages, or the segment files of a raft-wal log in walDir (it drops
// only whole segments).
func reportLogLeftover(b *testing.B, s raft.LogStore, walDir string) {
	if bs, ok := s.(*raftboltdb.BoltStore); ok {
		st := bs.Stats()
		b.ReportMetric(float64(st.FreePageN+st.PendingPageN), "free-pages")
		return
	}
	b.ReportMetric(float64(walSegmentFiles(walDir)), "segment-files")
}

// checkLogRange checks that the store holds first..last after the
// truncation and the appends that followed it, and reads both ends back.
func checkLogRange(b *testing.B, s raft.LogStore, first, last uint64) {
	gotFirst, err := s.FirstIndex()
	if err != nil {
		b.Fatal(err)
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		b.Fatal(err)
	}
	if gotFirst != first || gotLast != last {
		b.Fatalf("log holds %d..%d, want %d..%d", gotFirst, gotLast, first, last)
	}
	for _, i := range []uint64{first, last} {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil || l.Index != i || !bytes.Equal(l.Data, benchEntry(i).Data) {
			b.Fatalf("entry %d: index %d, err %v", i, l.Index, err)
		}
	}
	// raft never reads below FirstIndex. raft-wal still returns such an
	// entry while the segment holding it lives (it moves only the first
	// index), bolt does not.
	var l raft.Log
	switch err := s.GetLog(first-1, &l); {
	case err == nil:
		b.Logf("entry %d, below the first index, is still readable", first-1)
	case !errors.Is(err, raft.ErrLogNotFound):
		b.Fatalf("entry %d: %v", first-1, err)
	}
}

// rssFileKiB is the process's file-backed resident memory (RssFile in
// /proc/self/status: mapped files such as raft.db), 0 where unknown.
func rssFileKiB() int {
	st, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
