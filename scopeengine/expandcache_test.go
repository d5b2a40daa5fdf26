package scopeengine

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

// uncached is Expand without the snapshot cache: the reference answer.
func uncached(r *Resolver, scopes []string) ScopeSet {
	in := sortedUnique(scopes)
	if len(in) == 0 || in[0] == "*" {
		return Normalize(in)
	}
	return Normalize(r.closeOver(in))
}

func bigResolver(t testing.TB, n int) *Resolver {
	t.Helper()
	roles, _ := syntheticCorpus(n)
	r, err := NewResolver(roles)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestExpandSharesLargeResults: a large answer is computed once per
// snapshot and the same slice is handed to every caller, also to
// concurrent first callers (single flight); a role change gives a new
// snapshot with a fresh answer; the shared slice cannot be grown in place.
func TestExpandSharesLargeResults(t *testing.T) {
	r := bigResolver(t, 2000)
	inputs := [][]string{
		{"assume:*"},
		{"assume:chain:*"},
		{"assume:repo:*", "queue:get-task:*"},
		{"*"}, // short answer: not cached, still correct
	}
	for _, in := range inputs {
		t.Run(fmt.Sprint(in), func(t *testing.T) {
			want := uncached(r, in)
			var wg sync.WaitGroup
			got := make([]ScopeSet, 8)
			for i := range got {
				wg.Go(func() { got[i] = r.Expand(in) })
			}
			wg.Wait()
			for i, g := range got {
				if !slices.Equal(g, want) {
					t.Fatalf("caller %d: %d scopes, want %d", i, len(g), len(want))
				}
				if cap(g) != len(g) {
					t.Fatalf("cap %d != len %d: an append would write into a shared array", cap(g), len(g))
				}
				if len(want) >= DefaultSharedExpansionMin && unsafe.SliceData(g) != unsafe.SliceData(got[0]) {
					t.Fatalf("caller %d got its own copy of a %d-scope answer", i, len(g))
				}
			}
		})
	}
	before := r.Expand([]string{"assume:chain:*"})
	next, err := r.Put(Role{RoleID: "chain:0:5", Scopes: []string{"new-scope:after-put"}})
	if err != nil {
		t.Fatal(err)
	}
	after := next.Expand([]string{"assume:chain:*"})
	if !after.Satisfies("new-scope:after-put") || before.Satisfies("new-scope:after-put") {
		t.Fatal("the new snapshot served the old snapshot's cached answer (or the old one changed)")
	}
	if !slices.Equal(after, uncached(next, []string{"assume:chain:*"})) {
		t.Fatal("new snapshot's answer differs from the uncached one")
	}
}

// TestExpandCacheBudget: the cache never holds more scopes than its budget.
func TestExpandCacheBudget(t *testing.T) {
	var c expandCache
	for i := range 100 {
		c.insertLocked(fmt.Sprint(i), &cachedResult{out: make(ScopeSet, DefaultExpansionCacheBudget/7)})
		if c.total > DefaultExpansionCacheBudget || len(c.entries) != len(c.order) {
			t.Fatalf("after %d inserts: %d scopes held, %d entries, %d in order", i+1, c.total, len(c.entries), len(c.order))
		}
	}
	c.insertLocked("huge", &cachedResult{out: make(ScopeSet, DefaultExpansionCacheBudget+1)})
	if _, ok := c.entries["huge"]; ok {
		t.Fatal("a result above the whole budget was kept")
	}
}

// TestExpandWith: ExpandWith(Expand(c), extra) equals Expand(c ∪ extra)
// for client-like lists, broad inputs and the role set where a covered
// scope grants more than its cover (DESIGN.md "Closures ... not
// normalised").
func TestExpandWith(t *testing.T) {
	roles, clients := syntheticCorpus(1000)
	roles = append(roles,
		Role{RoleID: "**", Scopes: []string{"A<..>aa"}},
		Role{RoleID: "anonymous2", Scopes: []string{"assume:project-admin:proj1", "queue:get-artifact:public/*"}},
	)
	r, err := NewResolver(roles)
	if err != nil {
		t.Fatal(err)
	}
	bases := append(slices.Clone(clients[:24]), []string{"assume:*"}, []string{"assume:**"}, []string{"assu*"}, nil, []string{"*"})
	extras := [][]string{{"assume:anonymous"}, {"assume:anonymous2"}, {"assume:***"}, {"assume:chain:1:0", "x:y"}, nil}
	for i, b := range bases {
		closed := r.Expand(b)
		for _, e := range extras {
			got := r.ExpandWith(closed, e)
			want := uncached(r, append(slices.Clone(b), e...))
			if !slices.Equal(got, want) {
				t.Fatalf("base %d %.60q + %q: %d scopes, want %d", i, b, e, len(got), len(want))
			}
		}
	}
	// Nothing to add: the closed set itself comes back, no copy.
	closed := r.Expand([]string{"assume:*"})
	if got := r.ExpandWith(closed, []string{"assume:anonymous"}); unsafe.SliceData(got) != unsafe.SliceData(closed) {
		t.Fatal("ExpandWith copied a set that already covers the extra scopes")
	}
}

// flatAgg is agg without the per-level memos: every role's closure in
// n's subtree merged at once.
func flatAgg(r *Resolver, n *pnode[*roleEntry]) []string {
	var sets [][]string
	n.forEach(func(m *pnode[*roleEntry]) {
		if m.exact != nil {
			sets = append(sets, r.roleClosure(m.exact))
		}
		if m.star != nil {
			sets = append(sets, r.roleClosure(m.star))
		}
	})
	return unionMany(sets)
}

// TestAggLevelsAfterChanges: the subtree unions built from memoised child
// unions equal the flat union, on a fresh resolver and on snapshots made by
// Put/Delete, which share the unchanged children's memos.
func TestAggLevelsAfterChanges(t *testing.T) {
	r := bigResolver(t, 6000)
	changes := []func(*Resolver) (*Resolver, error){
		func(r *Resolver) (*Resolver, error) {
			return r.Put(Role{RoleID: "chain:3:10", Scopes: []string{"chain-scope:3:10", "new:agg:1"}})
		},
		func(r *Resolver) (*Resolver, error) {
			return r.Put(Role{RoleID: "repo:github.com/proj9/repo2:*", Scopes: []string{"assume:project:proj9:ci", "x:<..>"}})
		},
		func(r *Resolver) (*Resolver, error) { return r.Delete("project:proj7:ci"), nil },
		func(r *Resolver) (*Resolver, error) {
			return r.Put(Role{RoleID: "zz-new", Scopes: []string{"assume:chain:1:0"}})
		},
	}
	prefixes := []string{"", "repo:", "repo:github.com/proj1", "chain:", "chain:1", "project", "z"}
	for step := 0; ; step++ {
		for _, p := range prefixes {
			n := r.roles.locatePrefix(p)
			if n == nil {
				continue
			}
			if got, want := r.agg(n), flatAgg(r, n); !slices.Equal(got, want) {
				t.Fatalf("step %d, prefix %q (%d roles): %d scopes, want %d", step, p, n.count, len(got), len(want))
			}
		}
		if step == len(changes) {
			return
		}
		next, err := changes[step](r)
		if err != nil {
			t.Fatal(err)
		}
		r = next
	}
}
