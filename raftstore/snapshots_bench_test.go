package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// BenchmarkApplyThroughSnapshots writes createClient commands with 64
// writers into a real single-node store (real bolt file, fsync'd) while
// raft snapshots and truncates the log every BENCH_SNAPSHOT_EVERY entries
// (default 40,000; SnapshotThreshold, checked every 20ms), and reports the
// write rate of each interval between two snapshots: "flat" means the
// intervals after the first snapshot run as fast as the one before it.
// It runs until BENCH_SNAPSHOTS (default 5) snapshots after the first
// have completed; bolt-snapshot-x2 snapshots every BENCH_SNAPSHOT_EVERY/2
// entries and counts 2×(BENCH_SNAPSHOTS+1)−1 of them, so that every
// variant writes about as much (the state, and so each snapshot, grows
// with every write). BENCH_TRAILING_LOGS sets TrailingLogs, except in
// bolt-trailing-1024. Run it once per variant:
//
//	go test -run '^$' -bench ApplyThroughSnapshots -benchtime 1x ./raftstore/
//
// Metrics: w/s-before (interval 0), w/s-after-min and w/s-after-med (the
// intervals after the first snapshot; the minimum of bolt-snapshot-x2's
// twice as many intervals is the more pessimistic), after/before (min
// over before), cpu-µs/w-before and cpu-µs/w-after (process CPU per
// write, load generation included), free-pages (bbolt's freelist at the
// end) or, for raft-wal, segment-files.
func BenchmarkApplyThroughSnapshots(b *testing.B) {
	for _, v := range snapshotBenchVariants() {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				runThroughSnapshots(b, v)
			}
		})
	}
}

type snapshotBenchVariant struct {
	name string
	set  func(*Config)
	// snapshotsX snapshots this many times as often as
	// BENCH_SNAPSHOT_EVERY says (0: as it says).
	snapshotsX int
	// Controls that tell the snapshots' cost from the state's growth:
	// noSnapshots never snapshots and cuts the intervals every
	// BENCH_SNAPSHOT_EVERY writes instead; updates writes update-client
	// over a fixed set of clients (created before the timing starts),
	// so that only the audit log grows.
	noSnapshots, updates bool
}

func snapshotBenchVariants() []snapshotBenchVariant {
	return []snapshotBenchVariant{
		// What the store did before: the freelist persisted, in an array.
		{name: "bolt-array-freelist-sync", set: func(c *Config) { c.boltLog, c.freelistSync, c.boltFreelist = true, true, bbolt.FreelistArrayType }},
		{name: "bolt-array-no-freelist-sync", set: func(c *Config) { c.boltLog, c.boltFreelist = true, bbolt.FreelistArrayType }},
		{name: "bolt-map-freelist-sync", set: func(c *Config) { c.boltLog, c.freelistSync = true, true }},
		// What earlier releases ran: raft.db, the freelist not persisted.
		{name: "bolt-map-no-freelist-sync", set: boltLog},
		// The defaults: raft-wal's segment files in DataDir/wal.
		{name: "raft-wal", set: func(c *Config) {}},
		// raft.db with a tenth of raft's TrailingLogs: each truncation
		// leaves fewer entries behind.
		{name: "bolt-trailing-1024", set: func(c *Config) { c.boltLog, c.TrailingLogs = true, 1024 }},
		// raft.db, snapshotting twice as often.
		{name: "bolt-snapshot-x2", set: boltLog, snapshotsX: 2},
		// Controls, on raft.db: the same writes without any snapshot;
		// updates of a fixed set of clients through snapshots.
		{name: "bolt-no-snapshots", set: boltLog, noSnapshots: true},
		{name: "bolt-updates", set: boltLog, updates: true},
	}
}

func boltLog(c *Config) { c.boltLog = true }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// snapshotMark is the state of the run when a snapshot completed.
type snapshotMark struct {
	at     time.Time
	writes int64
	cpu    time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runThroughSnapshots(b *testing.B, v snapshotBenchVariant) {
	every := envInt("BENCH_SNAPSHOT_EVERY", 40000)
	snapshots := envInt("BENCH_SNAPSHOTS", 5)
	if x := v.snapshotsX; x > 1 {
		every, snapshots = every/x, x*(snapshots+1)-1
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.AllowInsecure, cfg.Bootstrap, cfg.Keyring = "bench", b.TempDir(), true, true, TestKeyring(b)
	FastTimeouts(&cfg)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.SnapshotThreshold, cfg.SnapshotInterval = uint64(every), 20*time.Millisecond
	if v.noSnapshots {
		cfg.SnapshotThreshold, cfg.SnapshotInterval = 1<<40, time.Hour
	}
	if tl := envInt("BENCH_TRAILING_LOGS", 0); tl > 0 {
		cfg.TrailingLogs = uint64(tl)
	}
	v.set(&cfg)
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for !s.IsLeader() {
		time.Sleep(5 * time.Millisecond)
	}
	markEvery := int64(0)
	if v.noSnapshots {
		markEvery = int64(every)
	}
	marks := driveWrites(b, s, snapshots, markEvery, v.updates)
	reportIntervals(b, marks)
	reportLogLeftover(b, s.log, filepath.Join(cfg.DataDir, walDirName))
}

// driveWrites runs 64 writers until `snapshots` snapshots have completed
// after the first one, and returns the start, each snapshot's completion
// and the end. With markEvery > 0 the marks are every markEvery writes
// instead (no snapshots expected); with updates the writers update
// fixedClients clients each instead of creating new ones.
func driveWrites(b *testing.B, s *Store, snapshots int, markEvery int64, updates bool) []snapshotMark {
	var writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sealed, _ := s.SealToken("bench/x", "token-0123456789abcdefghij0123456789abcdefgh")
	const fixedClients = 100
	clientCmd := func(op Op, w, i int) Command {
		id := fmt.Sprintf("project/team-%d/worker-%d-%d", w%8, w, i)
		return Command{Op: op, ID: id, Time: t0, Client: &Client{ClientID: id, Description: "a worker client",
			SealedToken: sealed, Scopes: []string{"assume:worker-pool:" + id, "queue:claim-work:" + id}, Expires: t0}}
	}
	if updates {
		for w := range 64 {
			for i := range fixedClients {
				if _, err := s.Apply(context.Background(), clientCmd(OpCreateClient, w, i)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cmd := clientCmd(OpCreateClient, w, i)
				if updates {
					cmd = clientCmd(OpUpdateClient, w, i%fixedClients)
				}
				if _, err := s.Apply(context.Background(), cmd); err != nil {
					b.Error(err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	marks := []snapshotMark{{at: time.Now(), cpu: processCPU()}}
	last := ""
	deadline := time.Now().Add(10 * time.Minute)
	for len(marks) < snapshots+2 && time.Now().Before(deadline) && !b.Failed() {
		time.Sleep(10 * time.Millisecond)
		if markEvery > 0 {
			if n := writes.Load(); n >= int64(len(marks))*markEvery {
				marks = append(marks, snapshotMark{at: time.Now(), writes: n, cpu: processCPU()})
			}
			continue
		}
		if idx := s.raft.Stats()["last_snapshot_index"]; idx != last && idx != "0" {
			last = idx
			marks = append(marks, snapshotMark{at: time.Now(), writes: writes.Load(), cpu: processCPU()})
		}
	}
	close(stop)
	wg.Wait()
	return marks
}

// reportIntervals turns the marks into per-interval rates: interval 0 is
// before the first snapshot, the others between consecutive snapshots.
func reportIntervals(b *testing.B, marks []snapshotMark) {
	if len(marks) < 3 {
		b.Fatalf("only %d snapshots completed", len(marks)-1)
	}
	var rates, cpus []float64
	for i := 1; i < len(marks); i++ {
		n := float64(marks[i].writes - marks[i-1].writes)
		rate := n / marks[i].at.Sub(marks[i-1].at).Seconds()
		cpu := float64(marks[i].cpu-marks[i-1].cpu) / float64(time.Microsecond) / n
		rates, cpus = append(rates, rate), append(cpus, cpu)
		b.Logf("interval %d: %6.0f writes/s, %5.0f µs CPU/write", i-1, rate, cpu)
	}
	after := slices.Clone(rates[1:])
	slices.Sort(after)
	b.ReportMetric(rates[0], "w/s-before")
	b.ReportMetric(after[0], "w/s-after-min")
	b.ReportMetric(after[len(after)/2], "w/s-after-med")
	b.ReportMetric(after[0]/rates[0], "after/before")
	b.ReportMetric(cpus[0], "cpu-µs/w-before")
	cpuAfter := slices.Clone(cpus[1:])
	slices.Sort(cpuAfter)
	b.ReportMetric(cpuAfter[len(cpuAfter)/2], "cpu-µs/w-after")
}
