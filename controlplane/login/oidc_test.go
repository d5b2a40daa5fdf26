package login

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// The OIDC strategy against mockoidc, an in-process OpenID provider.

const provTestRedirect = "https://tc.example/login/corp/callback"

func provDiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// provNopSealer satisfies Config.Sealer for tests that never seal.
type provNopSealer struct{}

func (provNopSealer) Seal(id string, p []byte) ([]byte, error) { return p, nil }
func (provNopSealer) Open(id string, s []byte) ([]byte, error) { return s, nil }

var (
	provKeysOnce sync.Once
	provOtherKey *rsa.PrivateKey // a key the provider never published
)

func provKeys(t testing.TB) *rsa.PrivateKey {
	provKeysOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		provOtherKey = k
	})
	return provOtherKey
}

// claimsUser is a mockoidc.User whose ID token and userinfo carry any
// claims (mockoidc's own user only knows a fixed set).
type claimsUser struct {
	mu    sync.Mutex
	sub   string
	extra map[string]any
	edit  func(jwt.MapClaims) // last word on the ID token's claims
}

func (u *claimsUser) ID() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sub
}

func (u *claimsUser) set(sub string, extra map[string]any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sub, u.extra = sub, extra
}

func (u *claimsUser) Userinfo([]string) ([]byte, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := map[string]any{"sub": u.sub}
	for k, v := range u.extra {
		m[k] = v
	}
	return json.Marshal(m)
}

func (u *claimsUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	rc := base.RegisteredClaims
	mc := jwt.MapClaims{"iss": rc.Issuer, "sub": rc.Subject, "aud": []string(rc.Audience),
		"exp": rc.ExpiresAt.Unix(), "iat": rc.IssuedAt.Unix(), "nbf": rc.NotBefore.Unix(), "jti": rc.ID}
	if base.Nonce != "" {
		mc["nonce"] = base.Nonce
	}
	for k, v := range u.extra {
		mc[k] = v
	}
	if u.edit != nil {
		u.edit(mc)
	}
	return mc, nil
}

func startMockOIDC(t *testing.T, mws ...func(http.Handler) http.Handler) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mw := range mws {
		m.AddMiddleware(mw)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

func mockStrategyConfig(m *mockoidc.MockOIDC) StrategyConfig {
	// mockoidc refuses offline_access, so the default scopes are not used here.
	return StrategyConfig{Name: "corp", Type: "oidc", ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		Issuer: m.Issuer(), Scopes: []string{"openid", "profile", "email", "groups"}, GroupsClaim: "groups"}
}

func newTestOIDC(t *testing.T, sc StrategyConfig, now func() time.Time) *oidcStrategy {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	st, err := newOIDCStrategy(Config{HTTPClient: &http.Client{Timeout: 5 * time.Second}, Now: now, Logger: provDiscardLogger()}, sc)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*oidcStrategy)
}

// mockSignIn is the browser's part: the authorize redirect, whose code it returns.
func mockSignIn(t *testing.T, st Strategy, m *mockoidc.MockOIDC, u mockoidc.User, nonce, verifier string) string {
	t.Helper()
	m.QueueUser(u)
	target := st.AuthCodeURL("state-1", nonce, verifier, provTestRedirect)
	if target == "" {
		t.Fatal("AuthCodeURL: provider not discovered")
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("state") != "state-1" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize answered %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func TestOIDCSignIn(t *testing.T) {
	m := startMockOIDC(t)
	st := newTestOIDC(t, mockStrategyConfig(m), nil)
	user := &claimsUser{sub: "user 1!", extra: map[string]any{"groups": []string{"eng", "design"}, "name": "Jane"}}
	verifier := oauth2.GenerateVerifier()
	code := mockSignIn(t, st, m, user, "nonce-1", verifier)
	u, g, err := st.Exchange(t.Context(), code, "nonce-1", verifier, provTestRedirect)
	if err != nil {
		t.Fatal(err)
	}
	if u.Identity() != "corp/user!201!21" || u.DisplayName != "Jane" {
		t.Errorf("user = %+v", u)
	}
	if strings.Join(u.Roles, ",") != "corp-group:eng,corp-group:design" {
		t.Errorf("roles = %v", u.Roles)
	}
	if d := time.Until(u.ProviderExpires); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("providerExpires %v is not the ID token's exp", u.ProviderExpires)
	}
	if g.Strategy != "corp" || g.Subject != "user 1!" || g.AccessToken == "" || g.RefreshToken == "" || g.Login != "" {
		t.Errorf("grant = %+v", g)
	}
	// PKCE is enforced end to end: the right code with another verifier fails.
	code = mockSignIn(t, st, m, user, "nonce-2", verifier)
	if _, _, err := st.Exchange(t.Context(), code, "nonce-2", oauth2.GenerateVerifier(), provTestRedirect); err == nil {
		t.Error("exchange with a wrong PKCE verifier succeeded")
	} else if strings.Contains(err.Error(), code) {
		t.Errorf("error %q contains the authorization code", err)
	}
}

func TestOIDCAuthCodeURLAndConfig(t *testing.T) {
	m := startMockOIDC(t)
	sc := mockStrategyConfig(m)
	sc.Scopes = nil
	st := newTestOIDC(t, sc, nil)
	u, err := url.Parse(st.AuthCodeURL("st", "nn", "verifier-0123456789-0123456789-0123456789", provTestRedirect))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{"scope": "openid profile email offline_access", "code_challenge_method": "S256",
		"nonce": "nn", "state": "st", "client_id": m.ClientID, "redirect_uri": provTestRedirect, "response_type": "code"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if q.Get("code_challenge") != oauth2.S256ChallengeFromVerifier("verifier-0123456789-0123456789-0123456789") {
		t.Error("code_challenge is not S256 of the verifier")
	}
	bad := []StrategyConfig{
		{Name: "x", Type: "oidc", ClientID: "c"},
		{Name: "x", Type: "oidc", ClientID: "c", Issuer: "ftp://x"},
		{Name: "x", Type: "oidc", Issuer: "https://x"},
		{Name: "x", Type: "oidc", ClientID: "c", Issuer: "https://x", Preset: "nope"},
		{Name: "x", Type: "oidc", ClientID: "c", Issuer: "https://x", Scopes: []string{"profile"}},
	}
	for _, sc := range bad {
		if _, err := newOIDCStrategy(Config{HTTPClient: http.DefaultClient, Now: time.Now, Logger: provDiscardLogger()}, sc); err == nil {
			t.Errorf("config %+v accepted", sc)
		}
	}
}

// idTokenRewriter lets a test replace the id_token of token answers.
func idTokenRewriter(fn *atomic.Pointer[func(string) string]) func(http.Handler) http.Handler {
	return tokenAnswerRewriter(func(_ url.Values, body map[string]any) {
		if f := fn.Load(); f != nil {
			if raw, ok := body["id_token"].(string); ok {
				body["id_token"] = (*f)(raw)
			}
		}
	})
}

func tokenAnswerRewriter(fn func(form url.Values, body map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.TokenEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			r.ParseForm()
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if rec.Code == http.StatusOK {
				var body map[string]any
				json.Unmarshal(b, &body)
				fn(r.Form, body)
				b, _ = json.Marshal(body)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	}
}

func jwtPayload(t testing.TB, raw string) map[string]any {
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// signJWT signs claims with go-jose (alg "none" is assembled by hand:
// go-jose refuses to make one).
func signJWT(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	if alg == "none" {
		h, _ := json.Marshal(map[string]string{"alg": "none", "kid": kid, "typ": "JWT"})
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCIDTokenRefused(t *testing.T) {
	other := provKeys(t)
	type tc struct {
		name     string
		edit     func(jwt.MapClaims)
		resign   func(m *mockoidc.MockOIDC, raw string) string
		idClaim  string
		extra    map[string]any
		nonce    string // at exchange; "" = the sign-in's
		clock    time.Duration
		errWants string
	}
	kidOf := func(m *mockoidc.MockOIDC) string { k, _ := m.Keypair.KeyID(); return k }
	cases := []tc{
		{name: "wrong nonce", nonce: "another-nonce", errWants: "nonce"},
		{name: "wrong audience", edit: func(c jwt.MapClaims) { c["aud"] = []string{"someone-else"} }, errWants: "audience"},
		{name: "wrong issuer", edit: func(c jwt.MapClaims) { c["iss"] = "https://evil.example/oidc" }, errWants: "issued by a different provider"},
		{name: "expired", clock: time.Hour, errWants: "expired"},
		{name: "missing sub", edit: func(c jwt.MapClaims) { delete(c, "sub") }, errWants: "identity claim"},
		{name: "identity claim not a string", idClaim: "email", extra: map[string]any{"email": 42}, errWants: "identity claim"},
		{name: "identity claim missing", idClaim: "email", errWants: "identity claim"},
		{name: "several audiences, azp another party", edit: func(c jwt.MapClaims) {
			c["aud"] = []string{c["aud"].([]string)[0], "other"}
			c["azp"] = "other"
		}, errWants: "azp"},
		{name: "bad signature", errWants: "signature", resign: func(m *mockoidc.MockOIDC, raw string) string {
			return signJWT(t, jose.RS256, other, kidOf(m), jwtPayload(t, raw))
		}},
		{name: "alg none", errWants: "refused", resign: func(m *mockoidc.MockOIDC, raw string) string {
			return signJWT(t, "none", nil, kidOf(m), jwtPayload(t, raw))
		}},
		{name: "HS256 keyed with the public key", errWants: "refused", resign: func(m *mockoidc.MockOIDC, raw string) string {
			pub, _ := x509.MarshalPKIXPublicKey(m.Keypair.PublicKey)
			return signJWT(t, jose.HS256, pub, kidOf(m), jwtPayload(t, raw))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rw atomic.Pointer[func(string) string]
			m := startMockOIDC(t, idTokenRewriter(&rw))
			if c.resign != nil {
				f := func(raw string) string { return c.resign(m, raw) }
				rw.Store(&f)
			}
			sc := mockStrategyConfig(m)
			sc.IdentityClaim = c.idClaim
			st := newTestOIDC(t, sc, func() time.Time { return time.Now().Add(c.clock) })
			user := &claimsUser{sub: "u1", extra: c.extra, edit: c.edit}
			verifier := oauth2.GenerateVerifier()
			code := mockSignIn(t, st, m, user, "nonce-1", verifier)
			nonce := c.nonce
			if nonce == "" {
				nonce = "nonce-1"
			}
			_, _, err := st.Exchange(t.Context(), code, nonce, verifier, provTestRedirect)
			if err == nil || !strings.Contains(err.Error(), c.errWants) {
				t.Fatalf("Exchange error = %v, want one mentioning %q", err, c.errWants)
			}
		})
	}
}

func TestOIDCGroupsClaim(t *testing.T) {
	cases := []struct {
		name   string
		sc     StrategyConfig
		claims string
		want   string
	}{
		{"list", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":["a","b c"]}`, "corp-group:a,corp-group:b c"},
		{"single string", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":"admins"}`, "corp-group:admins"},
		{"number ignored", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":7}`, ""},
		{"object ignored", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":{"a":true}}`, ""},
		{"null ignored", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":null}`, ""},
		{"absent", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u"}`, ""},
		{"mixed list keeps strings", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":["a",1,null,["x"],"b"]}`, "corp-group:a,corp-group:b"},
		{"unsafe names dropped", StrategyConfig{GroupsClaim: "groups"}, `{"sub":"u","groups":["admins*","","caf\u00e9","tab\there","ok"]}`, "corp-group:ok"},
		{"no groups claim configured", StrategyConfig{}, `{"sub":"u","groups":["a"]}`, ""},
		{"custom prefix", StrategyConfig{GroupsClaim: "roles", GroupRolePrefix: "login-group:corp/"}, `{"sub":"u","roles":["x"]}`, "login-group:corp/x"},
		{"mozilla-auth0 preset", StrategyConfig{Preset: "mozilla-auth0"},
			`{"sub":"ad|Mozilla-LDAP|jdoe","https://sso.mozilla.com/claim/groups":["team_moco","hris_is_staff"]}`,
			"mozilla-group:team_moco,mozilla-group:hris_is_staff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := c.sc
			sc.Name, sc.Type, sc.ClientID, sc.Issuer = "corp", "oidc", "cid", "https://idp.example"
			st := newTestOIDC(t, sc, nil)
			var claims map[string]any
			if err := json.Unmarshal([]byte(c.claims), &claims); err != nil {
				t.Fatal(err)
			}
			u, _, err := st.userFromClaims(claims, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(u.Roles, ","); got != c.want {
				t.Errorf("roles = %q, want %q", got, c.want)
			}
		})
	}
}

// signedIn runs a sign-in and returns the strategy, user and grant.
func signedIn(t *testing.T, m *mockoidc.MockOIDC, user *claimsUser) (*oidcStrategy, Grant) {
	t.Helper()
	st := newTestOIDC(t, mockStrategyConfig(m), nil)
	verifier := oauth2.GenerateVerifier()
	code := mockSignIn(t, st, m, user, "n", verifier)
	_, g, err := st.Exchange(t.Context(), code, "n", verifier, provTestRedirect)
	if err != nil {
		t.Fatal(err)
	}
	return st, g
}

func TestOIDCRefreshRotatesAndRereadsGroups(t *testing.T) {
	var rotations atomic.Int32
	var m *mockoidc.MockOIDC
	// A rotating provider: every refresh answer carries a new refresh
	// token (still one mockoidc accepts: same session, signed by its key).
	m = startMockOIDC(t, tokenAnswerRewriter(func(form url.Values, body map[string]any) {
		if form.Get("grant_type") != "refresh_token" {
			return
		}
		claims := jwt.MapClaims(jwtPayload(t, form.Get("refresh_token")))
		claims["rotation"] = rotations.Add(1)
		body["refresh_token"], _ = m.Keypair.SignJWT(claims)
	}))
	user := &claimsUser{sub: "u1", extra: map[string]any{"groups": []string{"a", "b"}}}
	st, g := signedIn(t, m, user)
	user.set("u1", map[string]any{"groups": []string{"b", "c"}})
	u, g2, changed, err := st.Refresh(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	if !changed || g2.RefreshToken == g.RefreshToken || g2.Subject != "u1" {
		t.Fatalf("refresh token not rotated: changed=%v", changed)
	}
	if strings.Join(u.Roles, ",") != "corp-group:b,corp-group:c" || u.Identity() != "corp/u1" {
		t.Errorf("user after refresh = %+v", u)
	}
	// The rotated token works in turn.
	if _, g3, changed, err := st.Refresh(t.Context(), g2); err != nil || !changed || g3.RefreshToken == g2.RefreshToken {
		t.Fatalf("second refresh: changed=%v err=%v", changed, err)
	}
}

func TestOIDCRefreshWithoutRotation(t *testing.T) {
	m := startMockOIDC(t)
	st, g := signedIn(t, m, &claimsUser{sub: "u1"})
	_, g2, changed, err := st.Refresh(t.Context(), g)
	if err != nil || changed || g2.RefreshToken != g.RefreshToken {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
}

func TestOIDCRefreshRefused(t *testing.T) {
	cases := []struct {
		name string
		se   mockoidc.ServerError
		gone bool
	}{
		{"invalid_grant 400", mockoidc.ServerError{Code: 400, Error: "invalid_grant", Description: "revoked"}, true},
		{"invalid_grant 401", mockoidc.ServerError{Code: 401, Error: "invalid_grant"}, true},
		{"other 400", mockoidc.ServerError{Code: 400, Error: "invalid_request"}, true},
		{"server error", mockoidc.ServerError{Code: 503, Error: "temporarily_unavailable"}, false},
		{"our client refused", mockoidc.ServerError{Code: 401, Error: "invalid_client"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := startMockOIDC(t)
			st, g := signedIn(t, m, &claimsUser{sub: "u1"})
			se := c.se
			m.QueueError(&se)
			_, _, _, err := st.Refresh(t.Context(), g)
			if err == nil {
				t.Fatal("refresh succeeded")
			}
			if errors.Is(err, ErrUserGone) != c.gone {
				t.Fatalf("ErrUserGone = %v, want %v (%v)", !c.gone, c.gone, err)
			}
			if !c.gone && !errors.Is(err, ErrProviderUnavailable) {
				t.Fatalf("transient error not ErrProviderUnavailable: %v", err)
			}
		})
	}
}

func TestOIDCRefreshOtherSubject(t *testing.T) {
	m := startMockOIDC(t)
	user := &claimsUser{sub: "u1"}
	st, g := signedIn(t, m, user)
	user.set("u2", nil) // the provider now says this grant is someone else's
	if _, _, _, err := st.Refresh(t.Context(), g); !errors.Is(err, ErrUserGone) {
		t.Fatalf("err = %v, want ErrUserGone", err)
	}
	g.RefreshToken = "" // same through userinfo
	g.Expiry = time.Now().Add(time.Minute)
	if _, _, _, err := st.Refresh(t.Context(), g); !errors.Is(err, ErrUserGone) {
		t.Fatalf("userinfo: err = %v, want ErrUserGone", err)
	}
}

func TestOIDCRefreshIdentityClaimChanged(t *testing.T) {
	m := startMockOIDC(t)
	sc := mockStrategyConfig(m)
	sc.IdentityClaim = "email"
	st := newTestOIDC(t, sc, nil)
	user := &claimsUser{sub: "u1", extra: map[string]any{"email": "a@example.com"}}
	verifier := oauth2.GenerateVerifier()
	code := mockSignIn(t, st, m, user, "n", verifier)
	u, g, err := st.Exchange(t.Context(), code, "n", verifier, provTestRedirect)
	if err != nil || u.Identity() != "corp/a@example.com" || g.Login != "a@example.com" {
		t.Fatalf("u=%+v g.Login=%q err=%v", u, g.Login, err)
	}
	user.set("u1", map[string]any{"email": "b@example.com"})
	if _, _, _, err := st.Refresh(t.Context(), g); !errors.Is(err, ErrUserGone) {
		t.Fatalf("err = %v, want ErrUserGone", err)
	}
}

func TestOIDCRefreshByUserinfo(t *testing.T) {
	m := startMockOIDC(t)
	user := &claimsUser{sub: "u1", extra: map[string]any{"groups": []string{"a"}}}
	st, g := signedIn(t, m, user)
	g.RefreshToken = ""
	g.Expiry = time.Now().Add(5 * time.Minute)
	user.set("u1", map[string]any{"groups": "z"})
	u, _, changed, err := st.Refresh(t.Context(), g)
	if err != nil || changed || strings.Join(u.Roles, ",") != "corp-group:z" {
		t.Fatalf("u=%+v changed=%v err=%v", u, changed, err)
	}
	expired := g
	expired.Expiry = time.Now().Add(-time.Second)
	if _, _, _, err := st.Refresh(t.Context(), expired); !errors.Is(err, ErrUserGone) {
		t.Fatalf("expired access token: err = %v, want ErrUserGone", err)
	}
	bogus := g
	bogus.AccessToken = "not-a-token"
	if _, _, _, err := st.Refresh(t.Context(), bogus); !errors.Is(err, ErrUserGone) {
		t.Fatalf("userinfo 401: err = %v, want ErrUserGone", err)
	}
}

// TestOIDCProviderDownAtStart: the service starts while the provider is
// unreachable; sign-in works once it is up (after the retry interval).
func TestOIDCProviderDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	sc := StrategyConfig{Name: "corp", Type: "oidc", ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		Issuer: "http://" + addr + "/oidc", Scopes: []string{"openid"}}
	svc, err := New(Config{PublicURL: "https://tc.example", Sealer: provNopSealer{}, Now: now, Logger: provDiscardLogger(),
		HTTPClient: &http.Client{Timeout: 2 * time.Second}, Strategies: []StrategyConfig{sc}}, newMemBackend())
	if err != nil {
		t.Fatalf("New with the provider down: %v", err)
	}
	st := svc.strategies["corp"]
	if u := st.AuthCodeURL("s", "n", oauth2.GenerateVerifier(), provTestRedirect); u != "" {
		t.Fatalf("AuthCodeURL with the provider down = %q", u)
	}
	if _, _, _, err := st.Refresh(t.Context(), Grant{Subject: "u", RefreshToken: "r"}); !errors.Is(err, ErrProviderUnavailable) || errors.Is(err, ErrUserGone) {
		t.Fatalf("Refresh with the provider down: %v", err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	// Within the retry interval the failure is remembered, after it retried.
	if u := st.AuthCodeURL("s", "n", oauth2.GenerateVerifier(), provTestRedirect); u != "" {
		t.Fatal("discovery retried before the retry interval")
	}
	offset.Store(int64(discoveryRetryInterval + time.Second))
	verifier := oauth2.GenerateVerifier()
	code := mockSignIn(t, st, m, &claimsUser{sub: "u1"}, "n", verifier)
	if u, _, err := st.Exchange(t.Context(), code, "n", verifier, provTestRedirect); err != nil || u.Identity() != "corp/u1" {
		t.Fatalf("sign-in after the provider came up: %+v %v", u, err)
	}
}

func FuzzGroupRoles(f *testing.F) {
	for _, s := range []string{`{"g":["a","b"]}`, `{"g":"x"}`, `{"g":7}`, `{"g":[1,"*",""]}`, `{"g":{"a":1}}`, `{"g":null}`} {
		f.Add([]byte(s))
	}
	st := &oidcStrategy{name: "corp", groupsClaim: "g", groupPrefix: "corp-group:", log: provDiscardLogger()}
	f.Fuzz(func(t *testing.T, data []byte) {
		var claims map[string]any
		if json.Unmarshal(data, &claims) != nil {
			return
		}
		for _, r := range st.groupRoles(claims) {
			g, ok := strings.CutPrefix(r, "corp-group:")
			if !ok || !roleSafe(g) {
				t.Fatalf("unsafe role %q", r)
			}
		}
	})
}

// TestOIDCRefreshConcurrentRotation: a provider that rotates refresh
// tokens and revokes on reuse (as Auth0, Okta and Keycloak can). Two tabs
// asking for credentials at once, or a second request before the rotated
// grant is stored, must share one refresh, not sign the user out.
func TestOIDCRefreshConcurrentRotation(t *testing.T) {
	var (
		mu    sync.Mutex
		used  = map[string]bool{}
		calls int
		m     *mockoidc.MockOIDC
	)
	reuseDetector := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.TokenEndpoint {
				r.ParseForm()
				if rt := r.Form.Get("refresh_token"); r.Form.Get("grant_type") == "refresh_token" {
					mu.Lock()
					calls++
					reused := used[rt]
					used[rt] = true
					mu.Unlock()
					if reused {
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(http.StatusBadRequest)
						w.Write([]byte(`{"error":"invalid_grant","error_description":"refresh token reused"}`))
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	var n atomic.Int32
	m = startMockOIDC(t, reuseDetector, tokenAnswerRewriter(func(form url.Values, body map[string]any) {
		if form.Get("grant_type") == "refresh_token" {
			claims := jwt.MapClaims(jwtPayload(t, form.Get("refresh_token")))
			claims["rotation"] = n.Add(1)
			body["refresh_token"], _ = m.Keypair.SignJWT(claims)
		}
	}))
	st, g := signedIn(t, m, &claimsUser{sub: "u1"})
	var wg sync.WaitGroup
	results := make([]Grant, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i], _, errs[i] = st.Refresh(t.Context(), g)
		}()
	}
	wg.Wait()
	// And once more with the old grant, as a request that read it before
	// the rotated one was stored.
	_, late, _, lateErr := st.Refresh(t.Context(), g)
	for i, err := range append(errs, lateErr) {
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	for _, r := range append(results, late) {
		if r.RefreshToken != results[0].RefreshToken || r.RefreshToken == g.RefreshToken {
			t.Fatal("the refreshes did not share one rotated token")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("%d refresh calls, want 1", calls)
	}
}
