package scopeengine

import (
	"reflect"
	"testing"
)

func TestTemplateMarshalJSONRoundTrip(t *testing.T) {
	for _, src := range []string{
		`"auth:get-client:<clientId>"`,
		`"a<b"`,
		`"x:<a><b>:<a>"`,
		`{"AllOf":["auth:create-client:<clientId>",{"for":"scope","in":"scopes","each":"<scope>"}]}`,
		`{"if":"levelIsReadOnly","then":{"AnyOf":["r:<b>","w:<b>"]},"else":"w:<b>"}`,
		`{"if":"x","then":"a:<y>"}`,
		`{"AnyOf":[]}`,
		`"notes:write:<..>/*"`,
	} {
		tm := MustParseTemplate(src)
		got, err := tm.MarshalJSON()
		if err != nil || string(got) != src {
			t.Errorf("MarshalJSON(%s) = %s, %v", src, got, err)
		}
	}
	if got, _ := (Template{}).MarshalJSON(); string(got) != "null" {
		t.Errorf("zero template = %s", got)
	}
}

func TestRenderPartial(t *testing.T) {
	tm := MustParseTemplate(`{"AllOf":["c:<id>",{"for":"s","in":"scopes","each":"<s>"}]}`)
	e, pub, emptied, unknown, err := tm.RenderPartial(map[string]any{"id": "x"})
	if err != nil || pub || len(unknown) != 0 || !reflect.DeepEqual(emptied, []string{"scopes"}) || e.String() != "{\n  \"AllOf\": [\n    \"c:x\"\n  ]\n}" {
		t.Errorf("missing array: %v %v %v %v %q", pub, emptied, unknown, err, e.String())
	}
	_, _, _, unknown, _ = tm.RenderPartial(map[string]any{"scopes": []any{"a"}})
	if !reflect.DeepEqual(unknown, []string{"id"}) {
		t.Errorf("missing string: unknown = %v", unknown)
	}
	cond := MustParseTemplate(`{"if":"ro","then":"r"}`)
	if _, _, _, unknown, _ := cond.RenderPartial(nil); !reflect.DeepEqual(unknown, []string{"ro"}) {
		t.Errorf("missing boolean: unknown = %v", unknown)
	}
	if _, pub, _, _, err := cond.RenderPartial(map[string]any{"ro": false}); !pub || err != nil {
		t.Errorf("if false without else: public = %v, %v", pub, err)
	}
	if _, _, _, _, err := tm.RenderPartial(map[string]any{"id": "x", "scopes": "notalist"}); err == nil {
		t.Error("a present parameter of the wrong type must fail")
	}
	if got := tm.ParamTypes(); !reflect.DeepEqual(got, map[string]string{"id": "string", "scopes": "array"}) {
		t.Errorf("ParamTypes = %v", got)
	}
}

func TestAlternatives(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want [][]string
		ok   bool
	}{
		{`"a"`, [][]string{{"a"}}, true},
		{`{"AllOf":[]}`, [][]string{{}}, true},
		{`{"AnyOf":[]}`, [][]string{}, true},
		{`{"AllOf":["b","a","a"]}`, [][]string{{"a", "b"}}, true},
		{`{"AnyOf":["b","a"]}`, [][]string{{"a"}, {"b"}}, true},
		{`{"AllOf":["x",{"AnyOf":["a","b"]}]}`, [][]string{{"a", "x"}, {"b", "x"}}, true},
		// {a, b} asks for more than {a}: dropped.
		{`{"AnyOf":["a",{"AllOf":["a","b"]}]}`, [][]string{{"a"}}, true},
		// a* grants more than ab and ac together: dropped.
		{`{"AnyOf":["a*",{"AllOf":["ab","ac"]}]}`, [][]string{{"ab", "ac"}}, true},
		// within one set, a member another covers is dropped.
		{`{"AllOf":["a*","ab"]}`, [][]string{{"a*"}}, true},
		{`{"AllOf":[{"AnyOf":["a","b"]},{"AnyOf":["c","d"]},{"AnyOf":["e","f"]}]}`, nil, false}, // 8 > limit 4
	} {
		e, err := ParseExpr([]byte(tc.expr))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := e.Alternatives(4)
		if ok != tc.ok || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("Alternatives(%s) = %v, %v; want %v, %v", tc.expr, got, ok, tc.want, tc.ok)
		}
		// Every alternative satisfies the expression.
		for _, set := range got {
			if !e.Satisfied(NewScopeSet(set)) {
				t.Errorf("Alternatives(%s): %v does not satisfy it", tc.expr, set)
			}
		}
	}
}
