package scopeengine

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func FuzzParseExpr(f *testing.F) {
	for _, s := range []string{
		`"a"`, `{"AllOf":["a",{"AnyOf":["b","c*"]}]}`, `{"AnyOf":[]}`, `{"AllOf":[]}`,
		`{"AllOf":["a"],"AnyOf":["b"]}`, `{"Foo":[]}`, `["a"]`, `"a\nb"`, `null`, `5`,
		`{"AllOf":"a"}`, `{"AnyOf":[{"AllOf":["x","y"]},"z"]}`, `"<\"&>"`,
	} {
		f.Add([]byte(s), "a:*,b")
	}
	f.Fuzz(func(t *testing.T, data []byte, have string) {
		e, err := ParseExpr(data)
		if err != nil {
			return
		}
		if !e.Valid() {
			t.Fatalf("ParseExpr accepted an invalid expression %s", data)
		}
		raw, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseExpr(raw)
		if err != nil || !back.Equal(e) {
			t.Fatalf("round trip %s -> %s -> %v", data, raw, err)
		}
		if !e.IsScope() && !json.Valid([]byte(e.String())) {
			t.Fatalf("String() is not JSON: %s", e.String())
		}
		set := NewScopeSet(strings.Split(have, ","))
		sat := e.Satisfied(set)
		if _, unsat := e.Unsatisfied(set); unsat == sat {
			t.Fatalf("Satisfied=%v but Unsatisfied ok=%v for %s with %q", sat, unsat, raw, set)
		}
		used, ok := e.ScopesSatisfying(set)
		if ok != sat {
			t.Fatalf("ScopesSatisfying ok=%v, Satisfied=%v", ok, sat)
		}
		if ok && !e.Satisfied(NewScopeSet(used)) {
			t.Fatalf("%s not satisfied by its own satisfying scopes %q", raw, used)
		}
		s := e.Simplify()
		if s.Satisfied(set) != sat {
			t.Fatalf("Simplify changed meaning: %s -> %s with %q", raw, s, set)
		}
	})
}

func FuzzParseTemplate(f *testing.F) {
	for _, c := range [][2]string{
		{`{"AllOf":["auth:create-client:<clientId>",{"for":"scope","in":"scopes","each":"<scope>"}]}`, `{"clientId":"my/c","scopes":["a","b:*"]}`},
		{`{"if":"ro","then":{"AnyOf":["r:<b>","w:<b>"]},"else":"w:<b>"}`, `{"ro":true,"b":"x"}`},
		{`{"if":"ro","then":"x"}`, `{"ro":false}`},
		{`"a:<x>"`, `{"x":5}`},
		{`"a:<x>"`, `{}`},
		{`{"for":"a","in":"b","each":"c"}`, `{}`},
		{`{"AllOf":[{"for":"a","in":"a","each":"<a>"}]}`, `{"a":["q"]}`},
		{`{"AllOf":[{"if":"x","then":"y"}]}`, `{"x":"true"}`},
	} {
		f.Add([]byte(c[0]), []byte(c[1]))
	}
	f.Fuzz(func(t *testing.T, tmpl, params []byte) {
		tm, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		names := tm.Params()
		if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
			t.Fatalf("Params has duplicates: %q", names)
		}
		var p map[string]any
		if json.Unmarshal(params, &p) != nil {
			return
		}
		e, public, err := tm.Render(p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Scope expression template expected parameter '") {
				t.Fatalf("unexpected render error text %q", err)
			}
			return
		}
		if public {
			return
		}
		if _, err := e.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}

// parseFuzzRoles reads "id=s1,s2;id2=s3|in1,in2", bounded so the oracle
// stays fast.
func parseFuzzRoles(spec string) ([]Role, []string, bool) {
	rolesPart, inputPart, _ := strings.Cut(spec, "|")
	var roles []Role
	for i, def := range strings.Split(rolesPart, ";") {
		if i >= 6 || def == "" {
			break
		}
		id, scopes, _ := strings.Cut(def, "=")
		r := Role{RoleID: id}
		if scopes != "" {
			r.Scopes = strings.Split(scopes, ",")
		}
		if len(id) > 8 || len(r.Scopes) > 4 {
			return nil, nil, false
		}
		for _, s := range r.Scopes {
			if len(s) > 16 {
				return nil, nil, false
			}
		}
		roles = append(roles, r)
	}
	input := strings.Split(inputPart, ",")
	if len(input) > 4 {
		return nil, nil, false
	}
	return roles, input, true
}

func FuzzResolver(f *testing.F) {
	for _, s := range []string{
		"a*=assume:b<..>;b*=B<..>;bx=BX|assume:ax",
		"project-admin:*=auth:create-role:project-<..>/*,plain|assume:project-admin:ops*",
		"a=assume:b;b=assume:a|x",
		"**=A<..>aa|assu*,assume:***",
		"a*=assume:ab|assume:a",
		"p:*=assume:p:<..>x|assume:p:q",
		"*=everyone;anonymous=auth:current-scopes|assume:anonymous",
		"b*=X*<..>*,X*<..>|assume:bq",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		roles, input, ok := parseFuzzRoles(spec)
		if !ok {
			return
		}
		r, err := NewResolver(roles)
		if err != nil {
			return // malformed or cyclic; agreement on errors is TestDifferential*
		}
		want := oracleValidate(sortedRoles(roles))
		if want != nil {
			t.Fatalf("NewResolver accepted %q, oracle: %v", roles, want)
		}
		got, exp := r.Expand(input), oracleExpand(roles, input)
		if !slices.Equal(strs(got), strs(exp)) {
			t.Fatalf("roles %q Expand(%q) = %q, oracle %q", roles, input, got, exp)
		}
		// Incremental construction must agree too.
		var inc *Resolver
		for i := len(roles) - 1; i >= 0; i-- {
			if inc, err = inc.Put(roles[i]); err != nil {
				t.Fatalf("Put(%q) failed after NewResolver succeeded: %v", roles[i], err)
			}
		}
		if g2 := inc.Expand(input); !slices.Equal(strs(g2), strs(exp)) {
			t.Fatalf("incremental Expand(%q) = %q, oracle %q", input, g2, exp)
		}
	})
}

func FuzzScopeSet(f *testing.F) {
	f.Add("a,a*,ab,b", "ab*,c")
	f.Add("q:1,q:*,q:2,r", "q:*")
	f.Add("a**,a*,a*b", "a")
	f.Add("*,x,y*", "")
	f.Add(",*", "x:*,x*")
	f.Fuzz(func(t *testing.T, a, b string) {
		checkSetProperties(t, strings.Split(a, ","), strings.Split(b, ","))
	})
}
