package raftstore

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func benchStore(b *testing.B) *Store {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.AllowInsecure, cfg.Bootstrap, cfg.Keyring = "bench", b.TempDir(), true, true, TestKeyring(b)
	FastTimeouts(&cfg)
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for !s.IsLeader() {
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

var benchSeq atomic.Int64

func benchCreate(b *testing.B, s *Store) {
	id := fmt.Sprintf("bench/%d", benchSeq.Add(1))
	sealed, _ := s.SealToken(id, "token-0123456789abcdefghij")
	if _, err := s.Apply(context.Background(), Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: id, SealedToken: sealed, Scopes: []string{"queue:*"}}}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkApplyCreateClient: sequential writes pay one fsync'd append
// each; parallel writes share appends through BatchApplyCh batching.
func BenchmarkApplyCreateClient(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		s := benchStore(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchCreate(b, s)
		}
	})
	b.Run("parallel64", func(b *testing.B) {
		s := benchStore(b)
		b.SetParallelism(32) // 2 cores x 32 = 64 writers
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				benchCreate(b, s)
			}
		})
	})
}

func BenchmarkClientRead(b *testing.B) {
	s := benchStore(b)
	benchCreate(b, s)
	id := fmt.Sprintf("bench/%d", benchSeq.Load())
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.AccessToken(id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMemoryPer100kClients reports the heap the state holds for
// 100,000 clients, created through applyCommand as on every node (audit
// entries included; the log is not the point). memory_test.go has the
// commands.
// "unique" gives each client scopes of its own, which interning cannot
// share (it costs a slot of the interning set each).
func BenchmarkMemoryPer100kClients(b *testing.B) {
	b.Run("shared", func(b *testing.B) { benchMemoryClients(b, false) })
	b.Run("unique", func(b *testing.B) { benchMemoryClients(b, true) })
}

func benchMemoryClients(b *testing.B, unique bool) {
	const n = 100000
	k := TestKeyring(b)
	entries := make([][]byte, n)
	for j := range entries {
		entries[j] = memClientCmd(b, k, j, unique)
	}
	for i := 0; i < b.N; i++ {
		before := liveHeap()
		st := newState()
		memApply(b, st, 1, entries)
		after := liveHeap()
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/100k-clients")
		b.ReportMetric(float64(after-before)/n, "B/client")
		runtime.KeepAlive(st)
	}
}
