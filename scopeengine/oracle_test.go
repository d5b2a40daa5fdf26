package scopeengine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The oracle is docs/scopes.md §7/§8 transcribed as directly as possible: slow,
// quadratic, no index, no memo. The fast Resolver must agree with it.

var oracleStarForms = []string{"*", "a*", "as*", "ass*", "assu*", "assum*", "assume*"}

// oracleDirect is "direct grants of one scope s" (§7).
func oracleDirect(roles []Role, s string) []string {
	var x string
	switch {
	case strings.HasPrefix(s, "assume:"):
		x = s[len("assume:"):]
	case slices.Contains(oracleStarForms, s):
		x = "*"
	default:
		return nil
	}
	xs := strings.HasSuffix(x, "*")
	xp := x
	if xs {
		xp = x[:len(x)-1]
	}
	var out []string
	for _, r := range roles {
		p := r.RoleID
		if !strings.HasSuffix(p, "*") {
			if x == p || (xs && strings.HasPrefix(p, xp)) {
				out = append(out, r.Scopes...)
			}
			continue
		}
		q := p[:len(p)-1]
		var param string
		switch {
		case strings.HasPrefix(x, q):
			param = x[len(q):]
		case xs && strings.HasPrefix(q, xp):
			param = "*"
		default:
			continue
		}
		for _, sc := range r.Scopes {
			i := strings.Index(sc, "<..>")
			switch {
			case i < 0:
				out = append(out, sc)
			case strings.HasSuffix(param, "*"):
				out = append(out, sc[:i]+param)
			default:
				out = append(out, sc[:i]+param+sc[i+4:])
			}
		}
	}
	return out
}

// oracleExpand iterates direct grants to a fixpoint, then normalises.
func oracleExpand(roles []Role, input []string) []string {
	set := map[string]bool{}
	for _, s := range input {
		set[s] = true
	}
	for changed := true; changed; {
		changed = false
		for s := range set {
			for _, g := range oracleDirect(roles, s) {
				if !set[g] {
					set[g] = true
					changed = true
				}
			}
		}
		if len(set) > 20000 {
			panic("oracle: no fixpoint (cyclic roles?)")
		}
	}
	all := make([]string, 0, len(set))
	for s := range set {
		all = append(all, s)
	}
	return NewScopeSet(all)
}

// oracleValidate is §8 over roles in the given order: the invalid-scope
// check first, then a depth-first search for cycles visiting dependencies
// in the reference's order, with pattern matching done by brute force.
func oracleValidate(roles []Role) error {
	for _, r := range roles {
		if !strings.HasSuffix(r.RoleID, "*") {
			continue
		}
		var ps []string
		for _, s := range r.Scopes {
			if strings.Contains(s, "<..>") {
				ps = append(ps, strings.Replace(s, "<..>", "\x1a", 1))
			}
		}
		for _, s := range NewScopeSet(ps) {
			orig := strings.Replace(s, "\x1a", "<..>", 1)
			if strings.Contains(s, "<..>") {
				return &InvalidScopeError{Scope: orig, Message: "parameterized scope '" + orig + "' contains multiple '<..>'"}
			}
			if strings.HasSuffix(s, "*\x1a") {
				return &InvalidScopeError{Scope: orig, Message: "parameterized scope '" + orig + "' ends with '*<..>' which implies an ambiguous kleene"}
			}
		}
	}
	matches := func(w string, b Role) bool {
		t := "assume:" + b.RoleID
		starB := strings.HasSuffix(t, "*")
		if starB {
			t = t[:len(t)-1]
		}
		if w == t && !starB || starB && strings.HasPrefix(w, t) {
			return true
		}
		return strings.HasSuffix(w, "*") && strings.HasPrefix(t, w[:len(w)-1])
	}
	deps := func(a Role) []int {
		var plain, ps []string
		for _, s := range a.Scopes {
			if strings.HasSuffix(a.RoleID, "*") && strings.Contains(s, "<..>") {
				ps = append(ps, strings.Replace(s, "<..>", "\x1a", 1))
			} else {
				plain = append(plain, s)
			}
		}
		worst := []string(NewScopeSet(plain))
		var pw []string
		for _, s := range NewScopeSet(ps) {
			pw = append(pw, s[:strings.Index(s, "\x1a")]+"*")
		}
		worst = append(worst, NewScopeSet(pw)...)
		var out []int
		seen := map[int]bool{}
		for _, w := range worst {
			var hit []int
			for j, b := range roles {
				if matches(w, b) {
					hit = append(hit, j)
				}
			}
			slices.SortFunc(hit, func(x, y int) int { return strings.Compare(strconv.Itoa(x), strconv.Itoa(y)) })
			for _, j := range hit {
				if !seen[j] {
					seen[j] = true
					out = append(out, j)
				}
			}
		}
		return out
	}
	state := make([]int, len(roles))
	var order []int
	var cyc []string
	var visit func(i int)
	visit = func(i int) {
		if cyc != nil || state[i] == 2 {
			return
		}
		if state[i] == 1 {
			k := slices.Index(order, i)
			for _, j := range order[k:] {
				cyc = append(cyc, "assume:"+roles[j].RoleID)
			}
			cyc = append(cyc, "assume:"+roles[i].RoleID)
			return
		}
		state[i] = 1
		order = append(order, i)
		for _, d := range deps(roles[i]) {
			visit(d)
		}
		state[i] = 2
	}
	for i := range roles {
		visit(i)
		if cyc != nil {
			return &DependencyCycleError{Cycle: cyc}
		}
	}
	return nil
}

func sortedRoles(roles []Role) []Role {
	out := slices.Clone(roles)
	slices.SortFunc(out, func(a, b Role) int { return strings.Compare(a.RoleID, b.RoleID) })
	return out
}

// --- random generation over a tiny alphabet, where collisions are common ---

func randWord(rng *rand.Rand, max int) string {
	const alpha = "ab:*"
	n := rng.IntN(max + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[rng.IntN(len(alpha))]
	}
	return string(b)
}

func randScope(rng *rand.Rand) string {
	switch rng.IntN(8) {
	case 0:
		return oracleStarForms[rng.IntN(len(oracleStarForms))]
	case 1:
		return randWord(rng, 3)
	case 2:
		return "A" + randWord(rng, 2) + "<..>" + randWord(rng, 2)
	case 3:
		return "assume:" + randWord(rng, 2) + "<..>" + randWord(rng, 1)
	default:
		return "assume:" + randWord(rng, 3)
	}
}

func randRole(rng *rand.Rand) Role {
	id := randWord(rng, 3)
	if id == "" {
		id = "b"
	}
	n := rng.IntN(4)
	scopes := make([]string, n)
	for i := range scopes {
		scopes[i] = randScope(rng)
	}
	return Role{RoleID: id, Scopes: scopes}
}

func randRoles(rng *rand.Rand) []Role {
	n := 1 + rng.IntN(5)
	seen := map[string]bool{}
	var out []Role
	for range n {
		r := randRole(rng)
		if !seen[r.RoleID] {
			seen[r.RoleID] = true
			out = append(out, r)
		}
	}
	return out
}

func randInput(rng *rand.Rand) []string {
	n := 1 + rng.IntN(3)
	out := make([]string, n)
	for i := range out {
		out[i] = randScope(rng)
	}
	return out
}

func sameErr(a, b error) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return a == nil || a.Error() == b.Error()
}

// compareToOracle checks r against the oracle for the given model roles.
func compareToOracle(t *testing.T, rng *rand.Rand, r *Resolver, model []Role, label string) {
	t.Helper()
	if r.Len() != len(model) {
		t.Fatalf("%s: Len = %d, model has %d", label, r.Len(), len(model))
	}
	inputs := [][]string{{"assume:*"}, {"*"}, {"a*"}}
	for range 6 {
		inputs = append(inputs, randInput(rng))
	}
	for _, m := range model {
		inputs = append(inputs, []string{"assume:" + m.RoleID})
	}
	for _, in := range inputs {
		got, want := r.Expand(in), oracleExpand(model, in)
		if !slices.Equal(strs(got), strs(want)) {
			t.Fatalf("%s: roles %q\nExpand(%q) = %q\noracle      = %q", label, model, in, got, want)
		}
	}
}

func TestDifferentialNewResolver(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 10000
	if testing.Short() {
		n = 500
	}
	valid := 0
	for i := range n {
		roles := randRoles(rng)
		r, err := NewResolver(roles)
		want := oracleValidate(sortedRoles(roles))
		if !sameErr(err, want) {
			t.Fatalf("case %d roles %q: NewResolver err = %v, oracle %v", i, roles, err, want)
		}
		if err != nil {
			continue
		}
		valid++
		compareToOracle(t, rng, r, roles, fmt.Sprintf("case %d", i))
	}
	if valid < n/10 {
		t.Fatalf("only %d of %d random role sets were valid; generator too cyclic", valid, n)
	}
}

func TestDifferentialPutDelete(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seqs := 1500
	if testing.Short() {
		seqs = 60
	}
	for s := range seqs {
		var r *Resolver
		var model []Role
		for step := range 12 {
			label := fmt.Sprintf("seq %d step %d", s, step)
			if len(model) > 0 && rng.IntN(4) == 0 {
				victim := model[rng.IntN(len(model))].RoleID
				prev := r
				r = r.Delete(victim)
				model = slices.DeleteFunc(slices.Clone(model), func(x Role) bool { return x.RoleID == victim })
				if prev.Len() != len(model)+1 {
					t.Fatalf("%s: Delete changed the old snapshot", label)
				}
			} else {
				role := randRole(rng)
				var others []Role
				for _, m := range model {
					if m.RoleID != role.RoleID {
						others = append(others, m)
					}
				}
				want := oracleValidate(append(sortedRoles(others), role))
				next, err := r.Put(role)
				if !sameErr(err, want) {
					t.Fatalf("%s: Put(%q) onto %q err = %v, oracle %v", label, role, model, err, want)
				}
				if err != nil {
					continue
				}
				model = append(others, role)
				// The old snapshot must still answer for the old model.
				r = next
			}
			compareToOracle(t, rng, r, model, label)
			// And a resolver built from scratch agrees with the incremental one.
			fresh, err := NewResolver(model)
			if err != nil {
				t.Fatalf("%s: NewResolver(model) = %v after incremental success", label, err)
			}
			if !slices.EqualFunc(fresh.Roles(), r.Roles(), func(a, b Role) bool {
				return a.RoleID == b.RoleID && slices.Equal(a.Scopes, b.Scopes)
			}) {
				t.Fatalf("%s: Roles differ", label)
			}
		}
	}
}

// TestSnapshotsIndependent: memos filled in an old snapshot must not leak
// into a new one and vice versa.
func TestSnapshotsIndependent(t *testing.T) {
	r1, err := NewResolver([]Role{
		{RoleID: "a", Scopes: []string{"assume:b"}},
		{RoleID: "b", Scopes: []string{"B1"}},
		{RoleID: "c:*", Scopes: []string{"assume:a", "C<..>"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	before := r1.Expand([]string{"assume:c:*"})
	r2, err := r1.Put(Role{RoleID: "b", Scopes: []string{"B2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.Expand([]string{"assume:c:*"}); !slices.Equal(got, []string{"B2", "C*", "assume:a", "assume:b", "assume:c:*"}) {
		t.Errorf("new snapshot: %q", got)
	}
	if got := r1.Expand([]string{"assume:c:*"}); !slices.Equal(got, before) || !slices.Contains(got, "B1") {
		t.Errorf("old snapshot changed: %q, was %q", got, before)
	}
	r3 := r2.Delete("b")
	if got := r3.Expand([]string{"assume:a"}); !slices.Equal(got, []string{"assume:a", "assume:b"}) {
		t.Errorf("after delete: %q", got)
	}
	if r3.Len() != 2 || r2.Len() != 3 {
		t.Errorf("Len: %d %d", r3.Len(), r2.Len())
	}
}

func TestResolverErrors(t *testing.T) {
	cases := []struct {
		name  string
		roles []Role
		want  error
	}{
		{"empty id", []Role{{RoleID: ""}}, ErrInvalidRole},
		{"tab in id", []Role{{RoleID: "a\tb"}}, ErrInvalidRole},
		{"duplicate", []Role{{RoleID: "a"}, {RoleID: "a"}}, ErrInvalidRole},
		{"bad scope", []Role{{RoleID: "a", Scopes: []string{"é"}}}, ErrInvalidRole},
		{"multiple param", []Role{{RoleID: "a*", Scopes: []string{"x<..>y<..>"}}}, ErrInvalidScope},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewResolver(c.roles); !errors.Is(err, c.want) {
				t.Errorf("NewResolver = %v, want %v", err, c.want)
			}
		})
	}
	var nilR *Resolver
	if got := nilR.Expand([]string{"b", "a*", "ab"}); !slices.Equal(got, []string{"a*", "b"}) {
		t.Errorf("nil resolver Expand = %q", got)
	}
	if nilR.Len() != 0 || len(nilR.Roles()) != 0 || nilR.Delete("x").Len() != 0 {
		t.Error("nil resolver is not empty")
	}
	var zero Resolver
	if got := zero.ExpandRole("x"); !slices.Equal(got, []string{"assume:x"}) {
		t.Errorf("zero resolver ExpandRole = %q", got)
	}
}

// --- property tests ---

func TestExpansionMonotone(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1500 {
		r, err := NewResolver(randRoles(rng))
		if err != nil {
			continue
		}
		a := randInput(rng)
		b := append(slices.Clone(a), randInput(rng)...)
		small, big := r.Expand(a), r.Expand(b)
		for _, s := range small {
			if !big.Satisfies(s) {
				t.Fatalf("Expand(%q) has %q, not satisfied by Expand(%q) = %q", a, s, b, big)
			}
		}
	}
}

func TestScopeSetProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 5000 {
		a, b := randInput(rng), randInput(rng)
		a = append(a, randWord(rng, 4), randWord(rng, 4)+"*")
		checkSetProperties(t, a, b)
	}
}

func checkSetProperties(t *testing.T, a, b []string) {
	t.Helper()
	na := NewScopeSet(a)
	if again := NewScopeSet(na); !slices.Equal(again, na) {
		t.Fatalf("normalize not idempotent: %q -> %q -> %q", a, na, again)
	}
	if n2 := Normalize(na); !slices.Equal(n2, na) {
		t.Fatalf("Normalize(normalized) changed: %q -> %q", na, n2)
	}
	for i := range na {
		for j := range na {
			if i != j && Satisfies(na[i], na[j]) && Compare(na[i], na[j]) < 0 {
				t.Fatalf("normalized %q keeps %q covered by %q", na, na[j], na[i])
			}
		}
	}
	// ScopeSet.Satisfies agrees with a linear scan, for members of both and
	// for probes derived from them.
	probes := append(slices.Clone(a), b...)
	for _, s := range a {
		probes = append(probes, s+"*", s+"x", strings.TrimSuffix(s, "*"))
	}
	for _, p := range probes {
		linear := slices.ContainsFunc(a, func(h string) bool { return Satisfies(h, p) })
		if got := na.Satisfies(p); got != linear {
			t.Fatalf("ScopeSet(%q).Satisfies(%q) = %v, linear scan %v", na, p, got, linear)
		}
	}
	for _, s := range Intersection(a, b) {
		if !NewScopeSet(a).Satisfies(s) || !NewScopeSet(b).Satisfies(s) {
			t.Fatalf("Intersection(%q, %q) has %q not satisfied by both", a, b, s)
		}
	}
	u := Union(a, b)
	if !slices.Equal(u, NewScopeSet(append(slices.Clone(a), b...))) {
		t.Fatalf("Union(%q, %q) = %q differs from normalising the concatenation", a, b, u)
	}
	for _, s := range append(slices.Clone(a), b...) {
		if !u.Satisfies(s) {
			t.Fatalf("Union(%q, %q) = %q does not satisfy %q", a, b, u, s)
		}
	}
}

// TestConcurrentExpand fills the lazy memos from many goroutines at once
// (run with -race); every goroutine must see the sequential answer.
func TestConcurrentExpand(t *testing.T) {
	roles, clients := syntheticCorpus(400)
	ref, err := NewResolver(roles)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]ScopeSet, len(clients))
	for i, c := range clients {
		want[i] = ref.Expand(c)
	}
	r, _ := NewResolver(roles)
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range clients {
				k := (i + g*97) % len(clients)
				if got := r.Expand(clients[k]); !slices.Equal(got, want[k]) {
					done <- fmt.Errorf("client %d: %q != %q", k, got, want[k])
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorpusAgainstOracle checks the realistic benchmark corpus (star roles
// with <..>, chains, groups) against the oracle, and validation against §8.
func TestCorpusAgainstOracle(t *testing.T) {
	roles, clients := syntheticCorpus(200)
	if err := oracleValidate(sortedRoles(roles)); err != nil {
		t.Fatalf("corpus invalid per oracle: %v", err)
	}
	r, err := NewResolver(roles)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range clients[:24] {
		if i%6 == 5 {
			c = c[len(c)-3:] // the 300-scope lists are slow for the oracle
		}
		if got, want := r.Expand(c), oracleExpand(roles, c); !slices.Equal(got, want) {
			t.Fatalf("Expand(%q) = %q\noracle %q", c, got, want)
		}
	}
}
