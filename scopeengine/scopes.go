// Package scopeengine implements Taskcluster's scope algebra: satisfaction,
// ordering, normalisation, set operations, scope expressions, expression
// templates and role expansion, as taskcluster-lib-scopes and the auth
// service's role resolver define them. It imports nothing
// of ours so that every other layer can depend on it.
package scopeengine

import (
	"slices"
	"sort"
	"strings"
)

// ValidScope reports whether every byte of s is printable ASCII (0x20..0x7E).
// The empty string is a valid scope.
func ValidScope(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Satisfies reports whether the single scope have satisfies need: equal, or
// have ends in '*' and need starts with have minus that star.
func Satisfies(have, need string) bool {
	if have == need {
		return true
	}
	if p, ok := strings.CutSuffix(have, "*"); ok {
		return strings.HasPrefix(need, p)
	}
	return false
}

// Compare is the reference scopeCompare: strip one trailing '*' from each
// side; if the rests are equal the starred one sorts first, otherwise the
// rests compare by byte order. For any prefix P this gives P* < P < P…, which
// is what makes normalisation a single forward walk.
func Compare(a, b string) int {
	as, bs := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*")
	if as {
		a = a[:len(a)-1]
	}
	if bs {
		b = b[:len(b)-1]
	}
	if a == b {
		switch {
		case as && !bs:
			return -1
		case bs && !as:
			return 1
		}
		return 0
	}
	if a < b {
		return -1
	}
	return 1
}

// SortScopes sorts s in place by Compare.
func SortScopes(s []string) {
	slices.SortFunc(s, Compare)
}

// Normalize is the reference normalizeScopeSet: the input must already be
// sorted by Compare. It drops exact duplicates and every scope covered by an
// earlier star scope. It never modifies its input.
//
// [quirk] copied: unsorted input gives a wrong (un-normalised) answer, exactly
// like the reference; callers that cannot promise order use NewScopeSet.
func Normalize(sorted []string) []string {
	return normalizeInPlace(slices.Clone(sorted))
}

// ScopeSet is a scope list that is sorted by Compare and normalised. Build one
// with NewScopeSet (or Merge/Union/Resolver.Expand); converting an arbitrary
// slice breaks the invariant that Satisfies relies on.
type ScopeSet []string

// NewScopeSet copies, sorts and normalises scopes.
func NewScopeSet(scopes []string) ScopeSet {
	c := slices.Clone(scopes)
	SortScopes(c)
	return ScopeSet(normalizeInPlace(c))
}

// normalizeInPlace is Normalize reusing the input's backing array.
func normalizeInPlace(sorted []string) []string {
	out := sorted[:0]
	for i := 0; i < len(sorted); {
		s := sorted[i]
		out = append(out, s)
		i++
		if p, ok := strings.CutSuffix(s, "*"); ok {
			for i < len(sorted) && strings.HasPrefix(sorted[i], p) {
				i++
			}
		} else {
			for i < len(sorted) && sorted[i] == s {
				i++
			}
		}
	}
	return out
}

// Satisfies reports whether some member of the set satisfies need, in
// O(log n): in a normalised set ordered by Compare, every string that starts
// with a prefix P sorts in one block that begins with P*, and normalisation
// has removed the rest of that block, so a star scope covering need can only
// be need's immediate predecessor. The one exception is need+"*" when need
// itself ends in '*' (stripping the star moves need before its own block),
// which costs a second search.
func (s ScopeSet) Satisfies(need string) bool {
	i := sort.Search(len(s), func(k int) bool { return Compare(s[k], need) >= 0 })
	if i < len(s) && s[i] == need {
		return true
	}
	if i > 0 && Satisfies(s[i-1], need) {
		return true
	}
	if strings.HasSuffix(need, "*") {
		t := need + "*"
		j := sort.Search(len(s), func(k int) bool { return Compare(s[k], t) >= 0 })
		return j < len(s) && s[j] == t
	}
	return false
}

// SatisfiesAll reports whether the set satisfies every scope in needs.
func (s ScopeSet) SatisfiesAll(needs []string) bool {
	for _, n := range needs {
		if !s.Satisfies(n) {
			return false
		}
	}
	return true
}

// Merge is the reference mergeScopeSets: the union of two normalised sets,
// itself normalised. Inputs are not modified.
func Merge(a, b ScopeSet) ScopeSet {
	out := make(ScopeSet, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		var s string
		switch c := Compare(a[i], b[j]); {
		case c < 0:
			s = a[i]
			i++
		case c > 0:
			s = b[j]
			j++
		default:
			s = a[i]
			i++
			j++
		}
		out = append(out, s)
		if p, ok := strings.CutSuffix(s, "*"); ok {
			for i < len(a) && strings.HasPrefix(a[i], p) {
				i++
			}
			for j < len(b) && strings.HasPrefix(b[j], p) {
				j++
			}
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// Union is the reference scopeUnion: sort and normalise both inputs, then
// merge. Unlike the reference it does not sort its arguments in place.
func Union(a, b []string) ScopeSet {
	return Merge(NewScopeSet(a), NewScopeSet(b))
}

// Intersection is the reference scopeIntersection: the members of a
// satisfied by some member of b, then the members of b satisfied by some
// member of a, without duplicates (first occurrence kept).
//
// [quirk] copied: the result is neither sorted nor normalised
// ([a*, ab] ∩ [ab*] = [ab, ab*]); callers wanting a ScopeSet wrap it in
// NewScopeSet.
func Intersection(a, b []string) []string {
	// Normalising a copy of each side keeps the answer (a dropped member is
	// covered by an earlier kept one, which satisfies everything it does) and
	// turns the reference's O(n·m) scan into binary searches.
	na, nb := NewScopeSet(a), NewScopeSet(b)
	out := []string{}
	seen := make(map[string]bool, len(a)+len(b))
	for _, side := range [2]struct {
		from  []string
		other ScopeSet
	}{{a, nb}, {b, na}} {
		for _, s := range side.from {
			if !seen[s] && side.other.Satisfies(s) {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
