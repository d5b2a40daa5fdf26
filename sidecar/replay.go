package sidecar

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// nonceStore remembers (clientId, ts, nonce) of verified Hawk headers for
// as long as their ts is inside the skew window, so a captured header
// cannot be replayed (the reference has no such check, PROTOCOL.md §5).
// Callers add a nonce only after the MAC verified: otherwise anyone could
// fill the store or burn a legitimate client's nonces (FIELD-NOTES).
//
// Entries live in 10-second buckets of their ts, so expiry drops whole
// buckets. Memory is bounded by max: when full, the oldest bucket is
// dropped and the floor moves up, i.e. the store stops accepting headers
// with a ts that old instead of forgetting nonces it might see again.
type nonceStore struct {
	seeds  [2]maphash.Seed
	shards [32]nonceShard
	skew   time.Duration
	max    int64
	count  atomic.Int64
	floor  atomic.Int64 // lowest accepted bucket
	evict  sync.Mutex
}

const nonceBucketSeconds = 10

type nonceShard struct {
	mu      sync.Mutex
	buckets map[int64]map[nonceKey]struct{}
}

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
		h.SetSeed(s.seeds[i])
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
	s := &nonceStore{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, skew: skew, max: int64(max)}
	for i := range s.shards {
		s.shards[i].buckets = map[int64]map[nonceKey]struct{}{}
	}
	s.floor.Store(-1 << 62)
	return s
}

type nonceVerdict int

const (
	nonceFresh    nonceVerdict = iota
	nonceReplayed              // seen before
	nonceTooOld                // below the floor the store was forced to raise
)

// check records the nonce and reports whether it was new. ts is the
// header's ts in seconds (already verified to be within the skew window).
func (s *nonceStore) check(clientID, ts, nonce string) nonceVerdict {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nonceTooOld
	}
	bucket := sec / nonceBucketSeconds
	if bucket < s.floor.Load() {
		return nonceTooOld
	}
	key := s.key(clientID, ts, nonce)
	sh := &s.shards[key[0]%uint64(len(s.shards))]
	sh.mu.Lock()
	b := sh.buckets[bucket]
	if b == nil {
		b = map[nonceKey]struct{}{}
		sh.buckets[bucket] = b
	}
	if _, seen := b[key]; seen {
		sh.mu.Unlock()
		return nonceReplayed
	}
	b[key] = struct{}{}
	sh.mu.Unlock()
	if s.count.Add(1) > s.max {
		s.dropOldest()
	}
	return nonceFresh
}

// expire drops buckets whose every ts is outside the skew window.
func (s *nonceStore) expire(now time.Time) {
	limit := now.Add(-s.skew).Unix()/nonceBucketSeconds - 1
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for b, m := range sh.buckets {
			if b < limit {
				s.count.Add(-int64(len(m)))
				delete(sh.buckets, b)
			}
		}
		sh.mu.Unlock()
	}
}

// dropOldest frees the oldest bucket and refuses headers from it on.
func (s *nonceStore) dropOldest() {
	s.evict.Lock()
	defer s.evict.Unlock()
	if s.count.Load() <= s.max {
		return
	}
	oldest := int64(1<<62 - 1)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for b := range sh.buckets {
			oldest = min(oldest, b)
		}
		sh.mu.Unlock()
	}
	s.floor.Store(oldest + 1)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if m, ok := sh.buckets[oldest]; ok {
			s.count.Add(-int64(len(m)))
			delete(sh.buckets, oldest)
		}
		sh.mu.Unlock()
	}
}

func (s *nonceStore) len() int { return int(s.count.Load()) }
