package scopeengine

import (
	"bytes"
	"slices"
)

// What explaining a template needs beyond rendering it: the template as
// JSON again (for display), a rendering that tolerates parameters not yet
// known (a request without its body), and the missing scopes as a short
// list of alternatives rather than a nested expression.

// MarshalJSON emits the template in the JSON form ParseTemplate reads,
// keys in a fixed order (AllOf/AnyOf, for/in/each, if/then/else);
// ParseTemplate(MarshalJSON(t)) renders as t does. HTML characters are not
// escaped. The zero Template is null.
func (t Template) MarshalJSON() ([]byte, error) {
	if t.root == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	t.root.appendJSON(&b)
	return b.Bytes(), nil
}

func (n *tnodeT) appendJSON(b *bytes.Buffer) {
	switch n.kind {
	case tString:
		writeJSONString(b, joinPlaceholders(n.parts))
	case tAllOf, tAnyOf:
		if n.kind == tAllOf {
			b.WriteString(`{"AllOf":[`)
		} else {
			b.WriteString(`{"AnyOf":[`)
		}
		for i, c := range n.children {
			if i > 0 {
				b.WriteByte(',')
			}
			c.appendJSON(b)
		}
		b.WriteString("]}")
	case tFor:
		b.WriteString(`{"for":`)
		writeJSONString(b, n.forVar)
		b.WriteString(`,"in":`)
		writeJSONString(b, n.inP)
		b.WriteString(`,"each":`)
		writeJSONString(b, joinPlaceholders(n.each.parts))
		b.WriteByte('}')
	case tIf:
		b.WriteString(`{"if":`)
		writeJSONString(b, n.ifP)
		b.WriteString(`,"then":`)
		n.then.appendJSON(b)
		if n.els != nil {
			b.WriteString(`,"else":`)
			n.els.appendJSON(b)
		}
		b.WriteByte('}')
	}
}

// joinPlaceholders undoes splitPlaceholders: the string exactly as written.
func joinPlaceholders(parts []string) string {
	var s string
	for i, p := range parts {
		if i%2 == 1 {
			p = "<" + p + ">"
		}
		s += p
	}
	return s
}

// ParamTypes maps each parameter of Params to the type the template uses
// it as: "string" (<x>), "array" (a for-form's in) or "boolean" (an if).
func (t Template) ParamTypes() map[string]string {
	types := map[string]string{}
	if t.root != nil {
		var order []string
		_ = extractParams(t.root, types, &order) // validated by ParseTemplate
		for k := range types {
			if !slices.Contains(order, k) {
				delete(types, k) // a for-form's loop variable
			}
		}
	}
	return types
}

// RenderPartial renders t as Render does, except that parameters absent
// from params do not fail it: an absent array renders as an empty list
// (the expression then holds only the parts that do not depend on it) and
// is listed in emptied; any other absent parameter leaves the expression
// unknown and is listed in unknown (expr and public are then meaningless).
// A parameter present with the wrong type is an error, as in Render.
func (t Template) RenderPartial(params map[string]any) (expr Expr, public bool, emptied, unknown []string, err error) {
	types := t.ParamTypes()
	filled := make(map[string]any, len(params)+len(types))
	for k, v := range params {
		filled[k] = v
	}
	for _, name := range t.Params() {
		if _, ok := params[name]; ok {
			continue
		}
		if types[name] == "array" {
			filled[name] = []any{}
			emptied = append(emptied, name)
		} else {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return Expr{}, false, emptied, unknown, nil
	}
	expr, public, err = t.Render(filled)
	return expr, public, emptied, nil, err
}

// Alternatives lists the ways to satisfy e as scope sets: having every
// scope of any one of them satisfies e. The list is minimal — no set is
// implied by another, and each set is normalised (no member satisfied by
// another member) — and sorted. AllOf() gives one empty set (nothing is
// needed), AnyOf() none (nothing suffices). Applied to the result of
// Unsatisfied it answers "what is missing": the smallest sets of scopes
// to grant. ok=false when more than limit sets would be needed (the
// disjunctive form of nested AnyOfs grows multiplicatively).
func (e Expr) Alternatives(limit int) (sets [][]string, ok bool) {
	switch e.kind {
	case kindScope:
		return [][]string{{e.scope}}, limit >= 1
	case kindAnyOf:
		var out [][]string
		for _, c := range e.children {
			alts, ok := c.Alternatives(limit)
			if !ok {
				return nil, false
			}
			out = minimalSets(append(out, alts...))
			if len(out) > limit {
				return nil, false
			}
		}
		return nonNilSets(out), true
	default: // AllOf: every combination of one alternative per child
		out := [][]string{{}}
		for _, c := range e.children {
			alts, ok := c.Alternatives(limit)
			if !ok {
				return nil, false
			}
			var next [][]string
			for _, have := range out {
				for _, a := range alts {
					next = append(next, Union(have, a))
					if len(next) > limit*limit {
						return nil, false // bound the work before pruning
					}
				}
			}
			out = minimalSets(next)
			if len(out) > limit {
				return nil, false
			}
		}
		return nonNilSets(out), true
	}
}

// minimalSets normalises each set and drops those implied by another (a
// set that satisfies every scope of another grants more than needed:
// {a*} next to {ab, ac}), keeping one of equal sets, sorted by size then
// content.
func minimalSets(sets [][]string) [][]string {
	norm := make([]ScopeSet, len(sets))
	for i, s := range sets {
		norm[i] = NewScopeSet(s)
	}
	slices.SortFunc(norm, func(a, b ScopeSet) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return slices.Compare(a, b)
	})
	var out [][]string
	for i, s := range norm {
		implied := false
		for j, t := range norm {
			same := slices.Equal(s, t)
			if i != j && s.SatisfiesAll(t) && (!same || j < i) {
				implied = true
				break
			}
		}
		if !implied {
			out = append(out, []string(s))
		}
	}
	return out
}

func nonNilSets(sets [][]string) [][]string {
	if sets == nil {
		return [][]string{}
	}
	for i := range sets {
		if sets[i] == nil {
			sets[i] = []string{}
		}
	}
	return sets
}
