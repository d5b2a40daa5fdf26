package fakegithub

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-github/v84/github"
)

// The GitHub App side of the fake, as GitHub documents it ("Authenticating
// as a GitHub App", "REST API endpoints for GitHub Apps"): a request is
// authenticated by a JWT the app signs with its private key (RS256, iss =
// the app id, expiring at most 10 minutes ahead), finds the installation
// of the app on an account, and creates an installation access token for
// some of its repositories and permissions.

// RateLimit is how the App endpoints answer while LimitRate set it.
type RateLimit int

// The answers GitHub gives when a client exceeds its rate limits ("Rate
// limits for the REST API": 403 or 429; primary limits carry
// x-ratelimit-remaining: 0, secondary ones a message and maybe
// Retry-After), and a plain 403 that is not a rate limit.
const (
	NoLimit           RateLimit = iota
	PrimaryLimit                // 403, x-ratelimit-remaining: 0
	SecondaryLimit              // 403, Retry-After: 60, "secondary rate limit"
	SecondaryNoHeader           // 403, "secondary rate limit", no header
	TooManyRequests             // 429, Retry-After: 30
	Forbidden                   // 403 "Resource not accessible by integration": not a limit
)

// APIVersions are the X-GitHub-Api-Version values the fake accepts (an
// absent header means GitHub's default, 2022-11-28).
var APIVersions = []string{"2022-11-28", "2026-03-10"}

type fakeApp struct {
	id    int64
	key   *rsa.PublicKey
	perms map[string]string // permission → the highest level the app holds
}

type fakeInstallation struct {
	id, appID   int64
	login, kind string   // account login and type ("Organization" or "User")
	former      []string // logins the account had before RenameAccount
	repos       []string
	removed     bool
}

// InstallationGrant is what an installation access token the fake issued
// grants, for tests to check what a caller got.
type InstallationGrant struct {
	InstallationID int64
	Owner          string
	Repositories   []string
	Permissions    map[string]string
	ExpiresAt      time.Time
}

// AddApp registers a GitHub App holding permissions (name → level) and
// returns its private key in the PEM form GitHub hands out (PKCS #1).
func (f *FakeGitHub) AddApp(appID int64, permissions map[string]string) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps[appID] = &fakeApp{id: appID, key: &key.PublicKey, perms: permissions}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

// Install installs app appID on the account login (kind "Organization" or
// "User") with access to repos, and returns the installation id.
func (f *FakeGitHub) Install(appID int64, login, kind string, repos ...string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := int64(9000 + len(f.insts))
	f.insts[id] = &fakeInstallation{id: id, appID: appID, login: login, kind: kind, repos: repos}
	return id
}

// Uninstall removes an installation: its lookups and new tokens answer 404.
func (f *FakeGitHub) Uninstall(installationID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.insts[installationID].removed = true
}

// RenameAccount renames the account of an installation. GitHub redirects
// an old org name's API paths to the new one, so a lookup by the old name
// still finds it — answering with the new login.
func (f *FakeGitHub) RenameAccount(installationID int64, login string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.insts[installationID]
	in.former, in.login = append(in.former, in.login), login
}

// LimitRate makes every App request answer as l says until called again
// with NoLimit.
func (f *FakeGitHub) LimitRate(l RateLimit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = l
}

// SetClock sets the fake's clock (JWT validity, token expiry). Default
// time.Now.
func (f *FakeGitHub) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// Grant returns what an installation token grants.
func (f *FakeGitHub) Grant(token string) (InstallationGrant, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.grants[token]
	return g, ok
}

// appAuthed checks a request as GitHub checks an app's: the headers its
// documentation requires and the app JWT; then applies the rate limit.
func (f *FakeGitHub) appAuthed(h func(http.ResponseWriter, *http.Request, *fakeApp)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.apiHits[r.URL.Path]++
		limit := f.limit
		f.mu.Unlock()
		if why := checkHeaders(r); why != "" {
			f.refuse(r, why)
			ghError(w, http.StatusBadRequest, why)
			return
		}
		app, why := f.verifyJWT(r.Header.Get("Authorization"))
		if app == nil {
			f.refuse(r, why)
			ghError(w, http.StatusUnauthorized, why)
			return
		}
		if limit != NoLimit {
			answerLimited(w, limit)
			return
		}
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4999")
		h(w, r, app)
	}
}

func checkHeaders(r *http.Request) string {
	if a := r.Header.Get("Accept"); a != "application/vnd.github+json" {
		return fmt.Sprintf("Accept %q, want application/vnd.github+json", a)
	}
	if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && !slices.Contains(APIVersions, v) {
		return fmt.Sprintf("API version '%s' is not supported.", v)
	}
	if r.Header.Get("User-Agent") == "" {
		return "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"
	}
	return ""
}

// verifyJWT returns the app whose key signed the bearer JWT, or why not.
func (f *FakeGitHub) verifyJWT(auth string) (*fakeApp, string) {
	raw, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, "an app authenticates with Authorization: Bearer <JWT>"
	}
	f.mu.Lock()
	now := f.now()
	f.mu.Unlock()
	var app *fakeApp
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		iss, _ := claims["iss"].(string)
		if n, ok := claims["iss"].(float64); ok {
			iss = strconv.FormatInt(int64(n), 10)
		}
		id, _ := strconv.ParseInt(iss, 10, 64)
		f.mu.Lock()
		app = f.apps[id]
		f.mu.Unlock()
		if app == nil {
			return nil, fmt.Errorf("no app %q", iss)
		}
		return app.key, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil {
		return nil, "A JSON web token could not be decoded (" + err.Error() + ")"
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if iat == nil || exp.Sub(now) > 10*time.Minute || exp.Sub(iat.Time) > 11*time.Minute {
		return nil, "'Expiration time' claim ('exp') is too far in the future"
	}
	return app, ""
}

func answerLimited(w http.ResponseWriter, l RateLimit) {
	const secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
	h := w.Header()
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "4000")
	switch l {
	case PrimaryLimit:
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", "1700000000")
		ghError(w, http.StatusForbidden, "API rate limit exceeded for app.")
	case SecondaryLimit:
		h.Set("Retry-After", "60")
		ghError(w, http.StatusForbidden, secondary)
	case SecondaryNoHeader:
		ghError(w, http.StatusForbidden, secondary)
	case TooManyRequests:
		h.Set("Retry-After", "30")
		ghError(w, http.StatusTooManyRequests, secondary)
	default:
		ghError(w, http.StatusForbidden, "Resource not accessible by integration")
	}
}

// findInstallation answers GET /orgs/{owner}/installation (kind
// Organization) and /users/{owner}/installation (kind User).
func (f *FakeGitHub) findInstallation(kind string) func(http.ResponseWriter, *http.Request, *fakeApp) {
	return func(w http.ResponseWriter, r *http.Request, app *fakeApp) {
		f.mu.Lock()
		defer f.mu.Unlock()
		owner := r.PathValue("owner")
		is := func(s string) bool { return strings.EqualFold(s, owner) }
		for _, in := range f.insts {
			if in.appID == app.id && !in.removed && in.kind == kind && (is(in.login) || slices.ContainsFunc(in.former, is)) {
				writeGH(w, &github.Installation{ID: github.Ptr(in.id), AppID: github.Ptr(app.id),
					TargetType: github.Ptr(kind), RepositorySelection: github.Ptr("selected"),
					Account: &github.User{Login: github.Ptr(in.login), ID: github.Ptr(in.id * 7), Type: github.Ptr(kind)}})
				return
			}
		}
		ghError(w, http.StatusNotFound, "Not Found")
	}
}

// tokenRequest is the body of "Create an installation access token" that
// githubRepoToken sends; the fake refuses any other member.
type tokenRequest struct {
	Repositories []string          `json:"repositories"`
	Permissions  map[string]string `json:"permissions"`
}

var levels = map[string]int{"read": 1, "write": 2, "admin": 3}

func (f *FakeGitHub) createToken(w http.ResponseWriter, r *http.Request, app *fakeApp) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var req tokenRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		f.refuse(r, fmt.Sprintf("body: %v, content-type %q", err, r.Header.Get("Content-Type")))
		ghError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.insts[id]
	if in == nil || in.removed || in.appID != app.id {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	for _, repo := range req.Repositories {
		if !slices.ContainsFunc(in.repos, func(s string) bool { return strings.EqualFold(s, repo) }) {
			ghError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.")
			return
		}
	}
	for p, l := range req.Permissions {
		if levels[l] == 0 || levels[app.perms[p]] < levels[l] {
			ghError(w, http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.")
			return
		}
	}
	tok := "ghs_" + randHex()
	exp := f.now().UTC().Add(time.Hour).Truncate(time.Second)
	f.grants[tok] = InstallationGrant{InstallationID: id, Owner: in.login, Repositories: req.Repositories, Permissions: req.Permissions, ExpiresAt: exp}
	var repos []*github.Repository
	for _, name := range req.Repositories {
		repos = append(repos, &github.Repository{Name: github.Ptr(name), FullName: github.Ptr(in.login + "/" + name)})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions": req.Permissions, "repository_selection": "selected", "repositories": repos})
}
