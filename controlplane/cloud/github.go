package cloud

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// GitHubConfig is the `github` section: the GitHub Apps whose installation
// access tokens githubRepoToken hands out (the reference's
// githubCredentials.apps).
type GitHubConfig struct {
	// APIURL is GitHub's REST API. Default DefaultGitHubAPIURL; GitHub
	// Enterprise Server: https://<host>/api/v3.
	APIURL string `yaml:"apiUrl"`
	// Apps by the name callers use in the path (and their scopes):
	// letters, digits, '_' and '-'.
	Apps map[string]GitHubApp `yaml:"apps"`
}

// GitHubApp is one GitHub App. Exactly one of PrivateKey and
// PrivateKeyFile (preferred) is set: the PEM private key GitHub generated
// for the app (PKCS #1 "RSA PRIVATE KEY", or PKCS #8).
type GitHubApp struct {
	AppID          int64  `yaml:"appId"`
	PrivateKey     string `yaml:"privateKey"`
	PrivateKeyFile string `yaml:"privateKeyFile"`
}

// DefaultGitHubAPIURL is github.com's REST API.
const DefaultGitHubAPIURL = "https://api.github.com"

const (
	// App JWTs as GitHub's "Generating a JSON Web Token for a GitHub App"
	// asks: issued 60 s in the past against clock drift, expiring within
	// its 10-minute maximum.
	githubJWTBackdate = 60 * time.Second
	githubJWTLifetime = 9 * time.Minute
	// Installation ids per owner are cached for an hour, at most 1000
	// owners per app, as the reference does: a lookup costs a request of
	// the app's rate limit. A 404 when creating a token drops the entry.
	githubInstallationTTL  = time.Hour
	githubInstallationsMax = 1000
	githubAPIVersion       = "2022-11-28"
	githubMaxReply         = 1 << 20
	githubMaxRepositories  = 500
)

var (
	githubAppNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	githubNameRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+$`) // owners and repositories
)

// GitHubPermissionLevels are the repository permissions a token may ask
// for and the levels of each (GitHub's "Create an installation access
// token for an app"; the reference's github-repo-token-request schema).
var GitHubPermissionLevels = func() map[string][]string {
	rw := []string{"read", "write"}
	m := map[string][]string{"repository_projects": {"read", "write", "admin"}, "workflows": {"write"}}
	for _, p := range []string{"actions", "administration", "artifact_metadata", "attestations", "checks",
		"code_quality", "codespaces", "contents", "dependabot_secrets", "deployments", "discussions",
		"environments", "issues", "merge_queues", "metadata", "packages", "pages", "pull_requests",
		"repository_custom_properties", "repository_hooks", "secret_scanning_alerts", "secrets",
		"security_events", "single_file", "statuses", "vulnerability_alerts"} {
		m[p] = rw
	}
	return m
}()

// GitHubToken is the reply of githubRepoToken.
type GitHubToken struct {
	Token   string
	Expires time.Time
}

type githubBackend struct {
	api  string
	apps map[string]*githubApp
}

type githubApp struct {
	name string
	id   int64
	key  *rsa.PrivateKey

	mu    sync.Mutex
	insts map[string]githubInstallation // lower-cased owner → installation
}

type githubInstallation struct {
	id int64
	at time.Time
}

func (s *Service) checkGitHub() error {
	c := s.cfg.GitHub
	if c == nil {
		return nil
	}
	api := DefaultGitHubAPIURL
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("cloud: github.apiUrl %q is not an http(s) URL without query", c.APIURL)
		}
		api = strings.TrimRight(c.APIURL, "/")
	}
	b := &githubBackend{api: api, apps: map[string]*githubApp{}}
	for name, a := range c.Apps {
		app, err := newGitHubApp(name, a)
		if err != nil {
			return err
		}
		b.apps[name] = app
	}
	s.github = b
	return nil
}

func newGitHubApp(name string, a GitHubApp) (*githubApp, error) {
	if !githubAppNameRe.MatchString(name) {
		return nil, fmt.Errorf("cloud: github app name %q must match %s", name, githubAppNameRe)
	}
	if a.AppID <= 0 {
		return nil, fmt.Errorf("cloud: github app %q: appId is required", name)
	}
	pemText, err := secretValue("github.apps."+name+".privateKey", a.PrivateKey, a.PrivateKeyFile)
	if err != nil {
		return nil, err
	}
	key, err := parseGitHubKey(pemText)
	if err != nil {
		return nil, fmt.Errorf("cloud: github app %q: privateKey: %w", name, err)
	}
	return &githubApp{name: name, id: a.AppID, key: key, insts: map[string]githubInstallation{}}, nil
}

// parseGitHubKey reads an RSA private key in PEM. A literal `\n` stands
// for a newline (keys passed through environment variables), as the
// reference accepts. Errors never quote the key.
func parseGitHubKey(text string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(strings.ReplaceAll(text, `\n`, "\n")))
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
			return k, nil
		}
	case "PRIVATE KEY":
		if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			if rk, ok := k.(*rsa.PrivateKey); ok {
				return rk, nil
			}
			return nil, errors.New("a GitHub App key is an RSA key")
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	return nil, errors.New("the PEM block does not hold a valid RSA private key")
}

// GitHubRepoToken creates an installation access token of app appName
// for repositories of owner with permissions (name → level), as the
// reference's githubRepoToken: owner and repositories are lower-cased;
// the app must be installed on owner. Scopes are the caller's business.
func (s *Service) GitHubRepoToken(ctx context.Context, appName, owner string, repositories []string, permissions map[string]string) (GitHubToken, error) {
	if s.github == nil {
		return GitHubToken{}, newErr(ErrNotConfigured, "Application with name `%s` is not configured (no github section in the cloud configuration)", appName)
	}
	app := s.github.apps[appName]
	if app == nil {
		return GitHubToken{}, newErr(ErrNotFound, "Application with name `%s` is not configured", appName)
	}
	owner = strings.ToLower(owner)
	repos, err := checkGitHubRequest(owner, repositories, permissions)
	if err != nil {
		return GitHubToken{}, err
	}
	id, err := s.githubInstallation(ctx, app, owner)
	if err != nil {
		return GitHubToken{}, err
	}
	var reply struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	body := map[string]any{"repositories": repos, "permissions": permissions}
	st, ghErr, err := s.githubCall(ctx, app, http.MethodPost, "/app/installations/"+strconv.FormatInt(id, 10)+"/access_tokens", body, &reply)
	switch {
	case err != nil:
		return GitHubToken{}, err
	case st == http.StatusNotFound:
		// Uninstalled since it was cached: look it up again next time.
		app.forget(owner)
		return GitHubToken{}, newErr(ErrNotFound, "Application with name `%s` is not installed on `%s`", appName, owner)
	case st == http.StatusUnprocessableEntity:
		return GitHubToken{}, newErr(ErrInput, "Github rejected the request: %s", ghErr.text())
	case st != http.StatusCreated && st != http.StatusOK:
		return GitHubToken{}, s.githubFailed(app, "create an installation token", st, ghErr)
	}
	exp, err := time.Parse(time.RFC3339, reply.ExpiresAt)
	if reply.Token == "" || err != nil {
		return GitHubToken{}, newErr(ErrUpstream, "GitHub's installation token reply has no token or expires_at")
	}
	return GitHubToken{Token: reply.Token, Expires: exp}, nil
}

// checkGitHubRequest validates what the control plane's schema already
// checks (so the package is safe on its own) and lower-cases repositories.
func checkGitHubRequest(owner string, repositories []string, permissions map[string]string) ([]string, error) {
	if !githubNameRe.MatchString(owner) {
		return nil, newErr(ErrInput, "owner %q is not a GitHub account name", owner)
	}
	if len(repositories) == 0 || len(repositories) > githubMaxRepositories {
		return nil, newErr(ErrInput, "1 to %d repositories are required", githubMaxRepositories)
	}
	repos := make([]string, len(repositories))
	for i, r := range repositories {
		if !githubNameRe.MatchString(r) {
			return nil, newErr(ErrInput, "repository %q is not a GitHub repository name", r)
		}
		repos[i] = strings.ToLower(r)
	}
	if len(permissions) == 0 {
		return nil, newErr(ErrInput, "at least one permission is required")
	}
	for p, l := range permissions {
		if !slices.Contains(GitHubPermissionLevels[p], l) {
			return nil, newErr(ErrInput, "permission %q at level %q is not a GitHub repository permission", p, l)
		}
	}
	return repos, nil
}

// githubInstallation finds the app's installation on owner: the
// organization's, else the user's (GitHub has one endpoint for each), and
// checks that GitHub reports the same account.
func (s *Service) githubInstallation(ctx context.Context, app *githubApp, owner string) (int64, error) {
	if id, ok := app.cached(owner, s.cfg.Now()); ok {
		return id, nil
	}
	var inst struct {
		ID      int64 `json:"id"`
		Account *struct {
			Login string `json:"login"`
		} `json:"account"`
	}
	st, ghErr, err := s.githubCall(ctx, app, http.MethodGet, "/orgs/"+owner+"/installation", nil, &inst)
	if err == nil && st == http.StatusNotFound {
		st, ghErr, err = s.githubCall(ctx, app, http.MethodGet, "/users/"+owner+"/installation", nil, &inst)
	}
	switch {
	case err != nil:
		return 0, err
	case st == http.StatusNotFound:
		return 0, newErr(ErrNotFound, "Application with name `%s` is not installed on `%s`", app.name, owner)
	case st != http.StatusOK:
		return 0, s.githubFailed(app, "find the installation", st, ghErr)
	}
	login := ""
	if inst.Account != nil {
		login = inst.Account.Login
	}
	if strings.ToLower(login) != owner || inst.ID <= 0 {
		return 0, newErr(ErrInput, "The application reported a different owner (`%s`) than the requested one. Maybe the owner got renamed?", login)
	}
	app.remember(owner, inst.ID, s.cfg.Now())
	return inst.ID, nil
}

func (a *githubApp) cached(owner string, now time.Time) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, ok := a.insts[owner]
	if !ok || now.Sub(in.at) >= githubInstallationTTL {
		return 0, false
	}
	return in.id, true
}

// remember caches an installation; when the cache is full it first drops
// expired entries, then an arbitrary one (a lookup is only a request).
func (a *githubApp) remember(owner string, id int64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.insts) >= githubInstallationsMax {
		for o, in := range a.insts {
			if now.Sub(in.at) >= githubInstallationTTL {
				delete(a.insts, o)
			}
		}
		for o := range a.insts {
			if len(a.insts) < githubInstallationsMax {
				break
			}
			delete(a.insts, o)
		}
	}
	a.insts[owner] = githubInstallation{id: id, at: now}
}

func (a *githubApp) forget(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.insts, owner)
}

// githubErrBody is GitHub's error reply ("message", and "errors" on 422).
type githubErrBody struct {
	Message string `json:"message"`
	Errors  []struct {
		Resource string `json:"resource"`
		Field    string `json:"field"`
		Code     string `json:"code"`
		Message  string `json:"message"`
	} `json:"errors"`
}

// text is the error for a caller: GitHub's message and details, printable
// and bounded (GitHub's messages about our request hold no secret).
func (e *githubErrBody) text() string {
	parts := []string{e.Message}
	for _, d := range e.Errors {
		parts = append(parts, strings.Join(slices.DeleteFunc([]string{d.Resource, d.Field, d.Code, d.Message}, func(s string) bool { return s == "" }), " "))
	}
	t := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), "; "))
	if len(t) > 500 {
		t = t[:500] + "…"
	}
	if t == "" {
		t = "(no message)"
	}
	return t
}

// githubCall sends one request authenticated as the app (a fresh JWT)
// and decodes a 2xx reply into out. It returns the status and GitHub's
// error body for other statuses; a rate limit is ErrRateLimited, a
// transport failure ErrUpstream.
func (s *Service) githubCall(ctx context.Context, app *githubApp, method, path string, in, out any) (int, *githubErrBody, error) {
	jwtText, err := app.jwt(s.cfg.Now())
	if err != nil {
		return 0, nil, fmt.Errorf("cloud: github app %q: signing its JWT: %w", app.name, err)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.github.api+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("Authorization", "Bearer "+jwtText)
	req.Header.Set("X-GitHub-Api-Version", githubAPIVersion)
	req.Header.Set("User-Agent", "tcauth")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		s.log.Warn("GitHub request failed", "app", app.name, "path", path, "err", errors.Unwrap(err))
		return 0, nil, newErr(ErrUpstream, "GitHub is unreachable")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, githubMaxReply))
	if err != nil {
		return 0, nil, newErr(ErrUpstream, "GitHub's reply was cut off")
	}
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, nil, newErr(ErrUpstream, "GitHub answered %d with a body that is not the documented JSON", resp.StatusCode)
		}
		return resp.StatusCode, nil, nil
	}
	ghErr := &githubErrBody{}
	_ = json.Unmarshal(raw, ghErr) // a non-JSON error body leaves the message empty
	if githubRateLimited(resp, ghErr.Message) {
		s.log.Warn("GitHub rate limit reached", "app", app.name, "path", path, "status", resp.StatusCode, "retryAfter", resp.Header.Get("Retry-After"))
		return 0, nil, newErr(ErrRateLimited, "The application `%s` is currently hitting rate limits", app.name)
	}
	return resp.StatusCode, ghErr, nil
}

// githubRateLimited tells a rate limit from other refusals as GitHub
// documents it ("Rate limits for the REST API", exceeding the rate
// limit): 429; or 403 with x-ratelimit-remaining 0, a Retry-After header,
// or (secondary limits, which may have neither) a message saying so.
func githubRateLimited(resp *http.Response, message string) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusForbidden:
		return resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("Retry-After") != "" ||
			strings.Contains(strings.ToLower(message), "secondary rate")
	}
	return false
}

// githubFailed logs an unexpected answer (status and GitHub's message:
// never the JWT or a token) and returns ErrUpstream.
func (s *Service) githubFailed(app *githubApp, op string, status int, e *githubErrBody) error {
	s.log.Warn("GitHub refused a request", "app", app.name, "op", op, "status", status, "message", e.text())
	return newErr(ErrUpstream, "GitHub answered %d when asked to %s", status, op)
}

// jwt is the app's bearer token (RS256, iss = the app id).
func (a *githubApp) jwt(now time.Time) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(a.id, 10),
		IssuedAt:  jwt.NewNumericDate(now.Add(-githubJWTBackdate)),
		ExpiresAt: jwt.NewNumericDate(now.Add(githubJWTLifetime)),
	}).SignedString(a.key)
}
