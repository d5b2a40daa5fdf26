package raftstore

import (
	"iter"
	"slices"
	"sort"
	"strings"
)

// indexChunk is the number of clients a chunk of the client index holds
// after a split: a chunk splits when it passes twice that, and merges with
// its right neighbour when it falls below a quarter of it.
const indexChunk = 512

// clientIndex holds the clients sorted by clientId, for prefix listing
// with offsets and for snapshots. It is a two-level structure (a sorted
// list of chunks of at most 2×indexChunk clients), because a single sorted
// slice costs a memmove of the whole slice per insert: 1.6 MB per create
// at 100,000 clients, which made the apply, not the disk, the bottleneck
// of a bulk load.
//
// It is copy-on-write: freeze returns a view that later writes never
// change, so a snapshot can be persisted without the lock and without a
// copy of the state. Each chunk (and the chunk list) records the
// generation it was allocated in; a write to something allocated before
// the last freeze copies it first (at most 8 KiB per chunk, once per
// snapshot), a write to something newer changes it in place.
type clientIndex struct {
	chunks []*clientChunk
	n      int
	gen    uint64 // bumped by freeze
	topGen uint64 // the generation chunks was allocated in
}

type clientChunk struct {
	gen uint64
	cs  []*Client // sorted by ClientID, never empty
}

// clientView is a frozen clientIndex: immutable, safe to read without the
// FSM's lock while applies continue.
type clientView struct {
	chunks []*clientChunk
	n      int
}

func (x *clientIndex) len() int { return x.n }

// chunkFor is the chunk where id is or would be inserted: the first whose
// last id is ≥ id, else the last one.
func (x *clientIndex) chunkFor(id string) int {
	i := sort.Search(len(x.chunks), func(i int) bool {
		cs := x.chunks[i].cs
		return cs[len(cs)-1].ClientID >= id
	})
	return min(i, len(x.chunks)-1)
}

func searchChunk(cs []*Client, id string) (int, bool) {
	return slices.BinarySearchFunc(cs, id, func(c *Client, id string) int { return strings.Compare(c.ClientID, id) })
}

// writableTop makes the chunk list this generation's own.
func (x *clientIndex) writableTop() {
	if x.topGen != x.gen || x.chunks == nil {
		x.chunks = slices.Clone(x.chunks)
		x.topGen = x.gen
	}
}

// writable returns chunk i, copied first if a view may hold it.
func (x *clientIndex) writable(i int) *clientChunk {
	ch := x.chunks[i]
	if ch.gen == x.gen {
		return ch
	}
	x.writableTop()
	nch := &clientChunk{gen: x.gen, cs: slices.Grow(slices.Clone(ch.cs), 1)}
	x.chunks[i] = nch
	return nch
}

// put inserts c, or replaces the client with its id.
func (x *clientIndex) put(c *Client) {
	if x.n == 0 {
		x.writableTop()
		x.chunks = append(x.chunks[:0], &clientChunk{gen: x.gen, cs: []*Client{c}})
		x.n = 1
		return
	}
	i := x.chunkFor(c.ClientID)
	j, found := searchChunk(x.chunks[i].cs, c.ClientID)
	ch := x.writable(i)
	if found {
		ch.cs[j] = c
		return
	}
	ch.cs = slices.Insert(ch.cs, j, c)
	x.n++
	if len(ch.cs) > 2*indexChunk {
		right := &clientChunk{gen: x.gen, cs: slices.Clone(ch.cs[indexChunk:])}
		clear(ch.cs[indexChunk:])
		ch.cs = ch.cs[:indexChunk]
		x.writableTop()
		x.chunks = slices.Insert(x.chunks, i+1, right)
	}
}

// delete removes the client with id; false if there is none.
func (x *clientIndex) delete(id string) bool {
	if x.n == 0 {
		return false
	}
	i := x.chunkFor(id)
	j, found := searchChunk(x.chunks[i].cs, id)
	if !found {
		return false
	}
	ch := x.writable(i)
	ch.cs = slices.Delete(ch.cs, j, j+1)
	x.n--
	switch {
	case len(ch.cs) == 0:
		x.writableTop()
		x.chunks = slices.Delete(x.chunks, i, i+1)
	case len(ch.cs) < indexChunk/4 && i+1 < len(x.chunks) && len(ch.cs)+len(x.chunks[i+1].cs) <= 2*indexChunk:
		// Without merging, deletes would leave many tiny chunks behind.
		ch.cs = append(ch.cs, x.chunks[i+1].cs...)
		x.writableTop()
		x.chunks = slices.Delete(x.chunks, i+1, i+2)
	}
	return true
}

// freeze returns the current contents as an immutable view.
func (x *clientIndex) freeze() clientView {
	x.gen++
	return clientView{chunks: x.chunks, n: x.n}
}

// view is the current contents, valid only under the FSM's lock (no
// freeze: reads under the lock need no copy-on-write).
func (x *clientIndex) view() clientView { return clientView{chunks: x.chunks, n: x.n} }

// all yields the clients in clientId order.
func (v clientView) all() iter.Seq[*Client] {
	return v.from(0, 0)
}

// from yields the clients from position j of chunk ci on.
func (v clientView) from(ci, j int) iter.Seq[*Client] {
	return func(yield func(*Client) bool) {
		for ; ci < len(v.chunks); ci, j = ci+1, 0 {
			for _, c := range v.chunks[ci].cs[j:] {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// keys yields the client ids in order.
func (x *clientIndex) keys() iter.Seq[string] {
	return func(yield func(string) bool) {
		for c := range x.view().all() {
			if !yield(c.ClientID) {
				return
			}
		}
	}
}

// seek is the position of the first client whose id is ≥ id.
func (v clientView) seek(id string) (ci, j int) {
	ci = sort.Search(len(v.chunks), func(i int) bool {
		cs := v.chunks[i].cs
		return cs[len(cs)-1].ClientID >= id
	})
	if ci < len(v.chunks) {
		j, _ = searchChunk(v.chunks[ci].cs, id)
	}
	return ci, j
}

// skip advances the position (ci, j) by n clients.
func (v clientView) skip(ci, j, n int) (int, int) {
	for n > 0 && ci < len(v.chunks) {
		rest := len(v.chunks[ci].cs) - j
		if n < rest {
			return ci, j + n
		}
		n -= rest
		ci, j = ci+1, 0
	}
	return ci, j
}
