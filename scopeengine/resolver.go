package scopeengine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Role grants its Scopes to whoever holds assume:<RoleID>. A RoleID ending
// in '*' is a star role: it matches every id with that prefix and may use
// the <..> parameter in its scopes (docs/scopes.md §7).
type Role struct {
	RoleID string
	Scopes []string
}

// ErrInvalidRole reports a role that is malformed before any §8 rule applies:
// an empty or non-printable roleId, a duplicate roleId, or a non-printable
// scope. (The reference leaves these to the API's JSON schemas; a Resolver
// refuses them because its sentinel-based §8 check assumes printable input.)
var ErrInvalidRole = errors.New("invalid role")

// DependencyCycleError is §8's cycle error; Cycle lists assume:<roleId>
// patterns ending with the first.
type DependencyCycleError struct{ Cycle []string }

func (e *DependencyCycleError) Error() string {
	return "Roles may not contain dependency cycles, found: '" + strings.Join(e.Cycle, "' -> '") + "'"
}

// InvalidScopeError is §8's parameterised-scope error.
type InvalidScopeError struct{ Scope, Message string }

func (e *InvalidScopeError) Error() string { return e.Message }
func (e *InvalidScopeError) Unwrap() error { return ErrInvalidScope }

const paramSentinel = "\x1a" // sorts below every printable byte (§8.1)

// roleEntry is a role compiled for the index, with lazily memoised
// expansions. An entry belongs to every snapshot that shares it; when a
// change may alter one of its expansions the entry is cloned (fresh memos)
// into the new snapshot instead of being cleared.
type roleEntry struct {
	role    Role
	star    bool
	key     string   // roleId without the trailing '*' of a star role
	plain   []string // scopes without <..> (all scopes of a non-star role)
	paramed []string // star roles only: scopes containing <..>
	targets []string // distinct assume-targets of the worst-cased scopes

	// Memoised closures, sorted by Compare without duplicates but not
	// normalised (see closeOver).
	closure      atomic.Pointer[[]string] // param '*' for star roles
	plainClosure atomic.Pointer[[]string] // star roles: closure of plain
}

func (e *roleEntry) clone() *roleEntry {
	return &roleEntry{role: e.role, star: e.star, key: e.key, plain: e.plain, paramed: e.paramed, targets: e.targets}
}

// idSet is an immutable sorted set of roleIds (reverse-index values).
type idSet struct{ ids []string }

func (s *idSet) with(id string) *idSet {
	var ids []string
	if s != nil {
		ids = s.ids
	}
	i, found := slices.BinarySearch(ids, id)
	if found {
		return s
	}
	return &idSet{ids: slices.Insert(slices.Clone(ids), i, id)}
}

func (s *idSet) without(id string) *idSet {
	if s == nil {
		return nil
	}
	i, found := slices.BinarySearch(s.ids, id)
	if !found {
		return s
	}
	if len(s.ids) == 1 {
		return nil
	}
	return &idSet{ids: slices.Delete(slices.Clone(s.ids), i, i+1)}
}

// Resolver is an immutable snapshot of a validated role set that expands
// scopes (docs/scopes.md §7). It is safe for concurrent use; Put and Delete return
// new snapshots that share all unaffected structure with the old one.
//
// Index: roles lives in a persistent radix tree keyed by roleId (star roles
// by their prefix), so the roles a scope can reach are one path walk (star
// roles whose prefix is a prefix of the target) plus one exact node or one
// subtree (for a target ending in '*'). rev is the reverse index: for each
// assume-target reachable from some role's worst-cased scopes, the roles
// holding it; Put/Delete use it to find exactly the roles whose expansions
// may change (the changed role's ancestors) and to detect a new cycle.
// The zero value and nil are valid resolvers with no roles.
type Resolver struct {
	roles ptrie[*roleEntry]
	rev   ptrie[*idSet]
	// cache shares large expansions among the snapshot's callers
	// (expandcache.go); it starts empty in every new snapshot.
	cache expandCache
}

// NewResolver validates roles (§8, roles ordered by roleId) and indexes them.
func NewResolver(roles []Role) (*Resolver, error) {
	sorted := slices.Clone(roles)
	slices.SortFunc(sorted, func(a, b Role) int { return strings.Compare(a.RoleID, b.RoleID) })
	entries := make([]*roleEntry, len(sorted))
	for i, r := range sorted {
		if i > 0 && sorted[i-1].RoleID == r.RoleID {
			return nil, fmt.Errorf("%w: duplicate roleId %q", ErrInvalidRole, r.RoleID)
		}
		e, err := compileRole(r)
		if err != nil {
			return nil, err
		}
		entries[i] = e
	}
	for _, e := range entries {
		if err := checkParamScopes(e); err != nil {
			return nil, err
		}
	}
	tok := &editToken{}
	res := &Resolver{roles: newPtrie[*roleEntry](), rev: newPtrie[*idSet]()}
	res.roles.root.owner = tok
	res.rev.root.owner = tok
	for _, e := range entries {
		res.roles = res.roles.set(e.key, e.star, e, tok)
		res.rev = addTargets(res.rev, e, tok)
	}
	if c := res.findCycle(entries); c != nil {
		return nil, c
	}
	return res, nil
}

// ValidateRoles checks a role set as createRole/updateRole do (§8).
func ValidateRoles(roles []Role) error {
	_, err := NewResolver(roles)
	return err
}

// Len is the number of roles.
func (r *Resolver) Len() int {
	if r == nil || r.roles.root == nil {
		return 0
	}
	return r.roles.size()
}

// Roles returns the roles sorted by roleId.
func (r *Resolver) Roles() []Role {
	out := make([]Role, 0, r.Len())
	for _, e := range r.entries() {
		out = append(out, Role{RoleID: e.role.RoleID, Scopes: slices.Clone(e.role.Scopes)})
	}
	return out
}

// Role returns one role.
func (r *Resolver) Role(roleID string) (Role, bool) {
	e := r.entry(roleID)
	if e == nil {
		return Role{}, false
	}
	return Role{RoleID: e.role.RoleID, Scopes: slices.Clone(e.role.Scopes)}, true
}

// entries lists all entries sorted by roleId. Trie order is by key with a
// node's exact slot ("k") before its star slot ("k*") before its children;
// that differs from roleId order only where '*' meets a smaller byte, so sort.
func (r *Resolver) entries() []*roleEntry {
	if r.Len() == 0 {
		return nil
	}
	out := make([]*roleEntry, 0, r.Len())
	r.roles.root.forEach(func(n *pnode[*roleEntry]) {
		if n.exact != nil {
			out = append(out, n.exact)
		}
		if n.star != nil {
			out = append(out, n.star)
		}
	})
	slices.SortFunc(out, func(a, b *roleEntry) int { return strings.Compare(a.role.RoleID, b.role.RoleID) })
	return out
}

func splitRoleID(id string) (key string, star bool) {
	if k, ok := strings.CutSuffix(id, "*"); ok {
		return k, true
	}
	return id, false
}

func (r *Resolver) entry(roleID string) *roleEntry {
	if r.Len() == 0 {
		return nil
	}
	k, s := splitRoleID(roleID)
	return r.roles.get(k, s)
}

func compileRole(r Role) (*roleEntry, error) {
	if r.RoleID == "" || !ValidScope(r.RoleID) {
		return nil, fmt.Errorf("%w: roleId %q must be 1+ printable ASCII characters", ErrInvalidRole, r.RoleID)
	}
	for _, s := range r.Scopes {
		if !ValidScope(s) {
			return nil, fmt.Errorf("%w: role %q has scope %q with characters outside 0x20..0x7E", ErrInvalidRole, r.RoleID, s)
		}
	}
	e := &roleEntry{role: Role{RoleID: r.RoleID, Scopes: slices.Clone(r.Scopes)}}
	e.key, e.star = splitRoleID(r.RoleID)
	var worst []string
	if e.star {
		for _, s := range r.Scopes {
			if i := strings.Index(s, "<..>"); i >= 0 {
				e.paramed = append(e.paramed, s)
				worst = append(worst, s[:i]+"*")
			} else {
				e.plain = append(e.plain, s)
			}
		}
	} else {
		// [quirk] copied: <..> in a non-star role is literal text.
		e.plain = slices.Clone(r.Scopes)
	}
	// plain is sorted without duplicates but not normalised: expansion must
	// see covered scopes too (closeOver). The worst case only needs covers.
	e.plain = sortedUnique(e.plain)
	worst = append(worst, e.plain...)
	seen := map[string]bool{}
	for _, w := range worst {
		if x, ok := assumeTarget(w); ok && !seen[x] {
			seen[x] = true
			e.targets = append(e.targets, x)
		}
	}
	return e, nil
}

// checkParamScopes is §8.1 for one role, reference order: the <..> scopes
// of a star role, first <..> replaced by a sentinel, sorted and normalised;
// only the survivors are checked.
func checkParamScopes(e *roleEntry) error {
	if !e.star || len(e.paramed) == 0 {
		return nil
	}
	ps := make([]string, len(e.paramed))
	for i, s := range e.paramed {
		ps[i] = strings.Replace(s, "<..>", paramSentinel, 1)
	}
	for _, s := range NewScopeSet(ps) {
		orig := strings.Replace(s, paramSentinel, "<..>", 1)
		if strings.Contains(s, "<..>") {
			return &InvalidScopeError{Scope: orig, Message: fmt.Sprintf("parameterized scope '%s' contains multiple '<..>'", orig)}
		}
		if strings.HasSuffix(s, "*"+paramSentinel) {
			return &InvalidScopeError{Scope: orig, Message: fmt.Sprintf("parameterized scope '%s' ends with '*<..>' which implies an ambiguous kleene", orig)}
		}
	}
	return nil
}

// assumeTarget maps a scope to the roleId pattern it assumes (§7): the rest
// after "assume:", or "*" for the star forms that cover every assume: scope.
func assumeTarget(s string) (string, bool) {
	if x, ok := strings.CutPrefix(s, "assume:"); ok {
		return x, true
	}
	if strings.HasSuffix(s, "*") && strings.HasPrefix("assume:", s[:len(s)-1]) && len(s) <= len("assume*") {
		return "*", true
	}
	return "", false
}

func revKey(x string) (string, bool) { return splitRoleID(x) }

func addTargets(rev ptrie[*idSet], e *roleEntry, tok *editToken) ptrie[*idSet] {
	for _, x := range e.targets {
		k, s := revKey(x)
		rev = rev.set(k, s, rev.get(k, s).with(e.role.RoleID), tok)
	}
	return rev
}

func removeTargets(rev ptrie[*idSet], e *roleEntry) ptrie[*idSet] {
	for _, x := range e.targets {
		k, s := revKey(x)
		rev = rev.set(k, s, rev.get(k, s).without(e.role.RoleID), nil)
	}
	return rev
}

// matchRoles calls fn for every role a scope with assume-target x grants
// directly, with the parameter for star roles (§7). For x = xp+"*" a subtree
// of roles matches; fn then receives the subtree node (agg) unless a role
// xp+"**" exists, whose parameter is "" rather than "*" and which therefore
// cannot share the subtree's memo.
func (r *Resolver) matchRoles(x string, onStar func(e *roleEntry, param string), onExact func(e *roleEntry), onSubtree func(n *pnode[*roleEntry])) {
	r.roles.walkPath(x, func(n *pnode[*roleEntry]) {
		if n.star != nil {
			onStar(n.star, x[len(n.key):])
		}
	})
	xp, xs := strings.CutSuffix(x, "*")
	if !xs {
		if n := r.roles.find(x); n != nil && n.exact != nil {
			onExact(n.exact)
		}
		return
	}
	n := r.roles.locatePrefix(xp)
	if n == nil {
		return
	}
	if onSubtree != nil && r.roles.get(xp+"*", true) == nil {
		onSubtree(n)
		return
	}
	n.forEach(func(m *pnode[*roleEntry]) {
		if m.exact != nil {
			onExact(m.exact)
		}
		// Star roles whose prefix is a prefix of x were reported by the
		// path walk (with their own parameter); the rest get '*'.
		if m.star != nil && len(m.key) > len(xp) && m.key != xp+"*" {
			onStar(m.star, "*")
		}
	})
}

// Put returns a resolver with role added or replaced, validated
// incrementally: §8.1 for this role only, and a cycle search from this role
// over the reverse index. r is unchanged. Only the roles whose expansion may
// change (the role's ancestors in the worst-case dependency graph) get fresh
// memos; everything else is shared with r.
func (r *Resolver) Put(role Role) (*Resolver, error) {
	e, err := compileRole(role)
	if err != nil {
		return nil, err
	}
	if err := checkParamScopes(e); err != nil {
		return nil, err
	}
	base := r.orEmpty()
	next := &Resolver{roles: base.roles, rev: base.rev}
	if old := base.roles.get(e.key, e.star); old != nil {
		next.rev = removeTargets(next.rev, old)
	}
	next.rev = addTargets(next.rev, e, nil)
	next.roles = next.roles.set(e.key, e.star, e, nil)
	anc := next.ancestors(e)
	if anc[e.role.RoleID] {
		// Error path only: rerun the reference's ordered search over the
		// whole set so the reported cycle is the reference's.
		all := base.entries()
		ordered := make([]*roleEntry, 0, len(all)+1)
		for _, x := range all {
			if x.role.RoleID != e.role.RoleID {
				ordered = append(ordered, x)
			}
		}
		ordered = append(ordered, e)
		if c := next.findCycle(ordered); c != nil {
			return nil, c
		}
		return nil, &DependencyCycleError{Cycle: []string{"assume:" + e.role.RoleID, "assume:" + e.role.RoleID}}
	}
	next.invalidate(anc)
	return next, nil
}

// Delete returns a resolver without roleID (r itself if it has no such role).
func (r *Resolver) Delete(roleID string) *Resolver {
	old := r.entry(roleID)
	if old == nil {
		return r.orEmpty()
	}
	next := &Resolver{roles: r.roles, rev: removeTargets(r.rev, old)}
	next.roles = next.roles.set(old.key, old.star, nil, nil)
	next.invalidate(next.ancestors(old))
	return next
}

func (r *Resolver) orEmpty() *Resolver {
	if r == nil || r.roles.root == nil {
		return &Resolver{roles: newPtrie[*roleEntry](), rev: newPtrie[*idSet]()}
	}
	return r
}

// invalidate re-inserts clones of the given roles so that their memoised
// expansions, and the subtree unions on their paths, are recomputed lazily.
func (r *Resolver) invalidate(ids map[string]bool) {
	for id := range ids {
		k, s := splitRoleID(id)
		if e := r.roles.get(k, s); e != nil {
			r.roles = r.roles.set(k, s, e.clone(), nil)
		}
	}
}

// ancestors is the set of roleIds with a worst-case dependency path to e
// (it contains e's own id iff e is on a cycle).
func (r *Resolver) ancestors(e *roleEntry) map[string]bool {
	out := map[string]bool{}
	queue := []*roleEntry{e}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		r.dependents(c, func(id string) {
			if out[id] {
				return
			}
			out[id] = true
			if d := r.entry(id); d != nil && id != e.role.RoleID {
				queue = append(queue, d)
			}
		})
	}
	return out
}

// dependents reports the roles with a worst-cased scope whose target matches
// role c (§8's edge rule, read backwards through the reverse index).
func (r *Resolver) dependents(c *roleEntry, fn func(id string)) {
	emit := func(s *idSet) {
		if s != nil {
			for _, id := range s.ids {
				fn(id)
			}
		}
	}
	// Targets x = k+"*" with k a prefix of c's key match both kinds of role.
	r.rev.walkPath(c.key, func(n *pnode[*idSet]) { emit(n.star) })
	if !c.star {
		if n := r.rev.find(c.key); n != nil {
			emit(n.exact)
		}
		return
	}
	// A star role q* is matched by every target that starts with q.
	if n := r.rev.locatePrefix(c.key); n != nil {
		n.forEach(func(m *pnode[*idSet]) {
			emit(m.exact)
			emit(m.star)
		})
	}
}
