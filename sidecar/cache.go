package sidecar

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// shardedLRU is an LRU split into independently locked shards.
// golang-lru's Get moves the entry to the front, so it takes the write
// lock: one LRU would serialise every request of the proxy on one mutex
// (hashicorp/golang-lru/v2 lru.go, Get). With shards, two requests contend only when their keys
// hash to the same shard. Recency is per shard, which is close enough to a
// global LRU for a cache of this size.
//
// The size bound is global, not size/shards per shard: keys do not hash
// evenly (with 100 000 keys in 64 shards of 1 562, about 1.5 % were
// evicted early), so a cache configured for N entries would hold fewer
// than N. Each shard may grow to the whole size; an insert that takes the
// total past it evicts the oldest entry of its own shard. The total can
// pass the size by at most one entry per shard (a shard never evicts its
// only entry).
type shardedLRU[K comparable, V any] struct {
	seed   maphash.Seed
	shards []lruShard[K, V]
	mask   uint64
	limit  int64
	total  atomic.Int64
}

type lruShard[K comparable, V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[K, V]
	_   [40]byte // keep neighbouring shard mutexes off one cache line
}

// newShardedLRU makes a cache of size entries (at least 1) in shards
// shards (rounded up to a power of two).
func newShardedLRU[K comparable, V any](size, shards int) *shardedLRU[K, V] {
	n := 1
	for n < shards {
		n <<= 1
	}
	size = max(size, 1)
	c := &shardedLRU[K, V]{seed: maphash.MakeSeed(), shards: make([]lruShard[K, V], n), mask: uint64(n - 1), limit: int64(size)}
	for i := range c.shards {
		// NewLRU fails only for size <= 0, excluded above; it allocates
		// nothing up front.
		c.shards[i].lru, _ = simplelru.NewLRU[K, V](size, nil)
	}
	return c
}

func (c *shardedLRU[K, V]) shard(k K) *lruShard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)&c.mask]
}

// add stores v under k in s (locked by the caller) and keeps the total
// within the limit.
func (c *shardedLRU[K, V]) add(s *lruShard[K, V], k K, v V) {
	before := s.lru.Len()
	s.lru.Add(k, v)
	if d := s.lru.Len() - before; d != 0 {
		c.total.Add(int64(d))
	}
	if c.total.Load() > c.limit && s.lru.Len() > 1 {
		if _, _, ok := s.lru.RemoveOldest(); ok {
			c.total.Add(-1)
		}
	}
}

func (c *shardedLRU[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.Lock()
	v, ok := s.lru.Get(k)
	s.mu.Unlock()
	return v, ok
}

func (c *shardedLRU[K, V]) Add(k K, v V) {
	s := c.shard(k)
	s.mu.Lock()
	c.add(s, k, v)
	s.mu.Unlock()
}

// AddIf adds v under k only if keep() is still true while the shard is
// locked; the feed uses this to stop a fetch that raced with an eviction
// from re-inserting what was just evicted.
func (c *shardedLRU[K, V]) AddIf(k K, v V, keep func() bool) bool {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !keep() {
		return false
	}
	c.add(s, k, v)
	return true
}

// Swap replaces the value under k with v if keep(current, present)
// agrees, under the shard lock; it does not count as a use.
func (c *shardedLRU[K, V]) Swap(k K, v V, keep func(cur V, ok bool) bool) bool {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.lru.Peek(k)
	if !keep(cur, ok) {
		return false
	}
	c.add(s, k, v)
	return true
}

func (c *shardedLRU[K, V]) Remove(k K) {
	s := c.shard(k)
	s.mu.Lock()
	if s.lru.Remove(k) {
		c.total.Add(-1)
	}
	s.mu.Unlock()
}

func (c *shardedLRU[K, V]) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		c.total.Add(-int64(s.lru.Len()))
		s.lru.Purge()
		s.mu.Unlock()
	}
}

func (c *shardedLRU[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// flightGroup collapses concurrent calls for one key into one (a small
// singleflight). The call runs in its own goroutine with its own context,
// so a caller that gives up (its request was cancelled) neither cancels
// the fetch for the others nor waits for it.
type flightGroup[V any] struct {
	mu sync.Mutex
	m  map[string]*flight[V]
}

type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// Do runs fn once for all concurrent callers with the same key. shared
// reports whether this caller joined a call another caller started.
func (g *flightGroup[V]) Do(ctx context.Context, key string, fn func() (V, error)) (v V, err error, shared bool) {
	return g.DoGated(ctx, key, nil, fn)
}

// DoGated is Do, except that a caller who would start a new call first
// asks gate (if not nil), under the group's lock; a gate error is
// returned without calling fn. Joining a call in flight passes no gate:
// it costs nothing more than the call already does.
func (g *flightGroup[V]) DoGated(ctx context.Context, key string, gate func() error, fn func() (V, error)) (v V, err error, shared bool) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*flight[V])
	}
	f, ok := g.m[key]
	if !ok && gate != nil {
		if err := gate(); err != nil {
			g.mu.Unlock()
			var zero V
			return zero, err, false
		}
	}
	if !ok {
		f = &flight[V]{done: make(chan struct{})}
		g.m[key] = f
		go func() {
			defer func() {
				// A panic in fn must not take the process down nor leave
				// the waiters hanging: it fails this one call.
				if p := recover(); p != nil {
					f.err = fmt.Errorf("sidecar: panic in fetch: %v", p)
				}
				g.mu.Lock()
				delete(g.m, key)
				g.mu.Unlock()
				close(f.done)
			}()
			f.v, f.err = fn()
		}()
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.v, f.err, ok
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err(), ok
	}
}
