package scopeengine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors; detailed errors wrap them with %w.
var (
	ErrInvalidScope      = errors.New("invalid scope")
	ErrInvalidExpression = errors.New("invalid scope expression")
	ErrInvalidTemplate   = errors.New("invalid scope expression template")
)

type exprKind uint8

const (
	kindScope exprKind = iota
	kindAllOf
	kindAnyOf
)

// Expr is a scope expression (docs/scopes.md §5): a scope string, or an AllOf / AnyOf
// node over child expressions. The zero value is the empty-string scope.
type Expr struct {
	kind     exprKind
	scope    string
	children []Expr
}

// ScopeExpr is the expression requiring the single scope s.
func ScopeExpr(s string) Expr { return Expr{kind: kindScope, scope: s} }

// AllOf requires every child (AllOf() is always satisfied).
func AllOf(children ...Expr) Expr {
	return Expr{kind: kindAllOf, children: nonNil(children)}
}

// AnyOf requires some child (AnyOf() is never satisfied, even by "*").
func AnyOf(children ...Expr) Expr {
	return Expr{kind: kindAnyOf, children: nonNil(children)}
}

// AllOfScopes is AllOf over plain scopes.
func AllOfScopes(scopes ...string) Expr {
	c := make([]Expr, len(scopes))
	for i, s := range scopes {
		c[i] = ScopeExpr(s)
	}
	return AllOf(c...)
}

func nonNil(c []Expr) []Expr {
	if c == nil {
		return []Expr{}
	}
	return c
}

// IsScope reports whether e is a bare scope; Scope returns it.
func (e Expr) IsScope() bool    { return e.kind == kindScope }
func (e Expr) IsAllOf() bool    { return e.kind == kindAllOf }
func (e Expr) IsAnyOf() bool    { return e.kind == kindAnyOf }
func (e Expr) Scope() string    { return e.scope }
func (e Expr) Children() []Expr { return e.children }

// Valid reports whether every scope string in e is a valid scope.
func (e Expr) Valid() bool {
	if e.kind == kindScope {
		return ValidScope(e.scope)
	}
	for _, c := range e.children {
		if !c.Valid() {
			return false
		}
	}
	return true
}

// ParseExpr decodes and validates a JSON scope expression: a valid scope
// string, or an object with exactly one key, AllOf or AnyOf, holding an array
// of expressions.
func ParseExpr(data []byte) (Expr, error) {
	v, err := decodeJSON(data, ErrInvalidExpression)
	if err != nil {
		return Expr{}, err
	}
	return exprFromValue(v)
}

// decodeJSON decodes exactly one JSON value, numbers kept as json.Number;
// errors wrap sentinel.
func decodeJSON(data []byte, sentinel error) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", sentinel, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON value", sentinel)
	}
	return v, nil
}

func exprFromValue(v any) (Expr, error) {
	switch t := v.(type) {
	case string:
		if !ValidScope(t) {
			return Expr{}, fmt.Errorf("%w: %w: %q", ErrInvalidExpression, ErrInvalidScope, t)
		}
		return ScopeExpr(t), nil
	case map[string]any:
		if len(t) != 1 {
			return Expr{}, fmt.Errorf("%w: an operator object must have exactly one key", ErrInvalidExpression)
		}
		var kind exprKind
		var raw any
		if a, ok := t["AllOf"]; ok {
			kind, raw = kindAllOf, a
		} else if a, ok := t["AnyOf"]; ok {
			kind, raw = kindAnyOf, a
		} else {
			return Expr{}, fmt.Errorf("%w: the only operators are AllOf and AnyOf", ErrInvalidExpression)
		}
		arr, ok := raw.([]any)
		if !ok {
			return Expr{}, fmt.Errorf("%w: operator value must be an array", ErrInvalidExpression)
		}
		children := make([]Expr, len(arr))
		for i, c := range arr {
			ce, err := exprFromValue(c)
			if err != nil {
				return Expr{}, err
			}
			children[i] = ce
		}
		return Expr{kind: kind, children: children}, nil
	}
	return Expr{}, fmt.Errorf("%w: must be a string or an AllOf/AnyOf object", ErrInvalidExpression)
}

// UnmarshalJSON implements json.Unmarshaler with ParseExpr's validation.
func (e *Expr) UnmarshalJSON(data []byte) error {
	x, err := ParseExpr(data)
	if err != nil {
		return err
	}
	*e = x
	return nil
}

// MarshalJSON emits Taskcluster's shape: "scope" or {"AllOf": [...]} /
// {"AnyOf": [...]}. HTML characters are not escaped (JSON.stringify does not).
func (e Expr) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	e.appendJSON(&b)
	return b.Bytes(), nil
}

func (e Expr) appendJSON(b *bytes.Buffer) {
	switch e.kind {
	case kindScope:
		writeJSONString(b, e.scope)
		return
	case kindAllOf:
		b.WriteString(`{"AllOf":[`)
	default:
		b.WriteString(`{"AnyOf":[`)
	}
	for i, c := range e.children {
		if i > 0 {
			b.WriteByte(',')
		}
		c.appendJSON(b)
	}
	b.WriteString("]}")
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends '\n'
}

// String is the bare scope for a scope node, else the expression as JSON
// indented by two spaces — the JSON.stringify(expr, null, 2) form that
// Taskcluster puts in 403 messages.
func (e Expr) String() string {
	if e.kind == kindScope {
		return e.scope
	}
	raw, _ := e.MarshalJSON()
	var out bytes.Buffer
	_ = json.Indent(&out, raw, "", "  ") // raw is well-formed by construction
	return out.String()
}

// Equal reports structural equality.
func (e Expr) Equal(o Expr) bool {
	if e.kind != o.kind || e.scope != o.scope || len(e.children) != len(o.children) {
		return false
	}
	for i := range e.children {
		if !e.children[i].Equal(o.children[i]) {
			return false
		}
	}
	return true
}

// Satisfied is the reference satisfiesExpression.
func (e Expr) Satisfied(have ScopeSet) bool {
	switch e.kind {
	case kindScope:
		return have.Satisfies(e.scope)
	case kindAllOf:
		for _, c := range e.children {
			if !c.Satisfied(have) {
				return false
			}
		}
		return true
	default:
		for _, c := range e.children {
			if c.Satisfied(have) {
				return true
			}
		}
		return false
	}
}

// Unsatisfied is the reference removeGivenScopes: the part of e that have
// does not satisfy, for 403 messages. ok=false means e is fully satisfied (the
// reference returns null).
func (e Expr) Unsatisfied(have ScopeSet) (Expr, bool) {
	switch e.kind {
	case kindScope:
		if have.Satisfies(e.scope) {
			return Expr{}, false
		}
		return e, true
	case kindAllOf:
		rest := []Expr{}
		for _, c := range e.children {
			if u, ok := c.Unsatisfied(have); ok {
				rest = append(rest, u)
			}
		}
		switch len(rest) {
		case 0:
			return Expr{}, false
		case 1:
			return rest[0], true
		}
		return Expr{kind: kindAllOf, children: rest}, true
	default:
		rest := make([]Expr, 0, len(e.children))
		for _, c := range e.children {
			u, ok := c.Unsatisfied(have)
			if !ok {
				return Expr{}, false
			}
			rest = append(rest, u)
		}
		if len(rest) == 1 {
			return rest[0], true
		}
		// [quirk] copied: AnyOf: [] stays {AnyOf: []} (unsatisfiable).
		return Expr{kind: kindAnyOf, children: rest}, true
	}
}

// ScopesSatisfying is the reference scopesSatisfying: the scopes of e (not
// the caller's patterns) that were used to satisfy it — every string of a
// satisfied AllOf, every satisfied branch of an AnyOf — sorted and
// normalised. ok=false when e is not satisfied.
func (e Expr) ScopesSatisfying(have ScopeSet) ([]string, bool) {
	var used []string
	if !e.collectSatisfying(have, &used) {
		return nil, false
	}
	return []string(NewScopeSet(used)), true
}

func (e Expr) collectSatisfying(have ScopeSet, used *[]string) bool {
	switch e.kind {
	case kindScope:
		if have.Satisfies(e.scope) {
			*used = append(*used, e.scope)
			return true
		}
		return false
	case kindAllOf:
		mark := len(*used)
		for _, c := range e.children {
			if !c.collectSatisfying(have, used) {
				*used = (*used)[:mark]
				return false
			}
		}
		return true
	default:
		any := false
		for _, c := range e.children {
			mark := len(*used)
			if c.collectSatisfying(have, used) {
				any = true
			} else {
				*used = (*used)[:mark]
			}
		}
		return any
	}
}

// Simplify is simplifyScopeExpression: nested operators of the same kind are
// flattened, duplicates removed, the string members of an AllOf normalised
// (a covered scope adds nothing to an AllOf), the string members of an AnyOf
// sorted, and single-child operators unwrapped. Empty operators are kept.
func (e Expr) Simplify() Expr {
	if e.kind == kindScope {
		return e
	}
	var scopes []string
	var others []Expr
	var flatten func(children []Expr)
	flatten = func(children []Expr) {
		for _, c := range children {
			c = c.Simplify()
			switch {
			case c.kind == kindScope:
				scopes = append(scopes, c.scope)
			case c.kind == e.kind:
				flatten(c.children)
			default:
				dup := false
				for _, o := range others {
					if o.Equal(c) {
						dup = true
						break
					}
				}
				if !dup {
					others = append(others, c)
				}
			}
		}
	}
	flatten(e.children)
	if e.kind == kindAllOf {
		scopes = NewScopeSet(scopes)
	} else {
		SortScopes(scopes)
		scopes = dedupSorted(scopes)
	}
	children := make([]Expr, 0, len(scopes)+len(others))
	for _, s := range scopes {
		children = append(children, ScopeExpr(s))
	}
	children = append(children, others...)
	if len(children) == 1 {
		return children[0]
	}
	return Expr{kind: e.kind, children: children}
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
