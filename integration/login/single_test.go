package login

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/controlplanetest/fakegithub"
	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// One node serves the tests that need no failover: the provider-token
// exchange, GitHub (fake), third-party sign-in, the scanner and the bad
// inputs. Each subtest uses its own users, so they share the node.
type single struct {
	c      *harness.Cluster
	pub    string
	gh     *fakegithub.FakeGitHub
	appCB  string // it-app's registered redirect URI (nobody serves it)
	scanCB string // it-scan-app's
}

const (
	ghClientID, ghSecret = "it-gh-client", "it-gh-secret"
	octoID, octoLogin    = int64(4242), "octo-it"
	teamCount            = 140 // more than 100: two pages even at per_page=100
	orgCount             = 35  // more than 30: two pages at GitHub's default (four at the fake's cap of 10)
)

func TestLoginSingleNode(t *testing.T) {
	harness.NeedNode(t)
	s := &single{pub: "http://" + singleAddrs[0], gh: fakegithub.New(ghClientID, ghSecret)}
	t.Cleanup(s.gh.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("requests the fake GitHub refused: %q", s.gh.Refused())
		}
	})
	s.gh.AllowRedirect(s.pub + "/login/github/callback")
	cb, _ := harness.ReserveAddr()
	s.appCB, s.scanCB = "http://"+cb+"/it-app/callback", "http://"+cb+"/it-scan-app/callback"

	strategies := ""
	if zitadel != nil {
		strategies = zitadelStrategy()
	}
	strategies += fmt.Sprintf(`  - name: github
    type: github
    clientId: %s
    clientSecret: %s
    authorizeUrl: %s/login/oauth/authorize
    tokenUrl: %s/login/oauth/access_token
    apiUrl: %s
`, ghClientID, ghSecret, s.gh.URL, s.gh.URL, s.gh.URL)
	yaml := fmt.Sprintf(`publicUrl: %s
issuer: %s
scanInterval: 1s
strategies:
%sregisteredApps:
  - clientId: it-app
    scope: ["it:app:read", "auth:current-scopes"]
    redirectUri: ["%s"]
    maxExpires: 1 day
  - clientId: it-scan-app
    scope: ["it:team:scan", "auth:current-scopes"]
    redirectUri: ["%s"]
    maxExpires: 1 day
`, s.pub, issuerID, strategies, s.appCB, s.scanCB)
	s.c = loginCluster(t, singleAddrs, yaml)
	// The convention of Taskcluster deployments: users manage clients
	// under their identity (the third-party flow needs it).
	putRole(t, s.c, 0, "login-identity:*", "it:user:<..>", "it:app:read", "auth:current-scopes",
		"auth:create-client:<..>/*", "auth:delete-client:<..>/*", "auth:update-client:<..>/*", "auth:reset-access-token:<..>/*")
	putRole(t, s.c, 0, "github-team:it-org/t34", "it:from-last-team")
	putRole(t, s.c, 0, "github-team:it-org/scan-team", "it:team:scan")

	t.Run("OIDCCredentialsExchange", s.testOIDCCredentials)
	t.Run("OIDCCredentialsBadTokens", s.testOIDCCredentialsBad)
	t.Run("OIDCBrowserBadInputs", s.testBrowserBadInputs)
	t.Run("GitHubPaginatedRoles", s.testGitHubRoles)
	t.Run("GitHubOver100Teams", s.testGitHubOver100Teams)
	t.Run("GitHubRenameRefused", s.testGitHubRename)
	t.Run("GitHubRevokedToken", s.testGitHubRevoked)
	t.Run("ThirdPartyApp", s.testThirdParty)
	t.Run("ThirdPartyBadInputs", s.testThirdPartyBad)
	t.Run("ScannerDisablesClient", s.testScanner)
}

// state is the node's stored clients and login records.
func (s *single) state(t *testing.T) harness.StateCounts {
	t.Helper()
	st, err := s.c.State(0)
	if err != nil {
		t.Fatalf("reading the state: %v", err)
	}
	return st
}

func (s *single) wantUnchanged(t *testing.T, before harness.StateCounts, what string) {
	t.Helper()
	after := s.state(t)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("%s changed the stored state:\nbefore %v\nafter  %v", what, before, after)
	}
}

// zitadelToken gets an access token of the example provider for client
// (its secret is "secret") and scope, signing in as u, through a redirect
// URI nobody serves (the browser stops there and hands the code over).
func zitadelToken(t *testing.T, client, scope string, u harness.OIDCUser) string {
	t.Helper()
	var disc struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
	}
	b := newBrowser(t, tokenCallback)
	if err := json.Unmarshal([]byte(b.get(zitadel.Issuer+".well-known/openid-configuration").Body), &disc); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"client_id": {client}, "redirect_uri": {tokenCallback}, "response_type": {"code"},
		"scope": {scope}, "state": {"it-state"}}
	p := b.signInZitadel(disc.Authorization+"?"+q.Encode(), u.Username, u.Password)
	loc, err := url.Parse(p.location())
	if err != nil || !strings.HasPrefix(p.location(), tokenCallback) || loc.Query().Get("code") == "" {
		t.Fatalf("the provider did not redirect to %s with a code: %d %q\n%.1000s", tokenCallback, p.Status, p.location(), p.Body)
	}
	req, _ := http.NewRequest(http.MethodPost, disc.Token, strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {tokenCallback}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, "secret")
	tp := b.do(req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(tp.Body), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %d %.500s", tp.Status, tp.Body)
	}
	return tok.AccessToken
}

func (s *single) oidcCredentials(t *testing.T, provider, token string) page {
	t.Helper()
	b := newBrowser(t)
	if token == "" {
		return b.get(s.pub + "/api/login/v1/oidc-credentials/" + provider)
	}
	return b.get(s.pub+"/api/login/v1/oidc-credentials/"+provider, "Authorization", "Bearer "+token)
}

// testOIDCCredentials: a provider access token (opaque: the example
// issues no JWT access tokens, so introspection) is exchanged for
// credentials that taskcluster-client uses.
func (s *single) testOIDCCredentials(t *testing.T) {
	needZitadel(t)
	tok := zitadelToken(t, "web", "openid profile custom_scope", bob)
	creds := decodeCreds(t, "oidc-credentials", s.oidcCredentials(t, "zitadel", tok))
	identity := "zitadel/" + bob.ID
	if creds.Credentials.ClientID != identity || creds.Credentials.Certificate == "" {
		t.Fatalf("credentials %+v: want temporary credentials named %s", creds.Credentials, identity)
	}
	if err := hasAll(currentScopes(t, s.pub, creds), "assume:login-identity:"+identity, "it:user:"+identity); err != nil {
		t.Error(err)
	}
}

// testOIDCCredentialsBad: every token that must not work answers 400 with
// the historical messages and creates nothing.
func (s *single) testOIDCCredentialsBad(t *testing.T) {
	needZitadel(t)
	noScope := zitadelToken(t, "web", "openid profile", bob)
	otherAudience := zitadelToken(t, "api", "openid profile custom_scope", bob)
	before := s.state(t)
	const vague = "Could not generate credentials for this access token"
	for _, tc := range []struct{ name, provider, token, msg string }{
		{"garbage token", "zitadel", "not-a-token", vague},
		{"jwt-looking garbage", "zitadel", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", vague},
		{"no Authorization header", "zitadel", "", ""},
		{"token without the required scope", "zitadel", noScope, vague},
		{"token of another client (audience)", "zitadel", otherAudience, vague},
		{"unknown provider", "nope", noScope, "Invalid accessToken provider nope"},
		{"provider without a bearer exchange", "github", noScope, ""},
	} {
		p := s.oidcCredentials(t, tc.provider, tc.token)
		wantRefused(t, tc.name, p, tc.msg)
		if p.Status != 400 && tc.msg != "" {
			t.Errorf("%s: status %d, want 400", tc.name, p.Status)
		}
	}
	s.wantUnchanged(t, before, "refused oidc-credentials requests")
}

// testBrowserBadInputs: a bad state, a callback without the flow cookie,
// a replayed callback and an unknown provider are refused and create
// nothing (the one good callback creates one session).
func (s *single) testBrowserBadInputs(t *testing.T) {
	needZitadel(t)
	callback := s.pub + "/login/zitadel/callback"
	if p := newBrowser(t).get(s.pub + "/login/nope"); p.Status != 404 {
		t.Errorf("GET /login/nope: %d, want 404", p.Status)
	}
	// Stop at the provider: the state is in the authorize URL.
	b := newBrowser(t, zitadel.Issuer)
	start := b.get(s.pub + "/login/zitadel")
	au, err := url.Parse(start.location())
	if err != nil || start.Status/100 != 3 || au.Query().Get("state") == "" {
		t.Fatalf("GET /login/zitadel: %d %q, want a redirect to the provider with a state", start.Status, start.location())
	}
	if au.Query().Get("code_challenge") == "" || au.Query().Get("nonce") == "" {
		t.Errorf("authorize URL %s lacks PKCE or a nonce", au)
	}
	state := au.Query().Get("state")
	before := s.state(t)
	for _, tc := range []struct {
		name string
		b    *browser
		q    url.Values
	}{
		{"bad state", b, url.Values{"code": {"x"}, "state": {state + "x"}}},
		{"no state", b, url.Values{"code": {"x"}}},
		{"no flow cookie", newBrowser(t), url.Values{"code": {"x"}, "state": {state}}},
		{"provider error", b, url.Values{"error": {"access_denied"}, "state": {state}}},
		{"right state, bogus code", b, url.Values{"code": {"bogus"}, "state": {state}}},
	} {
		p := tc.b.get(callback + "?" + tc.q.Encode())
		wantRefused(t, tc.name, p, "")
		if tc.b.cookie(s.pub, "tcauth_session") != "" {
			t.Errorf("%s: a session cookie was set", tc.name)
		}
	}
	s.wantUnchanged(t, before, "refused callbacks")

	// A real callback, captured, then replayed.
	b2 := newBrowser(t, callback)
	p := b2.signInZitadel(s.pub+"/login/zitadel", bob.Username, bob.Password)
	if !strings.HasPrefix(p.location(), callback) {
		t.Fatalf("the provider did not send the browser back to %s: %d %q", callback, p.Status, p.location())
	}
	b2.stopAt = nil
	if ok := b2.get(p.location()); ok.Status != 200 {
		t.Fatalf("the callback: %d %.500s", ok.Status, ok.Body)
	}
	afterOne := s.state(t)
	if len(afterOne.Logins) <= len(before.Logins) {
		t.Errorf("a sign-in stored no login record: %v", afterOne.Logins)
	}
	wantRefused(t, "replayed callback", b2.get(p.location()), "")
	wantRefused(t, "replayed callback in another browser", newBrowser(t).get(p.location()), "")
	s.wantUnchanged(t, afterOne, "replayed callbacks")
}

// signInGitHub signs in through the fake GitHub as user id and returns
// the browser holding the session.
func (s *single) signInGitHub(t *testing.T, id int64) *browser {
	t.Helper()
	s.gh.SignInAs(id)
	b := newBrowser(t)
	p := b.get(s.pub + "/login/github")
	if p.Status != 200 || b.cookie(s.pub, "tcauth_session") == "" {
		t.Fatalf("GitHub sign-in: %d at %s, no session:\n%.1500s", p.Status, p.URL, p.Body)
	}
	return b
}

// testGitHubRoles: teams and organization roles over several pages
// (Link rel="next" followed; the fake caps pages at 10 so that 35 teams
// take 4 pages and the credentials still fit in a Hawk header); leaving a
// team drops its role at the next credentials request.
func (s *single) testGitHubRoles(t *testing.T) {
	var teams []string
	for i := 0; i < 35; i++ {
		teams = append(teams, fmt.Sprintf("it-org/t%02d", i))
	}
	orgs := map[string]string{}
	for i := 0; i < orgCount; i++ {
		orgs[fmt.Sprintf("org-%02d", i)] = map[bool]string{true: "admin", false: "member"}[i%3 == 0]
	}
	s.gh.AddUser(octoID, octoLogin, teams, orgs)
	s.gh.SetPageCap(10)
	defer s.gh.SetPageCap(0)
	b := s.signInGitHub(t, octoID)
	for _, sc := range s.gh.Scopes() {
		if strings.Contains(sc, "repo") || !strings.Contains(sc, "read:org") {
			t.Errorf("requested GitHub scope %q, want read:org and not repo", sc)
		}
	}
	identity := fmt.Sprintf("github/%d|%s", octoID, octoLogin)
	creds := decodeCreds(t, "GitHub credentials", b.get(s.pub+"/login/credentials"))
	if creds.Credentials.ClientID != identity {
		t.Fatalf("clientId %q, want %q", creds.Credentials.ClientID, identity)
	}
	scopes := currentScopes(t, s.pub, creds)
	want := []string{"assume:login-identity:" + identity, "it:user:" + identity, "it:from-last-team",
		"assume:github-team:it-org/t00", "assume:github-team:it-org/t10", "assume:github-team:it-org/t34",
		"assume:github-org-admin:org-00", "assume:github-org-admin:org-33"}
	if err := hasAll(scopes, want...); err != nil {
		t.Errorf("roles over several pages: %v", err)
	}
	for _, sc := range scopes {
		if sc == "assume:github-org-admin:org-34" {
			t.Error("a member (not admin) got github-org-admin")
		}
	}
	t.Logf("fake GitHub: /user/teams answered %d requests, /user/memberships/orgs %d", s.gh.Hits("/user/teams"), s.gh.Hits("/user/memberships/orgs"))

	// Out of the team: the next credentials lack the role.
	s.gh.RemoveTeam(octoID, "it-org/t34")
	creds = decodeCreds(t, "credentials after leaving a team", b.get(s.pub+"/login/credentials"))
	scopes = currentScopes(t, s.pub, creds)
	for _, sc := range scopes {
		if sc == "assume:github-team:it-org/t34" || sc == "it:from-last-team" {
			t.Errorf("after leaving it-org/t34 the credentials still hold %s", sc)
		}
	}
	if err := hasAll(scopes, "assume:github-team:it-org/t33"); err != nil {
		t.Error(err)
	}
}

// testGitHubOver100Teams: a member of 140 teams (two pages even at
// GitHub's maximum of 100). A certificate of 141 scopes does not fit in the
// 4096 characters of a Hawk header, so the teams the deployment defines no
// role for (they grant nothing) are left out: the user gets every defined
// team's role. When the deployment defines a role for every team, the
// answer is a clear InputError, not a 500.
func (s *single) testGitHubOver100Teams(t *testing.T) {
	const id = int64(4343)
	var teams []string
	for i := 0; i < teamCount; i++ {
		teams = append(teams, fmt.Sprintf("big/%d", i))
	}
	s.gh.AddUser(id, "many-teams", teams, nil)
	putRole(t, s.c, 0, "github-team:big/0", "secrets:get:big/0")
	putRole(t, s.c, 0, "github-team:big/139", "secrets:get:big/139")
	b := s.signInGitHub(t, id)
	p := b.get(s.pub + "/login/credentials")
	if p.Status != 200 {
		t.Fatalf("credentials for a member of %d teams: %d:\n%.600s", teamCount, p.Status, p.Body)
	}
	have := currentScopes(t, s.pub, decodeCreds(t, "140 teams", p))
	if err := hasAll(have, "assume:github-team:big/0", "assume:github-team:big/139", "secrets:get:big/0", "secrets:get:big/139"); err != nil {
		t.Error(err)
	}
	if slices.Contains(have, "assume:github-team:big/5") {
		t.Error("a team without a role is still in the certificate: it cannot have fit")
	}

	putRole(t, s.c, 0, "github-team:big/*", "queue:route:team-<..>")
	t.Cleanup(func() {
		s.c.Client(0, nil).Do(context.Background(), http.MethodDelete, "/roles/"+tcclient.PathSegment("github-team:big/*"), nil, nil, nil)
	})
	p = b.get(s.pub + "/login/credentials")
	wantRefused(t, "credentials when every one of 140 teams has a role", p, "too many for the 4096 characters of a Hawk header")
}

// testGitHubRename: a user signs in, renames, and another account takes
// the old login. The old session must not yield credentials (the login
// no longer names the signed-in account), and the newcomer gets their
// own identity, not the victim's.
func (s *single) testGitHubRename(t *testing.T) {
	const victim, attacker = int64(5151), int64(6161)
	s.gh.AddUser(victim, "carol-it", []string{"it-org/core"}, nil)
	b := s.signInGitHub(t, victim)
	decodeCreds(t, "victim's credentials", b.get(s.pub+"/login/credentials"))
	s.gh.Rename(victim, "carol-it-renamed")
	s.gh.AddUser(attacker, "carol-it", []string{"it-org/evil"}, nil)
	p := b.get(s.pub + "/login/credentials")
	wantRefused(t, "credentials of a renamed login", p, "")
	if strings.Contains(p.Body, "accessToken") {
		t.Errorf("credentials handed out after the rename:\n%s", p.Body)
	}
	mine := decodeCreds(t, "newcomer's credentials", s.signInGitHub(t, attacker).get(s.pub+"/login/credentials"))
	if want := fmt.Sprintf("github/%d|carol-it", attacker); mine.Credentials.ClientID != want {
		t.Errorf("newcomer got %q, want %q", mine.Credentials.ClientID, want)
	}
}

// testGitHubRevoked: a revoked GitHub token ends the session.
func (s *single) testGitHubRevoked(t *testing.T) {
	const id = int64(8181)
	s.gh.AddUser(id, "dave-it", []string{"it-org/core"}, nil)
	b := s.signInGitHub(t, id)
	decodeCreds(t, "credentials before revocation", b.get(s.pub+"/login/credentials"))
	s.gh.Revoke(id)
	wantRefused(t, "credentials after revocation", b.get(s.pub+"/login/credentials"), "")
	wantRefused(t, "credentials after revocation, again", b.get(s.pub+"/login/credentials"), "")
}

// thirdParty runs the app flow for a signed-in browser up to the code:
// authorize, the consent page's form (CSRF token included) when shown.
func (s *single) thirdPartyCode(t *testing.T, b *browser, app, cb, scope string) string {
	t.Helper()
	b.stopAt = []string{cb}
	defer func() { b.stopAt = nil }()
	q := url.Values{"response_type": {"code"}, "client_id": {app}, "redirect_uri": {cb}, "scope": {scope},
		"state": {"app-state-1"}, "expires": {"1 day"}}
	p := b.get(s.pub + "/login/oauth/authorize?" + q.Encode())
	if p.Status == 200 {
		var decision *form
		for _, f := range forms(p.Body, p.URL) {
			if strings.Contains(f.Action, "decision") || f.Fields.Has("transaction_id") {
				decision = &f
			}
		}
		if decision == nil {
			t.Fatalf("consent page at %s has no decision form:\n%.2000s", p.URL, p.Body)
		}
		p = b.post(decision.Action, decision.Fields, "Origin", s.pub)
	}
	loc, err := url.Parse(p.location())
	if err != nil || !strings.HasPrefix(p.location(), cb) || loc.Query().Get("code") == "" {
		t.Fatalf("no redirect to %s with a code: %d %q at %s:\n%.1500s", cb, p.Status, p.location(), p.URL, p.Body)
	}
	if loc.Query().Get("state") != "app-state-1" {
		t.Errorf("state %q came back, want app-state-1", loc.Query().Get("state"))
	}
	return loc.Query().Get("code")
}

func (s *single) tokenFor(t *testing.T, app, cb, code string) page {
	t.Helper()
	return newBrowser(t).post(s.pub+"/login/oauth/token", url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {cb}, "client_id": {app}})
}

// thirdPartyClient runs the whole flow and returns the app's credentials.
func (s *single) thirdPartyClient(t *testing.T, b *browser, app, cb, scope string) credsReply {
	t.Helper()
	code := s.thirdPartyCode(t, b, app, cb, scope)
	tp := s.tokenFor(t, app, cb, code)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal([]byte(tp.Body), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("/login/oauth/token: %d %.500s", tp.Status, tp.Body)
	}
	wantRefused(t, "replayed code", s.tokenFor(t, app, cb, code), "")
	return decodeCreds(t, "/login/oauth/credentials",
		newBrowser(t).get(s.pub+"/login/oauth/credentials", "Authorization", "Bearer "+tok.AccessToken))
}

func (s *single) testThirdParty(t *testing.T) {
	const id = int64(9191)
	s.gh.AddUser(id, "erin-it", []string{"it-org/core"}, nil)
	b := s.signInGitHub(t, id)
	identity := fmt.Sprintf("github/%d|erin-it", id)
	creds := s.thirdPartyClient(t, b, "it-app", s.appCB, "it:app:read auth:current-scopes")
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(identity) + `/it-app-[A-Za-z0-9_-]+$`).MatchString(creds.Credentials.ClientID) {
		t.Errorf("clientId %q, want %s/it-app-<suffix>", creds.Credentials.ClientID, identity)
	}
	if creds.Credentials.Certificate != "" {
		t.Error("a third-party app got temporary credentials, want a permanent client")
	}
	if err := hasAll(currentScopes(t, s.pub, creds), "it:app:read"); err != nil {
		t.Error(err)
	}
	var cl struct {
		DeleteOnExpiration bool      `json:"deleteOnExpiration"`
		Expires            time.Time `json:"expires"`
	}
	if err := s.c.Client(0, nil).Do(ctxT(t), http.MethodGet, "/clients/"+tcclient.PathSegment(creds.Credentials.ClientID), nil, nil, &cl); err != nil {
		t.Fatal(err)
	}
	if !cl.DeleteOnExpiration || time.Until(cl.Expires) > 25*time.Hour {
		t.Errorf("client %+v: want deleteOnExpiration and at most maxExpires (1 day)", cl)
	}
}

func (s *single) testThirdPartyBad(t *testing.T) {
	const id = int64(9292)
	s.gh.AddUser(id, "frank-it", []string{"it-org/core"}, nil)
	b := s.signInGitHub(t, id)
	evil := "http://127.0.0.1:9/evil/callback"
	before := s.state(t)
	for _, tc := range []struct {
		name string
		q    url.Values
	}{
		{"unregistered redirect URI", url.Values{"client_id": {"it-app"}, "redirect_uri": {evil}, "scope": {"it:app:read auth:current-scopes"}}},
		{"redirect URI with a suffix", url.Values{"client_id": {"it-app"}, "redirect_uri": {s.appCB + "x"}, "scope": {"it:app:read auth:current-scopes"}}},
		{"unknown app", url.Values{"client_id": {"no-such-app"}, "redirect_uri": {s.appCB}, "scope": {"it:app:read auth:current-scopes"}}},
	} {
		tc.q.Set("response_type", "code")
		tc.q.Set("state", "s")
		b.stopAt = []string{evil, s.appCB}
		p := b.get(s.pub + "/login/oauth/authorize?" + tc.q.Encode())
		wantRefused(t, tc.name, p, "")
		if strings.HasPrefix(p.location(), evil) || strings.HasPrefix(p.location(), s.appCB) {
			t.Errorf("%s: redirected to %s", tc.name, p.location())
		}
	}
	b.stopAt = nil
	s.wantUnchanged(t, before, "refused authorize requests")

	code := s.thirdPartyCode(t, b, "it-app", s.appCB, "it:app:read auth:current-scopes")
	wantRefused(t, "token with another redirect URI", s.tokenFor(t, "it-app", evil, code), "")
	wantRefused(t, "token for another app", s.tokenFor(t, "it-scan-app", s.appCB, code), "")
	wantRefused(t, "bogus code", s.tokenFor(t, "it-app", s.appCB, "bogus"), "")
	for _, auth := range []string{"Bearer bogus", "Bearer ", "Basic Zm9vOmJhcg=="} {
		wantRefused(t, "oauth credentials with "+auth, newBrowser(t).get(s.pub+"/login/oauth/credentials", "Authorization", auth), "")
	}
}

// testScanner: a user's app client is disabled by the scanner once the
// user leaves the team whose role gave the client its scope, and the
// disable is in the client's audit history (auth.getEntityHistory).
func (s *single) testScanner(t *testing.T) {
	const id = int64(7373)
	s.gh.AddUser(id, "scan-it", []string{"it-org/scan-team"}, nil)
	b := s.signInGitHub(t, id)
	creds := s.thirdPartyClient(t, b, "it-scan-app", s.scanCB, "it:team:scan auth:current-scopes")
	clientPath := "/clients/" + tcclient.PathSegment(creds.Credentials.ClientID)
	disabled := func() (bool, error) {
		var cl struct {
			Disabled bool `json:"disabled"`
		}
		err := s.c.Client(0, nil).Do(ctxT(t), http.MethodGet, clientPath, nil, nil, &cl)
		return cl.Disabled, err
	}
	time.Sleep(2500 * time.Millisecond) // two scans while the user is in the team
	if d, err := disabled(); err != nil || d {
		t.Fatalf("the client is disabled (%v, %v) while its user still has the rights", d, err)
	}
	s.gh.RemoveTeam(id, "it-org/scan-team")
	start := time.Now()
	if err := harness.Eventually(20*time.Second, func() error {
		if d, err := disabled(); err != nil || !d {
			return fmt.Errorf("not disabled (%v)", err)
		}
		return nil
	}); err != nil {
		t.Fatalf("scanner: %v", err)
	}
	t.Logf("disabled %v after the user left the team (scanInterval 1s)", time.Since(start).Round(100*time.Millisecond))
	var hist struct {
		AuditHistory []struct {
			ActionType string `json:"actionType"`
			ClientID   string `json:"clientId"`
		} `json:"auditHistory"`
	}
	if err := s.c.Client(0, nil).Do(ctxT(t), http.MethodGet, "/audit/client/"+tcclient.PathSegment(creds.Credentials.ClientID), nil, nil, &hist); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, h := range hist.AuditHistory {
		actions = append(actions, h.ActionType+" by "+h.ClientID)
	}
	if len(actions) == 0 || !strings.Contains(actions[len(actions)-1], "disabled") {
		t.Errorf("audit history %q lacks the disable", actions)
	}
	if ok, _, _ := harness.TCCall(t, s.pub, creds.creds(), "currentScopes"); ok {
		t.Error("the disabled client still authenticates")
	}
}
