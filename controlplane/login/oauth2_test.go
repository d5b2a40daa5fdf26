package login

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

const (
	appRedirect     = "https://app.example/cb"
	appLoopback     = "http://127.0.0.1:5000/cb?x=1"
	implicitRedir   = "https://spa.example/cb"
	trustedRedirect = "https://trusted.example/cb"
	aliceIdentity   = "fake/alice"
)

var appScopes = []string{"queue:create-task:proj/*", "secrets:get:x"}

// oauthHarness is the browser harness with three registered apps (code,
// implicit, whitelisted), roles that give signed-in users the
// login-identity convention and alice's group the app scopes, and alice
// signed in.
type oauthHarness struct {
	*browserHarness
	alice *http.Cookie
}

func newOAuthHarness(t *testing.T) *oauthHarness {
	t.Helper()
	h := &oauthHarness{browserHarness: newBrowserHarness(t)}
	h.svc.cfg.Apps = []App{
		{ClientID: "myapp", Scopes: appScopes, RedirectURIs: []string{appRedirect, appLoopback}, MaxExpires: "30 days"},
		{ClientID: "spa", ResponseType: "token", Scopes: appScopes, RedirectURIs: []string{implicitRedir}},
		{ClientID: "trusted", Whitelisted: true, Scopes: appScopes, RedirectURIs: []string{trustedRedirect}},
	}
	if err := h.svc.cfg.fillApps(); err != nil {
		t.Fatal(err)
	}
	h.setRoles(true)
	h.alice = h.signIn("code-alice")
	return h
}

// setRoles installs the roles; without loginIdentity users may not create
// clients.
func (h *oauthHarness) setRoles(loginIdentity bool) {
	roles := []scopeengine.Role{{RoleID: "fake-group:admins", Scopes: []string{"queue:create-task:proj/*", "secrets:get:*"}}}
	if loginIdentity {
		roles = append(roles, scopeengine.Role{RoleID: "login-identity:*", Scopes: []string{"auth:create-client:<..>/*"}})
	}
	res, err := scopeengine.NewResolver(roles)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mb.mu.Lock()
	h.mb.resolver = res
	h.mb.mu.Unlock()
}

func authorizeQuery(app, redirect, scope, state string) url.Values {
	rt := map[string]string{"spa": "token"}[app]
	if rt == "" {
		rt = "code"
	}
	return url.Values{"response_type": {rt}, "client_id": {app}, "redirect_uri": {redirect}, "scope": {scope}, "state": {state}}
}

func (h *oauthHarness) authorize(q url.Values, cookie *http.Cookie, headers ...string) *http.Response {
	req := httptest.NewRequest("GET", testPublicURL+"/login/oauth/authorize?"+q.Encode(), nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return h.do(req)
}

var (
	txPattern   = regexp.MustCompile(`name="transaction_id" value="([^"]+)"`)
	csrfPattern = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
)

// consentPage asks for consent and returns the page, its transaction id
// and CSRF token.
func (h *oauthHarness) consentPage(q url.Values, cookie *http.Cookie) (string, string, string) {
	h.t.Helper()
	res := h.authorize(q, cookie)
	body := readBody(h.t, res)
	tx, csrf := txPattern.FindStringSubmatch(body), csrfPattern.FindStringSubmatch(body)
	if res.StatusCode != http.StatusOK || tx == nil || csrf == nil {
		h.t.Fatalf("consent page: status %d: %s", res.StatusCode, body)
	}
	return body, tx[1], csrf[1]
}

// decide posts the consent form as the browser would (same-origin).
func (h *oauthHarness) decide(form url.Values, cookie *http.Cookie, headers ...string) *http.Response {
	req := httptest.NewRequest("POST", testPublicURL+"/login/oauth/authorize/decision", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", testPublicURL)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return h.do(req)
}

func allowForm(tx, csrf string) url.Values {
	return url.Values{"transaction_id": {tx}, "csrf_token": {csrf}, "decision": {"allow"}, "scope": appScopes}
}

func (h *oauthHarness) token(code, redirect, clientID string) *http.Response {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {clientID}}
	req := httptest.NewRequest("POST", testPublicURL+"/login/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.do(req)
}

func (h *oauthHarness) credentials(authorization string) *http.Response {
	req := httptest.NewRequest("GET", testPublicURL+"/login/oauth/credentials", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return h.do(req)
}

// codeFrom is the code of a redirect to want (state checked).
func codeFrom(t *testing.T, res *http.Response, want, state string) string {
	t.Helper()
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), want) {
		t.Fatalf("want a redirect to %s, got %d %q", want, res.StatusCode, res.Header.Get("Location"))
	}
	if loc.Query().Get("state") != state || loc.Query().Get("error") != "" {
		t.Fatalf("redirect %s: state or error wrong", loc)
	}
	return loc.Query().Get("code")
}

// codeFor runs authorize + allow for alice and returns the code.
func (h *oauthHarness) codeFor(q url.Values) string {
	h.t.Helper()
	_, tx, csrf := h.consentPage(q, h.alice)
	return codeFrom(h.t, h.decide(allowForm(tx, csrf), h.alice), q.Get("redirect_uri"), q.Get("state"))
}

func (h *oauthHarness) accessToken(code, redirect, app string) string {
	h.t.Helper()
	res := h.token(code, redirect, app)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&tok) != nil || tok.AccessToken == "" {
		h.t.Fatalf("token: status %d", res.StatusCode)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 600 || res.Header.Get("Cache-Control") != "no-store" {
		h.t.Fatalf("token answer %+v, Cache-Control %q", tok, res.Header.Get("Cache-Control"))
	}
	return tok.AccessToken
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stateCounts is what the third-party flow may have created.
type stateCounts struct{ consents, codes, tokens, clients int }

func (h *oauthHarness) counts() stateCounts {
	return stateCounts{h.mb.count(KindConsent), h.mb.count(KindCode), h.mb.count(KindToken), len(h.mb.ListClients("fake/"))}
}

func (h *oauthHarness) credentialsReply(res *http.Response) CredentialsReply {
	h.t.Helper()
	var c CredentialsReply
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&c) != nil {
		h.t.Fatalf("credentials: status %d", res.StatusCode)
	}
	return c
}

func TestOAuthCodeFlow(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("myapp", appRedirect, "secrets:get:x queue:create-task:proj/*", "st-123")
	q.Set("expires", "1 day")
	page, tx, csrf := h.consentPage(q, h.alice)
	for _, want := range []string{"myapp", "app.example", "fake/alice/myapp-", "secrets:get:x", "2023-11-15T22:13:20.000Z"} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	code := codeFrom(t, h.decide(allowForm(tx, csrf), h.alice), appRedirect, "st-123")
	if got := h.counts(); got != (stateCounts{codes: 1}) {
		t.Fatalf("after the decision: %+v", got)
	}
	tok := h.accessToken(code, appRedirect, "myapp")
	reply := h.credentialsReply(h.credentials("Bearer " + tok))
	c, ok := h.mb.Client(reply.Credentials.ClientID)
	if !ok || !regexp.MustCompile(`^fake/alice/myapp-[A-Z2-7]{6}$`).MatchString(c.ClientID) {
		t.Fatalf("client %q not created", reply.Credentials.ClientID)
	}
	if !c.DeleteOnExpiration || !sameScopeSet(c.Scopes, appScopes) || !c.Expires.Equal(h.now.Add(24*time.Hour)) ||
		c.Description != "Client generated by fake/alice for OAuth2 Client myapp" {
		t.Fatalf("client %+v", c)
	}
	if reply.Expires != "2023-11-15T22:12:50.000Z" {
		t.Fatalf("reply expires %s, want the client's less 30 s", reply.Expires)
	}
	// a repeat (lower-case scheme too) answers the same client and token
	again := h.credentialsReply(h.credentials("bearer " + tok))
	if again != reply || len(h.mb.ListClients("fake/")) != 1 {
		t.Fatalf("repeat: %+v, want %+v", again, reply)
	}
	if got := h.counts(); got != (stateCounts{tokens: 1, clients: 1}) {
		t.Fatalf("at the end: %+v", got)
	}
}

func TestOAuthImplicitFlow(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("spa", implicitRedir, strings.Join(appScopes, " "), "s1")
	_, tx, csrf := h.consentPage(q, h.alice)
	res := h.decide(allowForm(tx, csrf), h.alice)
	loc, _ := url.Parse(res.Header.Get("Location"))
	frag, _ := url.ParseQuery(loc.Fragment)
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), implicitRedir+"#") ||
		frag.Get("access_token") == "" || frag.Get("token_type") != "Bearer" || frag.Get("state") != "s1" || loc.RawQuery != "" {
		t.Fatalf("implicit redirect: %d %s", res.StatusCode, loc)
	}
	if got := h.counts(); got != (stateCounts{tokens: 1}) {
		t.Fatalf("after the decision: %+v", got)
	}
	reply := h.credentialsReply(h.credentials("Bearer " + frag.Get("access_token")))
	if !strings.HasPrefix(reply.Credentials.ClientID, "fake/alice/spa-") {
		t.Fatalf("client %q", reply.Credentials.ClientID)
	}
}

func TestOAuthWhitelistedSkipsConsent(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("trusted", trustedRedirect, strings.Join(appScopes, " "), "s2")
	code := codeFrom(t, h.authorize(q, h.alice), trustedRedirect, "s2")
	if got := h.counts(); got != (stateCounts{codes: 1}) {
		t.Fatalf("%+v", got)
	}
	h.credentialsReply(h.credentials("Bearer " + h.accessToken(code, trustedRedirect, "trusted")))
}

func TestOAuthExpires(t *testing.T) {
	h := newOAuthHarness(t)
	max := h.now.AddDate(0, 0, 30) // myapp's maxExpires "30 days"
	for _, tc := range []struct {
		asked string
		want  time.Time
	}{
		{"", max}, {"2 years", max}, {"3 fortnights", max}, {"1 day", h.now.Add(24 * time.Hour)}, {"29 days", h.now.AddDate(0, 0, 29)},
	} {
		q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "")
		q.Set("expires", tc.asked)
		tok := h.accessToken(h.codeFor(q), appRedirect, "myapp")
		reply := h.credentialsReply(h.credentials("Bearer " + tok))
		if c, _ := h.mb.Client(reply.Credentials.ClientID); !c.Expires.Equal(tc.want) {
			t.Errorf("expires %q: client expires %v, want %v", tc.asked, c.Expires, tc.want)
		}
	}
	// a past expiry is refused, nothing stored
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "")
	q.Set("expires", "- 1 hour")
	before := h.counts()
	if res := h.authorize(q, h.alice); !strings.Contains(res.Header.Get("Location"), "error=invalid_request") || h.counts() != before {
		t.Fatalf("past expiry: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestOAuthAuthorizeRefusals: a bad client or redirect URI is a 400 page
// (never a redirect: no open redirector); a bad response type or scope set
// is told to the app at its registered redirect URI (RFC 6749 §4.1.2.1).
// Nothing is stored either way.
func TestOAuthAuthorizeRefusals(t *testing.T) {
	h := newOAuthHarness(t)
	scopes := strings.Join(appScopes, " ")
	tests := []struct {
		name      string
		q         url.Values
		wantError string // "" = a 400 page
	}{
		{"unregistered app", authorizeQuery("nope", appRedirect, scopes, "s"), ""},
		{"no client_id", authorizeQuery("", appRedirect, scopes, "s"), ""},
		{"unlisted redirect", authorizeQuery("myapp", "https://evil.example/cb", scopes, "s"), ""},
		{"another app's redirect", authorizeQuery("myapp", implicitRedir, scopes, "s"), ""},
		{"redirect with a longer path", authorizeQuery("myapp", appRedirect+"/x", scopes, "s"), ""},
		{"redirect with a query", authorizeQuery("myapp", appRedirect+"?a=b", scopes, "s"), ""},
		{"redirect with a trailing slash", authorizeQuery("myapp", appRedirect+"/", scopes, "s"), ""},
		{"redirect in upper case", authorizeQuery("myapp", strings.ToUpper(appRedirect), scopes, "s"), ""},
		{"loopback redirect without its query", authorizeQuery("myapp", "http://127.0.0.1:5000/cb", scopes, "s"), ""},
		{"no redirect", authorizeQuery("myapp", "", scopes, "s"), ""},
		{"subset of scopes", authorizeQuery("myapp", appRedirect, "secrets:get:x", "s"), "invalid_scope"},
		{"superset of scopes", authorizeQuery("myapp", appRedirect, scopes+" auth:*", "s"), "invalid_scope"},
		{"a covering scope", authorizeQuery("myapp", appRedirect, "*", "s"), "invalid_scope"},
		{"no scope", authorizeQuery("myapp", appRedirect, "", "s"), "invalid_scope"},
		{"two spaces", authorizeQuery("myapp", appRedirect, strings.Join(appScopes, "  "), "s"), "invalid_scope"},
		{"comma-separated", authorizeQuery("myapp", appRedirect, strings.Join(appScopes, ","), "s"), "invalid_scope"},
		{"wrong response type", func() url.Values {
			q := authorizeQuery("myapp", appRedirect, scopes, "s")
			q.Set("response_type", "token")
			return q
		}(), "unsupported_response_type"},
		{"implicit app asking a code", func() url.Values {
			q := authorizeQuery("spa", implicitRedir, scopes, "s")
			q.Set("response_type", "code")
			return q
		}(), "unsupported_response_type"},
		{"whitelisted app, other scopes", authorizeQuery("trusted", trustedRedirect, "secrets:get:x", "s"), "invalid_scope"},
		{"huge state", authorizeQuery("myapp", appRedirect, scopes, strings.Repeat("s", 5000)), "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.authorize(tc.q, h.alice)
			loc := res.Header.Get("Location")
			if tc.wantError == "" {
				if res.StatusCode != http.StatusBadRequest || loc != "" {
					t.Fatalf("status %d, Location %q; want a 400 page", res.StatusCode, loc)
				}
			} else {
				u, _ := url.Parse(loc)
				p := u.Query()
				if u.Fragment != "" {
					p, _ = url.ParseQuery(u.Fragment)
				}
				if res.StatusCode != http.StatusFound || p.Get("error") != tc.wantError || p.Get("code") != "" {
					t.Fatalf("status %d, Location %q; want error=%s", res.StatusCode, loc, tc.wantError)
				}
			}
			if got := h.counts(); got != (stateCounts{}) {
				t.Fatalf("stored %+v", got)
			}
		})
	}
}

// TestOAuthAuthorizeWithoutSession: the Strict session cookie is missing
// on a navigation from the app's site; a same-origin page re-navigates
// once, then the sign-in choices come back to the same request.
func TestOAuthAuthorizeWithoutSession(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s")
	res := h.authorize(q, nil, "Sec-Fetch-Site", "cross-site")
	body := readBody(t, res)
	m := regexp.MustCompile(`http-equiv="refresh" content="0;url=([^"]+)"`).FindStringSubmatch(body)
	if res.StatusCode != http.StatusOK || m == nil || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("want a re-navigation page, got %d %s", res.StatusCode, body)
	}
	again, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil || again.Path != "/login/oauth/authorize" || again.Query().Get("client_id") != "myapp" {
		t.Fatalf("re-navigation to %q", m[1])
	}
	// with the cookie the re-navigation reaches the consent page
	h.consentPage(again.Query(), h.alice)
	// without it, the sign-in choices, each returning here
	res = h.authorize(again.Query(), nil, "Sec-Fetch-Site", "same-origin")
	body = readBody(t, res)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "/login/fake?mode=redirect&amp;returnTo=") ||
		!strings.Contains(body, "/login/other?") || strings.Contains(body, renavParam) {
		t.Fatalf("sign-in page: %d %s", res.StatusCode, body)
	}
	if got := h.counts(); got != (stateCounts{consents: 1}) {
		t.Fatalf("stored %+v", got)
	}
}

// TestOAuthDecisionRefusals: every forged, foreign or stale decision
// answers 4xx and creates nothing; a forged one does not use up the
// user's pending consent.
func TestOAuthDecisionRefusals(t *testing.T) {
	h := newOAuthHarness(t)
	h.fake.addUser("code-bob", User{IdentityID: "bob", Roles: []string{"fake-group:admins"}})
	bob := h.signIn("code-bob")
	alice2 := h.signIn("code-alice") // another browser of alice
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s")
	_, tx, csrf := h.consentPage(q, h.alice)
	_, _, bobCSRF := h.consentPage(q, bob)
	tests := []struct {
		name    string
		form    url.Values
		cookie  *http.Cookie
		headers []string
		want    int
	}{
		{"no CSRF token", url.Values{"transaction_id": {tx}, "decision": {"allow"}, "scope": appScopes}, h.alice, nil, 400},
		{"forged CSRF token", allowForm(tx, randomToken(32)), h.alice, nil, 403},
		{"another page's CSRF token", allowForm(tx, bobCSRF), h.alice, nil, 403},
		{"another user's transaction", allowForm(tx, csrf), bob, nil, 403},
		{"another session of the same user", allowForm(tx, csrf), alice2, nil, 403},
		{"no session", allowForm(tx, csrf), nil, nil, 401},
		{"unknown transaction", allowForm(randomToken(32), csrf), h.alice, nil, 400},
		{"cross-site post", allowForm(tx, csrf), h.alice, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403},
		{"same-site post", allowForm(tx, csrf), h.alice, []string{"Sec-Fetch-Site", "same-site", "Origin", "https://x.tc.example.com"}, 403},
		{"old browser, foreign origin", allowForm(tx, csrf), h.alice, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.decide(tc.form, tc.cookie, tc.headers...)
			if res.StatusCode != tc.want || res.Header.Get("Location") != "" {
				t.Fatalf("status %d (Location %q), want %d", res.StatusCode, res.Header.Get("Location"), tc.want)
			}
			if got := h.counts(); got != (stateCounts{consents: 2}) {
				t.Fatalf("state %+v: want both consents pending, nothing else", got)
			}
		})
	}
	// the real page still works once, then the transaction is gone
	codeFrom(t, h.decide(allowForm(tx, csrf), h.alice), appRedirect, "s")
	if res := h.decide(allowForm(tx, csrf), h.alice); res.StatusCode != http.StatusBadRequest || h.counts().codes != 1 {
		t.Fatalf("replayed decision: %d, %+v", res.StatusCode, h.counts())
	}
	// an expired transaction
	_, tx2, csrf2 := h.consentPage(q, h.alice)
	h.now = h.now.Add(ConsentLifetime + time.Second)
	if res := h.decide(allowForm(tx2, csrf2), h.alice); res.StatusCode != http.StatusBadRequest || h.counts().codes != 1 {
		t.Fatalf("expired transaction: %d", res.StatusCode)
	}
}

func TestOAuthDeny(t *testing.T) {
	h := newOAuthHarness(t)
	for _, tc := range []struct{ app, redirect, part string }{{"myapp", appLoopback, "?x=1&error=access_denied&state=s"}, {"spa", implicitRedir, "#error=access_denied&state=s"}} {
		_, tx, csrf := h.consentPage(authorizeQuery(tc.app, tc.redirect, strings.Join(appScopes, " "), "s"), h.alice)
		form := allowForm(tx, csrf)
		form.Set("decision", "deny")
		res := h.decide(form, h.alice)
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || loc != strings.Split(tc.redirect, "?")[0]+tc.part {
			t.Fatalf("deny: %d %q", res.StatusCode, loc)
		}
	}
	if got := h.counts(); got != (stateCounts{}) {
		t.Fatalf("stored %+v", got)
	}
}

// TestOAuthDecisionNarrows: the user may narrow the scopes, describe the
// client and shorten (not lengthen past maxExpires) its life; the scopes
// are also cut to what the user holds.
func TestOAuthDecisionNarrows(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s")
	_, tx, csrf := h.consentPage(q, h.alice)
	form := allowForm(tx, csrf)
	form["scope"] = []string{"secrets:get:x"}
	form.Set("description", "my laptop")
	form.Set("expires", "3000-01-01T00:00:00.000Z")
	tok := h.accessToken(codeFrom(t, h.decide(form, h.alice), appRedirect, "s"), appRedirect, "myapp")
	c, _ := h.mb.Client(h.credentialsReply(h.credentials("Bearer " + tok)).Credentials.ClientID)
	if !sameScopeSet(c.Scopes, []string{"secrets:get:x"}) || c.Description != "my laptop" || !c.Expires.Equal(h.now.AddDate(0, 0, 30)) {
		t.Fatalf("client %+v", c)
	}
	// a scope outside the app's set is refused
	_, tx, csrf = h.consentPage(q, h.alice)
	form = allowForm(tx, csrf)
	form["scope"] = []string{"auth:*"}
	if loc := h.decide(form, h.alice).Header.Get("Location"); !strings.Contains(loc, "error=invalid_request") || h.counts().codes != 0 {
		t.Fatalf("widened scopes: %q", loc)
	}
	// alice's roles no longer cover secrets:get:x: the client lacks it
	h.fake.addUser("code-alice", User{IdentityID: "alice", Roles: []string{"fake-group:other"}})
	h.setRoles(true)
	r2, _ := scopeengine.NewResolver([]scopeengine.Role{{RoleID: "login-identity:*", Scopes: []string{"auth:create-client:<..>/*"}},
		{RoleID: "fake-group:other", Scopes: []string{"queue:*"}}})
	h.mb.mu.Lock()
	h.mb.resolver = r2
	h.mb.mu.Unlock()
	tok = h.accessToken(h.codeFor(q), appRedirect, "myapp")
	c, _ = h.mb.Client(h.credentialsReply(h.credentials("Bearer " + tok)).Credentials.ClientID)
	if !sameScopeSet(c.Scopes, []string{"queue:create-task:proj/*"}) {
		t.Fatalf("scopes %v, want the intersection with the user's", c.Scopes)
	}
}

func TestOAuthTokenRefusals(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s")
	tests := []struct {
		name      string
		exchange  func(code string) *http.Response
		wantError string
		status    int
	}{
		{"another app", func(c string) *http.Response { return h.token(c, appRedirect, "spa") }, "invalid_grant", 400},
		{"another redirect URI", func(c string) *http.Response { return h.token(c, appLoopback, "myapp") }, "invalid_grant", 400},
		{"unknown app", func(c string) *http.Response { return h.token(c, appRedirect, "nope") }, "invalid_client", 401},
		{"unknown code", func(c string) *http.Response { return h.token(randomToken(32), appRedirect, "myapp") }, "invalid_grant", 400},
		{"no code", func(c string) *http.Response { return h.token("", appRedirect, "myapp") }, "invalid_request", 400},
		{"expired code", func(c string) *http.Response {
			h.now = h.now.Add(OAuthCodeLifetime + time.Second)
			defer func() { h.now = h.now.Add(-OAuthCodeLifetime - time.Second) }()
			return h.token(c, appRedirect, "myapp")
		}, "invalid_grant", 400},
		{"wrong grant type", func(c string) *http.Response {
			req := httptest.NewRequest("POST", testPublicURL+"/login/oauth/token", strings.NewReader(url.Values{
				"grant_type": {"client_credentials"}, "code": {c}, "redirect_uri": {appRedirect}, "client_id": {"myapp"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return h.do(req)
		}, "unsupported_grant_type", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code := h.codeFor(q)
			res := tc.exchange(code)
			var e struct{ Error string }
			if res.StatusCode != tc.status || json.NewDecoder(res.Body).Decode(&e) != nil || e.Error != tc.wantError {
				t.Fatalf("status %d error %q, want %d %s", res.StatusCode, e.Error, tc.status, tc.wantError)
			}
			if h.counts().tokens != 0 || res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("stored %+v", h.counts())
			}
			h.mb.Apply(t.Context(), Command{Op: OpDelete, Kind: KindCode, Keys: []string{KeyOf(code)}})
		})
	}
	// a replayed code: the second exchange fails and stores nothing more
	code := h.codeFor(q)
	h.accessToken(code, appRedirect, "myapp")
	res := h.token(code, appRedirect, "myapp")
	if res.StatusCode != http.StatusBadRequest || h.counts().tokens != 1 {
		t.Fatalf("replayed code: %d, %+v", res.StatusCode, h.counts())
	}
}

func TestOAuthCredentialsRefusals(t *testing.T) {
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s")
	tests := []struct {
		name   string
		before func(h *oauthHarness)
		auth   func(tok, code string) string
	}{
		{"wrong token", nil, func(_, _ string) string { return "Bearer " + randomToken(32) }},
		{"no header", nil, func(_, _ string) string { return "" }},
		{"another scheme", nil, func(tok, _ string) string { return "Basic " + tok }},
		{"no token", nil, func(_, _ string) string { return "Bearer " }},
		{"the code instead", nil, func(_, code string) string { return "Bearer " + code }},
		{"expired token", func(h *oauthHarness) { h.now = h.now.Add(OAuthTokenLifetime + time.Second) }, nil},
		{"user removed", func(h *oauthHarness) { h.fake.removeUser("alice") }, nil},
		{"provider down", func(h *oauthHarness) { h.fake.refreshErr = io.ErrUnexpectedEOF }, nil},
		{"no auth:create-client", func(h *oauthHarness) { h.setRoles(false) }, nil},
		{"user lost the scopes", func(h *oauthHarness) {
			h.fake.addUser("code-alice", User{IdentityID: "alice", Roles: []string{"fake-group:gone"}})
		}, nil},
		{"clientId taken meanwhile", func(h *oauthHarness) {
			for _, r := range h.mb.records {
				var d clientDetails
				if r.Kind == KindToken && json.Unmarshal(r.Data, &d) == nil {
					h.mb.addClient(Client{ClientID: d.ClientID, Scopes: []string{"*"}})
				}
			}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newOAuthHarness(t)
			code := h.codeFor(q)
			tok := h.accessToken(code, appRedirect, "myapp")
			if tc.before != nil {
				tc.before(h)
			}
			clientsBefore := len(h.mb.ListClients("fake/"))
			auth := "Bearer " + tok
			if tc.auth != nil {
				auth = tc.auth(tok, code)
			}
			res := h.credentials(auth)
			body := readBody(t, res)
			want := http.StatusBadRequest
			if tc.name == "provider down" {
				want = http.StatusServiceUnavailable
			}
			if res.StatusCode != want || (want == 400 && !strings.Contains(body, msgNoOAuthCredentials)) {
				t.Fatalf("status %d %s\n%s", res.StatusCode, body, h.logText())
			}
			if n := len(h.mb.ListClients("fake/")); n != clientsBefore {
				t.Fatalf("clients: %d, want %d", n, clientsBefore)
			}
			if strings.Contains(h.logText(), tok) || strings.Contains(h.logText(), code) {
				t.Fatal("a token or code in the log")
			}
		})
	}
}

// TestOAuthUserGoneAtDecision: the provider no longer knows the user when
// they allow: nothing is issued.
func TestOAuthUserGoneAtDecision(t *testing.T) {
	h := newOAuthHarness(t)
	_, tx, csrf := h.consentPage(authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s"), h.alice)
	h.fake.removeUser("alice")
	res := h.decide(allowForm(tx, csrf), h.alice)
	if res.StatusCode/100 != 4 || res.Header.Get("Location") != "" {
		t.Fatalf("status %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if got := h.counts(); got != (stateCounts{}) {
		t.Fatalf("stored %+v", got)
	}
}

func TestOAuthCORS(t *testing.T) {
	h := newOAuthHarness(t)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"https://app.example", true}, {"http://127.0.0.1:5000", true}, {"https://evil.example", false}, {testUIOrigin, false}} {
		for _, path := range []string{"/login/oauth/token", "/login/oauth/credentials"} {
			req := httptest.NewRequest("OPTIONS", testPublicURL+path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			res := h.do(req)
			if got := res.Header.Get("Access-Control-Allow-Origin"); (got == tc.origin) != tc.ok || (res.StatusCode == 204) != tc.ok {
				t.Errorf("preflight %s from %s: %d, allow-origin %q", path, tc.origin, res.StatusCode, got)
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s: credentials allowed", path)
			}
		}
	}
}

func TestOAuthConsentPageHeaders(t *testing.T) {
	h := newOAuthHarness(t)
	res := h.authorize(authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "<script>"), h.alice)
	body := readBody(t, res)
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "form-action 'self' https://app.example", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(body, "<script") || res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("headers %v", res.Header)
	}
}

// TestOAuthSignInRoundTrip: a user not signed in follows the sign-in
// choice of the authorization page (redirect mode), signs in at the
// provider, comes back to the same authorization request and, after the
// same-site re-navigation that brings the Strict cookie, reaches consent.
func TestOAuthSignInRoundTrip(t *testing.T) {
	h := newOAuthHarness(t)
	q := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "rt")
	body := readBody(t, h.authorize(q, nil, "Sec-Fetch-Site", "same-origin"))
	m := regexp.MustCompile(`href="(/login/fake\?[^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sign-in link: %s", body)
	}
	res := h.get(html.UnescapeString(m[1]))
	loc, _ := url.Parse(res.Header.Get("Location"))
	state := loc.Query().Get("state")
	res = h.get("/login/fake/callback?"+url.Values{"code": {"code-alice"}, "state": {state}}.Encode(), cookieNamed(res, flowCookieName(state)))
	cookie := cookieNamed(res, SessionCookie)
	target := continueTarget(t, res)
	back, err := url.Parse(target)
	if cookie == nil || err != nil || back.Path != "/login/oauth/authorize" {
		t.Fatalf("callback: %d %q", res.StatusCode, target)
	}
	// the end of a redirect chain from the provider: no Strict cookie
	body = readBody(t, h.authorize(back.Query(), nil, "Sec-Fetch-Site", "cross-site"))
	m = regexp.MustCompile(`content="0;url=([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no re-navigation: %s", body)
	}
	again, _ := url.Parse(html.UnescapeString(m[1]))
	_, tx, csrf := h.consentPage(again.Query(), cookie)
	codeFrom(t, h.decide(allowForm(tx, csrf), cookie), appRedirect, "rt")
}
