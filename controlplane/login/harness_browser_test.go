package login

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// aeadSealer is a real AES-256-GCM Sealer (the id is the additional data),
// as the keyring seals: a tampered or foreign value does not open.
type aeadSealer struct{ aead cipher.AEAD }

func newAEADSealer(t testing.TB) *aeadSealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &aeadSealer{g}
}

func (a *aeadSealer) Seal(id string, p []byte) ([]byte, error) {
	nonce := make([]byte, a.aead.NonceSize())
	rand.Read(nonce)
	return a.aead.Seal(nonce, nonce, p, []byte(id)), nil
}

func (a *aeadSealer) Open(id string, s []byte) ([]byte, error) {
	n := a.aead.NonceSize()
	if len(s) < n {
		return nil, errors.New("short")
	}
	return a.aead.Open(nil, s[:n], s[n:], []byte(id))
}

// fakeStrategy is a test double of a provider strategy. Its codes can be
// exchanged again (unlike a real provider's), so replay tests show that
// tcauth itself refuses a second callback. Users are kept in a map the
// test edits (remove a user, rotate its grant, make the provider fail).
type fakeStrategy struct {
	name string
	mu   sync.Mutex
	// users by code given at sign-in; the grant's Subject finds the user at refresh
	codes      map[string]User
	users      map[string]User // by subject
	refreshErr error           // transient failure of Refresh when set
	rotate     bool            // Refresh returns a changed grant
	refreshes  int
	issued     map[string]string // nonce → PKCE verifier of every AuthCodeURL
	down       bool              // AuthCodeURL answers "" (provider unreachable)
}

func newFakeStrategy(name string) *fakeStrategy {
	return &fakeStrategy{name: name, codes: map[string]User{}, users: map[string]User{}, issued: map[string]string{}}
}

func (f *fakeStrategy) Name() string { return f.name }

func (f *fakeStrategy) AuthCodeURL(state, nonce, verifier, redirectURL string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return ""
	}
	f.issued[nonce] = verifier
	return "https://idp.example/authorize?" + url.Values{"state": {state}, "redirect_uri": {redirectURL}}.Encode()
}

// addUser makes code sign in u (subject = u.IdentityID).
func (f *fakeStrategy) addUser(code string, u User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u.ProviderID = f.name
	f.codes[code] = u
	f.users[u.IdentityID] = u
}

func (f *fakeStrategy) removeUser(subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.users, subject)
}

func (f *fakeStrategy) Exchange(ctx context.Context, code, nonce, verifier, redirectURL string) (User, Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.issued[nonce]; !ok || v != verifier {
		return User{}, Grant{}, errors.New("fake: nonce or verifier differ from AuthCodeURL's")
	}
	u, ok := f.codes[code]
	if !ok {
		return User{}, Grant{}, errors.New("fake: unknown code")
	}
	if !strings.HasSuffix(redirectURL, "/login/"+f.name+"/callback") {
		return User{}, Grant{}, errors.New("fake: wrong redirect URL")
	}
	return u, Grant{Subject: u.IdentityID, AccessToken: "provider-access-" + code, RefreshToken: "provider-refresh-" + code}, nil
}

func (f *fakeStrategy) Refresh(ctx context.Context, g Grant) (User, Grant, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	if f.refreshErr != nil {
		return User{}, Grant{}, false, f.refreshErr
	}
	u, ok := f.users[g.Subject]
	if !ok {
		return User{}, Grant{}, false, ErrUserGone
	}
	if f.rotate {
		g.RefreshToken += "-rotated"
		return u, g, true, nil
	}
	return u, g, false, nil
}

func (f *fakeStrategy) BearerUser(ctx context.Context, token string) (User, error) {
	return User{}, ErrNotSupported
}

// browserHarness is a Service with a fake strategy "fake", a second one
// "other", the memBackend, a movable clock and a captured log.
type browserHarness struct {
	t     *testing.T
	svc   *Service
	mb    *memBackend
	fake  *fakeStrategy
	other *fakeStrategy
	now   time.Time
	logs  *bytes.Buffer
	logMu *sync.Mutex
}

const (
	testPublicURL  = "https://tc.example.com"
	testUIOrigin   = "https://ui.example.com"
	testIssuer     = "static/taskcluster/web-server"
	testIssuerTok  = "web-server-secret-0123456789ab"
	vectorIdentity = "github/1234|octocat"
)

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newBrowserHarness(t *testing.T) *browserHarness {
	t.Helper()
	h := &browserHarness{t: t, mb: newMemBackend(), now: time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC),
		logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	cfg := Config{
		PublicURL: testPublicURL, Sealer: newAEADSealer(t), AllowedOrigins: []string{testUIOrigin},
		Now:    func() time.Time { return h.now },
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{h.logMu, h.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	svc, err := New(cfg, h.mb)
	if err != nil {
		t.Fatal(err)
	}
	h.fake, h.other = newFakeStrategy("fake"), newFakeStrategy("other")
	for _, st := range []*fakeStrategy{h.fake, h.other} {
		svc.strategies[st.name] = st
		svc.order = append(svc.order, st.name)
	}
	h.svc = svc
	res, err := scopeengine.NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.mb.resolver = res
	h.mb.addClient(Client{ClientID: testIssuer, Scopes: []string{
		"auth:create-client:fake/*", "auth:create-client:github/*", "assume:login-identity:*", "assume:fake-group:*",
		"assume:github-team:*", "assume:github-org-admin:*"}})
	h.mb.tokens[testIssuer] = testIssuerTok
	h.fake.addUser("code-alice", User{IdentityID: "alice", Roles: []string{"fake-group:admins"}, DisplayName: "Alice"})
	return h
}

func (h *browserHarness) do(req *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	h.svc.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func (h *browserHarness) get(path string, cookies ...*http.Cookie) *http.Response {
	req := httptest.NewRequest("GET", testPublicURL+path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return h.do(req)
}

// start begins a sign-in and returns its state and flow cookie.
func (h *browserHarness) start(strategy, query string) (string, *http.Cookie) {
	h.t.Helper()
	res := h.get("/login/" + strategy + query)
	if res.StatusCode != http.StatusFound {
		h.t.Fatalf("start: status %d, want 302", res.StatusCode)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		h.t.Fatal(err)
	}
	if got := loc.Query().Get("redirect_uri"); got != testPublicURL+"/login/"+strategy+"/callback" {
		h.t.Fatalf("redirect_uri %q", got)
	}
	state := loc.Query().Get("state")
	c := cookieNamed(res, flowCookieName(state))
	if c == nil {
		h.t.Fatal("start: no flow cookie")
	}
	return state, c
}

// signIn runs a whole popup sign-in and returns the session cookie.
func (h *browserHarness) signIn(code string) *http.Cookie {
	h.t.Helper()
	state, fc := h.start("fake", "")
	res := h.get("/login/fake/callback?"+url.Values{"code": {code}, "state": {state}}.Encode(), fc)
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("callback: status %d", res.StatusCode)
	}
	c := cookieNamed(res, SessionCookie)
	if c == nil || c.Value == "" {
		h.t.Fatal("callback: no session cookie")
	}
	return c
}

func (h *browserHarness) logText() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logs.String()
}

func cookieNamed(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// continueTarget is where a redirect-mode sign-in sends the browser: the
// meta-refresh URL of the page that ends it (renderContinue), "" if the
// answer is not such a page.
func continueTarget(t *testing.T, res *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(b))
	m := regexp.MustCompile(`<meta http-equiv="refresh" content="0; url=([^"]+)">`).FindSubmatch(b)
	if res.StatusCode != http.StatusOK || m == nil {
		return ""
	}
	return html.UnescapeString(string(m[1]))
}
