package sidecar

import (
	"fmt"
	"testing"
)

// TestShardedLRUHoldsItsSize: a cache for N entries holds N distinct keys
// however unevenly they hash, and never much more than N.
func TestShardedLRUHoldsItsSize(t *testing.T) {
	for _, tc := range []struct{ size, shards, keys int }{
		{100_000, 64, 100_000},
		{100_000, 64, 250_000},
		{1_000, 64, 1_000},
		{10, 64, 50},
		{4, 1, 300},
		{1, 8, 20},
	} {
		t.Run(fmt.Sprintf("%d in %d shards, %d keys", tc.size, tc.shards, tc.keys), func(t *testing.T) {
			c := newShardedLRU[string, int](tc.size, tc.shards)
			for i := 0; i < tc.keys; i++ {
				c.Add(fmt.Sprint("k", i), i)
			}
			n := c.Len()
			if tc.keys <= tc.size && n != tc.keys {
				t.Errorf("holds %d of %d keys", n, tc.keys)
			}
			shards := len(c.shards)
			if n < min(tc.keys, tc.size) || n > tc.size+shards {
				t.Errorf("holds %d, want between %d and %d", n, min(tc.keys, tc.size), tc.size+shards)
			}
			if got := int(c.total.Load()); got != n {
				t.Errorf("counted total %d, real %d", got, n)
			}
			// The newest key is always kept.
			if _, ok := c.Get(fmt.Sprint("k", tc.keys-1)); !ok {
				t.Error("the newest key was evicted")
			}
			c.Remove(fmt.Sprint("k", tc.keys-1))
			c.Purge()
			if c.Len() != 0 || c.total.Load() != 0 {
				t.Errorf("after Purge: len %d, total %d", c.Len(), c.total.Load())
			}
		})
	}
}
