package scopeengine

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Template is a scope-expression template (docs/scopes.md §6), as endpoints declare
// their required scopes: strings with <param> placeholders, AllOf/AnyOf,
// {for, in, each} (inside AllOf/AnyOf only) and {if, then[, else]}.
type Template struct {
	root   *tnodeT
	params []string
}

type tmplKind uint8

const (
	tString tmplKind = iota
	tAllOf
	tAnyOf
	tFor
	tIf
)

type tnodeT struct {
	kind tmplKind
	// parts of a string: even indexes literal text, odd indexes param names.
	parts       []string
	children    []*tnodeT // AllOf/AnyOf
	forVar, inP string    // for
	each        *tnodeT   // for (always a string node)
	ifP         string    // if
	then, els   *tnodeT   // if; els may be nil
}

var (
	paramNameRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
	placeholder = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9_]*)>`)
)

// ParseTemplate decodes and validates a JSON template; the root must be a
// string, AllOf, AnyOf or if-form (a bare for-form is not a valid root).
func ParseTemplate(data []byte) (Template, error) {
	v, err := decodeJSON(data, ErrInvalidTemplate)
	if err != nil {
		return Template{}, err
	}
	root, err := compileRoot(v)
	if err != nil {
		return Template{}, err
	}
	types := map[string]string{}
	var order []string
	if err := extractParams(root, types, &order); err != nil {
		return Template{}, err
	}
	return Template{root: root, params: order}, nil
}

// MustParseTemplate is ParseTemplate for templates written in code; it panics
// on an invalid template (a programming error).
func MustParseTemplate(s string) Template {
	t, err := ParseTemplate([]byte(s))
	if err != nil {
		panic(err)
	}
	return t
}

// Params lists the parameter names the template uses, in the reference's
// order, without for-loop variables. Types: <x> string, in array, if boolean.
func (t Template) Params() []string { return append([]string(nil), t.params...) }

func compileRoot(v any) (*tnodeT, error) {
	n, err := compileT(v)
	if err != nil {
		return nil, err
	}
	if n.kind == tFor {
		return nil, fmt.Errorf("%w: a for-form is only allowed inside AllOf/AnyOf", ErrInvalidTemplate)
	}
	return n, nil
}

func keysAre(m map[string]any, keys ...string) bool {
	if len(m) != len(keys) {
		return false
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

func paramName(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok && paramNameRe.MatchString(s)
}

func compileT(v any) (*tnodeT, error) {
	switch t := v.(type) {
	case string:
		return &tnodeT{kind: tString, parts: splitPlaceholders(t)}, nil
	case map[string]any:
		switch {
		case keysAre(t, "AllOf"), keysAre(t, "AnyOf"):
			kind, raw := tAllOf, t["AllOf"]
			if raw == nil {
				kind, raw = tAnyOf, t["AnyOf"]
			}
			arr, ok := raw.([]any)
			if !ok {
				return nil, fmt.Errorf("%w: operator value must be an array", ErrInvalidTemplate)
			}
			n := &tnodeT{kind: kind, children: make([]*tnodeT, len(arr))}
			for i, c := range arr {
				cn, err := compileT(c)
				if err != nil {
					return nil, err
				}
				n.children[i] = cn
			}
			return n, nil
		case keysAre(t, "for", "in", "each"):
			fv, ok1 := paramName(t["for"])
			in, ok2 := paramName(t["in"])
			each, ok3 := t["each"].(string)
			if !ok1 || !ok2 || !ok3 {
				return nil, fmt.Errorf("%w: for/in must be parameter names and each a string", ErrInvalidTemplate)
			}
			return &tnodeT{kind: tFor, forVar: fv, inP: in, each: &tnodeT{kind: tString, parts: splitPlaceholders(each)}}, nil
		case keysAre(t, "if", "then"), keysAre(t, "if", "then", "else"):
			ifp, ok := paramName(t["if"])
			if !ok {
				return nil, fmt.Errorf("%w: if must be a parameter name", ErrInvalidTemplate)
			}
			n := &tnodeT{kind: tIf, ifP: ifp}
			var err error
			if n.then, err = compileRoot(t["then"]); err != nil {
				return nil, err
			}
			if e, has := t["else"]; has {
				if n.els, err = compileRoot(e); err != nil {
					return nil, err
				}
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: unrecognised template form", ErrInvalidTemplate)
}

func splitPlaceholders(s string) []string {
	var parts []string
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(s, -1) {
		parts = append(parts, s[last:m[0]], s[m[2]:m[3]])
		last = m[1]
	}
	return append(parts, s[last:])
}

// extractParams follows the reference's extractParams, including its error
// when one name is used with two types.
func extractParams(n *tnodeT, types map[string]string, order *[]string) error {
	add := func(p, typ string) error {
		if old, ok := types[p]; ok {
			if old != typ {
				return fmt.Errorf("%w: Parameter %s cannot be both '%s' and '%s'", ErrInvalidTemplate, p, typ, old)
			}
			return nil
		}
		types[p] = typ
		*order = append(*order, p)
		return nil
	}
	switch n.kind {
	case tString:
		for i := 1; i < len(n.parts); i += 2 {
			if err := add(n.parts[i], "string"); err != nil {
				return err
			}
		}
	case tAllOf, tAnyOf:
		for _, c := range n.children {
			if err := extractParams(c, types, order); err != nil {
				return err
			}
		}
	case tFor:
		// The loop variable is local to the for-form: collect the for-form's
		// own names separately and drop the variable afterwards.
		// [quirk] copied: with for == in the reference's object literal
		// {[in]: 'array', [for]: 'string'} keeps only 'string', which is then
		// omitted as the loop variable, so the name is not listed at all.
		lt := map[string]string{n.inP: "array"}
		lo := []string{n.inP}
		if n.forVar != n.inP {
			lo = append(lo, n.forVar)
		}
		lt[n.forVar] = "string"
		if err := extractParams(n.each, lt, &lo); err != nil {
			return err
		}
		for _, p := range lo {
			if p == n.forVar {
				continue
			}
			if err := add(p, lt[p]); err != nil {
				return err
			}
		}
	case tIf:
		lt := map[string]string{}
		var lo []string
		if err := extractParams(n.then, lt, &lo); err != nil {
			return err
		}
		if n.els != nil {
			if err := extractParams(n.els, lt, &lo); err != nil {
				return err
			}
		}
		if err := add(n.ifP, "boolean"); err != nil {
			return err
		}
		for _, p := range lo {
			if err := add(p, lt[p]); err != nil {
				return err
			}
		}
	}
	return nil
}

// RenderError is a template rendering failure (HTTP 500 in Taskcluster); its
// message is the reference text.
type RenderError struct{ Message string }

func (e *RenderError) Error() string { return e.Message }
func (e *RenderError) Unwrap() error { return ErrInvalidTemplate }

// Render fills the template from params. public=true means the template
// rendered to null (an if without else whose condition was false): no scopes
// are required. Params may hold strings, numbers (any Go numeric type or
// json.Number), booleans and arrays ([]any or []string).
func (t Template) Render(params map[string]any) (expr Expr, public bool, err error) {
	if t.root == nil {
		return Expr{}, false, &RenderError{"Scope expression template is empty"}
	}
	out, err := renderT(t.root, params)
	if err != nil {
		return Expr{}, false, err
	}
	if len(out) == 0 {
		return Expr{}, true, nil
	}
	return out[0], false, nil
}

// renderT returns zero expressions for null, one for a plain result and any
// number for a for-form (spliced into the enclosing operator).
func renderT(n *tnodeT, params map[string]any) ([]Expr, error) {
	switch n.kind {
	case tString:
		s, err := renderString(n.parts, params)
		if err != nil {
			return nil, err
		}
		return []Expr{ScopeExpr(s)}, nil
	case tAllOf, tAnyOf:
		children := []Expr{}
		for _, c := range n.children {
			r, err := renderT(c, params)
			if err != nil {
				return nil, err
			}
			children = append(children, r...)
		}
		k := kindAllOf
		if n.kind == tAnyOf {
			k = kindAnyOf
		}
		return []Expr{{kind: k, children: children}}, nil
	case tFor:
		items, ok := asArray(params[n.inP])
		if !ok {
			return nil, &RenderError{fmt.Sprintf("Scope expression template expected parameter '%s' to be a array", n.inP)}
		}
		nested := make(map[string]any, len(params)+1)
		for k, v := range params {
			nested[k] = v
		}
		out := make([]Expr, 0, len(items))
		for _, it := range items {
			nested[n.forVar] = it
			s, err := renderString(n.each.parts, nested)
			if err != nil {
				return nil, err
			}
			out = append(out, ScopeExpr(s))
		}
		return out, nil
	default: // tIf
		switch params[n.ifP] {
		case true:
			return renderT(n.then, params)
		case false:
			if n.els != nil {
				return renderT(n.els, params)
			}
			return nil, nil
		}
		return nil, &RenderError{fmt.Sprintf("Scope expression template expected parameter '%s' to be a boolean", n.ifP)}
	}
}

func renderString(parts []string, params map[string]any) (string, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v, ok := stringOrNumber(params[p])
		if !ok {
			return "", &RenderError{fmt.Sprintf("Scope expression template expected parameter '%s' to be a string or number", p)}
		}
		// Inserted verbatim, no escaping: a value "a<b>" stays "a<b>".
		b.WriteString(v)
	}
	return b.String(), nil
}

func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case []string:
		out := make([]any, len(a))
		for i, s := range a {
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// stringOrNumber renders a param as JavaScript's String(value) would for a
// string or number.
func stringOrNumber(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return jsNumber(f), err == nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return jsNumber(float64(rv.Int())), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return jsNumber(float64(rv.Uint())), true
	case reflect.Float32, reflect.Float64:
		return jsNumber(rv.Float()), true
	}
	return "", false
}

// jsNumber formats f like JavaScript's Number.prototype.toString.
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // e.g. 1.5e-07
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + string(sign) + exp
}
