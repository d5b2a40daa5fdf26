package webui_test

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
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
	Fake *fakeStrategy
	srv  *controlplane.Server
}

const (
	rootID     = "static/test/root"
	rootToken  = "test-root-token-0123456789abcdef"
	issuerID   = "static/login-issuer"
	issuerTok  = "web-server-secret-0123456789ab"
	adminsRole = "fake-group:admins"
)

// newUI builds the harness. publicURL "" = the httptest server's URL; a
// different one (e.g. https://auth.example.com) makes the UI sign its API
// calls for that origin while the test still talks plain HTTP to the
// listener, as behind a TLS-terminating proxy.
func newUI(t *testing.T, publicURL string) *uiHarness {
	t.Helper()
	rc := raftstore.NewTestCluster(t, 1)
	var mu sync.RWMutex
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		defer mu.RUnlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	if publicURL == "" {
		publicURL = hs.URL
	}
	cfg := controlplane.DefaultConfig()
	cfg.AdvertiseURL = hs.URL
	cfg.PeerKeyring = rc.Keyring
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg.StaticClients = []controlplane.StaticClient{
		{ClientID: rootID, AccessToken: rootToken, Description: "test root", Scopes: []string{"*"}},
		{ClientID: issuerID, AccessToken: issuerTok, Description: "signs users' temporary credentials",
			Scopes: []string{"auth:create-client:fake/*", "assume:login-identity:*", "assume:fake-group:*"}},
	}
	cfg.Login = &login.Config{PublicURL: publicURL, Issuer: issuerID}
	srv, err := controlplane.New(cfg, controlplane.NewRaftStore(rc.Nodes[0]))
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeStrategy("fake")
	srv.Login().TestingAddStrategy(fake)
	mu.Lock()
	h = srv.Handler()
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Run(ctx)
	ui := &uiHarness{URL: hs.URL, Fake: fake, srv: srv}
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(hs.URL + "/api/auth/v1/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the control plane never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The admins role grants every auth: scope.
	ui.rootDo(t, "PUT", "/roles/"+tcclient.PathSegment(adminsRole), map[string]any{"description": "admins", "scopes": []string{"auth:*"}}, nil)
	return ui
}

// root is a tcclient as the root client, over the network.
func (ui *uiHarness) root() *tcclient.Client {
	return &tcclient.Client{RootURL: ui.URL, Credentials: &protocol.Credentials{ClientID: rootID, AccessToken: rootToken}}
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
	ui.Fake.addUser(code, login.User{IdentityID: subject, Roles: roles})
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

// fakeStrategy is a stand-in for an identity provider (no real provider
// is needed for page tests; integration/webui uses a real OIDC one).
type fakeStrategy struct {
	name       string
	mu         sync.Mutex
	codes      map[string]login.User
	users      map[string]login.User
	refreshErr error
}

func newFakeStrategy(name string) *fakeStrategy {
	return &fakeStrategy{name: name, codes: map[string]login.User{}, users: map[string]login.User{}}
}

func (f *fakeStrategy) Name() string { return f.name }

func (f *fakeStrategy) AuthCodeURL(state, nonce, verifier, redirectURL string) string {
	return "https://idp.example/authorize?" + url.Values{"state": {state}, "redirect_uri": {redirectURL}}.Encode()
}

func (f *fakeStrategy) addUser(code string, u login.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u.ProviderID = f.name
	f.codes[code], f.users[u.IdentityID] = u, u
}

func (f *fakeStrategy) Exchange(ctx context.Context, code, nonce, verifier, redirectURL string) (login.User, login.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.codes[code]
	if !ok {
		return login.User{}, login.Grant{}, errors.New("fake: unknown code")
	}
	return u, login.Grant{Subject: u.IdentityID, AccessToken: "provider-" + code}, nil
}

func (f *fakeStrategy) Refresh(ctx context.Context, g login.Grant) (login.User, login.Grant, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refreshErr != nil {
		return login.User{}, g, false, f.refreshErr
	}
	u, ok := f.users[g.Subject]
	if !ok {
		return login.User{}, g, false, login.ErrUserGone
	}
	return u, g, false, nil
}

func (f *fakeStrategy) BearerUser(context.Context, string) (login.User, error) {
	return login.User{}, login.ErrNotSupported
}

// loginUser is a provider user with the given roles.
func loginUser(subject string, roles ...string) login.User {
	return login.User{IdentityID: subject, Roles: roles}
}
