package login

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/controlplanetest/fakegithub"
)

// fakeGitHubAPI is a fake of GitHub's OAuth endpoints and the REST calls
// tcauth makes, with GitHub's documented paths, headers, JSON shapes and
// Link pagination (no GitHub-compatible server program exists to run).
type fakeGitHubAPI struct {
	t      *testing.T
	srv    *httptest.Server
	client string
	secret string

	mu          sync.Mutex
	users       map[int64]*fakeGHAccount
	tokens      map[string]int64 // access token → user id
	appTokens   map[string]bool  // tokens issued to our OAuth app
	codes       map[string]int64 // authorization code → user id
	tokenAccept []string         // Accept headers seen at the token endpoint
	apiCalls    []string         // request URIs of REST calls
	fail        int              // answer REST calls with this status when set
	linkHost    string           // when set, next links point to this host
}

type fakeGHAccount struct {
	ID    int64
	Login string
	Teams []struct{ Org, Slug string }
	Orgs  []struct{ Org, Role, State string }
}

func newFakeGitHubAPI(t *testing.T) *fakeGitHubAPI {
	f := &fakeGitHubAPI{t: t, client: "gh-client", secret: "gh-secret", users: map[int64]*fakeGHAccount{},
		tokens: map[string]int64{}, appTokens: map[string]bool{}, codes: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login/oauth/access_token", f.serveToken)
	mux.HandleFunc("GET /user", f.api(f.serveUser))
	mux.HandleFunc("GET /users/{login}", f.api(f.serveUsers))
	mux.HandleFunc("GET /user/teams", f.api(f.serveTeams))
	mux.HandleFunc("GET /user/memberships/orgs", f.api(f.serveMemberships))
	mux.HandleFunc("POST /applications/{client_id}/token", f.api(f.serveCheckToken))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHubAPI) addUser(id int64, login string) *fakeGHAccount {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := &fakeGHAccount{ID: id, Login: login}
	f.users[id] = a
	return a
}

func (a *fakeGHAccount) team(org, slug string) *fakeGHAccount {
	a.Teams = append(a.Teams, struct{ Org, Slug string }{org, slug})
	return a
}

func (a *fakeGHAccount) org(org, role, state string) *fakeGHAccount {
	a.Orgs = append(a.Orgs, struct{ Org, Role, State string }{org, role, state})
	return a
}

// issue makes an authorization code (and the token it will give) for a user.
func (f *fakeGitHubAPI) issue(id int64, forOurApp bool) (code, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	code, token = randomToken(10), "gho_"+randomToken(18)
	f.codes[code] = id
	f.tokens[token] = id
	f.appTokens[token] = forOurApp
	return code, token
}

func ghMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest", "status": strconv.Itoa(status)})
}

func (f *fakeGitHubAPI) serveToken(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenAccept = append(f.tokenAccept, r.Header.Get("Accept"))
	answer := map[string]string{}
	id, ok := f.codes[r.Form.Get("code")]
	switch {
	case r.Form.Get("client_id") != f.client || r.Form.Get("client_secret") != f.secret:
		answer = map[string]string{"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."}
	case r.Form.Get("grant_type") == "refresh_token":
		answer = map[string]string{"error": "bad_refresh_token", "error_description": "The refresh token passed is incorrect or expired."}
	case !ok:
		answer = map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
	default:
		delete(f.codes, r.Form.Get("code"))
		for tok, uid := range f.tokens {
			if uid == id && f.appTokens[tok] {
				answer = map[string]string{"access_token": tok, "token_type": "bearer", "scope": "read:org"}
			}
		}
	}
	// GitHub answers errors with 200 too, form-encoded unless JSON is asked for.
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(answer)
		return
	}
	v := url.Values{}
	for k, s := range answer {
		v.Set(k, s)
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.Write([]byte(v.Encode()))
}

// api checks the headers GitHub asks REST clients for and the token.
func (f *fakeGitHubAPI) api(h func(http.ResponseWriter, *http.Request, *fakeGHAccount)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.apiCalls = append(f.apiCalls, r.URL.RequestURI())
		if r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get("X-GitHub-Api-Version") != githubAPIVersion {
			ghMessage(w, http.StatusBadRequest, "fake: missing the documented Accept / X-GitHub-Api-Version headers")
			return
		}
		if f.fail != 0 {
			ghMessage(w, f.fail, "Server Error")
			return
		}
		if strings.HasPrefix(r.URL.Path, "/applications/") {
			h(w, r, nil) // authenticated with the app's Basic credentials instead
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		id, known := f.tokens[tok]
		if !ok || !known {
			ghMessage(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		h(w, r, f.users[id])
	}
}

func ghUserJSON(a *fakeGHAccount) map[string]any {
	return map[string]any{"login": a.Login, "id": a.ID, "node_id": "MDQ6VXNlcjE=", "avatar_url": "https://github.com/images/error/octocat_happy.gif",
		"url": "https://api.github.com/users/" + a.Login, "type": "User", "site_admin": false, "name": "The " + a.Login}
}

func ghOrgJSON(login string) map[string]any {
	return map[string]any{"login": login, "id": len(login), "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=", "url": "https://api.github.com/orgs/" + login, "description": ""}
}

func writeGHJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

func (f *fakeGitHubAPI) serveUser(w http.ResponseWriter, r *http.Request, a *fakeGHAccount) {
	writeGHJSON(w, ghUserJSON(a))
}

func (f *fakeGitHubAPI) serveUsers(w http.ResponseWriter, r *http.Request, _ *fakeGHAccount) {
	for _, a := range f.users {
		if strings.EqualFold(a.Login, r.PathValue("login")) {
			writeGHJSON(w, ghUserJSON(a))
			return
		}
	}
	ghMessage(w, http.StatusNotFound, "Not Found")
}

func (f *fakeGitHubAPI) serveTeams(w http.ResponseWriter, r *http.Request, a *fakeGHAccount) {
	items := make([]any, 0, len(a.Teams))
	for i, t := range a.Teams {
		items = append(items, map[string]any{"id": i + 1, "node_id": "MDQ6VGVhbTE=", "url": "https://api.github.com/teams/1",
			"name": t.Slug, "slug": t.Slug, "description": "A team.", "privacy": "closed", "permission": "pull",
			"members_url": "https://api.github.com/teams/1/members{/member}", "parent": nil, "organization": ghOrgJSON(t.Org)})
	}
	f.page(w, r, items)
}

func (f *fakeGitHubAPI) serveMemberships(w http.ResponseWriter, r *http.Request, a *fakeGHAccount) {
	var items []any
	for _, o := range a.Orgs {
		if st := r.URL.Query().Get("state"); st != "" && st != o.State {
			continue
		}
		items = append(items, map[string]any{"url": "https://api.github.com/orgs/" + o.Org + "/memberships/" + a.Login,
			"state": o.State, "role": o.Role, "organization_url": "https://api.github.com/orgs/" + o.Org,
			"organization": ghOrgJSON(o.Org), "user": ghUserJSON(a)})
	}
	f.page(w, r, items)
}

// page serves one page as GitHub does (fakegithub.WritePage), its links
// to linkHost when set.
func (f *fakeGitHubAPI) page(w http.ResponseWriter, r *http.Request, items []any) {
	host := f.srv.URL
	if f.linkHost != "" {
		host = f.linkHost
	}
	fakegithub.WritePage(w, r, host, items, 0)
}

func (f *fakeGitHubAPI) serveCheckToken(w http.ResponseWriter, r *http.Request, _ *fakeGHAccount) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != f.client || secret != f.secret {
		ghMessage(w, http.StatusUnauthorized, "Requires authentication")
		return
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	uid, known := f.tokens[body.AccessToken]
	if r.PathValue("client_id") != f.client || !known || !f.appTokens[body.AccessToken] {
		ghMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	writeGHJSON(w, map[string]any{"id": 1, "token": body.AccessToken, "scopes": []string{"read:org"},
		"app": map[string]any{"client_id": f.client, "name": "tcauth", "url": "https://tc.example"}, "user": ghUserJSON(f.users[uid])})
}

func (f *fakeGitHubAPI) strategy(t *testing.T, name string, bearer bool, now func() time.Time) *githubStrategy {
	t.Helper()
	sc := StrategyConfig{Name: name, Type: "github", ClientID: f.client, ClientSecret: f.secret,
		AuthorizeURL: f.srv.URL + "/login/oauth/authorize", TokenURL: f.srv.URL + "/login/oauth/access_token", APIURL: f.srv.URL}
	if bearer {
		sc.Bearer = &BearerConfig{}
	}
	if now == nil {
		now = time.Now
	}
	st, err := newGitHubStrategy(Config{HTTPClient: &http.Client{Timeout: 5 * time.Second}, Now: now, Logger: provDiscardLogger()}, sc)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*githubStrategy)
}

func TestGitHubSignIn(t *testing.T) {
	f := newFakeGitHubAPI(t)
	f.addUser(1234, "octocat").team("my-org", "core").team("other-org", "docs").
		org("my-org", "admin", "active").org("other-org", "member", "active").org("pending-org", "admin", "pending")
	clock := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	st := f.strategy(t, "github", false, func() time.Time { return clock })

	u, err := url.Parse(st.AuthCodeURL("st", "ignored", "verifier-0123456789-0123456789-0123456789", "https://tc.example/login/github/callback"))
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("scope") != "read:org" || q.Get("client_id") != "gh-client" || q.Get("state") != "st" || q.Get("code_challenge_method") != "S256" {
		t.Errorf("authorize URL %s", u)
	}
	code, token := f.issue(1234, true)
	user, g, err := st.Exchange(t.Context(), code, "", "verifier", "https://tc.example/login/github/callback")
	if err != nil {
		t.Fatal(err)
	}
	if user.Identity() != "github/1234|octocat" || !user.ProviderExpires.Equal(clock.Add(30*24*time.Hour)) {
		t.Errorf("user = %+v", user)
	}
	if got := strings.Join(user.Roles, ","); got != "github-team:my-org/core,github-team:other-org/docs,github-org-admin:my-org" {
		t.Errorf("roles = %s", got)
	}
	if g.Subject != "1234" || g.Login != "octocat" || g.AccessToken != token || g.Strategy != "github" {
		t.Errorf("grant = %+v", g)
	}
	if len(f.tokenAccept) != 1 || f.tokenAccept[0] != "application/json" {
		t.Errorf("token endpoint Accept = %q", f.tokenAccept)
	}
	// A used code is refused, and the error does not carry it.
	if _, _, err := st.Exchange(t.Context(), code, "", "verifier", "x"); err == nil || strings.Contains(err.Error(), code) {
		t.Errorf("replayed code: %v", err)
	}
}

func TestGitHubStrategyName(t *testing.T) {
	f := newFakeGitHubAPI(t)
	f.addUser(77, "Mona Lisa")
	st := f.strategy(t, "ghe", false, nil)
	code, _ := f.issue(77, true)
	u, _, err := st.Exchange(t.Context(), code, "", "v", "x")
	if err != nil || u.Identity() != "ghe/77|Mona!20Lisa" {
		t.Fatalf("identity = %q, %v", u.Identity(), err)
	}
}

func TestGitHubPagination(t *testing.T) {
	f := newFakeGitHubAPI(t)
	a := f.addUser(1, "many")
	for i := range 250 {
		a.team("org", fmt.Sprintf("team-%03d", i))
	}
	for i := range 120 {
		a.org(fmt.Sprintf("org-%03d", i), "admin", "active")
	}
	st := f.strategy(t, "github", false, nil)
	code, _ := f.issue(1, true)
	u, _, err := st.Exchange(t.Context(), code, "", "v", "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Roles) != 370 || u.Roles[249] != "github-team:org/team-249" || u.Roles[369] != "github-org-admin:org-119" {
		t.Fatalf("%d roles, last %q", len(u.Roles), u.Roles[len(u.Roles)-1])
	}
	pages := 0
	for _, c := range f.apiCalls {
		if strings.HasPrefix(c, "/user/teams") || strings.HasPrefix(c, "/user/memberships/orgs") {
			pages++
			if !strings.Contains(c, "per_page=100") {
				t.Errorf("call %s without per_page=100", c)
			}
		}
	}
	if pages != 5 {
		t.Errorf("%d list pages fetched, want 3 + 2", pages)
	}
	// Past the page cap the sign-in fails rather than dropping roles.
	st.maxPages = 2
	code, _ = f.issue(1, true)
	if _, _, err := st.Exchange(t.Context(), code, "", "v", "x"); err == nil || !strings.Contains(err.Error(), "refusing to truncate") {
		t.Fatalf("page cap: %v", err)
	}
}

func TestGitHubNextLinkLeavingTheAPI(t *testing.T) {
	f := newFakeGitHubAPI(t)
	a := f.addUser(1, "many")
	for i := range 150 {
		a.team("org", fmt.Sprintf("t%d", i))
	}
	f.linkHost = "https://evil.example"
	st := f.strategy(t, "github", false, nil)
	code, _ := f.issue(1, true)
	if _, _, err := st.Exchange(t.Context(), code, "", "v", "x"); err == nil || !strings.Contains(err.Error(), "leaves the API") {
		t.Fatalf("err = %v", err)
	}
}

func TestGitHubRefresh(t *testing.T) {
	cases := []struct {
		name   string
		change func(f *fakeGitHubAPI, token string)
		gone   bool
		roles  string // when not gone
	}{
		{name: "unchanged", change: func(*fakeGitHubAPI, string) {}, roles: "github-team:my-org/core,github-org-admin:my-org"},
		{name: "removed from the team", change: func(f *fakeGitHubAPI, _ string) { f.users[1234].Teams = nil }, roles: "github-org-admin:my-org"},
		{name: "token revoked", gone: true, change: func(f *fakeGitHubAPI, tok string) { delete(f.tokens, tok) }},
		{name: "login renamed, old login taken by someone else", gone: true, change: func(f *fakeGitHubAPI, _ string) {
			f.users[1234].Login = "octocat-old"
			f.users[999] = &fakeGHAccount{ID: 999, Login: "octocat"}
		}},
		{name: "login renamed, old login free", gone: true, change: func(f *fakeGitHubAPI, _ string) { f.users[1234].Login = "octo2" }},
		{name: "GitHub down", change: func(f *fakeGitHubAPI, _ string) { f.fail = http.StatusBadGateway }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeGitHubAPI(t)
			f.addUser(1234, "octocat").team("my-org", "core").org("my-org", "admin", "active")
			st := f.strategy(t, "github", false, nil)
			code, tok := f.issue(1234, true)
			_, g, err := st.Exchange(t.Context(), code, "", "v", "x")
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			c.change(f, tok)
			f.mu.Unlock()
			u, _, changed, err := st.Refresh(t.Context(), g)
			switch {
			case c.gone:
				if !errors.Is(err, ErrUserGone) {
					t.Fatalf("err = %v, want ErrUserGone", err)
				}
			case c.roles == "":
				if err == nil || errors.Is(err, ErrUserGone) || !errors.Is(err, ErrProviderUnavailable) {
					t.Fatalf("err = %v, want a transient error", err)
				}
			default:
				if err != nil || changed || u.Identity() != "github/1234|octocat" || strings.Join(u.Roles, ",") != c.roles {
					t.Fatalf("u=%+v changed=%v err=%v", u, changed, err)
				}
			}
		})
	}
}

func TestGitHubRenewsExpiringToken(t *testing.T) {
	f := newFakeGitHubAPI(t)
	f.addUser(5, "app-user")
	st := f.strategy(t, "github", false, nil)
	code, _ := f.issue(5, true)
	_, g, err := st.Exchange(t.Context(), code, "", "v", "x")
	if err != nil {
		t.Fatal(err)
	}
	// A GitHub App user token past its expiry with a refresh token the
	// provider refuses: the user must sign in again.
	g.RefreshToken, g.Expiry = "ghr_unknown", time.Now().Add(-time.Hour)
	if _, _, _, err := st.Refresh(t.Context(), g); !errors.Is(err, ErrUserGone) {
		t.Fatalf("refused refresh token: %v, want ErrUserGone", err)
	}
}

func TestGitHubBearer(t *testing.T) {
	f := newFakeGitHubAPI(t)
	f.addUser(1234, "octocat").team("my-org", "core")
	_, ours := f.issue(1234, true)
	_, foreign := f.issue(1234, false)
	if _, err := f.strategy(t, "github", false, nil).BearerUser(t.Context(), ours); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("without bearer: %v", err)
	}
	st := f.strategy(t, "github", true, nil)
	u, err := st.BearerUser(t.Context(), ours)
	if err != nil || u.Identity() != "github/1234|octocat" || strings.Join(u.Roles, ",") != "github-team:my-org/core" {
		t.Fatalf("u=%+v err=%v", u, err)
	}
	if _, err := st.BearerUser(t.Context(), foreign); err == nil {
		t.Fatal("a token issued to another app was accepted")
	}
	if _, err := st.BearerUser(t.Context(), "gho_unknown"); err == nil {
		t.Fatal("an unknown token was accepted")
	}
	st.conf.ClientSecret = "wrong"
	if _, err := st.BearerUser(t.Context(), ours); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("our credentials refused: %v, want transient", err)
	}
}

func TestNextLink(t *testing.T) {
	cases := []struct{ header, want string }{
		{`<https://api.github.com/user/teams?per_page=100&page=2>; rel="next", <https://api.github.com/user/teams?per_page=100&page=3>; rel="last"`,
			"https://api.github.com/user/teams?per_page=100&page=2"},
		{`<https://a/?page=1>; rel="first", <https://a/?page=3>; rel="next"`, "https://a/?page=3"},
		{`<https://a/?page=3>; REL=NEXT`, "https://a/?page=3"},
		{`<https://a/x>; rel="last next"`, "https://a/x"},
		{`<https://a/1>; title="x, <https://evil/>; rel=next"; rel="last"`, ""},
		{`<https://a/1>; title="a \" quote"; rel="next"`, "https://a/1"},
		{`<https://a/1>; rel="last"`, ""},
		{``, ""},
		{`garbage`, ""},
		{`<https://a/1`, ""},
		{`<https://a/1>; rel="next`, "https://a/1"},
		{`<https://a/1> junk; rel="next"`, ""},
		{`<a,b>; rel="next"`, "a,b"},
	}
	for _, c := range cases {
		got, ok := nextLink(c.header)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("nextLink(%q) = %q, %v; want %q", c.header, got, ok, c.want)
		}
	}
}

func FuzzNextLink(f *testing.F) {
	f.Add(`<https://api.github.com/user/teams?page=2>; rel="next", <https://api.github.com/user/teams?page=3>; rel="last"`)
	f.Add(`<a>; title="x, <b>; rel=next"; rel=last`)
	f.Add(`<a>;;;,,<b>; rel = "next" ;`)
	f.Fuzz(func(t *testing.T, h string) {
		got, ok := nextLink(h)
		if ok && (strings.Contains(got, ">") || !strings.Contains(h, "<"+got+">")) {
			t.Fatalf("nextLink(%q) = %q", h, got)
		}
	})
}
