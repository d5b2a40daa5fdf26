package sidecar

import (
	"hash/maphash"
	"slices"
	"sync"
	"unique"
	"unsafe"
	"weak"
)

// scopeSets shares equal scope sets between cached clients.
//
// At 100,000 cached clients the scope lists were most of the sidecar's
// memory: every client held its own copy of its expanded scopes (and of
// its own scopes, beside them), although clients made for one purpose —
// the workers of one pool, the tasks of one project — hold the same sets.
// Sets are immutable once made (Expand results and normalised lists are
// never written to), so one copy can serve every client that has it.
//
// The table maps a seeded hash of a set to a weak pointer at its backing
// array: it never keeps a set alive by itself, so a set nobody caches any
// more is collected, and its slot is swept when the table has doubled
// since the last sweep. A hash collision is harmless: the candidate is
// compared element by element, and on a mismatch the new set simply takes
// the slot (the old one stays valid for its holders).
//
// The strings inside are interned too (package unique), so a scope that
// occurs in many different sets (assume:anonymous, a project-wide scope)
// is stored once.
type scopeSets struct {
	seed    maphash.Seed
	mu      sync.Mutex
	m       map[uint64]sharedSet
	sweepAt int
}

// sharedSet is a weak reference to an interned set's array, and its length.
type sharedSet struct {
	first weak.Pointer[string]
	n     int
}

// minSweep is the table size below which dead slots are not swept.
const minSweep = 1024

func newScopeSets() *scopeSets {
	return &scopeSets{seed: maphash.MakeSeed(), m: map[uint64]sharedSet{}, sweepAt: minSweep}
}

// intern returns a set equal to s that other callers may share: an
// existing one, or s's strings interned into a new array (cap == len, so
// an append by anyone copies). s itself is not kept. The result must not
// be modified.
func (t *scopeSets) intern(s []string) []string {
	if len(s) == 0 {
		return s[:0:0]
	}
	h := t.hash(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[h]; ok && e.n == len(s) {
		if p := e.first.Value(); p != nil {
			if cur := unsafe.Slice(p, e.n); slices.Equal(cur, s) {
				return cur
			}
		}
	}
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = unique.Make(x).Value()
	}
	t.m[h] = sharedSet{first: weak.Make(&out[0]), n: len(out)}
	if len(t.m) >= t.sweepAt {
		t.sweepLocked()
	}
	return out
}

// sweepLocked drops the slots of collected sets.
func (t *scopeSets) sweepLocked() {
	for h, e := range t.m {
		if e.first.Value() == nil {
			delete(t.m, h)
		}
	}
	t.sweepAt = max(minSweep, 2*len(t.m))
}

func (t *scopeSets) hash(s []string) uint64 {
	var mh maphash.Hash
	mh.SetSeed(t.seed)
	for _, x := range s {
		mh.WriteString(x)
		mh.WriteByte(0) // scopes are printable ASCII: 0 cannot occur in one
	}
	return mh.Sum64()
}

// len is the number of slots (live or not yet swept), for tests.
func (t *scopeSets) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
