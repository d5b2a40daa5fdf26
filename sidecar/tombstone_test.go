package sidecar

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestTombstonesShrinkAfterBurst: the room a burst of evictions took
// (100,000 clients created at once, each a feed event) is given back once
// the tombstones have aged out, instead of staying with the map for the
// life of the process; tombstones still young are kept.
func TestTombstonesShrinkAfterBurst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.fillDefaults()
	v := newLocalVerifier(&cfg, nil, newMetrics(nil))
	clock := time.Now()
	v.now = func() time.Time { return clock }
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	for i := range 100_000 {
		v.evictClient("burst/"+strconv.Itoa(i), uint64(i))
	}
	full := heap()
	clock = clock.Add(2*cfg.FetchTimeout + 2*time.Second)
	v.evictClient("young", 100_001)
	v.pruneTombstones()
	after := heap()
	if full-base < 4<<20 {
		t.Fatalf("100,000 tombstones took only %d bytes: the measurement cannot tell", full-base)
	}
	if grown := int64(after) - int64(base); grown > 1<<20 {
		t.Errorf("after the burst aged out the heap is still %d bytes above its start (the burst took %d)", grown, full-base)
	}
	if len(v.tombstones) != 1 {
		t.Fatalf("%d tombstones left, want the young one", len(v.tombstones))
	}
	if _, raced := v.checkAnswer("young", 0, 0); !raced {
		t.Error("the young tombstone no longer guards its client")
	}
}
