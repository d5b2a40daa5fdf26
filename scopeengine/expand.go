package scopeengine

import (
	"slices"
	"strconv"
	"strings"
)

// Expand returns the normalised closure of scopes under the roles (§7):
// every scope of every role reachable through assume: scopes, sorted and
// normalised, inputs included. A nil or empty Resolver just normalises.
//
// The result may be shared with other callers (large results are cached
// on the snapshot, expandcache.go): it must not be modified. Its capacity
// equals its length, so an append copies.
func (r *Resolver) Expand(scopes []string) ScopeSet {
	if r.Len() == 0 {
		return NewScopeSet(scopes)
	}
	in := sortedUnique(scopes)
	if len(in) == 0 || in[0] == "*" {
		// "*" sorts first and covers everything: nothing can be added.
		return slices.Clip(normalizeInPlace(in))
	}
	return r.expandShared(in, func() ScopeSet {
		// Inputs are expanded before normalisation: a covered input can
		// still grant something its cover does not (role "**" with <..>,
		// see DESIGN.md), and §7 normalises only the closure.
		return slices.Clip(Normalize(r.closeOver(in)))
	})
}

// sortedUnique copies, sorts by Compare and drops duplicates, without
// normalising.
func sortedUnique(scopes []string) []string {
	c := slices.Clone(scopes)
	SortScopes(c)
	return slices.Compact(c)
}

// ExpandRole is the role's expandedScopes: Expand([assume:<roleID>]). For a
// star role that is the parameter-'*' view.
func (r *Resolver) ExpandRole(roleID string) ScopeSet {
	return r.Expand([]string{"assume:" + roleID})
}

// closeOver returns the closure of a sorted, duplicate-free set under direct
// grants, itself sorted and duplicate-free but NOT normalised: closures are
// unions of closures, which holds for full sets but not for normalised ones.
func (r *Resolver) closeOver(in []string) []string {
	ex := expansion{r: r, closed: [][]string{in}}
	for _, s := range in {
		if _, ok := assumeTarget(s); ok {
			ex.push(s)
		}
	}
	if len(ex.queue) == 0 {
		return in
	}
	return ex.run()
}

// expansion is one fixpoint computation. Expansions memoised on roles and
// trie nodes are already closed under the roles, so they are collected as
// whole sets and never re-examined; only scopes produced by substituting a
// specific parameter into a star role are queued and expanded here. This
// terminates because validated roles form a DAG under worst-case matching.
type expansion struct {
	r      *Resolver
	seen   map[string]struct{}
	queue  []string
	opens  []string
	closed [][]string
}

func (ex *expansion) push(s string) {
	if ex.seen == nil {
		ex.seen = make(map[string]struct{}, 8)
	}
	if _, ok := ex.seen[s]; ok {
		return
	}
	ex.seen[s] = struct{}{}
	ex.queue = append(ex.queue, s)
}

func (ex *expansion) run() []string {
	r := ex.r
	onStar := func(e *roleEntry, param string) {
		if param == "*" {
			ex.closed = append(ex.closed, r.roleClosure(e))
			return
		}
		if len(e.plain) > 0 {
			ex.closed = append(ex.closed, r.plainClosure(e))
		}
		for _, p := range e.paramed {
			s := substitute(p, param)
			ex.opens = append(ex.opens, s)
			ex.push(s)
		}
	}
	onExact := func(e *roleEntry) { ex.closed = append(ex.closed, r.roleClosure(e)) }
	onSubtree := func(n *pnode[*roleEntry]) { ex.closed = append(ex.closed, r.agg(n)) }
	for len(ex.queue) > 0 {
		s := ex.queue[len(ex.queue)-1]
		ex.queue = ex.queue[:len(ex.queue)-1]
		if x, ok := assumeTarget(s); ok {
			r.matchRoles(x, onStar, onExact, onSubtree)
		}
	}
	if len(ex.opens) > 0 {
		ex.closed = append(ex.closed, sortedUnique(ex.opens))
	}
	return unionMany(ex.closed)
}

// substitute puts param into a star role's scope (§7): a param ending in
// '*' replaces <..> and everything after it, any other replaces just <..>.
func substitute(scope, param string) string {
	i := strings.Index(scope, "<..>")
	if strings.HasSuffix(param, "*") {
		return scope[:i] + param
	}
	return scope[:i] + param + scope[i+4:]
}

// roleClosure is the role's memoised expansion (parameter '*' for a star
// role). Concurrent first calls may both compute it; the results are equal.
func (r *Resolver) roleClosure(e *roleEntry) []string {
	if p := e.closure.Load(); p != nil {
		return *p
	}
	scopes := e.plain
	if e.star && len(e.paramed) > 0 {
		scopes = slices.Clone(e.plain)
		for _, p := range e.paramed {
			scopes = append(scopes, substitute(p, "*"))
		}
	}
	res := r.closeOver(sortedUnique(scopes))
	e.closure.Store(&res)
	return res
}

// plainClosure is the memoised expansion of a star role's scopes without
// <..>, which every parameter grants alike.
func (r *Resolver) plainClosure(e *roleEntry) []string {
	if p := e.plainClosure.Load(); p != nil {
		return *p
	}
	res := r.closeOver(e.plain)
	e.plainClosure.Store(&res)
	return res
}

// aggMemoMin is the smallest subtree (in roles) whose union agg keeps as
// a memo when it is built as part of a larger one. See agg.
const aggMemoMin = 1024

// agg is the memoised union of the expansions of every role in n's
// subtree. It is built from the memoised unions of its large child
// subtrees (≥ aggMemoMin roles) and the closures of the other roles, so
// that after a role change, which copies only the nodes on the changed
// role's paths, the new root's union merges a handful of unchanged child
// unions instead of re-merging every role's closure: at 100,000 roles
// that is the difference between seconds and tens of milliseconds for the
// first assume:* of a new snapshot. Memory: each memoised level holds at
// most one copy of the scopes below it, and only levels above
// aggMemoMin roles are kept (two or three at 100,000 roles).
func (r *Resolver) agg(n *pnode[*roleEntry]) []string {
	if p := n.agg.Load(); p != nil {
		return *p
	}
	var sets [][]string
	r.collectAgg(n, &sets)
	res := unionMany(sets)
	n.agg.Store(&res)
	return res
}

// collectAgg appends the closures of n's own roles and, per child, the
// child's memoised union (large children) or its roles' closures.
func (r *Resolver) collectAgg(n *pnode[*roleEntry], sets *[][]string) {
	if n.exact != nil {
		*sets = append(*sets, r.roleClosure(n.exact))
	}
	if n.star != nil {
		*sets = append(*sets, r.roleClosure(n.star))
	}
	for _, c := range n.children {
		if c.count >= aggMemoMin {
			*sets = append(*sets, r.agg(c))
		} else {
			r.collectAgg(c, sets)
		}
	}
}

// findCycle is the reference's dependencyOrdering search, kept in its order
// so that the reported cycle is the reference's: roles visited in the given
// order; a role's dependencies in the order of its worst-cased scopes (plain
// ones sorted, then the <..> ones with '*'), each scope's matches ordered by
// their index in the list compared as decimal strings (the reference stores
// indexes in a scope set), duplicates dropped.
//
// [quirk] copied: the reported "cycle" is the insertion-ordered set of
// visited roles from the repeated one onwards, so it can include roles that
// were already finished and are not on the cycle itself.
func (r *Resolver) findCycle(ordered []*roleEntry) *DependencyCycleError {
	index := make(map[*roleEntry]string, len(ordered))
	for i, e := range ordered {
		index[e] = strconv.Itoa(i)
	}
	const (
		unvisited = iota
		seen
		done
	)
	state := make(map[*roleEntry]int, len(ordered))
	var seenList []*roleEntry
	seenAt := map[*roleEntry]int{}
	var cycle *DependencyCycleError
	var visit func(e *roleEntry)
	visit = func(e *roleEntry) {
		if cycle != nil || state[e] == done {
			return
		}
		if state[e] == seen {
			c := make([]string, 0, len(seenList)-seenAt[e]+1)
			for _, x := range seenList[seenAt[e]:] {
				c = append(c, "assume:"+x.role.RoleID)
			}
			cycle = &DependencyCycleError{Cycle: append(c, "assume:"+e.role.RoleID)}
			return
		}
		state[e] = seen
		seenAt[e] = len(seenList)
		seenList = append(seenList, e)
		for _, d := range r.dependencies(e, index) {
			visit(d)
			if cycle != nil {
				return
			}
		}
		state[e] = done
	}
	for _, e := range ordered {
		visit(e)
		if cycle != nil {
			return cycle
		}
	}
	return nil
}

// dependencies lists the roles e's worst-cased scopes match, in the
// reference's order (see findCycle).
func (r *Resolver) dependencies(e *roleEntry, index map[*roleEntry]string) []*roleEntry {
	worst := []string(NewScopeSet(e.plain))
	if e.star && len(e.paramed) > 0 {
		ps := make([]string, len(e.paramed))
		for i, s := range e.paramed {
			ps[i] = strings.Replace(s, "<..>", paramSentinel, 1)
		}
		ps = NewScopeSet(ps)
		for i, s := range ps {
			ps[i] = s[:strings.Index(s, paramSentinel)] + "*"
		}
		worst = append(worst, NewScopeSet(ps)...)
	}
	var out []*roleEntry
	added := map[*roleEntry]bool{}
	var batch []*roleEntry
	collect := func(m *roleEntry) { batch = append(batch, m) }
	for _, w := range worst {
		x, ok := assumeTarget(w)
		if !ok {
			continue
		}
		batch = batch[:0]
		r.matchRoles(x, func(m *roleEntry, _ string) { collect(m) }, collect, nil)
		slices.SortFunc(batch, func(a, b *roleEntry) int { return strings.Compare(index[a], index[b]) })
		for _, m := range batch {
			if !added[m] {
				added[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// unionSorted merges two sorted duplicate-free lists (by Compare) into one,
// keeping every member: the closure-level union, normalised only at the end.
func unionSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := Compare(a[i], b[j]); {
		case c < 0:
			out = append(out, a[i])
			i++
		case c > 0:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// unionMany merges k lists in a balanced tree: O(n log k).
func unionMany(sets [][]string) []string {
	switch len(sets) {
	case 0:
		return []string{}
	case 1:
		return sets[0]
	case 2:
		return unionSorted(sets[0], sets[1])
	}
	h := len(sets) / 2
	return unionSorted(unionMany(sets[:h]), unionMany(sets[h:]))
}
