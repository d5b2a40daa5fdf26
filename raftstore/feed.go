package raftstore

import (
	"fmt"

	"github.com/tcauth/tcauth/scopeengine"
)

func newResolverChecked(st *state) (*scopeengine.Resolver, error) {
	r, err := scopeengine.NewResolver(st.sortedRoles())
	if err != nil {
		return nil, fmt.Errorf("raftstore: snapshot holds an invalid role set: %w", err)
	}
	return r, nil
}

// changeFeed keeps the most recent client and role changes in a bounded
// ring so that sidecars can follow them by Raft index. Guarded by the fsm's
// lock.
type changeFeed struct {
	ring []Change
	next int    // where the next change goes
	full bool   // ring has wrapped
	lost uint64 // changes at or below this index may be missing
}

func newChangeFeed(size int) *changeFeed {
	if size <= 0 {
		size = 10000
	}
	return &changeFeed{ring: make([]Change, size)}
}

func (c *changeFeed) add(changes []Change) {
	for _, ch := range changes {
		if c.full {
			c.lost = c.ring[c.next].Index
		}
		c.ring[c.next] = ch
		c.next++
		if c.next == len(c.ring) {
			c.next, c.full = 0, true
		}
	}
}

// truncate forgets everything: changes up to index are unknown.
func (c *changeFeed) truncate(index uint64) {
	c.next, c.full, c.lost = 0, false, index
}

// since returns the changes after index `after`, oldest first, or
// ErrFeedTruncated when some of them are no longer held.
func (c *changeFeed) since(after uint64) ([]Change, error) {
	if after < c.lost {
		return nil, ErrFeedTruncated
	}
	var out []Change
	n := c.next
	if c.full {
		n = len(c.ring)
	}
	start := 0
	if c.full {
		start = c.next
	}
	for i := 0; i < n; i++ {
		ch := c.ring[(start+i)%len(c.ring)]
		if ch.Index > after {
			out = append(out, ch)
		}
	}
	return out, nil
}
