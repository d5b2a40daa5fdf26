// Package fakegithub is a fake of GitHub written for tcauth's tests: no
// GitHub-compatible server runs here. It imports nothing of tcauth, so the
// tests of any package (internal or external) can use it.
package fakegithub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v84/github"
)

// FakeGitHub is a fake of GitHub written for these tests: no
// GitHub-compatible server runs here. It serves the OAuth endpoints and
// the REST endpoints the GitHub strategy reads, with go-github's JSON types
// and GitHub's Link pagination (per_page default 30, at most 100):
//
//	GET  /login/oauth/authorize      auto-approves the user SignInAs chose
//	POST /login/oauth/access_token   form-encoded reply unless Accept: application/json
//	GET  /user, /users/{login}, /user/teams, /user/memberships/orgs
//
// and the GitHub App endpoints githubRepoToken calls (apps.go):
//
//	GET  /orgs/{org}/installation, /users/{username}/installation
//	POST /app/installations/{id}/access_tokens
//
// Test controls change the world between requests: RemoveTeam, Rename,
// Revoke; AddApp, Install, Uninstall, RenameAccount, LimitRate.
type FakeGitHub struct {
	*httptest.Server
	ClientID, ClientSecret string
	// PageCap lowers GitHub's maximum page size (100) so that Link
	// pagination is exercised with few enough teams for the user's
	// credentials to fit in a Hawk header. 0 = GitHub's 100.
	PageCap int

	mu      sync.Mutex
	users   map[int64]*fakeGHUser
	next    int64              // user id the next authorization approves
	codes   map[string]int64   // code → user id (single use)
	tokens  map[string]int64   // access token → user id
	scopes  []string           // scope of every authorization request seen
	apiHits map[string]int     // path → requests (pagination is visible)
	bads    []string           // requests the fake refused, for failure messages
	redirs  map[string]bool    // redirect URIs allowed
	teamsOf map[int64][]ghTeam // user → teams

	apps   map[int64]*fakeApp           // GitHub App id → app
	insts  map[int64]*fakeInstallation  // installation id → installation
	grants map[string]InstallationGrant // installation token → what it grants
	limit  RateLimit                    // how the App endpoints answer now
	now    func() time.Time
}

type fakeGHUser struct {
	ID    int64
	Login string
	Orgs  map[string]string // org → role ("admin" or "member")
}

type ghTeam struct{ Org, Slug string }

// New starts the fake; the OAuth client is id/secret. Close stops it.
func New(clientID, clientSecret string) *FakeGitHub {
	f := &FakeGitHub{ClientID: clientID, ClientSecret: clientSecret, users: map[int64]*fakeGHUser{},
		codes: map[string]int64{}, tokens: map[string]int64{}, apiHits: map[string]int{},
		redirs: map[string]bool{}, teamsOf: map[int64][]ghTeam{},
		apps: map[int64]*fakeApp{}, insts: map[int64]*fakeInstallation{}, grants: map[string]InstallationGrant{}, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", f.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", f.accessToken)
	mux.HandleFunc("GET /user", f.authed(f.user))
	mux.HandleFunc("GET /users/{login}", f.authed(f.userByLogin))
	mux.HandleFunc("GET /user/teams", f.authed(f.teams))
	mux.HandleFunc("GET /user/memberships/orgs", f.authed(f.memberships))
	mux.HandleFunc("GET /orgs/{owner}/installation", f.appAuthed(f.findInstallation("Organization")))
	mux.HandleFunc("GET /users/{owner}/installation", f.appAuthed(f.findInstallation("User")))
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", f.appAuthed(f.createToken))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.refuse(r, "no such endpoint")
		ghError(w, http.StatusNotFound, "Not Found")
	})
	f.Server = httptest.NewServer(mux)
	return f
}

// AllowRedirect registers a callback URL of the OAuth app.
func (f *FakeGitHub) AllowRedirect(u string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redirs[u] = true
}

// AddUser adds (or replaces) a user with teams "org/slug" and org roles.
func (f *FakeGitHub) AddUser(id int64, login string, teams []string, orgRoles map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := &fakeGHUser{ID: id, Login: login, Orgs: map[string]string{}}
	for o, r := range orgRoles {
		u.Orgs[o] = r
	}
	var ts []ghTeam
	for _, t := range teams {
		org, slug, _ := strings.Cut(t, "/")
		ts = append(ts, ghTeam{org, slug})
	}
	f.users[id], f.teamsOf[id] = u, ts
}

// SignInAs makes the next authorizations approve user id.
func (f *FakeGitHub) SignInAs(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = id
}

// RemoveTeam takes user id out of team "org/slug".
func (f *FakeGitHub) RemoveTeam(id int64, team string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	org, slug, _ := strings.Cut(team, "/")
	var keep []ghTeam
	for _, t := range f.teamsOf[id] {
		if t != (ghTeam{org, slug}) {
			keep = append(keep, t)
		}
	}
	f.teamsOf[id] = keep
}

// Rename gives user id a new login (the old one becomes free to take).
func (f *FakeGitHub) Rename(id int64, login string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id].Login = login
}

// Revoke invalidates every access token of user id (as a user revoking
// the OAuth app does): the API then answers 401 Bad credentials.
func (f *FakeGitHub) Revoke(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok, uid := range f.tokens {
		if uid == id {
			delete(f.tokens, tok)
		}
	}
}

// Scopes returns the scope parameter of every authorization request.
func (f *FakeGitHub) Scopes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.scopes...)
}

// SetPageCap sets PageCap.
func (f *FakeGitHub) SetPageCap(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.PageCap = n
}

// Hits returns how many requests a path got.
func (f *FakeGitHub) Hits(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apiHits[path]
}

// Refused lists the requests the fake refused (for test failure output).
func (f *FakeGitHub) Refused() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.bads...)
}

func (f *FakeGitHub) refuse(r *http.Request, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bads = append(f.bads, r.Method+" "+r.URL.Path+": "+why)
}

func randHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *FakeGitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	okClient, okRedirect, uid := q.Get("client_id") == f.ClientID, f.redirs[q.Get("redirect_uri")], f.next
	f.scopes = append(f.scopes, q.Get("scope"))
	f.mu.Unlock()
	if !okClient || !okRedirect || uid == 0 {
		f.refuse(r, fmt.Sprintf("client_id ok %v, redirect_uri %q ok %v, user %d", okClient, q.Get("redirect_uri"), okRedirect, uid))
		http.Error(w, "The redirect_uri MUST match the registered callback URL for this application.", http.StatusBadRequest)
		return
	}
	code := randHex()
	f.mu.Lock()
	f.codes[code] = uid
	f.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	if s := q.Get("state"); s != "" {
		bq.Set("state", s)
	}
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// accessToken answers as GitHub does: HTTP 200 even for a bad code, with
// an error field; form-encoded unless the caller asks for JSON.
func (f *FakeGitHub) accessToken(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	reply := url.Values{}
	f.mu.Lock()
	uid, ok := f.codes[r.PostForm.Get("code")]
	delete(f.codes, r.PostForm.Get("code"))
	if ok && id == f.ClientID && secret == f.ClientSecret {
		tok := "gho_" + randHex()
		f.tokens[tok] = uid
		reply.Set("access_token", tok)
		reply.Set("token_type", "bearer")
		reply.Set("scope", "read:org")
	} else {
		reply.Set("error", "bad_verification_code")
		reply.Set("error_description", "The code passed is incorrect or expired.")
	}
	f.mu.Unlock()
	if reply.Get("error") != "" {
		f.refuse(r, "bad code or client credentials")
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		m := map[string]string{}
		for k := range reply {
			m[k] = reply.Get(k)
		}
		writeGH(w, m)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.Write([]byte(reply.Encode()))
}

// authed resolves the token of "Authorization: token X" or "Bearer X".
func (f *FakeGitHub) authed(h func(http.ResponseWriter, *http.Request, *fakeGHUser)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok := strings.TrimPrefix(strings.TrimPrefix(auth, "token "), "Bearer ")
		f.mu.Lock()
		f.apiHits[r.URL.Path]++
		uid, ok := f.tokens[tok]
		u := f.users[uid]
		f.mu.Unlock()
		if !ok || u == nil || tok == auth {
			f.refuse(r, "bad credentials")
			ghError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		h(w, r, u)
	}
}

func (f *FakeGitHub) user(w http.ResponseWriter, r *http.Request, u *fakeGHUser) {
	f.mu.Lock()
	out := ghUser(u)
	f.mu.Unlock()
	writeGH(w, out)
}

func (f *FakeGitHub) userByLogin(w http.ResponseWriter, r *http.Request, _ *fakeGHUser) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if strings.EqualFold(u.Login, r.PathValue("login")) {
			writeGH(w, ghUser(u))
			return
		}
	}
	ghError(w, http.StatusNotFound, "Not Found")
}

func ghUser(u *fakeGHUser) *github.User {
	return &github.User{ID: github.Ptr(u.ID), Login: github.Ptr(u.Login), Type: github.Ptr("User"),
		NodeID: github.Ptr(fmt.Sprintf("U_%d", u.ID)), Name: github.Ptr("User " + u.Login)}
}

func (f *FakeGitHub) teams(w http.ResponseWriter, r *http.Request, u *fakeGHUser) {
	f.mu.Lock()
	var all []any
	for i, t := range f.teamsOf[u.ID] {
		all = append(all, &github.Team{ID: github.Ptr(int64(1000 + i)), Name: github.Ptr("Team " + t.Slug),
			Slug: github.Ptr(t.Slug), Privacy: github.Ptr("closed"),
			Organization: &github.Organization{Login: github.Ptr(t.Org), ID: github.Ptr(int64(len(t.Org)))}})
	}
	f.mu.Unlock()
	f.paginate(w, r, all)
}

func (f *FakeGitHub) memberships(w http.ResponseWriter, r *http.Request, u *fakeGHUser) {
	f.mu.Lock()
	var all []any
	// A stable order, as GitHub's: pages of a changing order would skip
	// and repeat entries.
	orgs := slices.Sorted(maps.Keys(u.Orgs))
	for _, org := range orgs {
		role := u.Orgs[org]
		all = append(all, &github.Membership{State: github.Ptr("active"), Role: github.Ptr(role),
			Organization: &github.Organization{Login: github.Ptr(org)}, User: ghUser(u)})
	}
	f.mu.Unlock()
	f.paginate(w, r, all)
}

// paginate answers one page of all, PageCap applied.
func (f *FakeGitHub) paginate(w http.ResponseWriter, r *http.Request, all []any) {
	f.mu.Lock()
	limit := f.PageCap
	f.mu.Unlock()
	WritePage(w, r, f.URL, all, limit)
}

// WritePage answers one page of all as GitHub does: page (from 1) and
// per_page (default 30, at most 100, and at most limit when that is
// positive) query parameters, and a Link header (RFC 8288) with
// next/last/first/prev links to host (scheme and authority) and the
// request's path.
func WritePage(w http.ResponseWriter, r *http.Request, host string, all []any, limit int) {
	per, page := 30, 1
	if n, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && n > 0 {
		per = min(n, 100)
	}
	if limit > 0 {
		per = min(per, limit)
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n > 0 {
		page = n
	}
	last := max(1, (len(all)+per-1)/per)
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, host, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	lo, hi := min((page-1)*per, len(all)), min(page*per, len(all))
	out := all[lo:hi]
	if out == nil {
		out = []any{}
	}
	writeGH(w, out)
}

func writeGH(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

func ghError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}
