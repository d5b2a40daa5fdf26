package webui_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/scopeengine"
)

var missingRe = regexp.MustCompile(`(?s)Missing:</p><pre class="scopes">(.*?)</pre>`)

// section is the part of a page from the heading with id to the end of
// its section (results of one tool).
func section(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	body = body[i:]
	if j := strings.Index(body, "</section>"); j >= 0 {
		body = body[:j]
	}
	return body
}

// TestInspectorCheck: the satisfied / missing answers are scopeengine's
// (Satisfied, Unsatisfied), for given sets, expanded sets and the user's
// own scopes.
func TestInspectorCheck(t *testing.T) {
	_, b := newRolesUI(t)
	for _, tc := range []struct {
		name, have, expr string
		expand, mine     bool
		// expanded: the set scopeengine checks (when expand/mine changes it)
		expanded []string
	}{
		{name: "allof satisfied", have: "a:*\nb", expr: `{"AllOf":["a:1","b"]}`},
		{name: "allof missing one", have: "a:*", expr: `{"AllOf":["a:1","b"]}`},
		{name: "anyof", have: "b", expr: `{"AnyOf":["a:1","b"]}`},
		{name: "empty allof", have: "", expr: `{"AllOf":[]}`},
		{name: "empty anyof never", have: "*", expr: `{"AnyOf":[]}`},
		{name: "nested", have: "x", expr: `{"AnyOf":[{"AllOf":["x","y"]},"z"]}`},
		{name: "nested allof", have: "a", expr: `{"AllOf":["a",{"AnyOf":["b","c"]},{"AllOf":["d"]}]}`},
		{name: "bare scope", have: "queue:*", expr: "queue:create-task:x"},
		{name: "json string", have: "q", expr: `"a\u003cb"`},
		{name: "html in scopes", have: "<b>", expr: `{"AllOf":["<b>","<i>\"x\""]}`},
		{name: "without expansion", have: "assume:base:a", expr: "a:1"},
		{name: "expanded", have: "assume:base:a", expr: `{"AllOf":["a:1","a:3"]}`, expand: true, expanded: []string{"a:1", "a:2", "assume:base:a"}},
		{name: "mine", expr: `{"AllOf":["auth:create-role:x","nope"]}`, mine: true,
			expanded: []string{"auth:*", "assume:base:*", "c", "x", "q:*", "hostile:*", "b:*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"have": {tc.have}, "expr": {tc.expr}}
			if tc.expand {
				q.Set("expand", "1")
			}
			if tc.mine {
				q.Set("mine", "1")
			}
			p := b.get("/auth/scopes/check?" + q.Encode())
			checkPage(t, tc.name, p)
			if p.StatusCode != 200 {
				t.Fatalf("%d\n%s", p.StatusCode, p.Body)
			}
			e, err := scopeengine.ParseExpr([]byte(tc.expr))
			if err != nil {
				e = scopeengine.ScopeExpr(tc.expr)
			}
			have := tc.expanded
			if have == nil {
				have = strings.Split(tc.have, "\n")
			}
			set := scopeengine.NewScopeSet(have)
			if tc.mine {
				set = scopeengine.Merge(set, scopeengine.NewScopeSet([]string{"assume:login-identity:fake/alice", "assume:fake-group:editors", "assume:anonymous"}))
			}
			u, missing := e.Unsatisfied(set)
			res := section(p.Body, "check-h")
			if got := strings.Contains(res, "<strong>Satisfied.</strong>"); got != e.Satisfied(set) || got == missing {
				t.Fatalf("satisfied=%v, scopeengine says %v\n%s", got, e.Satisfied(set), res)
			}
			if missing {
				m := missingRe.FindStringSubmatch(res)
				if m == nil || html.UnescapeString(m[1]) != u.String() {
					t.Fatalf("missing %q, scopeengine says %q", m, u.String())
				}
			}
		})
	}
}

// TestInspectorBadInput: bad expressions and oversized inputs are a 400
// InputError on the inspector page with a clear message, never a 500.
func TestInspectorBadInput(t *testing.T) {
	_, b := newRolesUI(t)
	big := manyScopes(501)
	for _, tc := range []struct {
		name, path string
		q          url.Values
		want       string
	}{
		{"truncated json", "check", url.Values{"expr": {`{"AllOf":[`}, "have": {"a"}}, "invalid scope expression"},
		{"array", "check", url.Values{"expr": {`["a"]`}}, "a JSON array is not an expression"},
		{"two keys", "check", url.Values{"expr": {`{"AllOf":[],"AnyOf":[]}`}}, "exactly one key"},
		{"unknown operator", "check", url.Values{"expr": {`{"OneOf":["a"]}`}}, "AllOf and AnyOf"},
		{"number", "check", url.Values{"expr": {`{"AllOf":[5]}`}}, "must be a string"},
		{"newline in scope", "check", url.Values{"expr": {`"a\nb"`}}, "invalid scope"},
		{"empty", "check", url.Values{"expr": {"  "}}, "enter a scope"},
		{"huge expression", "check", url.Values{"expr": {`"` + strings.Repeat("a", 20000) + `"`}}, "at most 16384 bytes"},
		{"too many scopes", "expand", url.Values{"scopes": {big}}, "at most 500 scopes"},
		{"bad scope", "compare", url.Values{"a": {"ok"}, "b": {"tab\there"}}, "Set B: invalid scope: line 1"},
		{"no holder scope", "holders", url.Values{"scope": {""}}, "Enter a scope"},
		{"bad holder scope", "holders", url.Values{"scope": {"é"}}, "printable ASCII"},
		{"bad token", "holders", url.Values{"scope": {"x"}, "rolesFrom": {"!!!"}, "kind": {"roles"}}, "Invalid continuationToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get("/auth/scopes/" + tc.path + "?" + tc.q.Encode())
			checkPage(t, tc.name, p)
			if p.StatusCode != http.StatusBadRequest || !strings.Contains(p.Body, "InputError") || !strings.Contains(html.UnescapeString(p.Body), tc.want) {
				t.Fatalf("%d, want 400 with %q\n%s", p.StatusCode, tc.want, p.Body)
			}
		})
	}
}

// TestInspectorExpandCompare: expansion through the API (what roles add)
// and the comparison of (expanded) sets.
func TestInspectorExpandCompare(t *testing.T) {
	ui, b := newRolesUI(t)
	p := b.get("/auth/scopes/expand?" + url.Values{"scopes": {"assume:base:a\nz\n"}}.Encode())
	checkPage(t, "expand", p)
	res := section(p.Body, "expand-h")
	if got := listAfter(res, "diff-added"); p.StatusCode != 200 || !slices.Equal(got, []string{"a:1", "a:2"}) {
		t.Fatalf("from roles %q\n%s", got, p.Body)
	}
	if !strings.Contains(res, "Expanded (4)") {
		t.Fatalf("expanded list:\n%s", res)
	}
	for _, tc := range []struct {
		name, a, b         string
		expand             bool
		onlyA, onlyB, both []string
	}{
		{"plain", "a\nb", "b\nc", false, []string{"a"}, []string{"c"}, []string{"b"}},
		{"star covers", "a:*", "a:x", false, []string{"a:*"}, nil, []string{"a:x"}},
		{"roles unexpanded", "assume:base:a", "a:1", false, []string{"assume:base:a"}, []string{"a:1"}, nil},
		{"roles expanded", "assume:base:a", "a:1", true, []string{"a:2", "assume:base:a"}, nil, []string{"a:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"a": {tc.a}, "b": {tc.b}}
			if tc.expand {
				q.Set("expand", "1")
			}
			p := b.get("/auth/scopes/compare?" + q.Encode())
			checkPage(t, tc.name, p)
			res := section(p.Body, "compare-h")
			bothPart := res[strings.Index(res, "In both"):]
			both := []string(nil)
			if l := regexp.MustCompile(`(?s)<ul class="scopes">(.*?)</ul>`).FindStringSubmatch(bothPart); l != nil {
				for _, c := range codeRe.FindAllStringSubmatch(l[1], -1) {
					both = append(both, html.UnescapeString(c[1]))
				}
			}
			if got := listAfter(res, "diff-removed"); !slices.Equal(got, tc.onlyA) {
				t.Errorf("only A %q, want %q", got, tc.onlyA)
			}
			if got := listAfter(res, "diff-added"); !slices.Equal(got, tc.onlyB) {
				t.Errorf("only B %q, want %q", got, tc.onlyB)
			}
			if !slices.Equal(both, tc.both) {
				t.Errorf("both %q, want %q", both, tc.both)
			}
		})
	}
	_ = ui
}

// TestInspectorHolders: which roles and clients satisfy or hold a scope,
// through listRoles2/listClients as the user, bounded and continued.
func TestInspectorHolders(t *testing.T) {
	ui, b := newRolesUI(t)
	ui.putRole(t, "h/direct", "deploy:prod")
	ui.putRole(t, "h/star", "deploy:*")
	ui.putRole(t, "h/via", "assume:h/direct")
	ui.putRole(t, "h/other", "deploy:staging")
	ui.createClient(t, "h/client-direct", "c", "deploy:prod")
	ui.createClient(t, "h/client-via", "c", "assume:h/star")
	ui.createClient(t, "h/client-none", "c", "other")
	for _, tc := range []struct {
		name, scope, mode, kind string
		roles, clients          []string
	}{
		{"satisfies", "deploy:prod", "satisfies", "all",
			[]string{"h/direct", "h/star", "h/via"}, []string{"h/client-direct", "h/client-via"}},
		{"holds pattern", "deploy:*", "holds", "roles", []string{"h/direct", "h/other", "h/star", "h/via"}, nil},
		{"holds exact", "deploy:prod", "holds", "clients", nil, []string{"h/client-direct"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get("/auth/scopes/holders?" + url.Values{"scope": {tc.scope}, "mode": {tc.mode}, "kind": {tc.kind}}.Encode())
			checkPage(t, tc.name, p)
			if p.StatusCode != 200 {
				t.Fatalf("%d\n%s", p.StatusCode, p.Body)
			}
			var roles, clients []string
			for _, m := range regexp.MustCompile(`<td><a href="(/auth/(?:roles|clients)/[^"]+)">([^<]+)</a></td>`).FindAllStringSubmatch(p.Body, -1) {
				id := html.UnescapeString(m[2])
				if !strings.HasPrefix(id, "h/") {
					continue // the harness's and editors' own roles
				}
				if strings.HasPrefix(m[1], "/auth/roles/") {
					roles = append(roles, id)
				} else {
					clients = append(clients, id)
				}
			}
			if !slices.Equal(roles, tc.roles) || !slices.Equal(clients, tc.clients) {
				t.Fatalf("roles %q clients %q, want %q %q", roles, clients, tc.roles, tc.clients)
			}
		})
	}
	p := b.get("/auth/scopes/holders?scope=deploy%3Aprod&kind=roles")
	if !strings.Contains(p.Body, "its own scopes") || !strings.Contains(p.Body, "through roles") {
		t.Fatalf("direct/indirect not shown:\n%s", p.Body)
	}
}

// TestInspectorHoldersBounded: the scan stops after holdersMaxScan items,
// says so, and the continuation reads the rest.
func TestInspectorHoldersBounded(t *testing.T) {
	ui, b := newRolesUI(t)
	for i := range 1050 {
		ui.putRole(t, fmt.Sprintf("many/%04d", i), "deploy:prod")
	}
	p := b.get("/auth/scopes/holders?scope=deploy%3Aprod&kind=roles")
	if !strings.Contains(p.Body, "Stopped after reading 1000 roles") {
		t.Fatalf("no bound:\n%s", p.Body[:min(len(p.Body), 3000)])
	}
	first := strings.Count(p.Body, `">many/`)
	m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatal("no continuation link")
	}
	p = b.get(html.UnescapeString(m[1]))
	if second := strings.Count(p.Body, `">many/`); first+second != 1050 || strings.Contains(p.Body, "Stopped after") {
		t.Fatalf("first %d + second %d, want 1050\n%s", first, second, p.Body[:min(len(p.Body), 3000)])
	}
}

// TestInspectorPages: the index and every empty tool render without
// inline code; a user without auth:expand-scopes sees InsufficientScopes.
func TestInspectorPages(t *testing.T) {
	ui, b := newRolesUI(t)
	for _, path := range []string{"/auth/scopes", "/auth/scopes/expand", "/auth/scopes/check", "/auth/scopes/compare", "/auth/scopes/holders"} {
		p := b.get(path)
		checkPage(t, path, p)
		if p.StatusCode != 200 || !strings.Contains(p.Body, `<form method="get"`) {
			t.Fatalf("%s: %d\n%s", path, p.StatusCode, p.Body)
		}
	}
	nobody := ui.signIn(t, "carol")
	p := nobody.get("/auth/scopes/expand?scopes=a")
	if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "InsufficientScopes") || !strings.Contains(p.Body, "auth:expand-scopes") {
		t.Fatalf("expand without rights: %d\n%s", p.StatusCode, p.Body)
	}
	// The local algebra needs no rights.
	if p := nobody.get("/auth/scopes/check?expr=a&have=a"); p.StatusCode != 200 || !strings.Contains(p.Body, "Satisfied.") {
		t.Fatalf("check without rights: %d", p.StatusCode)
	}
}
