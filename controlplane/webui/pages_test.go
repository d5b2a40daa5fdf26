package webui_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

var (
	tagRe       = regexp.MustCompile(`(?s)<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>`)
	quotedRe    = regexp.MustCompile(`"[^"]*"|'[^']*'`)
	badAttrRe   = regexp.MustCompile(`(?i)\s(style|on[a-z]+)\s*=`)
	scriptSrcRe = regexp.MustCompile(`(?i)\ssrc\s*=`)
)

// checkPage fails on anything the CSP would block or that defeats it: a
// <script> without src or with content, a <style> element, a style= or
// on*= attribute; and on missing security headers.
func checkPage(t errorfer, name string, p page) {
	t.Helper()
	h := p.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", name, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows inline code: %q", name, csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: security headers %v", name, h)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		return
	}
	body := p.Body
	for _, m := range tagRe.FindAllStringSubmatchIndex(body, -1) {
		tag := strings.ToLower(body[m[2]:m[3]])
		attrs := quotedRe.ReplaceAllString(body[m[4]:m[5]], `""`)
		if badAttrRe.MatchString(attrs) {
			t.Errorf("%s: inline style or handler in <%s%s>", name, tag, body[m[4]:m[5]])
		}
		switch tag {
		case "style":
			t.Errorf("%s: <style> element", name)
		case "script":
			if !scriptSrcRe.MatchString(attrs) || !strings.HasPrefix(body[m[1]:], "</script>") {
				t.Errorf("%s: inline <script>", name)
			}
		}
	}
}

type errorfer interface {
	Helper()
	Errorf(format string, args ...any)
}

// recordingT counts checkPage's complaints (to test the checker itself).
type recordingT struct{ n int }

func (r *recordingT) Helper()               {}
func (r *recordingT) Errorf(string, ...any) { r.n++ }

// TestCheckPageCatches: the checker finds what the CSP forbids.
func TestCheckPageCatches(t *testing.T) {
	good := http.Header{"Content-Security-Policy": {"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
		"X-Frame-Options": {"DENY"}, "Referrer-Policy": {"no-referrer"}, "Cache-Control": {"no-store"}, "X-Content-Type-Options": {"nosniff"},
		"Content-Type": {"text/html; charset=utf-8"}}
	ok := `<p title="a style=b onclick=c">x</p><script src="/ui/static/app.js" defer></script>`
	r := &recordingT{}
	checkPage(r, "ok", page{200, good, ok})
	if r.n != 0 {
		t.Fatalf("a clean page flagged %d times", r.n)
	}
	for _, bad := range []string{`<script>alert(1)</script>`, `<script src="/x.js">alert(1)</script>`, `<style>p{}</style>`,
		`<p style="color:red">x</p>`, `<a href="/" onclick="x()">x</a>`, `<BODY ONLOAD=x()>`} {
		r := &recordingT{}
		checkPage(r, bad, page{200, good, bad})
		if r.n == 0 {
			t.Errorf("not caught: %s", bad)
		}
	}
	r = &recordingT{}
	checkPage(r, "no headers", page{200, http.Header{"Content-Type": {"text/html"}}, ok})
	if r.n == 0 {
		t.Error("missing headers not caught")
	}
}

// TestPagesRender: every page renders for a signed-in user with rights,
// with the CSP and no inline script or style.
func TestPagesRender(t *testing.T) {
	ui := newUI(t, "")
	b := ui.signIn(t, "alice", adminsRole)
	id := "fake/alice/tool"
	ui.createClient(t, id, "a tool", "project:x")
	cid := "/auth/clients/" + tcclient.PathSegment(id)
	pages := []struct {
		path   string
		status int
		want   string
	}{
		{"/profile", 200, "fake/alice"},
		{"/auth/sign-in?returnTo=%2Fprofile", 200, "Sign in with fake"},
		{"/auth/clients", 200, id},
		{"/auth/clients?search=fake%2Falice%2F", 200, id},
		{"/auth/clients?mine=1", 200, id},
		{"/auth/clients/create", 200, `value="fake/alice/"`},
		{cid, 200, "project:x"},
		{cid + "/edit", 200, "project:x"},
		{cid + "/delete", 200, "cannot be undone"},
		{cid + "/history", 200, "created"},
		{"/auth/no/such/page", 404, "ResourceNotFound"},
		// the roles and scopes pages (built on this framework) too
		{"/auth/roles", 200, adminsRole},
		{"/auth/roles/create", 200, "csrf"},
		{"/auth/roles/" + tcclient.PathSegment(adminsRole), 200, "auth:*"},
		{"/auth/roles/" + tcclient.PathSegment(adminsRole) + "/edit", 200, "auth:*"},
		{"/auth/roles/" + tcclient.PathSegment(adminsRole) + "/delete", 200, adminsRole},
		{"/auth/scopes", 200, "</form>"},
		{"/auth/clients/nope%2Fnope", 404, "ResourceNotFound"},
	}
	for _, pg := range pages {
		p := b.get(pg.path)
		if p.StatusCode != pg.status || !strings.Contains(p.Body, pg.want) {
			t.Errorf("%s: %d, want %d with %q:\n%s", pg.path, p.StatusCode, pg.status, pg.want, p.Body)
		}
		checkPage(t, pg.path, p)
	}
	if p := b.get("/"); p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/auth/clients" {
		t.Errorf("home: %d %q", p.StatusCode, p.Header.Get("Location"))
	}
	for _, f := range []string{"/ui/static/app.css", "/ui/static/app.js"} {
		if p := b.get(f); p.StatusCode != 200 || p.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d", f, p.StatusCode)
		}
	}
	for _, f := range []string{"/ui/static/", "/ui/static/nope.js", "/ui/static/../templates/layout.html"} {
		if p := b.get(f); p.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", f, p.StatusCode)
		}
	}
}

// TestSignedOutRedirect: a signed-out browser is sent to sign in with the
// page it wanted, and the sign-in brings it back there.
func TestSignedOutRedirect(t *testing.T) {
	ui := newUI(t, "")
	b := ui.browser(t)
	for _, path := range []string{"/", "/profile", "/auth/clients?search=a%2Fb&mine=1", "/auth/clients/a%2Fb", "/auth/clients/create?name=x"} {
		p := b.get(path)
		want := "/auth/sign-in?" + url.Values{"returnTo": {path}}.Encode()
		if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != want {
			t.Errorf("%s: %d to %q, want %q", path, p.StatusCode, p.Header.Get("Location"), want)
		}
	}
	// a signed-out post is not performed, and is sent to sign in
	for path, want := range map[string]string{"/auth/clients/x/disable": "/", "/auth/clients/create?callback_url=x": "/auth/clients/create?callback_url=x"} {
		p := b.do("POST", path, url.Values{"csrf": {"x"}}, nil)
		loc := "/auth/sign-in?" + url.Values{"returnTo": {want}}.Encode()
		if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != loc {
			t.Errorf("signed-out post %s: %d %q, want %q", path, p.StatusCode, p.Header.Get("Location"), loc)
		}
	}
	back := "/auth/clients?search=fake%2F"
	p := b.get("/auth/sign-in?" + url.Values{"returnTo": {back}}.Encode())
	checkPage(t, "sign-in", p)
	m := regexp.MustCompile(`href="(/login/fake\?[^"]+)"`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no sign-in button:\n%s", p.Body)
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	ui.Fake.AddUser("code-carol", loginUser("carol", adminsRole))
	b.completeSignIn(ui.URL+link, "code-carol", back)
	if p := b.get(back); p.StatusCode != 200 {
		t.Fatalf("after sign-in: %d", p.StatusCode)
	}
	// an open redirect is not possible through returnTo
	for _, evil := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		p := b.get("/auth/sign-in?" + url.Values{"returnTo": {evil}}.Encode())
		if strings.Contains(p.Body, "evil.example") {
			t.Errorf("returnTo %q kept:\n%s", evil, p.Body)
		}
	}
	// sign out (the layout's form) ends the session
	p = b.do("POST", "/login/logout", url.Values{"returnTo": {"/auth/sign-in"}}, nil)
	if p.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", p.StatusCode)
	}
	if p := b.get("/profile"); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", p.StatusCode)
	}
}

// TestInsufficientScopes: a user without rights sees InsufficientScopes
// with the required expression, status 403 — the API decided it with the
// user's own credentials.
func TestInsufficientScopes(t *testing.T) {
	ui := newUI(t, "")
	ui.createClient(t, "other/client", "someone else's")
	b := ui.signIn(t, "bob") // no roles
	for _, c := range []struct{ path, expr string }{
		{"/auth/clients", "auth:list-clients"},
		{"/auth/clients/other%2Fclient", "auth:get-client:other/client"},
		{"/auth/clients/other%2Fclient/history", "auth:audit-history:client"},
		{"/profile", "auth:current-scopes"},
	} {
		p := b.get(c.path)
		if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "InsufficientScopes") || !strings.Contains(p.Body, c.expr) ||
			!strings.Contains(p.Body, "Client ID fake/bob does not have sufficient scopes") {
			t.Errorf("%s: %d\n%s", c.path, p.StatusCode, p.Body)
		}
		checkPage(t, c.path, p)
	}
	for _, c := range []struct {
		path string
		form url.Values
		expr string
	}{
		{"/auth/clients/other%2Fclient/disable", nil, "auth:disable-client:other/client"},
		{"/auth/clients/other%2Fclient/reset", nil, "auth:reset-access-token:other/client"},
		{"/auth/clients/other%2Fclient/delete", nil, "auth:delete-client:other/client"},
		{"/auth/clients/create", url.Values{"clientId": {"fake/bob/x"}, "scopes": {"project:x"}, "expires": {"1 day"}}, "auth:create-client:fake/bob/x"},
	} {
		p := b.post(c.path, c.form)
		if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "InsufficientScopes") || !strings.Contains(p.Body, c.expr) {
			t.Errorf("POST %s: %d\n%s", c.path, p.StatusCode, p.Body)
		}
	}
	// the client is untouched
	var got struct{ Disabled bool }
	ui.rootDo(t, "GET", "/clients/other%2Fclient", nil, &got)
	if got.Disabled {
		t.Fatal("a user without rights disabled a client")
	}
}

// TestInProcessAuthHTTPS: behind a TLS-terminating proxy (public URL
// https://…, plain HTTP to the node) the UI's in-process calls still
// authenticate: they are signed for port 443 and the in-process request
// says TLS, as the proxy's request would.
func TestInProcessAuthHTTPS(t *testing.T) {
	ui := newUI(t, "https://auth.example.com")
	ui.Fake.AddUser("code-alice", loginUser("alice", adminsRole))
	b := ui.browser(t)
	// The session cookie is Secure (public URL is https), so carry it by hand.
	res := b.do("GET", "/login/fake?mode=redirect&returnTo=%2Fprofile", nil, nil)
	loc, _ := url.Parse(res.Header.Get("Location"))
	flow := cookieFrom(res, "tcauth_flow_")
	res = b.do("GET", "/login/fake/callback?"+url.Values{"code": {"code-alice"}, "state": {loc.Query().Get("state")}}.Encode(), nil,
		http.Header{"Cookie": {flow}})
	sess := cookieFrom(res, "tcauth_session")
	if sess == "" {
		t.Fatalf("no session: %d", res.StatusCode)
	}
	p := b.do("GET", "/profile", nil, http.Header{"Cookie": {sess}})
	if p.StatusCode != 200 || !strings.Contains(p.Body, "auth:*") {
		t.Fatalf("profile behind https: %d\n%s", p.StatusCode, p.Body)
	}
}

func cookieFrom(p page, prefix string) string {
	for _, v := range p.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, prefix) {
			nv, _, _ := strings.Cut(v, ";")
			if !strings.HasSuffix(nv, "=") {
				return nv
			}
		}
	}
	return ""
}

// checkUnchanged fails if client id is disabled.
func (ui *uiHarness) disabled(t *testing.T, id string) bool {
	t.Helper()
	var c struct{ Disabled bool }
	ui.rootDo(t, "GET", "/clients/"+tcclient.PathSegment(id), nil, &c)
	return c.Disabled
}

// TestCSRF: cross-origin posts and posts without the session's form token
// are refused before anything is done.
func TestCSRF(t *testing.T) {
	ui := newUI(t, "")
	ui.createClient(t, "fake/alice/x", "x")
	b := ui.signIn(t, "alice", adminsRole)
	other := ui.signIn(t, "alice", adminsRole) // another session of the same user
	token := b.csrf()
	path := "/auth/clients/fake%2Falice%2Fx/disable"
	for _, c := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"cross-site fetch metadata", url.Values{"csrf": {token}}, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": nil}},
		{"cross-site with a foreign Origin", url.Values{"csrf": {token}}, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}},
		{"foreign Origin", url.Values{"csrf": {token}}, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": nil}},
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf": {"AAAA" + token[4:]}}, nil},
		{"another session's token", url.Values{"csrf": {other.csrf()}}, nil},
	} {
		p := b.do("POST", path, c.form, c.header)
		if p.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d\n%s", c.name, p.StatusCode, p.Body)
		}
		checkPage(t, c.name, p)
		if ui.disabled(t, "fake/alice/x") {
			t.Fatalf("%s: the post was performed", c.name)
		}
	}
	if p := b.post(path, url.Values{"csrf": {token}}); p.StatusCode != http.StatusSeeOther || !ui.disabled(t, "fake/alice/x") {
		t.Fatalf("a valid post: %d", p.StatusCode)
	}
	if p := b.post("/auth/clients/fake%2Falice%2Fx/enable", nil); p.StatusCode != http.StatusSeeOther || ui.disabled(t, "fake/alice/x") {
		t.Fatalf("enable: %d", p.StatusCode)
	}
}

// TestClientLifecycle: create (token shown once), edit, reset (new token
// shown once, never again on any page), delete with confirmation.
func TestClientLifecycle(t *testing.T) {
	ui := newUI(t, "")
	b := ui.signIn(t, "alice", adminsRole)
	id := "fake/alice/ci"
	p := b.post("/auth/clients/create", url.Values{"clientId": {id}, "description": {"ci"}, "scopes": {"auth:list-clients\n\nauth:a\n"},
		"expires": {"1 day"}, "deleteOnExpiration": {"on"}})
	first := tokenIn(t, p)
	checkPage(t, "created", p)
	var c struct {
		Scopes             []string
		DeleteOnExpiration bool
	}
	ui.rootDo(t, "GET", "/clients/"+tcclient.PathSegment(id), nil, &c)
	if len(c.Scopes) != 2 || !c.DeleteOnExpiration {
		t.Fatalf("created %+v", c)
	}
	cid := "/auth/clients/" + tcclient.PathSegment(id)
	p = b.post(cid+"/edit", url.Values{"description": {"changed"}, "scopes": {"auth:current-scopes"}, "expires": {"2030-01-01T00:00:00Z"}})
	if p.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", p.StatusCode, p.Body)
	}
	if v := b.get(cid); !strings.Contains(v.Body, "changed") || !strings.Contains(v.Body, "auth:current-scopes") || strings.Contains(v.Body, "auth:a<") ||
		!strings.Contains(v.Body, "2030-01-01") {
		t.Fatalf("after edit:\n%s", v.Body)
	}
	// a bad expiry is a 400 on the form, input kept
	if p := b.post(cid+"/edit", url.Values{"description": {"kept-input"}, "expires": {"soon-ish"}}); p.StatusCode != 400 || !strings.Contains(p.Body, "kept-input") {
		t.Fatalf("bad expires: %d", p.StatusCode)
	}
	p = b.post(cid+"/reset", nil)
	second := tokenIn(t, p)
	if second == first {
		t.Fatal("reset kept the token")
	}
	// the new token works, the old does not
	cl := &tcclient.Client{RootURL: ui.URL, Credentials: &protocol.Credentials{ClientID: id, AccessToken: second}}
	if err := cl.Do(context.Background(), "GET", "/scopes/current", nil, nil, nil); err != nil {
		t.Fatalf("new token: %v", err)
	}
	for _, path := range []string{cid, cid + "/edit", cid + "/history", cid + "/delete", "/auth/clients", "/profile", "/auth/clients/create"} {
		if v := b.get(path); strings.Contains(v.Body, second) || strings.Contains(v.Body, first) {
			t.Fatalf("%s shows an access token again", path)
		}
	}
	if h := b.get(cid + "/history"); !strings.Contains(h.Body, "access token reset") {
		t.Fatalf("history:\n%s", h.Body)
	}
	p = b.post(cid+"/delete", nil)
	if p.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", p.StatusCode)
	}
	if v := b.get(p.Header.Get("Location")); !strings.Contains(v.Body, "deleted") {
		t.Fatalf("after delete:\n%s", v.Body)
	}
	if v := b.get(cid); v.StatusCode != 404 {
		t.Fatalf("deleted client still there: %d", v.StatusCode)
	}
}

var tokenRe = regexp.MustCompile(`id="access-token" class="secret">([A-Za-z0-9_-]{22,66})<`)

func tokenIn(t *testing.T, p page) string {
	t.Helper()
	m := tokenRe.FindStringSubmatch(p.Body)
	if p.StatusCode != 200 || m == nil {
		t.Fatalf("no access token shown: %d\n%s", p.StatusCode, p.Body)
	}
	return m[1]
}

// TestHostileValues: clientIds with "/", "..", "//" route to the right
// client, and descriptions are escaped everywhere.
func TestHostileValues(t *testing.T) {
	ui := newUI(t, "")
	b := ui.signIn(t, "alice", adminsRole)
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`
	ids := []string{"fake/alice/../root", "fake/alice//x", "a|b!c@d:e+f.g_h-i", "fake/alice/.", "create/x"}
	for _, id := range ids {
		ui.createClient(t, id, evil+id)
	}
	list := b.get("/auth/clients")
	checkPage(t, "list", list)
	for _, id := range ids {
		if !strings.Contains(list.Body, `href="/auth/clients/`+tcclient.PathSegment(id)+`"`) {
			t.Errorf("list has no link for %q", id)
		}
		for _, sub := range []string{"", "/edit", "/delete"} {
			p := b.get("/auth/clients/" + tcclient.PathSegment(id) + sub)
			if p.StatusCode != 200 || !strings.Contains(p.Body, strings.ReplaceAll(id, "+", "&#43;")) {
				t.Errorf("%q%s: %d", id, sub, p.StatusCode)
			}
			checkPage(t, id+sub, p)
			if strings.Contains(p.Body, "<script>alert") || strings.Contains(p.Body, "<img src=x") {
				t.Errorf("%q%s: unescaped description", id, sub)
			}
		}
	}
	if strings.Contains(list.Body, "<script>alert") || !strings.Contains(list.Body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("list: description not escaped")
	}
	// a search value is escaped in the form
	p := b.get("/auth/clients?search=" + url.QueryEscape(`"><script>x</script>`))
	checkPage(t, "search", p)
	if strings.Contains(p.Body, "<script>x") {
		t.Error("search echoed unescaped")
	}
}
