package scopeengine

import (
	"strings"
	"sync/atomic"
)

// ptrie is a persistent (immutable, path-copying) radix tree keyed by byte
// strings. Each key has two value slots: exact (the key itself) and star (the
// key followed by a trailing '*'), because role and scope patterns come in
// exactly those two flavours and both queries we need — "every star entry
// whose key is a prefix of x" and "every entry whose key starts with p" — are
// a walk down one path or one subtree.
//
// An update copies only the nodes on the key's path; all other nodes are
// shared with the previous version, so a snapshot stays valid (and readable
// concurrently) after newer versions are made. Bulk construction passes an
// edit token: nodes created under the same token are mutated in place, so a
// build allocates each node once.
type ptrie[V comparable] struct{ root *pnode[V] }

type editToken struct{ _ byte }

type pnode[V comparable] struct {
	key      string      // full key from the root
	children []*pnode[V] // ordered by the byte that follows key
	exact    V
	star     V
	count    int // number of non-zero slots in the subtree
	owner    *editToken
	// agg memoises, for the roles trie, the union of the (unnormalised)
	// expansions of every role in this subtree (star roles with parameter
	// '*'). It is valid for every snapshot sharing this node: any change that
	// could alter it copies the node.
	agg atomic.Pointer[[]string]
}

func newPtrie[V comparable]() ptrie[V] { return ptrie[V]{root: &pnode[V]{}} }

func (t ptrie[V]) size() int { return t.root.count }

// child returns the index where a child starting with byte c is or would go.
func (n *pnode[V]) child(c byte) (int, bool) {
	lo, hi := 0, len(n.children)
	d := len(n.key)
	for lo < hi {
		m := (lo + hi) / 2
		b := n.children[m].key[d]
		switch {
		case b == c:
			return m, true
		case b < c:
			lo = m + 1
		default:
			hi = m
		}
	}
	return lo, false
}

// find returns the node whose key is exactly key, or nil.
func (t ptrie[V]) find(key string) *pnode[V] {
	n := t.root
	for {
		if len(n.key) == len(key) {
			return n
		}
		i, ok := n.child(key[len(n.key)])
		if !ok {
			return nil
		}
		c := n.children[i]
		if !strings.HasPrefix(key, c.key) {
			return nil
		}
		n = c
	}
}

func (t ptrie[V]) get(key string, star bool) V {
	var zero V
	n := t.find(key)
	if n == nil {
		return zero
	}
	if star {
		return n.star
	}
	return n.exact
}

// walkPath calls fn for every node whose key is a prefix of s (shortest
// first, including the root and s itself).
func (t ptrie[V]) walkPath(s string, fn func(n *pnode[V])) {
	n := t.root
	for {
		fn(n)
		if len(n.key) == len(s) {
			return
		}
		i, ok := n.child(s[len(n.key)])
		if !ok {
			return
		}
		c := n.children[i]
		if !strings.HasPrefix(s, c.key) {
			return
		}
		n = c
	}
}

// locatePrefix returns the topmost node whose key starts with p: its subtree
// holds exactly the keys that start with p. nil if there are none.
func (t ptrie[V]) locatePrefix(p string) *pnode[V] {
	n := t.root
	for {
		if strings.HasPrefix(n.key, p) {
			return n
		}
		i, ok := n.child(p[len(n.key)])
		if !ok {
			return nil
		}
		c := n.children[i]
		if strings.HasPrefix(c.key, p) {
			return c
		}
		if !strings.HasPrefix(p, c.key) {
			return nil
		}
		n = c
	}
}

// forEach visits every node of n's subtree that holds a value, in key order.
func (n *pnode[V]) forEach(fn func(n *pnode[V])) {
	var zero V
	if n.exact != zero || n.star != zero {
		fn(n)
	}
	for _, c := range n.children {
		c.forEach(fn)
	}
}

// set returns a trie where slot (key, star) holds v; the zero V deletes.
// tok may be nil (persistent update) or a build token.
func (t ptrie[V]) set(key string, star bool, v V, tok *editToken) ptrie[V] {
	var zero V
	if v == zero && t.get(key, star) == zero {
		return t // deleting what is not there: share everything
	}
	r := t.root.with(key, star, v, tok)
	if r == nil || len(r.key) != 0 {
		// The root is never removed nor replaced by a child.
		nr := &pnode[V]{owner: tok}
		if r != nil {
			nr.children = []*pnode[V]{r}
			nr.count = r.count
		}
		r = nr
	}
	return ptrie[V]{root: r}
}

func (n *pnode[V]) mutable(tok *editToken) *pnode[V] {
	if tok != nil && n.owner == tok {
		return n
	}
	c := &pnode[V]{key: n.key, exact: n.exact, star: n.star, count: n.count, owner: tok}
	c.children = append(make([]*pnode[V], 0, len(n.children)+1), n.children...)
	return c
}

// with is set below n (n.key is a prefix of key). It returns the replacement
// for n: nil when the subtree became empty, or n's only child when n no
// longer holds anything itself (path compression).
func (n *pnode[V]) with(key string, star bool, v V, tok *editToken) *pnode[V] {
	var zero V
	m := n.mutable(tok)
	if len(key) == len(n.key) {
		if star {
			m.star = v
		} else {
			m.exact = v
		}
	} else {
		i, ok := m.child(key[len(n.key)])
		switch {
		case !ok:
			leaf := &pnode[V]{key: key, owner: tok}
			if star {
				leaf.star = v
			} else {
				leaf.exact = v
			}
			leaf.count = 1
			m.children = append(m.children, nil)
			copy(m.children[i+1:], m.children[i:])
			m.children[i] = leaf
		case strings.HasPrefix(key, m.children[i].key):
			nc := m.children[i].with(key, star, v, tok)
			if nc == nil {
				m.children = append(m.children[:i], m.children[i+1:]...)
			} else {
				m.children[i] = nc
			}
		default:
			// Split the edge: a new node at the common prefix takes the old
			// child (whose full key is unchanged, so it is shared as is).
			old := m.children[i]
			l := len(n.key) + 1
			for l < len(key) && l < len(old.key) && key[l] == old.key[l] {
				l++
			}
			mid := &pnode[V]{key: key[:l], children: []*pnode[V]{old}, count: old.count, owner: tok}
			m.children[i] = mid.with(key, star, v, tok)
		}
	}
	m.count = 0
	if m.exact != zero {
		m.count++
	}
	if m.star != zero {
		m.count++
	}
	for _, c := range m.children {
		m.count += c.count
	}
	if len(m.key) > 0 && m.exact == zero && m.star == zero {
		switch len(m.children) {
		case 0:
			return nil
		case 1:
			return m.children[0]
		}
	}
	return m
}
