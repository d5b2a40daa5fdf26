package scopeengine

import (
	"fmt"
	"slices"
	"sync"
	"unsafe"
)

// Large expansions are computed once per snapshot and shared.
//
// An input with a broad assume target (assume:*, assume:repo:*) can reach
// a whole subtree of roles: at 100,000 roles expand(["assume:*"]) is about
// 550,000 scopes. Building that list per request made every such request
// allocate two copies of it (the merge and the normalised result), and
// concurrent requests multiplied that. A snapshot is immutable, so the
// answer for a given input never changes while the snapshot lives: the
// first caller computes it, concurrent callers of the same input wait for
// that computation (single flight), later callers get the same slice. A
// role change yields a new snapshot with an empty cache, so nothing is
// ever invalidated explicitly.

const (
	// DefaultSharedExpansionMin is the smallest result (in scopes) that
	// Expand caches and shares: below it, computing is as cheap as the
	// lookup and sharing saves nothing.
	DefaultSharedExpansionMin = 1024

	// DefaultExpansionCacheBudget bounds the scopes held by one snapshot's
	// cache (2 Mi scopes: at most 32 MiB of string headers, the strings
	// themselves are shared with the role memos). Oldest entries go first.
	DefaultExpansionCacheBudget = 2 << 20

	// maxCacheKey bounds the inputs whose results are cached: the key is
	// the input itself. Larger inputs (an already expanded client's scopes)
	// are recomputed; see ExpandWith for the authenticator's case.
	maxCacheKey = 64 << 10
)

type expandCache struct {
	mu      sync.Mutex
	entries map[string]*cachedResult
	order   []string // insertion order, for eviction
	total   int      // scopes held by done entries
}

// cachedResult is one input's answer; done is closed when out is set.
type cachedResult struct {
	done chan struct{}
	out  ScopeSet
	pin  ScopeSet // ExpandWith: the closed set the key names by identity
}

// cacheKey joins a sorted, duplicate-free input. Scopes are printable
// ASCII (ValidScope), so '\n' cannot occur inside one.
func cacheKey(in []string) (string, bool) {
	n := 0
	for _, s := range in {
		n += len(s) + 1
		if n > maxCacheKey {
			return "", false
		}
	}
	b := make([]byte, 0, n)
	for _, s := range in {
		b = append(append(b, s...), '\n')
	}
	return string(b), true
}

// HasBroadAssume reports whether scopes hold an assume target ending in
// '*' (or a star scope covering assume:), which can reach a whole subtree
// of roles: such an expansion can be as large as the role set.
func HasBroadAssume(in []string) bool {
	for _, s := range in {
		if x, ok := assumeTarget(s); ok && len(x) > 0 && x[len(x)-1] == '*' {
			return true
		}
	}
	return false
}

// expandShared is Expand through the snapshot's cache. compute is the
// uncached expansion of in.
func (r *Resolver) expandShared(in []string, compute func() ScopeSet) ScopeSet {
	key, ok := cacheKey(in)
	if !ok {
		return compute()
	}
	c := &r.cache
	c.mu.Lock()
	if e, hit := c.entries[key]; hit {
		c.mu.Unlock()
		<-e.done
		return e.out
	}
	if !HasBroadAssume(in) {
		// Narrow inputs only reach exact roles (memoised closures): no
		// single flight, but a large answer is still kept for the next.
		c.mu.Unlock()
		out := compute()
		if len(out) >= DefaultSharedExpansionMin {
			e := &cachedResult{done: make(chan struct{}), out: out}
			close(e.done)
			c.mu.Lock()
			if _, hit := c.entries[key]; !hit {
				c.insertLocked(key, e)
			}
			c.mu.Unlock()
		}
		return out
	}
	e := &cachedResult{done: make(chan struct{})}
	if c.entries == nil {
		c.entries = map[string]*cachedResult{}
	}
	c.entries[key] = e // pending: concurrent callers wait for it
	c.mu.Unlock()
	defer close(e.done)
	e.out = compute()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
	if len(e.out) >= DefaultSharedExpansionMin {
		c.insertLocked(key, e)
	}
	return e.out
}

// insertLocked adds a computed entry and evicts the oldest ones beyond the
// budget (a result larger than the whole budget is returned, not kept).
func (c *expandCache) insertLocked(key string, e *cachedResult) {
	if len(e.out) > DefaultExpansionCacheBudget {
		return
	}
	if c.entries == nil {
		c.entries = map[string]*cachedResult{}
	}
	for c.total+len(e.out) > DefaultExpansionCacheBudget && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		if o, ok := c.entries[old]; ok {
			c.total -= len(o.out)
			delete(c.entries, old)
		}
	}
	if o, ok := c.entries[key]; ok {
		c.total -= len(o.out) // replaced (ExpandWith after a key's pin died)
	}
	c.entries[key] = e
	c.order = append(c.order, key)
	c.total += len(e.out)
}

// ExpandWith returns Expand(closed ∪ extra) for a set closed that is
// already an expansion returned by this resolver (normalised and closed
// under the roles), without re-expanding closed: the authenticator adds
// assume:anonymous to a client's expanded scopes on every request, and
// re-expanding 550,000 scopes per request is what made a broad client
// expensive. When extra's expansion adds nothing, closed itself is
// returned (no allocation).
//
// Why it is exact: Normalize(closed) = closed and closed's closure is
// covered by closed, so the closure of closed ∪ extra is covered by
// closed ∪ closure(extra), and normalising either gives the same set.
//
// A large merged answer is cached on the snapshot keyed by closed's
// identity (its array and length); the entry keeps closed alive, so that
// identity cannot be reused by another slice while the entry exists.
func (r *Resolver) ExpandWith(closed ScopeSet, extra []string) ScopeSet {
	add := r.Expand(extra)
	if closed.SatisfiesAll(add) {
		return closed
	}
	if len(closed) < DefaultSharedExpansionMin {
		return slices.Clip(Merge(closed, add))
	}
	ek, ok := cacheKey(sortedUnique(extra))
	if !ok {
		return slices.Clip(Merge(closed, add))
	}
	key := fmt.Sprintf("\x00with %p %d\n%s", unsafe.SliceData(closed), len(closed), ek)
	c := &r.cache
	c.mu.Lock()
	if e, hit := c.entries[key]; hit && len(e.pin) == len(closed) && unsafe.SliceData(e.pin) == unsafe.SliceData(closed) {
		c.mu.Unlock()
		<-e.done
		return e.out
	}
	c.mu.Unlock()
	e := &cachedResult{done: make(chan struct{}), out: slices.Clip(Merge(closed, add)), pin: closed}
	close(e.done)
	c.mu.Lock()
	c.insertLocked(key, e)
	c.mu.Unlock()
	return e.out
}
