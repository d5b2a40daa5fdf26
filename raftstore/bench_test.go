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
// 100,000 clients (applied straight to the FSM; the log is not the point).
func BenchmarkMemoryPer100kClients(b *testing.B) {
	k := TestKeyring(b)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := newState()
		ids := make([]string, 100000)
		for j := range ids {
			ids[j] = fmt.Sprintf("project/team-%d/worker-%d", j%100, j)
		}
		for _, id := range ids {
			sealed, _ := k.Seal(id, []byte("token-0123456789abcdefghij0123456789abcdefgh"))
			st.clients[id] = &Client{ClientID: id, Description: "a worker client", Scopes: []string{"assume:worker-pool:" + id, "queue:claim-work:" + id},
				Expires: t0, Created: t0, LastModified: t0, LastDateUsed: t0, LastRotated: t0, SealedToken: sealed}
		}
		st.ids = append(st.ids, ids...)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100k-clients")
		runtime.KeepAlive(st)
	}
}
