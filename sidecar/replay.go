package sidecar

import (
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// nonceStore remembers (clientId, ts, nonce) of verified Hawk headers for
// as long as their ts is inside the skew window, so a captured header
// cannot be replayed (the reference has no such check, docs/protocol.md §5).
// Callers add a nonce only after the MAC verified: otherwise anyone could
// fill the store or burn a legitimate client's nonces.
//
// Entries are grouped per client, and per client in 10-second buckets of
// their ts, so expiry drops whole buckets. Memory is bounded by max. When
// the store is full, the clients holding the most entries lose their
// oldest buckets first ("water-filling" down to a common level), and only
// their floor moves up: each such client stops getting headers with a ts
// that old accepted, instead of the store forgetting nonces it might see
// again. There is no global floor, so a client that fills the store
// (e.g. with headers whose ts sits at the future edge of the skew window)
// costs itself its own refusals and nobody else anything.
type nonceStore struct {
	seeds  [3]maphash.Seed // [0] picks the client's shard and slot, [1:] key the nonce
	shards [32]nonceShard
	skew   time.Duration
	max    int64
	count  atomic.Int64
	evict  sync.Mutex
}

const nonceBucketSeconds = 10

type nonceShard struct {
	mu      sync.Mutex
	clients map[uint64]*clientNonces
	_       [40]byte // keep neighbouring shard mutexes off one cache line
}

// clientNonces is one client's share of the store. floor is the lowest
// bucket still accepted for this client: raised only when this client's
// own oldest bucket was dropped to make room.
//
// buckets is a slice, not a map: most clients hold one or two buckets
// (the skew window has 180 at most), and a map per client was ~100 bytes
// of a sidecar's memory for each of the 100,000 clients it may serve.
type clientNonces struct {
	count   int
	floor   int64
	buckets []nonceBucket
}

type nonceBucket struct {
	b    int64 // ts / nonceBucketSeconds
	keys map[nonceKey]struct{}
}

// bucket returns c's bucket b, adding it if add.
func (c *clientNonces) bucket(b int64, add bool) map[nonceKey]struct{} {
	for i := range c.buckets {
		if c.buckets[i].b == b {
			return c.buckets[i].keys
		}
	}
	if !add {
		return nil
	}
	m := map[nonceKey]struct{}{}
	c.buckets = append(c.buckets, nonceBucket{b: b, keys: m})
	return m
}

// dropBucket removes c.buckets[i] (order does not matter) and returns
// how many entries it held.
func (c *clientNonces) dropBucket(i int) int {
	n := len(c.buckets[i].keys)
	last := len(c.buckets) - 1
	c.buckets[i] = c.buckets[last]
	c.buckets[last] = nonceBucket{}
	c.buckets = c.buckets[:last]
	return n
}

// noFloor is the floor of a client that never lost a bucket.
const noFloor = -1 << 62

// nonceKey is a 128-bit seeded hash of (clientId, ts, nonce). Keys without
// pointers keep the maps out of the garbage collector's scan (a sidecar
// remembers every header of the last 15 minutes) and cost no allocation;
// two independent 64-bit hashes make a false "replayed" (a collision)
// practically impossible, and only MAC-verified headers are ever added.
type nonceKey [2]uint64

func (s *nonceStore) key(clientID, ts, nonce string) nonceKey {
	var k nonceKey
	for i := range k {
		var h maphash.Hash
		h.SetSeed(s.seeds[i+1])
		h.WriteString(clientID)
		h.WriteByte(0)
		h.WriteString(ts)
		h.WriteByte(0)
		h.WriteString(nonce)
		k[i] = h.Sum64()
	}
	return k
}

func newNonceStore(skew time.Duration, max int) *nonceStore {
	s := &nonceStore{seeds: [3]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed(), maphash.MakeSeed()}, skew: skew, max: int64(max)}
	for i := range s.shards {
		s.shards[i].clients = map[uint64]*clientNonces{}
	}
	return s
}

type nonceVerdict int

const (
	nonceFresh    nonceVerdict = iota
	nonceReplayed              // seen before
	nonceTooOld                // below the floor this client's share was forced to raise
)

// check records the nonce and reports whether it was new. ts is the
// header's ts in seconds (already verified to be within the skew window).
func (s *nonceStore) check(clientID, ts, nonce string) nonceVerdict {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nonceTooOld
	}
	bucket := sec / nonceBucketSeconds
	// All of a client's nonces live in one shard, under one slot: the
	// eviction can then find and trim the heaviest clients. A 64-bit
	// seeded hash as the slot: two clients sharing one (2^-64 per pair)
	// would only share a budget, never accept a replay.
	slot := maphash.String(s.seeds[0], clientID)
	key := s.key(clientID, ts, nonce)
	sh := &s.shards[slot%uint64(len(s.shards))]
	sh.mu.Lock()
	c := sh.clients[slot]
	if c == nil {
		c = &clientNonces{floor: noFloor}
		sh.clients[slot] = c
		s.count.Add(recordUnits)
	}
	if bucket < c.floor {
		sh.mu.Unlock()
		return nonceTooOld
	}
	b := c.bucket(bucket, true)
	if _, seen := b[key]; seen {
		sh.mu.Unlock()
		return nonceReplayed
	}
	b[key] = struct{}{}
	c.count++
	sh.mu.Unlock()
	if s.count.Add(1) > s.max {
		s.makeRoom()
	}
	return nonceFresh
}

// expire drops buckets whose every ts is outside the skew window, and
// clients with nothing left whose floor no longer matters (a floor below
// the window refuses nothing the skew check would accept).
func (s *nonceStore) expire(now time.Time) {
	limit := now.Add(-s.skew).Unix()/nonceBucketSeconds - 1
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for slot, c := range sh.clients {
			for i := len(c.buckets) - 1; i >= 0; i-- {
				if c.buckets[i].b < limit {
					n := c.dropBucket(i)
					c.count -= n
					s.count.Add(-int64(n))
				}
			}
			if c.count == 0 && c.floor <= limit {
				delete(sh.clients, slot)
				s.count.Add(-recordUnits)
			}
		}
		sh.mu.Unlock()
	}
}

// recordUnits is what one client's record costs in the store's budget,
// in nonces: a record with its maps is about 500 bytes, a nonce about 30
// (measured with 1,000,000 of each). Counting it keeps MaxNonces a bound
// on memory even when every nonce comes from a different clientId (named
// temporary credentials can be minted without the control plane).
const recordUnits = 16

// nonceLowWater is the share of max the store is trimmed down to when
// full, so that the scan below runs once per max/16 insertions, not once
// per insertion.
const nonceLowWater = 16

type clientShare struct {
	sh    *nonceShard
	slot  uint64
	count int
}

// makeRoom trims the heaviest clients until the store is at its low-water
// mark. It finds the level T at which cutting every client down to T
// entries frees enough, then drops each heavier client's oldest buckets
// until it holds at most T, raising that client's floor only. A client at
// or below the level loses nothing.
func (s *nonceStore) makeRoom() {
	s.evict.Lock()
	defer s.evict.Unlock()
	need := s.count.Load() - (s.max - s.max/nonceLowWater)
	if s.count.Load() <= s.max || need <= 0 {
		return
	}
	var shares []clientShare
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for slot, c := range sh.clients {
			if c.count > 0 {
				shares = append(shares, clientShare{sh, slot, c.count})
			}
		}
		sh.mu.Unlock()
	}
	level := trimLevel(shares, need)
	for _, cs := range shares {
		if cs.count <= level {
			break // sorted: nobody after this one is above the level
		}
		cs.sh.mu.Lock()
		if c := cs.sh.clients[cs.slot]; c != nil {
			s.trimClient(c, level)
		}
		cs.sh.mu.Unlock()
	}
	if s.count.Load() > s.max-s.max/nonceLowWater {
		s.dropEmptyRecords()
	}
}

// dropEmptyRecords forgets clients that hold no nonce any more, floors
// included. It runs only when records alone fill the store (a flood of
// distinct clientIds, each trimmed to nothing): the alternative would be
// unbounded memory, or refusing everybody. Those clients' headers older
// than their lost floor were forgotten when trimmed, so one replay of
// such a header within the skew window becomes possible — the reference's
// behaviour (it has no nonce check), and only in this extreme.
func (s *nonceStore) dropEmptyRecords() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for slot, c := range sh.clients {
			if c.count == 0 {
				delete(sh.clients, slot)
				s.count.Add(-recordUnits)
			}
		}
		sh.mu.Unlock()
	}
}

// trimLevel sorts shares by count, descending, and returns the largest
// level T with sum(max(0, count-T)) >= need.
func trimLevel(shares []clientShare, need int64) int {
	slices.SortFunc(shares, func(a, b clientShare) int { return b.count - a.count })
	var sum int64
	for k := range shares {
		sum += int64(shares[k].count)
		next := 0
		if k+1 < len(shares) {
			next = shares[k+1].count
		}
		// Cutting the k+1 heaviest down to next frees sum - (k+1)*next.
		if sum-int64(k+1)*int64(next) >= need {
			return int((sum - need) / int64(k+1))
		}
	}
	return 0
}

// trimClient drops c's oldest buckets until it holds at most level
// entries, and raises c's floor past them. Call with c's shard locked.
func (s *nonceStore) trimClient(c *clientNonces, level int) {
	for c.count > level && len(c.buckets) > 0 {
		oi := 0
		for i := range c.buckets {
			if c.buckets[i].b < c.buckets[oi].b {
				oi = i
			}
		}
		oldest := c.buckets[oi].b
		n := c.dropBucket(oi)
		c.count -= n
		s.count.Add(-int64(n))
		c.floor = max(c.floor, oldest+1)
	}
}

func (s *nonceStore) len() int { return int(s.count.Load()) }
