package webui

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/scopeengine"
)

func set(s ...string) scopeengine.ScopeSet { return scopeengine.NewScopeSet(s) }

func TestParseScopeLines(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
		err        error
	}{
		{"empty", "", []string{}, nil},
		{"blank lines and CRLF", "a\r\n\r\n  b:*  \n\n", []string{"a", "b:*"}, nil},
		{"duplicates keep first", "b\na\nb", []string{"b", "a"}, nil},
		{"inner space kept", "a b", []string{"a b"}, nil},
		{"tab inside", "a\tb", nil, ErrInvalidScope},
		{"non-ascii", "café", nil, ErrInvalidScope},
		{"nul", "a\x00", nil, ErrInvalidScope},
		{"too long scope", strings.Repeat("x", MaxScopeLength+1), nil, ErrInputTooLarge},
		{"longest scope", strings.Repeat("x", MaxScopeLength), []string{strings.Repeat("x", MaxScopeLength)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseScopeLines(tc.text, roleLimits)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	many := strings.Repeat("s\n", 3) + strings.Repeat("x\n", 10)
	lim := scopeLimits{maxScopes: 2, maxText: 1000}
	if _, err := parseScopeLines("a\nb\nc", lim); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("3 scopes over a limit of 2: %v", err)
	}
	if got, err := parseScopeLines(many, lim); err != nil || len(got) != 2 {
		t.Fatalf("duplicates must not count against the limit: %q %v", got, err)
	}
	if _, err := parseScopeLines(strings.Repeat("a", 1001), lim); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("text over the byte limit: %v", err)
	}
	if _, err := parseScopeLines("ok\n\tbad\x01", lim); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error must name the line: %v", err)
	}
}

func TestCheckRoleScopes(t *testing.T) {
	if err := checkRoleScopes([]string{"a*", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := checkRoleScopes([]string{"a", "b**"}); !errors.Is(err, ErrDoubleStarRole) {
		t.Fatal(err)
	}
}

func TestParseExprInput(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string // want: the expression's JSON
		err              error
	}{
		{"bare scope", "  queue:create-task:x  ", `"queue:create-task:x"`, nil},
		{"bare scope with quotes inside", `a"b`, `"a\"b"`, nil},
		{"json string", `"a\u0020b"`, `"a b"`, nil},
		{"allof", `{"AllOf":["a",{"AnyOf":["b","c"]}]}`, `{"AllOf":["a",{"AnyOf":["b","c"]}]}`, nil},
		{"empty anyof", `{"AnyOf":[]}`, `{"AnyOf":[]}`, nil},
		{"empty", "   ", "", ErrEmptyInput},
		{"array", `["a"]`, "", ErrInvalidExprIn},
		{"two keys", `{"AllOf":["a"],"AnyOf":["b"]}`, "", ErrInvalidExprIn},
		{"unknown op", `{"Foo":[]}`, "", ErrInvalidExprIn},
		{"bad json", `{"AllOf":[`, "", ErrInvalidExprIn},
		{"trailing", `{"AllOf":[]} x`, "", ErrInvalidExprIn},
		{"newline in json scope", `"a\nb"`, "", ErrInvalidExprIn},
		{"non-ascii bare", "é", "", ErrInvalidScope},
		{"too big", `"` + strings.Repeat("a", MaxExprText) + `"`, "", ErrInputTooLarge},
		{"too many nodes", `{"AllOf":[` + strings.Repeat(`"a",`, MaxExprNodes) + `"a"]}`, "", ErrInputTooLarge},
		{"scope too long", `{"AllOf":["` + strings.Repeat("a", MaxScopeLength+1) + `"]}`, "", ErrInputTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseExprInput(tc.text)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				if strings.Contains(err.Error(), "invalid scope expression: invalid scope expression") {
					t.Fatalf("repeated prefix: %v", err)
				}
				return
			}
			if raw, _ := e.MarshalJSON(); string(raw) != tc.want {
				t.Fatalf("got %s, want %s", raw, tc.want)
			}
		})
	}
}

// The inspector's answers are scopeengine's: the reference's vectors.
func TestCheckExpr(t *testing.T) {
	for _, tc := range []struct {
		have        []string
		expr        string
		sat         bool
		unsatisfied string // compact JSON, "" when satisfied
	}{
		{[]string{"a:*", "b"}, `{"AllOf":["a:1","b"]}`, true, ""},
		{[]string{"a:*"}, `{"AllOf":["a:1","b"]}`, false, `"b"`},
		{[]string{"b"}, `{"AnyOf":["a:1","b"]}`, true, ""},
		{[]string{}, `{"AllOf":[]}`, true, ""},
		{[]string{"*"}, `{"AnyOf":[]}`, false, `{"AnyOf":[]}`},
		{[]string{"x"}, `{"AnyOf":[{"AllOf":["x","y"]},"z"]}`, false, `{"AnyOf":["y","z"]}`},
		{[]string{"a"}, `{"AllOf":["a",{"AnyOf":["b","c"]},{"AllOf":["d"]}]}`, false, `{"AllOf":[{"AnyOf":["b","c"]},"d"]}`},
		{[]string{"queue:*"}, `{"AllOf":["queue:create-task:x",{"AnyOf":["index:a","queue:b"]}]}`, true, ""},
		{[]string{"a"}, `a*`, false, `"a*"`},
	} {
		e, err := parseExprInput(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		got := checkExpr(e, set(tc.have...))
		if got.Satisfied != tc.sat || got.Satisfied != e.Satisfied(set(tc.have...)) {
			t.Fatalf("%s with %q: satisfied=%v", tc.expr, tc.have, got.Satisfied)
		}
		want := ""
		if tc.unsatisfied != "" {
			u, _ := scopeengine.ParseExpr([]byte(tc.unsatisfied))
			want = u.String()
		}
		if got.Unsatisfied != want {
			t.Fatalf("%s with %q: unsatisfied %q, want %q", tc.expr, tc.have, got.Unsatisfied, want)
		}
	}
}

func TestRoleChange(t *testing.T) {
	const assume = "assume:r"
	for _, tc := range []struct {
		name                      string
		full, ownBefore, ownAfter []string
		wantAdded, wantRemoved    []string
		wantViaOthers             bool
	}{
		{"none", []string{assume, "a"}, []string{"a"}, []string{"a"}, []string{}, []string{}, false},
		{"add and remove", []string{assume, "a", "b"}, []string{"a", "b"}, []string{"b", "c"}, []string{"c"}, []string{"a"}, false},
		{"widen is add only", []string{assume, "a:x"}, []string{"a:x"}, []string{"a:*"}, []string{"a:*"}, []string{}, false},
		{"narrow removes the wide scope", []string{assume, "a:*"}, []string{"a:*"}, []string{"a:x"}, []string{}, []string{"a:*"}, false},
		{"create from nothing", []string{assume}, []string{}, []string{"x", "y"}, []string{"x", "y"}, []string{}, false},
		{"to nothing", []string{assume, "x"}, []string{"x"}, []string{}, []string{}, []string{"x"}, false},
		// A star role matching the id grants s: s is neither added nor
		// removed, and the page says other roles contribute.
		{"granted by a star role", []string{assume, "s", "x"}, []string{"x"}, []string{"s", "y"}, []string{"y"}, []string{"x"}, true},
		{"create under a star role", []string{assume, "s"}, []string{}, []string{"s", "t"}, []string{"t"}, []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			add, rem, via := roleChange(set(tc.full...), set(tc.ownBefore...), set(tc.ownAfter...), assume)
			if !slices.Equal(add, tc.wantAdded) || !slices.Equal(rem, tc.wantRemoved) || via != tc.wantViaOthers {
				t.Fatalf("added %q removed %q viaOthers %v, want %q %q %v", add, rem, via, tc.wantAdded, tc.wantRemoved, tc.wantViaOthers)
			}
		})
	}
}

func TestStarParamScopes(t *testing.T) {
	in := []string{"a:<..>/x", "plain", "b<..>c<..>"}
	if got := starParamScopes("p:*", in); !slices.Equal(got, []string{"a:*", "plain", "b*"}) {
		t.Fatalf("star role: %q", got)
	}
	if got := starParamScopes("p:x", in); !slices.Equal(got, in) {
		t.Fatalf("a non-star role's <..> is literal: %q", got)
	}
}

func TestCompareSets(t *testing.T) {
	for _, tc := range []struct {
		a, b               []string
		onlyA, onlyB, both []string
	}{
		{[]string{"a", "b"}, []string{"b", "c"}, []string{"a"}, []string{"c"}, []string{"b"}},
		{[]string{"a:*"}, []string{"a:x"}, []string{"a:*"}, []string{}, []string{"a:x"}},
		{[]string{"*"}, []string{"x", "y:*"}, []string{"*"}, []string{}, []string{"x", "y:*"}},
		{[]string{"a:1"}, []string{"a:2"}, []string{"a:1"}, []string{"a:2"}, []string{}},
		{[]string{}, []string{}, []string{}, []string{}, []string{}},
	} {
		got := compareSets(set(tc.a...), set(tc.b...))
		if !slices.Equal(got.OnlyA, tc.onlyA) || !slices.Equal(got.OnlyB, tc.onlyB) || !slices.Equal(got.Both, tc.both) {
			t.Fatalf("%q vs %q: %+v", tc.a, tc.b, got)
		}
	}
}

func TestHolderMatch(t *testing.T) {
	for _, tc := range []struct {
		query, mode string
		expanded    []string
		ok          bool
		via         []string
	}{
		{"queue:create-task:x", modeSatisfies, []string{"queue:*"}, true, []string{"queue:*"}},
		{"queue:create-task:x", modeSatisfies, []string{"*"}, true, []string{"*"}},
		{"queue:create-task:x", modeSatisfies, []string{"queue:create-task:y"}, false, nil},
		{"queue:*", modeSatisfies, []string{"queue:a"}, false, nil},
		{"queue:*", modeHolds, []string{"queue:a", "queue:b*", "x"}, true, []string{"queue:a", "queue:b*"}},
		{"queue:a", modeHolds, []string{"queue:*"}, false, nil},
		{"queue:a", modeHolds, []string{"queue:a"}, true, []string{"queue:a"}},
	} {
		ok, via := holderMatch(tc.query, tc.mode, set(tc.expanded...))
		if ok != tc.ok || !slices.Equal(via, tc.via) {
			t.Fatalf("%s %s %q: %v %q", tc.mode, tc.query, tc.expanded, ok, via)
		}
	}
}

// FuzzScopeInputs: the two text parsers never panic, and what they accept
// is within the bounds and valid for the API.
func FuzzScopeInputs(f *testing.F) {
	for _, s := range []string{"", "a\nb", " a \r\n", "a\tb", `{"AllOf":["a"]}`, `"a"`, `["a"]`, "{", `{"AnyOf":[{"AllOf":[]}]}`, "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if scopes, err := parseScopeLines(text, inspectorLimits); err == nil {
			if len(scopes) > MaxInspectorScopes {
				t.Fatalf("%d scopes accepted", len(scopes))
			}
			seen := map[string]bool{}
			for _, s := range scopes {
				if seen[s] || s == "" || s != strings.TrimSpace(s) || len(s) > MaxScopeLength || !scopeengine.ValidScope(s) {
					t.Fatalf("bad scope %q accepted", s)
				}
				seen[s] = true
			}
			// Round trip through the textarea form.
			again, err := parseScopeLines(formatScopeLines(scopes), inspectorLimits)
			if err != nil || !slices.Equal(again, scopes) {
				t.Fatalf("round trip %q -> %q, %v", scopes, again, err)
			}
		}
		if e, err := parseExprInput(text); err == nil {
			if !e.Valid() || exprNodes(e, MaxExprNodes+1) > MaxExprNodes {
				t.Fatalf("bad expression accepted: %q", text)
			}
			_ = checkExpr(e, set("a*", "b"))
		}
	})
}
