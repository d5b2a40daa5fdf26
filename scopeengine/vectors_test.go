package scopeengine

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const vectorsPath = "../testdata/spec/reference-vectors.json"

type roleVec struct {
	RoleID string   `json:"roleId"`
	Scopes []string `json:"scopes"`
}

func toRoles(v []roleVec) []Role {
	out := make([]Role, len(v))
	for i, r := range v {
		out[i] = Role{RoleID: r.RoleID, Scopes: r.Scopes}
	}
	return out
}

type vectors struct {
	Scopes struct {
		ValidScope      map[string]bool `json:"validScope"`
		SatisfiesSingle []struct {
			Have, Need string
			Satisfied  bool
		} `json:"satisfies_single"`
		Expressions []struct {
			Scopes           []string        `json:"scopes"`
			Expr             json.RawMessage `json:"expr"`
			Satisfied        bool            `json:"satisfied"`
			Unsatisfied      json.RawMessage `json:"unsatisfied"`
			ScopesSatisfying []string        `json:"scopesSatisfying"`
		} `json:"expressions"`
		ValidExpression []struct {
			Expr  json.RawMessage `json:"expr"`
			Valid bool            `json:"valid"`
		} `json:"validExpression"`
		ScopeCompareSorted []string `json:"scopeCompare_sorted"`
		Normalize          []struct {
			Input      []string `json:"input"`
			Normalized []string `json:"normalized"`
		} `json:"normalize"`
		NormalizeCaveat struct {
			Input                []string `json:"input"`
			NormalizeWithoutSort []string `json:"normalizeWithoutSort"`
		} `json:"normalize_unsorted_input_caveat"`
		Merge []struct {
			A, B, Merged []string
		} `json:"merge"`
		Intersection []struct {
			A, B, Intersection []string
		} `json:"intersection"`
		Union []struct {
			A, B, Union []string
		} `json:"union"`
		Simplify []struct {
			Expr       json.RawMessage `json:"expr"`
			Simplified json.RawMessage `json:"simplified"`
		} `json:"simplify"`
		Templates []struct {
			Template       json.RawMessage `json:"template"`
			Params         map[string]any  `json:"params"`
			RequiredParams []string        `json:"requiredParams"`
			Rendered       json.RawMessage `json:"rendered"`
		} `json:"templates"`
		TemplateErrors []struct {
			Template json.RawMessage `json:"template"`
			Params   map[string]any  `json:"params"`
			Rendered string          `json:"rendered"`
		} `json:"template_errors"`
		TemplateValid []struct {
			Template  json.RawMessage `json:"template"`
			ValidRoot bool            `json:"validRoot"`
		} `json:"template_valid"`
	} `json:"scopes"`
	Roles struct {
		Expansions []struct {
			Title      string    `json:"title"`
			Roles      []roleVec `json:"roles"`
			Expansions []struct {
				Input    []string `json:"input"`
				Expanded []string `json:"expanded"`
			} `json:"expansions"`
		} `json:"expansions"`
		ValidateRoles []struct {
			Title  string          `json:"title"`
			Roles  []roleVec       `json:"roles"`
			Result json.RawMessage `json:"result"`
		} `json:"validateRoles"`
		LiteralParamInNonStarRole []string `json:"literalParamInNonStarRole"`
	} `json:"roles"`
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %s: %v", vectorsPath, err)
	}
	return &v
}

// jsonEqual compares two JSON documents structurally.
func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("bad JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("bad JSON %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func strs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestVectorsScopes(t *testing.T) {
	v := loadVectors(t)
	s := v.Scopes
	t.Run("validScope", func(t *testing.T) {
		if len(s.ValidScope) == 0 {
			t.Fatal("no vectors")
		}
		for k, want := range s.ValidScope {
			var scope string
			if err := json.Unmarshal([]byte(k), &scope); err != nil {
				t.Fatal(err)
			}
			if got := ValidScope(scope); got != want {
				t.Errorf("ValidScope(%q) = %v, want %v", scope, got, want)
			}
		}
	})
	t.Run("satisfies_single", func(t *testing.T) {
		for _, c := range s.SatisfiesSingle {
			if got := Satisfies(c.Have, c.Need); got != c.Satisfied {
				t.Errorf("Satisfies(%q, %q) = %v", c.Have, c.Need, got)
			}
			if got := NewScopeSet([]string{c.Have}).Satisfies(c.Need); got != c.Satisfied {
				t.Errorf("ScopeSet{%q}.Satisfies(%q) = %v", c.Have, c.Need, got)
			}
		}
	})
	t.Run("expressions", func(t *testing.T) {
		for _, c := range s.Expressions {
			e, err := ParseExpr(c.Expr)
			if err != nil {
				t.Fatalf("ParseExpr(%s): %v", c.Expr, err)
			}
			have := NewScopeSet(c.Scopes)
			if got := e.Satisfied(have); got != c.Satisfied {
				t.Errorf("%s satisfied by %v = %v", c.Expr, c.Scopes, got)
			}
			u, ok := e.Unsatisfied(have)
			if string(c.Unsatisfied) == "null" {
				if ok {
					t.Errorf("%s unsatisfied = %s, want null", c.Expr, u)
				}
			} else {
				got, _ := u.MarshalJSON()
				if !ok || !jsonEqual(t, got, c.Unsatisfied) {
					t.Errorf("%s unsatisfied = %s (ok=%v), want %s", c.Expr, got, ok, c.Unsatisfied)
				}
			}
			ss, ok := e.ScopesSatisfying(have)
			if c.ScopesSatisfying == nil {
				if ok {
					t.Errorf("%s scopesSatisfying = %v, want undefined", c.Expr, ss)
				}
			} else if !ok || !slices.Equal(ss, c.ScopesSatisfying) {
				t.Errorf("%s scopesSatisfying = %v (ok=%v), want %v", c.Expr, ss, ok, c.ScopesSatisfying)
			}
		}
	})
	t.Run("validExpression", func(t *testing.T) {
		for _, c := range s.ValidExpression {
			e, err := ParseExpr(c.Expr)
			if (err == nil) != c.Valid {
				t.Errorf("ParseExpr(%s) err=%v, want valid=%v", c.Expr, err, c.Valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidExpression) {
				t.Errorf("error %v does not wrap ErrInvalidExpression", err)
			}
			if err == nil {
				got, _ := e.MarshalJSON()
				if !jsonEqual(t, got, c.Expr) {
					t.Errorf("round trip %s -> %s", c.Expr, got)
				}
			}
		}
	})
	t.Run("scopeCompare_sorted", func(t *testing.T) {
		want := s.ScopeCompareSorted
		got := slices.Clone(want)
		slices.Reverse(got)
		SortScopes(got)
		if !slices.Equal(got, want) {
			t.Errorf("sorted = %q, want %q", got, want)
		}
		for i := range want {
			for j := range want {
				c := Compare(want[i], want[j])
				if (i < j && c != -1) || (i == j && c != 0) || (i > j && c != 1) {
					t.Errorf("Compare(%q, %q) = %d", want[i], want[j], c)
				}
			}
		}
	})
	t.Run("normalize", func(t *testing.T) {
		for _, c := range s.Normalize {
			in := slices.Clone(c.Input)
			SortScopes(in)
			if got := Normalize(in); !slices.Equal(got, c.Normalized) {
				t.Errorf("Normalize(%v) = %v, want %v", c.Input, got, c.Normalized)
			}
			if got := NewScopeSet(c.Input); !slices.Equal(got, c.Normalized) {
				t.Errorf("NewScopeSet(%v) = %v, want %v", c.Input, got, c.Normalized)
			}
		}
		cv := s.NormalizeCaveat
		if got := Normalize(cv.Input); !slices.Equal(got, cv.NormalizeWithoutSort) {
			t.Errorf("unsorted Normalize(%v) = %v, want %v", cv.Input, got, cv.NormalizeWithoutSort)
		}
	})
	type setOp struct {
		name string
		fn   func(a, b []string) []string
	}
	merge := setOp{"Merge", func(a, b []string) []string { return Merge(a, b) }}
	union := setOp{"Union", func(a, b []string) []string { return Union(a, b) }}
	inter := setOp{"Intersection", Intersection}
	type setRow struct {
		op         setOp
		a, b, want []string
	}
	var rows []setRow
	for _, c := range s.Merge {
		rows = append(rows, struct {
			op         setOp
			a, b, want []string
		}{merge, c.A, c.B, c.Merged})
	}
	for _, c := range s.Union {
		rows = append(rows, struct {
			op         setOp
			a, b, want []string
		}{union, c.A, c.B, c.Union})
	}
	for _, c := range s.Intersection {
		rows = append(rows, struct {
			op         setOp
			a, b, want []string
		}{inter, c.A, c.B, c.Intersection})
	}
	// docs/scopes.md §4's unsorted intersection example.
	rows = append(rows, setRow{inter, []string{"a*", "ab"}, []string{"ab*"}, []string{"ab", "ab*"}})
	if len(rows) < 10 {
		t.Fatalf("only %d set-operation vectors", len(rows))
	}
	for _, r := range rows {
		if got := r.op.fn(r.a, r.b); !slices.Equal(strs(got), strs(r.want)) {
			t.Errorf("%s(%q, %q) = %q, want %q", r.op.name, r.a, r.b, got, r.want)
		}
	}
	t.Run("simplify", func(t *testing.T) {
		for _, c := range s.Simplify {
			e, err := ParseExpr(c.Expr)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := e.Simplify().MarshalJSON()
			if !jsonEqual(t, got, c.Simplified) {
				t.Errorf("Simplify(%s) = %s, want %s", c.Expr, got, c.Simplified)
			}
		}
	})
	t.Run("templates", func(t *testing.T) {
		for _, c := range s.Templates {
			tm, err := ParseTemplate(c.Template)
			if err != nil {
				t.Fatalf("ParseTemplate(%s): %v", c.Template, err)
			}
			if got := tm.Params(); !slices.Equal(got, c.RequiredParams) {
				t.Errorf("Params(%s) = %v, want %v", c.Template, got, c.RequiredParams)
			}
			e, public, err := tm.Render(c.Params)
			if err != nil || public {
				t.Fatalf("Render(%s, %v): %v public=%v", c.Template, c.Params, err, public)
			}
			got, _ := e.MarshalJSON()
			if !jsonEqual(t, got, c.Rendered) {
				t.Errorf("Render(%s, %v) = %s, want %s", c.Template, c.Params, got, c.Rendered)
			}
		}
	})
	t.Run("template_errors", func(t *testing.T) {
		for _, c := range s.TemplateErrors {
			tm, err := ParseTemplate(c.Template)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = tm.Render(c.Params)
			want := strings.TrimPrefix(c.Rendered, "ERROR: ")
			if err == nil || err.Error() != want {
				t.Errorf("Render(%s, %v) err = %v, want %q", c.Template, c.Params, err, want)
			}
			if err != nil && !errors.Is(err, ErrInvalidTemplate) {
				t.Errorf("render error does not wrap ErrInvalidTemplate")
			}
		}
	})
	t.Run("template_valid", func(t *testing.T) {
		for _, c := range s.TemplateValid {
			_, err := ParseTemplate(c.Template)
			if (err == nil) != c.ValidRoot {
				t.Errorf("ParseTemplate(%s) err = %v, want valid=%v", c.Template, err, c.ValidRoot)
			}
		}
	})
}

func TestVectorsRoles(t *testing.T) {
	v := loadVectors(t)
	for _, g := range v.Roles.Expansions {
		t.Run("expand/"+g.Title, func(t *testing.T) {
			roles := toRoles(g.Roles)
			r, err := NewResolver(roles)
			if err != nil {
				t.Fatal(err)
			}
			// The same set built by Put, one role at a time, in reverse.
			var inc *Resolver
			for i := len(roles) - 1; i >= 0; i-- {
				if inc, err = inc.Put(roles[i]); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range g.Expansions {
				for name, res := range map[string]*Resolver{"NewResolver": r, "Put": inc} {
					if got := res.Expand(c.Input); !slices.Equal(strs(got), strs(c.Expanded)) {
						t.Errorf("%s: Expand(%q) = %q, want %q", name, c.Input, got, c.Expanded)
					}
					if got := oracleExpand(roles, c.Input); !slices.Equal(strs(got), strs(c.Expanded)) {
						t.Errorf("oracle: Expand(%q) = %q, want %q", c.Input, got, c.Expanded)
					}
				}
			}
		})
	}
	for _, c := range v.Roles.ValidateRoles {
		t.Run("validate/"+c.Title, func(t *testing.T) {
			roles := toRoles(c.Roles)
			err := ValidateRoles(roles)
			var want struct {
				Code, Message, Scope string
				Cycle                []string
			}
			if string(c.Result) == `"valid"` {
				if err != nil {
					t.Fatalf("ValidateRoles = %v, want valid", err)
				}
				return
			}
			if e := json.Unmarshal(c.Result, &want); e != nil {
				t.Fatal(e)
			}
			if err == nil || err.Error() != want.Message {
				t.Fatalf("ValidateRoles = %v, want %q", err, want.Message)
			}
			switch want.Code {
			case "DependencyCycleError":
				var ce *DependencyCycleError
				if !errors.As(err, &ce) || !slices.Equal(ce.Cycle, want.Cycle) {
					t.Errorf("cycle = %v, want %v", ce, want.Cycle)
				}
			case "InvalidScopeError":
				var se *InvalidScopeError
				if !errors.As(err, &se) || se.Scope != want.Scope || !errors.Is(err, ErrInvalidScope) {
					t.Errorf("InvalidScopeError = %#v, want scope %q", se, want.Scope)
				}
			default:
				t.Fatalf("unknown code %q", want.Code)
			}
			// Put of the last role onto the others must fail the same way
			// (here the last role is also last in roleId order).
			if len(roles) > 0 {
				base, berr := NewResolver(roles[:len(roles)-1])
				if berr == nil {
					_, perr := base.Put(roles[len(roles)-1])
					if perr == nil || perr.Error() != want.Message {
						t.Errorf("Put = %v, want %q", perr, want.Message)
					}
				}
			}
		})
	}
	t.Run("literalParamInNonStarRole", func(t *testing.T) {
		r, err := NewResolver([]Role{{RoleID: "a", Scopes: []string{"A<..>"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Expand([]string{"assume:a"}); !slices.Equal(got, v.Roles.LiteralParamInNonStarRole) {
			t.Errorf("Expand = %q, want %q", got, v.Roles.LiteralParamInNonStarRole)
		}
	})
}
