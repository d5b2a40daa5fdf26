package scopeengine

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestExprString(t *testing.T) {
	cases := []struct {
		e    Expr
		want string
	}{
		{ScopeExpr("queue:create-task:<x>"), "queue:create-task:<x>"},
		{AnyOf(), "{\n  \"AnyOf\": []\n}"},
		{AllOf(ScopeExpr("a"), AnyOf(ScopeExpr("b<&>"), ScopeExpr(`c"`))),
			"{\n  \"AllOf\": [\n    \"a\",\n    {\n      \"AnyOf\": [\n        \"b<&>\",\n        \"c\\\"\"\n      ]\n    }\n  ]\n}"},
	}
	for _, c := range cases {
		if got := c.e.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
	// MarshalJSON leaves <>& alone like JSON.stringify (json.Marshal of a
	// containing value re-escapes them; the JSON is equivalent).
	raw, _ := AllOfScopes("x<y>", "z").MarshalJSON()
	if string(raw) != `{"AllOf":["x<y>","z"]}` {
		t.Errorf("MarshalJSON = %s", raw)
	}
	var e Expr
	if err := json.Unmarshal([]byte(`{"AnyOf":["a","b"]}`), &e); err != nil || !e.Equal(AnyOf(ScopeExpr("a"), ScopeExpr("b"))) {
		t.Errorf("UnmarshalJSON = %v, %v", e, err)
	}
	if err := json.Unmarshal([]byte(`{"AnyOf":"a"}`), &e); !errors.Is(err, ErrInvalidExpression) {
		t.Errorf("UnmarshalJSON of invalid = %v", err)
	}
}

func TestUnsatisfiedSpecTable(t *testing.T) {
	// docs/scopes.md §5 rows not in the JSON vectors.
	cases := []struct {
		have       []string
		expr, want string
	}{
		{[]string{"a"}, `{"AllOf":["a","b",{"AnyOf":["c","d"]}]}`, `{"AllOf":["b",{"AnyOf":["c","d"]}]}`},
		{[]string{"queue:*"}, `{"AllOf":["queue:create-task:x",{"AnyOf":["index:a","queue:b"]}]}`, ``},
	}
	for _, c := range cases {
		e, err := ParseExpr([]byte(c.expr))
		if err != nil {
			t.Fatal(err)
		}
		u, ok := e.Unsatisfied(NewScopeSet(c.have))
		got := ""
		if ok {
			raw, _ := u.MarshalJSON()
			got = string(raw)
		}
		if got != c.want {
			t.Errorf("Unsatisfied(%s) = %s, want %s", c.expr, got, c.want)
		}
	}
}

func TestTemplateRender(t *testing.T) {
	tm := MustParseTemplate(`{"if":"flag","then":"x:<a>"}`)
	if _, public, err := tm.Render(map[string]any{"flag": false}); !public || err != nil {
		t.Errorf("false if without else: public=%v err=%v", public, err)
	}
	if got := tm.Params(); !slices.Equal(got, []string{"flag", "a"}) {
		t.Errorf("Params = %q", got)
	}
	num := MustParseTemplate(`"n:<v>"`)
	for _, c := range []struct {
		v    any
		want string
	}{
		{5, "n:5"}, {float64(1.5), "n:1.5"}, {float64(1e21), "n:1e+21"}, {float64(1.5e-7), "n:1.5e-7"}, {float64(1e-6), "n:0.000001"},
		{json.Number("12"), "n:12"}, {int64(-3), "n:-3"}, {"a<b>", "n:a<b>"},
	} {
		e, _, err := num.Render(map[string]any{"v": c.v})
		if err != nil || e.Scope() != c.want {
			t.Errorf("render %v = %q, %v; want %q", c.v, e.Scope(), err, c.want)
		}
	}
	if _, _, err := num.Render(map[string]any{"v": true}); err == nil {
		t.Error("bool accepted as string param")
	}
	forT := MustParseTemplate(`{"AnyOf":[{"for":"s","in":"list","each":"p:<s>"},"q"]}`)
	e, _, err := forT.Render(map[string]any{"list": []string{"1", "2"}})
	if raw, _ := e.MarshalJSON(); err != nil || string(raw) != `{"AnyOf":["p:1","p:2","q"]}` {
		t.Errorf("for render = %s, %v", raw, err)
	}
	for _, bad := range []string{
		`{"AllOf":[{"for":"a","in":"b","each":"<a>"}],"x":1}`,
		`{"if":"1x","then":"a"}`,
		`{"AllOf":["<a>",{"if":"a","then":"b"}]}`, // a used as string and boolean
		`{"if":"c","then":{"for":"a","in":"b","each":"c"}}`,
		`"a" "b"`,
	} {
		if _, err := ParseTemplate([]byte(bad)); !errors.Is(err, ErrInvalidTemplate) {
			t.Errorf("ParseTemplate(%s) = %v, want ErrInvalidTemplate", bad, err)
		}
	}
}

func TestSimplifyExtra(t *testing.T) {
	e := AllOf(AnyOf(ScopeExpr("b"), ScopeExpr("a")), AnyOf(ScopeExpr("a"), ScopeExpr("b")), ScopeExpr("c"))
	raw, _ := e.Simplify().MarshalJSON()
	if string(raw) != `{"AllOf":["c",{"AnyOf":["a","b"]}]}` {
		t.Errorf("Simplify = %s", raw)
	}
	if got := AllOf().Simplify(); !got.Equal(AllOf()) {
		t.Errorf("Simplify(AllOf()) = %v", got)
	}
}
