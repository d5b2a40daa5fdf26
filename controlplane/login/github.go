package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of the GitHub strategy (github.com; set all three URLs for
// GitHub Enterprise Server, e.g. https://ghe.example.com/login/oauth/…
// and https://ghe.example.com/api/v3).
const (
	DefaultGitHubAuthorizeURL = "https://github.com/login/oauth/authorize"
	DefaultGitHubTokenURL     = "https://github.com/login/oauth/access_token"
	DefaultGitHubAPIURL       = "https://api.github.com"
	// DefaultGitHubScopes: read:org is the least OAuth scope with which
	// GET /user/teams and GET /user/memberships/orgs list the user's teams
	// and organization roles ("OAuth access tokens require the read:org
	// scope", GitHub REST docs, Teams). web-server asks for `repo` (full
	// control of private repositories), which tcauth does not.
	DefaultGitHubScopes = "read:org"
	// githubAPIVersion pins the REST API version (X-GitHub-Api-Version).
	githubAPIVersion = "2022-11-28"
	githubPerPage    = 100
	// githubMaxPages bounds the pages read per list: past it the sign-in
	// or refresh fails rather than silently dropping roles.
	githubMaxPages = 50
	// githubSignInLifetime is the providerExpires of a GitHub sign-in, as
	// web-server's fromNow('30 days'): GitHub OAuth app tokens do not expire.
	githubSignInLifetime = 30 * 24 * time.Hour
)

// githubStrategy signs people in with GitHub (OAuth2, REST API).
type githubStrategy struct {
	name        string
	conf        oauth2.Config
	api         *url.URL
	bearer      bool
	client      *http.Client // API calls
	tokenClient *http.Client // token endpoint: same, plus Accept: application/json
	maxPages    int
	now         func() time.Time
	log         *slog.Logger
}

// The few fields tcauth reads of GitHub's answers.
type ghUser struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
	Name  string `json:"name"`
}

type ghTeam struct {
	Slug         string `json:"slug"`
	Organization struct {
		Login string `json:"login"`
	} `json:"organization"`
}

type ghMembership struct {
	State        string `json:"state"`
	Role         string `json:"role"`
	Organization struct {
		Login string `json:"login"`
	} `json:"organization"`
}

func newGitHubStrategy(cfg Config, sc StrategyConfig) (Strategy, error) {
	if sc.ClientID == "" || sc.ClientSecret == "" {
		return nil, fmt.Errorf("login: strategy %s: clientId and a client secret are required", sc.Name)
	}
	setDefault(&sc.AuthorizeURL, DefaultGitHubAuthorizeURL)
	setDefault(&sc.TokenURL, DefaultGitHubTokenURL)
	setDefault(&sc.APIURL, DefaultGitHubAPIURL)
	if len(sc.Scopes) == 0 {
		sc.Scopes = strings.Fields(DefaultGitHubScopes)
	}
	api, err := url.Parse(strings.TrimSuffix(sc.APIURL, "/"))
	if err != nil || (api.Scheme != "https" && api.Scheme != "http") || api.Host == "" {
		return nil, fmt.Errorf("login: strategy %s: apiUrl %q: want an absolute http(s) URL", sc.Name, sc.APIURL)
	}
	return &githubStrategy{
		name: sc.Name,
		conf: oauth2.Config{
			ClientID: sc.ClientID, ClientSecret: sc.ClientSecret, Scopes: sc.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: sc.AuthorizeURL, TokenURL: sc.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		api: api, bearer: sc.Bearer != nil, client: cfg.HTTPClient, tokenClient: acceptJSONClient(cfg.HTTPClient),
		maxPages: githubMaxPages, now: cfg.Now, log: cfg.Logger,
	}, nil
}

// acceptJSONClient is c whose requests ask for JSON: GitHub's token
// endpoint answers form-encoded otherwise.
func acceptJSONClient(c *http.Client) *http.Client {
	cp := *c
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = acceptJSON{base}
	return &cp
}

type acceptJSON struct{ base http.RoundTripper }

func (a acceptJSON) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept", "application/json")
	return a.base.RoundTrip(r)
}

func (s *githubStrategy) Name() string { return s.name }

func (s *githubStrategy) oauth(redirectURL string) *oauth2.Config {
	c := s.conf
	c.RedirectURL = redirectURL
	return &c
}

// AuthCodeURL: GitHub has no nonce (not OIDC); PKCE is sent (GitHub
// supports S256; a server that does not simply ignores it).
func (s *githubStrategy) AuthCodeURL(state, nonce, pkceVerifier, redirectURL string) string {
	return s.oauth(redirectURL).AuthCodeURL(state, oauth2.S256ChallengeOption(pkceVerifier))
}

func (s *githubStrategy) Exchange(ctx context.Context, code, nonce, pkceVerifier, redirectURL string) (User, Grant, error) {
	tok, err := s.oauth(redirectURL).Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.tokenClient), code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		return User{}, Grant{}, fmt.Errorf("login: %s: code exchange: %w", s.name, tokenError(err))
	}
	me, err := s.me(ctx, tok.AccessToken)
	if err != nil {
		return User{}, Grant{}, err
	}
	u, err := s.user(ctx, tok.AccessToken, me.ID, me.Login, me)
	if err != nil {
		return User{}, Grant{}, err
	}
	g := Grant{Strategy: s.name, Subject: strconv.FormatInt(me.ID, 10), AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, Login: me.Login}
	return u, g, nil
}

// me is GET /user for a token; a refused token is ErrUserGone.
func (s *githubStrategy) me(ctx context.Context, token string) (ghUser, error) {
	var me ghUser
	if _, err := s.get(ctx, token, s.endpoint("/user"), &me); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusUnauthorized {
			return ghUser{}, fmt.Errorf("%w: GitHub refused the token (revoked or expired)", ErrUserGone)
		}
		return ghUser{}, err
	}
	if me.ID <= 0 || me.Login == "" {
		return ghUser{}, fmt.Errorf("login: %s: GET /user gave no id or login", s.name)
	}
	return me, nil
}

// user builds the user: identity <name>/<id>|<encode(login)> and the roles.
func (s *githubStrategy) user(ctx context.Context, token string, id int64, login string, me ghUser) (User, error) {
	roles, err := s.roles(ctx, token)
	if err != nil {
		return User{}, err
	}
	name := me.Name
	if name == "" {
		name = me.Login
	}
	return User{ProviderID: s.name, IdentityID: strconv.FormatInt(id, 10) + "|" + Encode(login), Roles: roles,
		ProviderExpires: s.now().Add(githubSignInLifetime), DisplayName: name}, nil
}

// roles: github-team:<org>/<team slug> for every team of the user, then
// github-org-admin:<org> for every active membership with role admin,
// every page read.
func (s *githubStrategy) roles(ctx context.Context, token string) ([]string, error) {
	var roles []string
	err := s.paginate(ctx, token, "/user/teams", func(page []byte) error {
		var teams []ghTeam
		if err := json.Unmarshal(page, &teams); err != nil {
			return err
		}
		for _, t := range teams {
			if roleSafe(t.Organization.Login) && roleSafe(t.Slug) {
				roles = append(roles, "github-team:"+t.Organization.Login+"/"+t.Slug)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.paginate(ctx, token, "/user/memberships/orgs?state=active", func(page []byte) error {
		var ms []ghMembership
		if err := json.Unmarshal(page, &ms); err != nil {
			return err
		}
		for _, m := range ms {
			if m.State == "active" && m.Role == "admin" && roleSafe(m.Organization.Login) {
				roles = append(roles, "github-org-admin:"+m.Organization.Login)
			}
		}
		return nil
	})
	return roles, err
}

func (s *githubStrategy) endpoint(path string) string { return s.api.String() + path }

// paginate GETs path with per_page=100 and follows Link rel="next" (only
// to the API's own origin: the token must not travel elsewhere), at most
// maxPages pages.
func (s *githubStrategy) paginate(ctx context.Context, token, path string, each func([]byte) error) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := s.endpoint(path + sep + "per_page=" + strconv.Itoa(githubPerPage))
	for page := 0; next != ""; page++ {
		if page == s.maxPages {
			return fmt.Errorf("login: %s: %s has more than %d pages; refusing to truncate the user's roles", s.name, path, s.maxPages)
		}
		var raw json.RawMessage
		hdr, err := s.get(ctx, token, next, &raw)
		if err != nil {
			return err
		}
		if err := each(raw); err != nil {
			return fmt.Errorf("login: %s: %s: %v", s.name, path, err)
		}
		if next, err = s.nextPage(next, hdr); err != nil {
			return err
		}
	}
	return nil
}

func (s *githubStrategy) nextPage(current string, hdr http.Header) (string, error) {
	target, ok := nextLink(strings.Join(hdr.Values("Link"), ", "))
	if !ok {
		return "", nil
	}
	base, _ := url.Parse(current)
	u, err := base.Parse(target)
	if err != nil || u.Scheme != s.api.Scheme || u.Host != s.api.Host || !strings.HasPrefix(u.Path, s.api.Path) {
		return "", fmt.Errorf("login: %s: GitHub's next-page link leaves the API (%.100q); refusing", s.name, target)
	}
	return u.String(), nil
}

// get is one GitHub REST call with the headers GitHub documents.
func (s *githubStrategy) get(ctx context.Context, token, target string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	s.apiHeaders(req)
	req.Header.Set("Authorization", "Bearer "+token)
	hdr, err := fetchJSON(s.client, req, "GitHub "+req.URL.Path, v)
	if err != nil {
		return nil, fmt.Errorf("login: %s: %w", s.name, err)
	}
	return hdr, nil
}

func (s *githubStrategy) apiHeaders(req *http.Request) {
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", githubAPIVersion)
	req.Header.Set("User-Agent", "tcauth-login")
}

// Refresh re-derives the user from the stored token, as web-server does:
// the token must still work (401 → gone), name the same numeric id, and
// the login of the identity must still resolve to that id (a login
// renamed, or now someone else's → gone). A GitHub App's expiring user
// token is renewed with its refresh token first.
func (s *githubStrategy) Refresh(ctx context.Context, g Grant) (User, Grant, bool, error) {
	updated, changed, err := s.renew(ctx, g)
	if err != nil {
		return User{}, g, false, err
	}
	me, err := s.me(ctx, updated.AccessToken)
	if err != nil {
		return User{}, g, false, err
	}
	if strconv.FormatInt(me.ID, 10) != g.Subject || g.Login == "" {
		return User{}, g, false, fmt.Errorf("%w: the token now belongs to another GitHub account", ErrUserGone)
	}
	var named ghUser
	if _, err := s.get(ctx, updated.AccessToken, s.endpoint("/users/"+url.PathEscape(g.Login)), &named); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusNotFound {
			s.log.Info("the GitHub login of this identity no longer exists", "strategy", s.name, "login", g.Login)
			return User{}, g, false, fmt.Errorf("%w: GitHub login %q not found", ErrUserGone, g.Login)
		}
		return User{}, g, false, err
	}
	if strconv.FormatInt(named.ID, 10) != g.Subject {
		s.log.Info("the GitHub login of this identity now names another account", "strategy", s.name, "login", g.Login)
		return User{}, g, false, fmt.Errorf("%w: GitHub login %q now names another account", ErrUserGone, g.Login)
	}
	u, err := s.user(ctx, updated.AccessToken, me.ID, g.Login, me)
	return u, updated, changed, err
}

// renew refreshes an expiring (GitHub App) user token; OAuth app tokens
// have no expiry and pass through.
func (s *githubStrategy) renew(ctx context.Context, g Grant) (Grant, bool, error) {
	if g.RefreshToken == "" || g.Expiry.IsZero() || s.now().Before(g.Expiry.Add(-time.Minute)) {
		return g, false, nil
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.tokenClient)
	tok, err := s.oauth("").TokenSource(ctx, &oauth2.Token{RefreshToken: g.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "bad_refresh_token" || re.ErrorCode == "invalid_grant") {
			return g, false, fmt.Errorf("%w: GitHub refused the refresh token", ErrUserGone)
		}
		return g, false, fmt.Errorf("login: %s: refresh: %w", s.name, tokenError(err))
	}
	g.AccessToken, g.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		g.RefreshToken = tok.RefreshToken
	}
	return g, true, nil
}

// BearerUser accepts a GitHub token only when it was issued to this
// OAuth app (POST /applications/{client_id}/token, GitHub's token check):
// the audience check of the OIDC exchange. Without it any app the user
// ever authorized could mint Taskcluster credentials in their name.
func (s *githubStrategy) BearerUser(ctx context.Context, accessToken string) (User, error) {
	if !s.bearer {
		return User{}, ErrNotSupported
	}
	if err := s.checkAppToken(ctx, accessToken); err != nil {
		return User{}, err
	}
	me, err := s.me(ctx, accessToken)
	if err != nil {
		return User{}, err
	}
	return s.user(ctx, accessToken, me.ID, me.Login, me)
}

func (s *githubStrategy) checkAppToken(ctx context.Context, token string) error {
	body, _ := json.Marshal(map[string]string{"access_token": token})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint("/applications/"+url.PathEscape(s.conf.ClientID)+"/token"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	s.apiHeaders(req)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.conf.ClientID, s.conf.ClientSecret)
	var auth struct {
		User ghUser `json:"user"`
	}
	if _, err := fetchJSON(s.client, req, "GitHub token check", &auth); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusUnauthorized {
			s.log.Error("GitHub refused our client credentials at the token check; check clientId/clientSecret", "strategy", s.name)
			return fmt.Errorf("%w: GitHub token check: client refused", ErrProviderUnavailable)
		}
		return fmt.Errorf("login: %s: token not issued to this app or invalid: %w", s.name, err)
	}
	return nil
}

// nextLink returns the target of the first link-value of an RFC 8288 Link
// header whose rel lists "next". Quoted parameter values may contain ","
// and ";". A malformed header yields no link (pagination stops there, and
// GitHub's well-formed headers never take that path).
func nextLink(header string) (string, bool) {
	s := header
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" || s[0] != '<' {
			return "", false
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return "", false
		}
		target := s[1:end]
		s = s[end+1:]
		isNext := false
		for {
			s = strings.TrimLeft(s, " \t")
			if s == "" || s[0] == ',' {
				break
			}
			if s[0] != ';' {
				return "", false
			}
			var name, value string
			name, value, s = linkParam(s[1:])
			if strings.EqualFold(name, "rel") {
				for _, r := range strings.Fields(value) {
					isNext = isNext || strings.EqualFold(r, "next")
				}
			}
		}
		if isNext {
			return target, true
		}
	}
}

// linkParam parses `name[=value]` (value a token or a quoted-string with
// backslash escapes) and returns the rest, which starts at ";", "," or is "".
func linkParam(s string) (name, value, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, "=;,")
	if i < 0 {
		return strings.TrimSpace(s), "", ""
	}
	name = strings.TrimSpace(s[:i])
	if s[i] != '=' {
		return name, "", s[i:]
	}
	s = strings.TrimLeft(s[i+1:], " \t")
	if s == "" || s[0] != '"' {
		j := strings.IndexAny(s, ";,")
		if j < 0 {
			return name, strings.TrimSpace(s), ""
		}
		return name, strings.TrimSpace(s[:j]), s[j:]
	}
	var b strings.Builder
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '\\' && j+1 < len(s):
			j++
			b.WriteByte(s[j])
		case c == '"':
			rest = s[j+1:]
			if k := strings.IndexAny(rest, ";,"); k >= 0 {
				rest = rest[k:]
			} else {
				rest = ""
			}
			return name, b.String(), rest
		default:
			b.WriteByte(c)
		}
	}
	return name, b.String(), "" // unterminated quote: take what there is
}
