package webui_test

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol/tcclient"
)

// editorsRole is what the role tests' user holds: every auth: scope and
// the scopes the test roles contain (createRole/updateRole require the
// caller to hold every scope it gives a role).
const editorsRole = "fake-group:editors"

func newRolesUI(t *testing.T) (*uiHarness, *browser) {
	t.Helper()
	ui := newUI(t, "")
	ui.putRole(t, editorsRole, "auth:*", "assume:base:*", "c", "x", "q:*", "hostile:*", "b:*")
	ui.putRole(t, "base:a", "a:1", "a:2")
	ui.putRole(t, "base:b", "b:*")
	return ui, ui.signIn(t, "alice", editorsRole)
}

func (ui *uiHarness) putRole(t *testing.T, id string, scopes ...string) {
	t.Helper()
	if scopes == nil {
		scopes = []string{}
	}
	ui.rootDo(t, "PUT", "/roles/"+tcclient.PathSegment(id), map[string]any{"description": "test role " + id, "scopes": scopes}, nil)
}

// apiRole is the role as the API has it; ok=false if it does not exist.
func (ui *uiHarness) apiRole(t *testing.T, id string) (scopes []string, ok bool) {
	t.Helper()
	var r struct{ Scopes []string }
	err := ui.root().Do(context.Background(), "GET", "/roles/"+tcclient.PathSegment(id), nil, nil, &r)
	var te *tcclient.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r.Scopes, true
}

var codeRe = regexp.MustCompile(`(?s)<code>(.*?)</code>`)

// listAfter is the <code> items of the first <ul> whose opening tag
// contains marker ("diff-added" …); nil when there is none.
func listAfter(body, marker string) []string {
	m := regexp.MustCompile(`(?s)<ul class="[^"]*` + regexp.QuoteMeta(marker) + `[^"]*"[^>]*>(.*?)</ul>`).FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	var out []string
	for _, c := range codeRe.FindAllStringSubmatch(m[1], -1) {
		out = append(out, html.UnescapeString(c[1]))
	}
	return out
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// formOf is the hidden fields of a page's last form and its action: what
// a browser would post on the preview's "save".
func formOf(t *testing.T, body string) (action string, form url.Values) {
	t.Helper()
	i := strings.LastIndex(body, `<form method="post" action="`)
	if i < 0 {
		t.Fatalf("no post form:\n%s", body)
	}
	rest := body[i+len(`<form method="post" action="`):]
	action = html.UnescapeString(rest[:strings.IndexByte(rest, '"')])
	form = url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(rest[:strings.Index(rest, "</form>")], -1) {
		form.Add(m[1], html.UnescapeString(m[2]))
	}
	return action, form
}

// TestRolePreviewAndSave: create and edit show the expanded scopes the
// change adds and removes (computed through expandScopes), nothing is
// saved by the preview, and the confirmation saves exactly the previewed
// scopes.
func TestRolePreviewAndSave(t *testing.T) {
	ui, b := newRolesUI(t)
	for _, tc := range []struct {
		name, id  string
		existing  []string // nil = create
		text      string
		added     []string
		removed   []string
		wantSaved []string
	}{
		{name: "create through a role", id: "t/new", text: "assume:base:a\r\n c \n\n",
			added: []string{"a:1", "a:2", "assume:base:a", "c"}, wantSaved: []string{"assume:base:a", "c"}},
		{name: "edit swaps roles", id: "t/edit", existing: []string{"assume:base:a", "x"}, text: "assume:base:b\nx",
			added: []string{"assume:base:b", "b:*"}, removed: []string{"a:1", "a:2", "assume:base:a"}, wantSaved: []string{"assume:base:b", "x"}},
		{name: "widen adds only", id: "t/widen", existing: []string{"q:x"}, text: "q:*",
			added: []string{"q:*"}, wantSaved: []string{"q:*"}},
		{name: "narrow removes the wide scope", id: "t/narrow", existing: []string{"q:*"}, text: "q:x",
			removed: []string{"q:*"}, wantSaved: []string{"q:x"}},
		{name: "duplicates dropped", id: "t/dup", existing: []string{"x"}, text: "x\nx\nc",
			added: []string{"c"}, wantSaved: []string{"x", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, form := "/auth/roles/create", url.Values{"roleId": {tc.id}}
			if tc.existing != nil {
				ui.putRole(t, tc.id, tc.existing...)
				path = "/auth/roles/" + tcclient.PathSegment(tc.id) + "/edit"
				edit := b.get(path)
				checkPage(t, path, edit)
				_, form = formOf(t, edit.Body) // carries lastModified
			}
			form.Set("description", "line one\r\nline two")
			form.Set("scopes", tc.text)
			form.Set("step", "preview")
			p := b.post(path, form)
			if p.StatusCode != http.StatusOK {
				t.Fatalf("preview: %d\n%s", p.StatusCode, p.Body)
			}
			checkPage(t, "preview", p)
			if got := listAfter(p.Body, "diff-added"); !slices.Equal(got, tc.added) {
				t.Errorf("added %q, want %q", got, tc.added)
			}
			if got := listAfter(p.Body, "diff-removed"); !slices.Equal(got, tc.removed) {
				t.Errorf("removed %q, want %q", got, tc.removed)
			}
			// The preview saved nothing.
			if got, ok := ui.apiRole(t, tc.id); (tc.existing == nil) == ok || ok && !slices.Equal(got, tc.existing) {
				t.Fatalf("the preview changed the role: %q %v", got, ok)
			}
			action, save := formOf(t, p.Body)
			save.Set("step", "save")
			res := b.post(action, save)
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/auth/roles/"+tcclient.PathSegment(tc.id) {
				t.Fatalf("save: %d %q\n%s", res.StatusCode, res.Header.Get("Location"), res.Body)
			}
			got, _ := ui.apiRole(t, tc.id)
			slices.Sort(got)
			want := slices.Clone(tc.wantSaved)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("saved %q, want %q", got, want)
			}
			view := b.get(res.Header.Get("Location"))
			checkPage(t, "view", view)
			if view.StatusCode != 200 || !strings.Contains(view.Body, "line one\nline two") {
				t.Fatalf("view: %d\n%s", view.StatusCode, view.Body)
			}
		})
	}
}

// TestRoleEmptyNeedsConfirmation: saving a role without scopes needs the
// preview's explicit confirmation.
func TestRoleEmptyNeedsConfirmation(t *testing.T) {
	ui, b := newRolesUI(t)
	form := url.Values{"roleId": {"t/empty"}, "description": {"d"}, "scopes": {"\n  \n"}, "step": {"preview"}}
	p := b.post("/auth/roles/create", form)
	if p.StatusCode != 200 || !strings.Contains(p.Body, "This role has no scopes") || !strings.Contains(p.Body, "Create it without scopes") {
		t.Fatalf("preview of an empty role: %d\n%s", p.StatusCode, p.Body)
	}
	// A save without the confirmation shows the warning again.
	form.Set("step", "save")
	if p := b.post("/auth/roles/create", form); p.StatusCode != 200 || !strings.Contains(p.Body, "This role has no scopes") {
		t.Fatalf("unconfirmed save: %d\n%s", p.StatusCode, p.Body)
	}
	if _, ok := ui.apiRole(t, "t/empty"); ok {
		t.Fatal("an empty role was saved without confirmation")
	}
	action, save := formOf(t, p.Body)
	save.Set("step", "save")
	if res := b.post(action, save); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed save: %d\n%s", res.StatusCode, res.Body)
	}
	if got, ok := ui.apiRole(t, "t/empty"); !ok || len(got) != 0 {
		t.Fatalf("after the confirmed save: %q %v", got, ok)
	}
}

// TestRoleEditConflict: a role changed by someone else between preview
// and save is previewed again, not overwritten.
func TestRoleEditConflict(t *testing.T) {
	ui, b := newRolesUI(t)
	ui.putRole(t, "t/c", "x")
	path := "/auth/roles/t%2Fc/edit"
	_, form := formOf(t, b.get(path).Body)
	form.Set("scopes", "c")
	form.Set("description", "mine")
	form.Set("step", "preview")
	action, save := formOf(t, b.post(path, form).Body)
	ui.rootDo(t, "POST", "/roles/t%2Fc", map[string]any{"description": "theirs", "scopes": []string{"q:1"}}, nil)
	save.Set("step", "save")
	p := b.post(action, save)
	if p.StatusCode != 200 || !strings.Contains(p.Body, "changed by someone else") {
		t.Fatalf("save after a concurrent change: %d\n%s", p.StatusCode, p.Body)
	}
	if got := listAfter(p.Body, "diff-removed"); !slices.Equal(got, []string{"q:1"}) {
		t.Fatalf("the new preview compares with the current role: removed %q", got)
	}
	if got, _ := ui.apiRole(t, "t/c"); !slices.Equal(got, []string{"q:1"}) {
		t.Fatalf("overwritten: %q", got)
	}
	action, save = formOf(t, p.Body)
	save.Set("step", "save")
	if res := b.post(action, save); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second confirmation: %d\n%s", res.StatusCode, res.Body)
	}
	if got, _ := ui.apiRole(t, "t/c"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after confirming again: %q", got)
	}
}

// TestRoleInsufficientScopes: a user without auth:create-role (or the
// scopes given) sees the API's InsufficientScopes with the expression,
// 403, and nothing is saved; without auth:expand-scopes the preview says
// why it cannot show the change and still lets the API decide.
func TestRoleInsufficientScopes(t *testing.T) {
	ui := newUI(t, "")
	ui.putRole(t, "fake-group:viewers", "auth:expand-scopes", "auth:get-role:*", "auth:list-roles")
	viewer := ui.signIn(t, "bob", "fake-group:viewers")
	nobody := ui.signIn(t, "carol")
	for _, tc := range []struct {
		name        string
		b           *browser
		previewWant string
	}{
		{"viewer", viewer, "Expanded scopes added"},
		{"no scopes at all", nobody, "auth:expand-scopes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"roleId": {"t/x"}, "description": {"d"}, "scopes": {"secret:thing"}, "step": {"preview"}}
			p := tc.b.post("/auth/roles/create", form)
			if p.StatusCode != 200 || !strings.Contains(p.Body, tc.previewWant) {
				t.Fatalf("preview: %d\n%s", p.StatusCode, p.Body)
			}
			action, save := formOf(t, p.Body)
			save.Set("step", "save")
			p = tc.b.post(action, save)
			required := html.EscapeString("\"auth:create-role:t/x\",\n    \"secret:thing\"")
			if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "InsufficientScopes") || !strings.Contains(p.Body, required) {
				t.Fatalf("save: %d\n%s", p.StatusCode, p.Body)
			}
			checkPage(t, "403 form", p)
			// the form is shown again with what was entered
			if !strings.Contains(p.Body, ">secret:thing</textarea>") {
				t.Fatalf("the form lost the input:\n%s", p.Body)
			}
			if _, ok := ui.apiRole(t, "t/x"); ok {
				t.Fatal("saved without rights")
			}
		})
	}
	ui.putRole(t, "t/keep", "x")
	if p := nobody.post("/auth/roles/t%2Fkeep/delete", nil); p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "auth:delete-role:t/keep") {
		t.Fatalf("delete without rights: %d\n%s", p.StatusCode, p.Body)
	}
	if p := nobody.get("/auth/roles"); p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "auth:list-roles") {
		t.Fatalf("list without rights: %d\n%s", p.StatusCode, p.Body)
	}
}

// TestRoleFormErrors: bad input is a 400 on the form, keeping the input;
// the API is not called with it.
func TestRoleFormErrors(t *testing.T) {
	_, b := newRolesUI(t)
	for _, tc := range []struct {
		name, id, scopes, want string
	}{
		{"double star", "t/e", "a**", "must not end with"},
		{"tab", "t/e", "a\tb", "line 1"},
		{"non-ascii id", "t/é", "x", "printable ASCII"},
		{"empty id", "", "x", "printable ASCII"},
		{"too many", "t/e", manyScopes(2001), "at most 2000 scopes"},
		{"long scope", "t/e", strings.Repeat("x", 5000), "at most 4096 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/auth/roles/create", url.Values{"roleId": {tc.id}, "description": {"d"}, "scopes": {tc.scopes}, "step": {"preview"}})
			if p.StatusCode != http.StatusBadRequest || !strings.Contains(p.Body, "InputError") || !strings.Contains(html.UnescapeString(p.Body), tc.want) {
				t.Fatalf("%d\n%s", p.StatusCode, p.Body)
			}
			checkPage(t, tc.name, p)
		})
	}
}

func manyScopes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("s:" + strconv.Itoa(i) + "\n")
	}
	return b.String()
}

// hostileIDs are role ids that break naive URL building or HTML output.
var hostileIDs = []string{
	`<script>alert(1)</script>`, `a"b'c&d`, `x%2Fy`, `%`, `..`, `.`, `a/../b`, `../x`, `a/b/`,
	`create`, `by-id`, `q?x=1#f`, `a b`, `a\b`, `*`, `p:*`, `/`, `//x`, `edit`,
}

// TestRoleHostileIDs: every page of a role with a hostile id links to
// itself (no path a browser would rewrite: dot segments, %2F), escapes the
// id in HTML, and view/edit/delete reach that role and no other.
func TestRoleHostileIDs(t *testing.T) {
	ui, b := newRolesUI(t)
	base, _ := url.Parse(ui.URL)
	hrefRe := regexp.MustCompile(`<a href="([^"]+)">([^<]*)</a>`)
	for _, id := range hostileIDs {
		ui.putRole(t, id, "hostile:1")
	}
	for i, id := range hostileIDs {
		// unique, so that "*" (which assumes every role) still gains it
		newScope := "hostile:2:" + strconv.Itoa(i)
		t.Run(id, func(t *testing.T) {
			list := b.get("/auth/roles?" + url.Values{"search": {id}}.Encode())
			checkPage(t, "list", list)
			if strings.Contains(list.Body, "<script>alert") {
				t.Fatal("unescaped id in the list")
			}
			var href string
			for _, m := range hrefRe.FindAllStringSubmatch(list.Body, -1) {
				if html.UnescapeString(m[2]) == id {
					href = html.UnescapeString(m[1])
				}
			}
			if href == "" {
				t.Fatalf("no link to %q in the list:\n%s", id, list.Body)
			}
			ref, err := url.Parse(href)
			if err != nil {
				t.Fatal(err)
			}
			// What a browser would request: dot segments resolved.
			if got := base.ResolveReference(ref); got.EscapedPath() != ref.EscapedPath() {
				t.Fatalf("link %q would be rewritten to %q by a browser", href, got.EscapedPath())
			}
			view := b.get(href)
			checkPage(t, "view", view)
			if view.StatusCode != 200 || !strings.Contains(view.Body, "<code>"+html.EscapeString(id)+"</code>") || strings.Contains(view.Body, "<script>alert") {
				t.Fatalf("view %q: %d\n%s", href, view.StatusCode, view.Body)
			}
			// edit through the page's own links and forms
			edit := b.get(html.UnescapeString(regexp.MustCompile(`<a class="button" href="([^"]+)">Edit</a>`).FindStringSubmatch(view.Body)[1]))
			checkPage(t, "edit", edit)
			action, form := formOf(t, edit.Body)
			form.Set("scopes", newScope)
			form.Set("description", id)
			form.Set("step", "preview")
			prev := b.post(action, form)
			wantAdded := []string{newScope}
			if id == "*" {
				// assume:* reaches every role, the editors' hostile:* included
				wantAdded = nil
			}
			if got := listAfter(prev.Body, "diff-added"); !slices.Equal(got, wantAdded) {
				t.Fatalf("preview of %q: %d added %q\n%s", id, prev.StatusCode, got, prev.Body)
			}
			action, save := formOf(t, prev.Body)
			save.Set("step", "save")
			// html/template escapes more of an href than PathSegment does
			// ("(" as %28): the same path once decoded.
			res := b.post(action, save)
			loc, _ := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusSeeOther || loc.Path != ref.Path || loc.RawQuery != ref.RawQuery {
				t.Fatalf("save %q: %d %q, want %q", id, res.StatusCode, res.Header.Get("Location"), href)
			}
			if got, _ := ui.apiRole(t, id); !slices.Equal(got, []string{newScope}) {
				t.Fatalf("saved %q", got)
			}
			del := b.get(html.UnescapeString(regexp.MustCompile(`<a class="button secondary" href="([^"]+)">Delete…</a>`).FindStringSubmatch(view.Body)[1]))
			checkPage(t, "delete", del)
			action, form = formOf(t, del.Body)
			if res := b.post(action, form); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("delete %q: %d", id, res.StatusCode)
			}
			if _, ok := ui.apiRole(t, id); ok {
				t.Fatalf("%q not deleted", id)
			}
		})
	}
	// only the hostile roles were touched
	if _, ok := ui.apiRole(t, "base:a"); !ok {
		t.Fatal("another role was deleted")
	}
}

// TestRolesListPaging: the list pages through listRoles2 and the search
// (a substring, server-side) continues across API pages.
func TestRolesListPaging(t *testing.T) {
	ui, b := newRolesUI(t)
	for i := range 130 {
		ui.putRole(t, "page/"+strconv.Itoa(1000+i)+map[bool]string{true: "/match", false: ""}[i%10 == 0], "x")
	}
	seen := 0
	next := "/auth/roles"
	for pages := 0; next != ""; pages++ {
		p := b.get(next)
		checkPage(t, next, p)
		seen += strings.Count(p.Body, `<a href="/auth/roles/page%2F`)
		m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(p.Body)
		next = ""
		if m != nil {
			next = html.UnescapeString(m[1])
		}
		if pages > 5 {
			t.Fatal("too many pages")
		}
	}
	if seen != 130 {
		t.Fatalf("saw %d roles over the pages, want 130", seen)
	}
	p := b.get("/auth/roles?search=%2Fmatch")
	if n := strings.Count(p.Body, `/match</a>`); n != 13 {
		t.Fatalf("search found %d, want 13\n%s", n, p.Body)
	}
}
