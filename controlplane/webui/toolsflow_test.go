package webui_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/controlplane/webui"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// toolsUI is the harness with the roles a deployment gives its users: a
// login-identity role (manage clients under one's identity, read one's
// scopes) and a group with a few service scopes.
func toolsUI(t *testing.T) *uiHarness {
	t.Helper()
	return toolsUIConfigured(t, func(*controlplane.Config) {})
}

func toolsUIConfigured(t *testing.T, configure func(*controlplane.Config)) *uiHarness {
	t.Helper()
	ui := newUIConfigured(t, configure)
	ui.rootDo(t, "PUT", "/roles/"+tcclient.PathSegment("login-identity:*"), map[string]any{"description": "every user",
		"scopes": []string{"auth:create-client:<..>/*", "auth:update-client:<..>/*", "auth:reset-access-token:<..>/*",
			"auth:get-client:<..>/*", "auth:current-scopes"}}, nil)
	ui.rootDo(t, "PUT", "/roles/"+tcclient.PathSegment("fake-group:devs"), map[string]any{"description": "devs",
		"scopes": []string{"queue:*", "secrets:get:project/x/*"}}, nil)
	ui.rootDo(t, "PUT", "/roles/"+tcclient.PathSegment("fake-group:readers"), map[string]any{"description": "may not make clients",
		"scopes": []string{"auth:current-scopes", "queue:*"}}, nil)
	return ui
}

// toolsQuery is what `taskcluster signin` (+ tcauth's state) opens.
func toolsQuery(name, callback string, scopes ...string) string {
	q := ""
	for _, s := range scopes {
		q += "&scope=" + url.QueryEscape(s)
	}
	return "/auth/clients/create?" + strings.TrimPrefix(q, "&") + "&name=" + url.QueryEscape(name) + "&expires=1d&callback_url=" +
		url.QueryEscape(callback) + "&description=Temporary+client+for+use+on+the+command+line&client_id=ignored%2Fx"
}

// confirmForm reads the confirmation form's fields from the page.
func confirmForm(t *testing.T, body string) url.Values {
	t.Helper()
	if !strings.Contains(body, `<form method="post" action="/auth/clients/create"`) {
		t.Fatalf("no confirmation form:\n%s", body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
		form.Add(m[1], htmlUnescape(m[2]))
	}
	return form
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+").Replace(s)
}

func clientExists(t *testing.T, ui *uiHarness, id string) bool {
	t.Helper()
	err := ui.root().Do(context.Background(), "GET", "/clients/"+tcclient.PathSegment(id), nil, nil, nil)
	var te *tcclient.Error
	if errors.As(err, &te) && te.StatusCode == 404 {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestToolsFlowSignInFirst: a signed-out browser is sent to sign in and
// comes back to the whole tools URL (Taskcluster #2679).
func TestToolsFlowSignInFirst(t *testing.T) {
	ui := toolsUI(t)
	target := toolsQuery("cli-AbCdEf", "http://localhost:51234/?state=S", "queue:*")
	b := ui.browser(t)
	res := b.get(target)
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || loc.Path != "/auth/sign-in" || loc.Query().Get("returnTo") != target {
		t.Fatalf("signed out: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	signin := b.get(res.Header.Get("Location"))
	m := regexp.MustCompile(`href="(/login/fake[^"]*)"`).FindStringSubmatch(signin.Body)
	if m == nil {
		t.Fatalf("no sign-in button: %s", signin.Body)
	}
	ui.Fake.AddUser("code-alice", loginUser("alice", "fake-group:devs"))
	b.completeSignIn(ui.URL+htmlUnescape(m[1]), "code-alice", target)
	if p := b.get(target); p.StatusCode != 200 || !strings.Contains(p.Body, "fake/alice/cli-AbCdEf") {
		t.Fatalf("after sign-in: %d %s", p.StatusCode, p.Body)
	}
}

// TestToolsFlowConfirmAndRedirect: the page shows the client (clientId
// under the identity, client_id ignored, intersected scopes, lacking
// scopes, the callback host), GET creates nothing, the confirmed POST
// creates it and redirects with the credentials, which work.
func TestToolsFlowConfirmAndRedirect(t *testing.T) {
	ui := toolsUI(t)
	b := ui.signIn(t, "alice", "fake-group:devs")
	const id = "fake/alice/cli-AbCdEf"
	cb := "http://localhost:51234/?state=S_-1"
	p := b.get(toolsQuery("cli-AbCdEf", cb, "queue:create-task:*", "secrets:*", "hooks:*"))
	if p.StatusCode != 200 {
		t.Fatalf("page: %d %s", p.StatusCode, p.Body)
	}
	for _, want := range []string{"<code>" + id + "</code>", "<code>queue:create-task:*</code>", "<code>secrets:get:project/x/*</code>",
		`class="scopes lacking"><li><code>secrets:*</code></li><li><code>hooks:*</code></li>`,
		`The credentials will be sent to <strong class="callback-host">http://localhost:51234</strong>`,
		"Temporary client for use on the command line"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("page lacks %q:\n%s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "ignored/x") {
		t.Error("client_id was used")
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://localhost:51234;") {
		t.Errorf("CSP %q does not allow the callback", csp)
	}
	if clientExists(t, ui, id) {
		t.Fatal("GET created the client")
	}
	res := b.post("/auth/clients/create", confirmForm(t, p.Body))
	loc := res.Header.Get("Location")
	m := regexp.MustCompile(`^http://localhost:51234/\?state=S_-1&clientId=fake/alice/cli-AbCdEf&accessToken=([A-Za-z0-9_-]{44})$`).FindStringSubmatch(loc)
	if res.StatusCode != http.StatusSeeOther || m == nil {
		t.Fatalf("confirm: %d Location %q\n%s", res.StatusCode, loc, res.Body)
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Referrer-Policy") != "no-referrer" || strings.Contains(res.Body, m[1]) {
		t.Errorf("redirect headers %v, body %q", res.Header, res.Body)
	}
	var c struct {
		Scopes             []string
		Expires            string
		DeleteOnExpiration bool
		Description        string
	}
	ui.rootDo(t, "GET", "/clients/"+tcclient.PathSegment(id), nil, &c)
	if strings.Join(c.Scopes, " ") != "queue:create-task:* secrets:get:project/x/*" || !c.DeleteOnExpiration ||
		c.Description != "Temporary client for use on the command line" {
		t.Errorf("created %+v", c)
	}
	var cur struct{ Scopes []string }
	tc := &tcclient.Client{RootURL: ui.URL, Credentials: &protocol.Credentials{ClientID: id, AccessToken: m[1]}}
	if err := tc.Do(context.Background(), "GET", "/scopes/current", nil, nil, &cur); err == nil {
		t.Errorf("the client has auth:current-scopes it was not given: %v", cur)
	} else if te := (*tcclient.Error)(nil); !errors.As(err, &te) || te.Code != "InsufficientScopes" {
		t.Errorf("the new credentials do not authenticate: %v", err)
	}
}

// TestToolsFlowCallbackRefused: a callback that is not loopback gets the
// reference's message and nothing to confirm, on GET and on POST.
func TestToolsFlowCallbackRefused(t *testing.T) {
	ui := toolsUI(t)
	b := ui.signIn(t, "alice", "fake-group:devs")
	for _, cb := range []string{"http://localhost.evil.com/", "https://evil.example/cb", "http://localhost:1@evil.example/", "https://tools.example.com/cb"} {
		p := b.get(toolsQuery("cli-x", cb, "queue:*"))
		if p.StatusCode != 400 || !strings.Contains(p.Body, "Callback URL "+htmlEscape(cb)+" is not allowed.") ||
			strings.Contains(p.Body, `action="/auth/clients/create"`) {
			t.Errorf("%s: %d\n%s", cb, p.StatusCode, p.Body)
		}
		if strings.Contains(p.Header.Get("Content-Security-Policy"), "evil") {
			t.Errorf("%s: CSP %s", cb, p.Header.Get("Content-Security-Policy"))
		}
		form := url.Values{"name": {"cli-x"}, "callback_url": {cb}, "scope": {"queue:*"}, "expires": {"1d"}}
		if res := b.post("/auth/clients/create", form); res.StatusCode != 400 || res.Header.Get("Location") != "" {
			t.Errorf("POST %s: %d %q", cb, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if clientExists(t, ui, "fake/alice/cli-x") {
		t.Fatal("a refused callback got a client")
	}
}

// TestToolsFlowForgedPosts: a cross-origin post and a post without the
// form token are refused and create nothing.
func TestToolsFlowForgedPosts(t *testing.T) {
	ui := toolsUI(t)
	b := ui.signIn(t, "alice", "fake-group:devs")
	p := b.get(toolsQuery("cli-f", "http://localhost:5/", "queue:*"))
	form := confirmForm(t, p.Body)
	cross := b.do("POST", "/auth/clients/create", form, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}})
	if cross.StatusCode != 403 || cross.Header.Get("Location") != "" {
		t.Errorf("cross-origin: %d %q", cross.StatusCode, cross.Header.Get("Location"))
	}
	form.Del("csrf")
	nocsrf := b.do("POST", "/auth/clients/create", form, nil)
	form.Set("csrf", "AAAA"+b.csrf()[4:])
	wrong := b.do("POST", "/auth/clients/create", form, nil)
	for name, r := range map[string]page{"no token": nocsrf, "wrong token": wrong} {
		if r.StatusCode != 403 || r.Header.Get("Location") != "" {
			t.Errorf("%s: %d %q", name, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if clientExists(t, ui, "fake/alice/cli-f") {
		t.Fatal("a forged post created the client")
	}
}

// TestToolsFlowInsufficientScopes: a user without
// auth:create-client:<identity>/* sees InsufficientScopes on the page (no
// form), and a post anyway gets the API's InsufficientScopes.
func TestToolsFlowInsufficientScopes(t *testing.T) {
	ui := toolsUI(t)
	// Without the login-identity role, bob holds only the readers group.
	ui.rootDo(t, "DELETE", "/roles/"+tcclient.PathSegment("login-identity:*"), nil, nil)
	b := ui.signIn(t, "bob", "fake-group:readers")
	p := b.get(toolsQuery("cli-b", "http://localhost:5/", "queue:*"))
	if p.StatusCode != 403 || !strings.Contains(p.Body, "InsufficientScopes") || !strings.Contains(p.Body, "auth:create-client:fake/bob/cli-b") ||
		strings.Contains(p.Body, `action="/auth/clients/create"`) {
		t.Fatalf("page: %d\n%s", p.StatusCode, p.Body)
	}
	form := url.Values{"name": {"cli-b"}, "callback_url": {"http://localhost:5/"}, "scope": {"queue:*"}, "expires": {"1d"}}
	res := b.post("/auth/clients/create", form)
	if res.StatusCode != 403 || !strings.Contains(res.Body, "InsufficientScopes") || res.Header.Get("Location") != "" {
		t.Fatalf("post: %d %q\n%s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	if clientExists(t, ui, "fake/bob/cli-b") {
		t.Fatal("created without the scope")
	}
}

// TestToolsFlowSameName: a tool reusing a name gets the existing client
// updated to what the page showed and a new access token (the page says
// so first); a disabled one is left alone.
func TestToolsFlowSameName(t *testing.T) {
	ui := toolsUI(t)
	b := ui.signIn(t, "alice", "fake-group:devs")
	const id = "fake/alice/mytool"
	first := ui.flowToken(t, b, "mytool", "queue:*", "auth:current-scopes")
	p := b.get(toolsQuery("mytool", "http://localhost:5/", "secrets:get:project/x/a", "auth:current-scopes"))
	if !strings.Contains(p.Body, "already exists") || !strings.Contains(p.Body, "resets its access token") {
		t.Fatalf("no warning about the existing client:\n%s", p.Body)
	}
	second := ui.flowToken(t, b, "mytool", "secrets:get:project/x/a", "auth:current-scopes")
	if first == second {
		t.Fatal("the token was not reset")
	}
	var c struct{ Scopes []string }
	ui.rootDo(t, "GET", "/clients/"+tcclient.PathSegment(id), nil, &c)
	if strings.Join(c.Scopes, " ") != "auth:current-scopes secrets:get:project/x/a" {
		t.Errorf("not updated: %v", c.Scopes)
	}
	// The old token stops working, the new one works.
	for tok, wantOK := range map[string]bool{first: false, second: true} {
		tc := &tcclient.Client{RootURL: ui.URL, Credentials: &protocol.Credentials{ClientID: id, AccessToken: tok}}
		var cur struct{ Scopes []string }
		err := tc.Do(context.Background(), "GET", "/scopes/current", nil, nil, &cur)
		if (err == nil) != wantOK {
			t.Errorf("token (new=%v): %v %v", wantOK, cur.Scopes, err)
		}
	}
	ui.rootDo(t, "POST", "/clients/"+tcclient.PathSegment(id)+"/disable", nil, nil)
	p = b.get(toolsQuery("mytool", "http://localhost:5/", "queue:*"))
	if !strings.Contains(p.Body, "disabled") || strings.Contains(p.Body, `action="/auth/clients/create"`) {
		t.Errorf("disabled client offered:\n%s", p.Body)
	}
	res := b.post("/auth/clients/create", url.Values{"name": {"mytool"}, "callback_url": {"http://localhost:5/"}, "scope": {"queue:*"}, "expires": {"1d"}})
	if res.StatusCode != http.StatusConflict || res.Header.Get("Location") != "" {
		t.Errorf("disabled: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// flowToken runs the flow for name and returns the access token.
func (ui *uiHarness) flowToken(t *testing.T, b *browser, name string, scopes ...string) string {
	t.Helper()
	p := b.get(toolsQuery(name, "http://localhost:5/", scopes...))
	res := b.post("/auth/clients/create", confirmForm(t, p.Body))
	m := regexp.MustCompile(`&accessToken=([A-Za-z0-9_-]+)$`).FindStringSubmatch(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || m == nil {
		t.Fatalf("flow: %d %q\n%s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	return m[1]
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

// TestToolsFlowConfiguredCallbackHost: a host named in the control plane's
// UICallbackHosts (--ui-callback-host) is a callback target over https
// only; without it the same URL is refused (TestToolsFlowCallbackRefused).
func TestToolsFlowConfiguredCallbackHost(t *testing.T) {
	ui := toolsUIConfigured(t, func(cfg *controlplane.Config) { cfg.UICallbackHosts = []string{"tools.example.com"} })
	b := ui.signIn(t, "alice", "fake-group:devs")
	p := b.get(toolsQuery("cli-x", "https://tools.example.com/cb", "queue:*"))
	if p.StatusCode != 200 || !strings.Contains(p.Header.Get("Content-Security-Policy"), "https://tools.example.com") {
		t.Fatalf("configured host: %d, CSP %q\n%s", p.StatusCode, p.Header.Get("Content-Security-Policy"), p.Body)
	}
	if p := b.get(toolsQuery("cli-x", "http://tools.example.com/cb", "queue:*")); p.StatusCode != 400 {
		t.Fatalf("configured host over http: %d", p.StatusCode)
	}
}

// TestNewRefusesBadCallbackHosts: UICallbackHosts entries must be plain
// host names (a scheme, port or path would never match, silently).
func TestNewRefusesBadCallbackHosts(t *testing.T) {
	for _, h := range []string{"", "https://tools.example.com", "tools.example.com:443", "tools.example.com/cb", "*.example.com", "a..b", "-a.example"} {
		_, err := webui.New(webui.Config{Login: &login.Service{}, API: http.NotFoundHandler(), RootURL: "https://tc.example.com", AllowedCallbackHosts: []string{h}})
		if !errors.Is(err, webui.ErrBadCallbackHost) {
			t.Errorf("%q: %v, want ErrBadCallbackHost", h, err)
		}
	}
}
