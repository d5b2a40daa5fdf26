package login

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStartRedirectsToProvider(t *testing.T) {
	h := newBrowserHarness(t)
	res := h.get("/login/fake")
	if res.StatusCode != http.StatusFound {
		t.Fatalf("status %d", res.StatusCode)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	state := loc.Query().Get("state")
	c := cookieNamed(res, flowCookieName(state))
	switch {
	case len(state) != 43:
		t.Fatalf("state %q", state)
	case c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.MaxAge != 600:
		t.Fatalf("flow cookie %+v", c)
	case c.Path != "/login/fake":
		t.Fatalf("flow cookie path %q", c.Path)
	case res.Header.Get("Cache-Control") != "no-store":
		t.Fatal("no no-store")
	case h.mb.puts != 0:
		t.Fatal("GET /login/<strategy> wrote to the replicated state")
	}
}

// TestStartProviderDown: a provider whose discovery fails gives 503 and
// no flow cookie, not a redirect to an empty URL.
func TestStartProviderDown(t *testing.T) {
	h := newBrowserHarness(t)
	h.fake.down = true
	res := h.get("/login/fake")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Location") != "" || len(res.Cookies()) != 0 {
		t.Fatalf("status %d, location %q, cookies %v", res.StatusCode, res.Header.Get("Location"), res.Cookies())
	}
}

func TestStartRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"unknown strategy", "/login/nope", 404, "ResourceNotFound"},
		{"bad mode", "/login/fake?mode=iframe", 400, "InputError"},
		{"redirect without returnTo", "/login/fake?mode=redirect", 400, "InputError"},
		{"scheme-relative", "/login/fake?mode=redirect&returnTo=" + url.QueryEscape("//evil.example/x"), 400, "InputError"},
		{"backslash", "/login/fake?mode=redirect&returnTo=" + url.QueryEscape(`/\evil.example`), 400, "InputError"},
		{"absolute URL", "/login/fake?mode=redirect&returnTo=" + url.QueryEscape("https://evil.example/"), 400, "InputError"},
		{"relative path", "/login/fake?mode=redirect&returnTo=evil", 400, "InputError"},
		{"control char", "/login/fake?mode=redirect&returnTo=" + url.QueryEscape("/a\nb"), 400, "InputError"},
		{"javascript", "/login/fake?mode=redirect&returnTo=" + url.QueryEscape("javascript:alert(1)"), 400, "InputError"},
		{"too long", "/login/fake?mode=redirect&returnTo=/" + strings.Repeat("a", maxReturnTo), 400, "InputError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			res := h.get(tc.path)
			var body struct{ Code, Message string }
			json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != tc.status || body.Code != tc.code {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, body.Code, tc.status, tc.code)
			}
			for _, c := range res.Cookies() {
				if strings.HasPrefix(c.Name, flowCookiePrefix) {
					t.Fatal("flow cookie set on a refused start")
				}
			}
		})
	}
}

func TestValidReturnTo(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/tasks?x=1#frag": true, "/a/b%2Fc": true,
		"": false, "//evil": false, "/\\evil": false, "\\\\evil": false, "http://x/": false, "x": false,
		"/a b": false, "/a\tb": false, "/\x00": false, "/%zz": false, "///evil": false,
	} {
		if got := validReturnTo(p); got != want {
			t.Errorf("validReturnTo(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestPopupSignIn: the callback stores grant and session, sets the
// session cookie, clears the flow cookie and renders the postMessage page.
func TestPopupSignIn(t *testing.T) {
	h := newBrowserHarness(t)
	state, fc := h.start("fake", "")
	res := h.get("/login/fake/callback?code=code-alice&state="+state, fc)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	sc := cookieNamed(res, SessionCookie)
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.MaxAge != 7*24*3600 {
		t.Fatalf("session cookie %+v", sc)
	}
	if c := cookieNamed(res, flowCookieName(state)); c == nil || c.MaxAge >= 0 {
		t.Fatalf("flow cookie not cleared: %+v", c)
	}
	if h.mb.count(KindSession) != 1 || h.mb.count(KindGrant) != 1 {
		t.Fatalf("sessions %d grants %d", h.mb.count(KindSession), h.mb.count(KindGrant))
	}
	csp := res.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(string(body), `<script nonce="`+m[1]+`">`) || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q does not match the script nonce", csp)
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if res.Header.Get(k) != v {
			t.Errorf("%s = %q", k, res.Header.Get(k))
		}
	}
	msg := popupMessage(t, string(body))
	if msg.Type != "login" || msg.IdentityProviderID != "fake" || msg.ProviderExpires == "" {
		t.Fatalf("message %+v", msg)
	}
	prof, err := base64.StdEncoding.DecodeString(msg.EncodedProfile)
	var p loginProfile
	if err != nil || json.Unmarshal(prof, &p) != nil || p.Identity != "fake/alice" || p.DisplayName != "Alice" {
		t.Fatalf("profile %s %v", prof, err)
	}
	if !strings.Contains(string(body), `window.opener.postMessage(message, origin)`) || !strings.Contains(string(body), `var origin = "https://tc.example.com";`) {
		t.Fatalf("page does not post to the public origin:\n%s", body)
	}
}

// popupMessage extracts the message literal of the popup page.
func popupMessage(t *testing.T, page string) loginMessage {
	t.Helper()
	m := regexp.MustCompile(`var message = (\{.*\});`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no message in page:\n%s", page)
	}
	var msg loginMessage
	if err := json.Unmarshal([]byte(m[1]), &msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestPopupPageEscapes: a provider-controlled display name cannot break
// out of the script.
func TestPopupPageEscapes(t *testing.T) {
	h := newBrowserHarness(t)
	h.fake.addUser("code-x", User{IdentityID: "x", DisplayName: `</script><script>alert(1)</script>"'`})
	state, fc := h.start("fake", "")
	res := h.get("/login/fake/callback?code=code-x&state="+state, fc)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || strings.Contains(string(body), "<script>alert") {
		t.Fatalf("status %d, page:\n%s", res.StatusCode, body)
	}
}

func TestRedirectModeSignIn(t *testing.T) {
	h := newBrowserHarness(t)
	state, fc := h.start("fake", "?mode=redirect&returnTo="+url.QueryEscape("/tasks/abc?x=1"))
	res := h.get("/login/fake/callback?code=code-alice&state="+state, fc)
	// A page that navigates there itself, not a 303: see renderContinue.
	if got := continueTarget(t, res); got != testPublicURL+"/tasks/abc?x=1" || res.Header.Get("Location") != "" {
		t.Fatalf("status %d, continues to %q, location %q", res.StatusCode, got, res.Header.Get("Location"))
	}
	if cookieNamed(res, SessionCookie) == nil {
		t.Fatal("no session cookie")
	}
}

// TestTwoTabsSignIn: two sign-ins in flight at once both finish.
func TestTwoTabsSignIn(t *testing.T) {
	h := newBrowserHarness(t)
	h.fake.addUser("code-bob", User{IdentityID: "bob"})
	s1, c1 := h.start("fake", "")
	s2, c2 := h.start("fake", "")
	if c1.Name == c2.Name {
		t.Fatal("two flows share a cookie name")
	}
	for _, f := range []struct {
		state, code string
		c           *http.Cookie
	}{{s2, "code-bob", c2}, {s1, "code-alice", c1}} {
		// the browser sends both flow cookies
		res := h.get("/login/fake/callback?code="+f.code+"&state="+f.state, c1, c2)
		if res.StatusCode != 200 {
			t.Fatalf("callback %s: %d", f.code, res.StatusCode)
		}
	}
	if h.mb.count(KindSession) != 2 {
		t.Fatalf("%d sessions", h.mb.count(KindSession))
	}
}

// TestCallbackRefusesBadInput: every bad callback answers 400 (404 for an
// unknown strategy) and creates no session, no grant and no cookie.
func TestCallbackRefusesBadInput(t *testing.T) {
	type setup func(h *browserHarness) (path string, cookies []*http.Cookie)
	flowFor := func(h *browserHarness) (string, *http.Cookie) { return h.start("fake", "") }
	for _, tc := range []struct {
		name   string
		status int
		setup  setup
	}{
		{"missing state", 400, func(h *browserHarness) (string, []*http.Cookie) {
			_, c := flowFor(h)
			return "/login/fake/callback?code=code-alice", []*http.Cookie{c}
		}},
		{"wrong state", 400, func(h *browserHarness) (string, []*http.Cookie) {
			_, c := flowFor(h)
			return "/login/fake/callback?code=code-alice&state=" + randomToken(32), []*http.Cookie{c}
		}},
		{"state mismatch inside the cookie", 400, func(h *browserHarness) (string, []*http.Cookie) {
			_, c := flowFor(h)
			other := randomToken(32)
			c.Name = flowCookieName(other) // another flow's sealed value under this state's name
			return "/login/fake/callback?code=code-alice&state=" + other, []*http.Cookie{c}
		}},
		{"missing flow cookie", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, _ := flowFor(h)
			return "/login/fake/callback?code=code-alice&state=" + s, nil
		}},
		{"tampered flow cookie", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			b := []byte(c.Value)
			b[len(b)/2] ^= 1
			if b[len(b)/2] == c.Value[len(b)/2] {
				b[len(b)/2] = 'A'
			}
			c.Value = string(b)
			return "/login/fake/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"undecryptable flow cookie", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			c.Value = randomToken(90)
			return "/login/fake/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"flow cookie of another keyring", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			h.svc.cfg.Sealer = newAEADSealer(t)
			return "/login/fake/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"expired flow cookie", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			h.now = h.now.Add(FlowLifetime + time.Second)
			return "/login/fake/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"flow cookie from the future", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			h.now = h.now.Add(-2 * flowClockSkew)
			return "/login/fake/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"other strategy's callback", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			h.other.addUser("code-alice", User{IdentityID: "alice"})
			return "/login/other/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"unknown strategy", 404, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			return "/login/nope/callback?code=code-alice&state=" + s, []*http.Cookie{c}
		}},
		{"provider error", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			return "/login/fake/callback?error=access_denied&error_description=%3Cscript%3E&state=" + s, []*http.Cookie{c}
		}},
		{"missing code", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			return "/login/fake/callback?state=" + s, []*http.Cookie{c}
		}},
		{"code the provider refuses", 400, func(h *browserHarness) (string, []*http.Cookie) {
			s, c := flowFor(h)
			return "/login/fake/callback?code=bogus&state=" + s, []*http.Cookie{c}
		}},
		{"oversized state", 400, func(h *browserHarness) (string, []*http.Cookie) {
			_, c := flowFor(h)
			return "/login/fake/callback?code=code-alice&state=" + strings.Repeat("s", 300), []*http.Cookie{c}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			path, cookies := tc.setup(h)
			res := h.get(path, cookies...)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if strings.Contains(string(body), "<script") && tc.status == 400 {
				t.Fatalf("failure page has a script:\n%s", body)
			}
			if c := cookieNamed(res, SessionCookie); c != nil {
				t.Fatal("session cookie set")
			}
			if n := h.mb.count(KindSession) + h.mb.count(KindGrant); n != 0 {
				t.Fatalf("%d records created", n)
			}
		})
	}
}

// TestCallbackReplay: the same callback URL with the same flow cookie is
// refused the second time, even though the fake provider would accept the
// code again.
func TestCallbackReplay(t *testing.T) {
	h := newBrowserHarness(t)
	state, fc := h.start("fake", "")
	path := "/login/fake/callback?code=code-alice&state=" + state
	if res := h.get(path, fc); res.StatusCode != 200 {
		t.Fatalf("first: %d", res.StatusCode)
	}
	if res := h.get(path, fc); res.StatusCode != 400 || cookieNamed(res, SessionCookie) != nil {
		t.Fatalf("replay: %d", res.StatusCode)
	}
	if h.mb.count(KindSession) != 1 {
		t.Fatalf("%d sessions after a replay", h.mb.count(KindSession))
	}
}

// TestCallbackStoreDown: the replicated state refusing writes is 503.
func TestCallbackStoreDown(t *testing.T) {
	h := newBrowserHarness(t)
	state, fc := h.start("fake", "")
	h.mb.applyErr = ErrUnavailable
	if res := h.get("/login/fake/callback?code=code-alice&state="+state, fc); res.StatusCode != 503 || cookieNamed(res, SessionCookie) != nil {
		t.Fatalf("status %d", res.StatusCode)
	}
}

func TestSessionsPerIdentityBounded(t *testing.T) {
	h := newBrowserHarness(t)
	h.svc.cfg.MaxSessionsPerIdentity = 2
	var cookies []*http.Cookie
	for i := 0; i < 3; i++ {
		cookies = append(cookies, h.signIn("code-alice"))
		h.now = h.now.Add(time.Second)
	}
	if n := h.mb.count(KindSession); n != 2 {
		t.Fatalf("%d sessions", n)
	}
	if _, ok, _ := h.svc.sessionFrom(reqWith(cookies[0])); ok {
		t.Fatal("oldest session survived")
	}
	if _, ok, _ := h.svc.sessionFrom(reqWith(cookies[2])); !ok {
		t.Fatal("newest session missing")
	}
}

func reqWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", testPublicURL+"/login/credentials", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestLogout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string]string
		form    bool
		status  int
		ended   bool
	}{
		{"same origin fetch", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": testPublicURL}, false, 204, true},
		{"no browser headers (curl)", nil, false, 204, true},
		{"allowed front end", map[string]string{"Origin": testUIOrigin, "Sec-Fetch-Site": "same-site"}, false, 204, true},
		{"form post", map[string]string{"Sec-Fetch-Site": "same-origin"}, true, 303, true},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, false, 403, false},
		{"cross-site form", map[string]string{"Sec-Fetch-Site": "cross-site"}, true, 403, false},
		{"foreign origin without fetch metadata", map[string]string{"Origin": "https://evil.example"}, false, 403, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			sc := h.signIn("code-alice")
			var body io.Reader
			if tc.form {
				body = strings.NewReader("returnTo=%2Fbye")
			}
			req := httptest.NewRequest("POST", testPublicURL+"/login/logout", body)
			if tc.form {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			req.AddCookie(sc)
			res := h.do(req)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.form && tc.status == 303 && res.Header.Get("Location") != testPublicURL+"/bye" {
				t.Fatalf("location %q", res.Header.Get("Location"))
			}
			_, live, _ := h.svc.sessionFrom(reqWith(sc))
			if live == tc.ended {
				t.Fatalf("session live = %v after logout", live)
			}
			if tc.ended {
				if c := cookieNamed(res, SessionCookie); c == nil || c.MaxAge >= 0 {
					t.Fatal("session cookie not cleared")
				}
			}
		})
	}
}

func TestLogoutStoreDown(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	h.mb.applyErr = ErrUnavailable
	req := httptest.NewRequest("POST", testPublicURL+"/login/logout", nil)
	req.AddCookie(sc)
	if res := h.do(req); res.StatusCode != 503 || cookieNamed(res, SessionCookie) != nil {
		t.Fatalf("status %d; the cookie must stay while the session lives", res.StatusCode)
	}
}

func TestLoopbackCookiesNotSecure(t *testing.T) {
	for _, pub := range []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"} {
		s, err := New(Config{PublicURL: pub, Sealer: newAEADSealer(t)}, newMemBackend())
		if err != nil {
			t.Fatal(err)
		}
		if s.secureCookies() {
			t.Errorf("%s: Secure cookies on loopback", pub)
		}
	}
	s, _ := New(Config{PublicURL: "http://localhost.evil.example", Sealer: newAEADSealer(t)}, newMemBackend())
	if !s.secureCookies() {
		t.Error("localhost.evil.example treated as loopback")
	}
}

// TestNoSecretsInLogs runs every path with secrets (flow cookie, state,
// code, session cookie, provider tokens, issuer token, credentials) and
// checks that none of them reaches the log.
func TestNoSecretsInLogs(t *testing.T) {
	h := newBrowserHarness(t)
	state, fc := h.start("fake", "")
	res := h.get("/login/fake/callback?code=code-alice&state="+state, fc)
	sc := cookieNamed(res, SessionCookie)
	// the same again: refused replay
	h.get("/login/fake/callback?code=code-alice&state="+state, fc)
	// a refused callback with a tampered cookie and a provider error
	s2, fc2 := h.start("fake", "")
	bad := *fc2
	bad.Value = fc2.Value[:len(fc2.Value)-2] + "AA"
	h.get("/login/fake/callback?code=code-secret-2&state="+s2, &bad)
	h.get("/login/fake/callback?error=access_denied&error_description=secret-desc&state="+s2, fc2)
	credRes := h.get("/login/credentials", sc)
	var reply CredentialsReply
	json.NewDecoder(credRes.Body).Decode(&reply)
	h.graphql(gqlBody(credsQuery), "application/json", sc)
	h.fake.refreshErr = errors.New("transient")
	h.get("/login/credentials", sc)
	h.fake.refreshErr = nil
	delete(h.mb.clients, testIssuer)
	h.get("/login/credentials", sc)
	req := httptest.NewRequest("POST", testPublicURL+"/login/logout", nil)
	req.AddCookie(sc)
	h.do(req)

	logs := h.logText()
	if !strings.Contains(logs, "signed in") {
		t.Fatalf("log capture is not working:\n%s", logs)
	}
	for what, secret := range map[string]string{
		"session cookie": sc.Value, "flow cookie": fc.Value, "state": state, "second state": s2,
		"code": "code-alice", "refused code": "code-secret-2", "provider access token": "provider-access-",
		"provider refresh token": "provider-refresh-", "issuer token": testIssuerTok, "temporary access token": reply.Credentials.AccessToken,
		"certificate": reply.Credentials.Certificate, "provider error description": "secret-desc",
	} {
		if secret == "" {
			t.Fatalf("%s: empty (test set-up failed)", what)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", what)
		}
	}
}
