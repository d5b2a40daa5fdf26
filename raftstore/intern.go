package raftstore

import "hash/maphash"

// interner keeps one canonical copy of each scope string (and each audit
// actor) the state holds: many clients and roles carry the same scopes
// ("assume:worker-pool:proj/x", "queue:claim-work:proj/*"), and a string
// decoded from a log entry is otherwise a fresh copy per record. Stored
// records point at the canonical copy, so the bytes exist once.
//
// It is an open-addressing set of strings (16 bytes a slot, at most 3/4
// full) rather than a map[string]string (two headers and map overhead per
// entry), since a distinct scope that only one record uses costs its slot
// and saves nothing. Strings no record uses any more are dropped by
// rebuilding the set from the state (state.sweepInterned) once it has
// doubled since the last rebuild: amortised O(1) per string. Guarded by
// the FSM's lock, like the rest of the state. Interning changes no value,
// only where the bytes live, so it needs no determinism across nodes.
type interner struct {
	seed  maphash.Seed
	slots []string // "" = empty; "" itself is never stored
	n     int
	// sweepAt is the size at which the state rebuilds the set.
	sweepAt int
}

// minSweep is the smallest set worth rebuilding.
const minSweep = 4096

func newInterner() *interner {
	return &interner{seed: maphash.MakeSeed(), sweepAt: minSweep}
}

// intern returns the canonical copy of s.
func (in *interner) intern(s string) string {
	if s == "" {
		return ""
	}
	if (in.n+1)*4 > len(in.slots)*3 {
		in.grow()
	}
	mask := uint64(len(in.slots) - 1)
	for i := maphash.String(in.seed, s) & mask; ; i = (i + 1) & mask {
		switch in.slots[i] {
		case s:
			return in.slots[i]
		case "":
			in.slots[i] = s
			in.n++
			return s
		}
	}
}

// all interns every element of ss into a new slice, so the caller's slice
// (a decoded command's) is never shared with the state.
func (in *interner) all(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = in.intern(s)
	}
	return out
}

func (in *interner) grow() {
	old := in.slots
	in.slots = make([]string, max(64, 2*len(old)))
	in.n = 0
	for _, s := range old {
		if s != "" {
			in.intern(s)
		}
	}
}

// due reports whether the set has grown enough to be rebuilt.
func (in *interner) due() bool { return in.n >= in.sweepAt }

// rebuilt returns an empty set to be filled with the strings still in use;
// done then sets the next rebuild's threshold.
func (in *interner) rebuilt() *interner {
	return &interner{seed: in.seed, slots: make([]string, max(64, len(in.slots)/2))}
}

func (in *interner) done() { in.sweepAt = max(minSweep, 2*in.n) }
