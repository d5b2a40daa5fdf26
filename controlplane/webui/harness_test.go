package webui_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/controlplanetest"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// uiHarness is a real single-node control plane (raftstore + the control
// plane's login backend + the web UI, mounted by controlplane.Server) behind
// an httptest server, with a fake sign-in strategy "fake".
type uiHarness struct {
	URL  string
	Fake *controlplanetest.FakeStrategy
}

const adminsRole = "fake-group:admins"

// newUI builds the harness. publicURL "" = the httptest server's URL; a
// different one (e.g. https://auth.example.com) makes the UI sign its API
// calls for that origin while the test still talks plain HTTP to the
// listener, as behind a TLS-terminating proxy.
func newUI(t *testing.T, publicURL string) *uiHarness {
	t.Helper()
	return newUIConfigured(t, func(cfg *controlplane.Config) {
		if publicURL != "" {
			cfg.Login.PublicURL = publicURL
		}
	})
}

// newUIConfigured is newUI with configure applied to the control plane's
// configuration.
func newUIConfigured(t *testing.T, configure func(*controlplane.Config)) *uiHarness {
	t.Helper()
	fake := controlplanetest.NewFakeStrategy()
	n := controlplanetest.Start(t, raftstore.NewTestCluster(t, 1), func(cfg *controlplane.Config) {
		cfg.StaticClients = append(cfg.StaticClients, controlplanetest.RootClient())
		configure(cfg)
	}, fake)[0]
	ui := &uiHarness{URL: n.URL, Fake: fake}
	// The admins role grants every auth: scope.
	ui.rootDo(t, "PUT", "/roles/"+tcclient.PathSegment(adminsRole), map[string]any{"description": "admins", "scopes": []string{"auth:*"}}, nil)
	return ui
}

// root is a tcclient as the root client, over the network.
func (ui *uiHarness) root() *tcclient.Client {
	return &tcclient.Client{RootURL: ui.URL, Credentials: &protocol.Credentials{ClientID: controlplanetest.RootID, AccessToken: controlplanetest.RootToken}}
}

func (ui *uiHarness) rootDo(t *testing.T, method, route string, body, out any) {
	t.Helper()
	if err := ui.root().Do(context.Background(), method, route, nil, body, out); err != nil {
		t.Fatalf("%s %s as root: %v", method, route, err)
	}
}

// createClient creates a client as root and returns its access token.
func (ui *uiHarness) createClient(t *testing.T, id, description string, scopes ...string) string {
	t.Helper()
	var c struct{ AccessToken string }
	if scopes == nil {
		scopes = []string{}
	}
	ui.rootDo(t, "PUT", "/clients/"+tcclient.PathSegment(id), map[string]any{
		"description": description, "scopes": scopes, "expires": protocol.FormatTime(time.Now().Add(24 * time.Hour))}, &c)
	return c.AccessToken
}

// browser is a signed-in (or not) browser: a cookie jar, no redirects
// followed, and Origin set on posts like a browser's same-origin form.
type browser struct {
	t   *testing.T
	ui  *uiHarness
	hc  *http.Client
	jar http.CookieJar
}

func (ui *uiHarness) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, ui: ui, jar: jar, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signIn signs a browser in as user (subject) with roles through the real
// redirect-mode flow and checks it lands on returnTo.
func (ui *uiHarness) signIn(t *testing.T, subject string, roles ...string) *browser {
	t.Helper()
	b := ui.browser(t)
	code := "code-" + subject
	ui.Fake.AddUser(code, login.User{IdentityID: subject, Roles: roles})
	b.completeSignIn(ui.URL+"/login/fake?mode=redirect&returnTo=%2Fprofile", code, "/profile")
	return b
}

// completeSignIn follows a sign-in link through the fake provider.
func (b *browser) completeSignIn(start, code, wantReturn string) {
	b.t.Helper()
	res := b.do("GET", start, nil, nil)
	if res.StatusCode != http.StatusFound {
		b.t.Fatalf("sign-in start %s: %d %s", start, res.StatusCode, res.Body)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	state := loc.Query().Get("state")
	res = b.do("GET", b.ui.URL+"/login/fake/callback?"+url.Values{"code": {code}, "state": {state}}.Encode(), nil, nil)
	// The callback ends with a page that navigates on by meta refresh
	// (login's renderContinue), so the SameSite=Strict cookie comes along.
	m := regexp.MustCompile(`<meta http-equiv="refresh" content="0; url=([^"]+)">`).FindStringSubmatch(string(res.Body))
	if res.StatusCode != http.StatusOK || m == nil || !strings.HasSuffix(html.UnescapeString(m[1]), wantReturn) {
		b.t.Fatalf("sign-in callback: %d to %q, want %q", res.StatusCode, m, wantReturn)
	}
}

// page is an answer with its body read.
type page struct {
	StatusCode int
	Header     http.Header
	Body       string
}

func (b *browser) do(method, target string, form url.Values, header http.Header) page {
	b.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = b.ui.URL + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.ui.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header, string(data)}
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil, nil) }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post submits a form with the session's CSRF token (read from a page).
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf") {
		form.Set("csrf", b.csrf())
	}
	return b.do("POST", path, form, nil)
}

// csrf reads the form token from the create page.
func (b *browser) csrf() string {
	b.t.Helper()
	p := b.get("/auth/clients/create")
	m := csrfRe.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no CSRF token on the create page (%d)", p.StatusCode)
	}
	return m[1]
}

// loginUser is a provider user with the given roles.
func loginUser(subject string, roles ...string) login.User {
	return login.User{IdentityID: subject, Roles: roles}
}
