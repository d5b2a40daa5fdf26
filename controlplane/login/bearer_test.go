package login

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/tcauth/tcauth/scopeengine"
)

// fakeOIDCProvider is a fake OpenID provider for the bearer exchange:
// discovery, a JWKS (one RSA and one EC key), userinfo and RFC 7662
// introspection. Access tokens are JWTs minted by the test with go-jose,
// or opaque strings the test registers.
type fakeOIDCProvider struct {
	srv      *httptest.Server
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	clientID string
	secret   string

	mu         sync.Mutex
	introspect map[string]map[string]any // opaque token → introspection answer
	userinfo   map[string]map[string]any // token → userinfo claims
}

var (
	fakeOIDCKeysOnce sync.Once
	fakeOIDCRSA      *rsa.PrivateKey
	fakeOIDCEC       *ecdsa.PrivateKey
)

func newFakeOIDCProvider(t *testing.T) *fakeOIDCProvider {
	fakeOIDCKeysOnce.Do(func() {
		fakeOIDCRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
		fakeOIDCEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	p := &fakeOIDCProvider{rsaKey: fakeOIDCRSA, ecKey: fakeOIDCEC, clientID: "tc-client", secret: "tc-secret",
		introspect: map[string]map[string]any{}, userinfo: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := p.srv.URL
		writeGHJSON(w, map[string]any{"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "userinfo_endpoint": u + "/userinfo", "introspection_endpoint": u + "/introspect",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeGHJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &p.rsaKey.PublicKey, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
			{Key: &p.ecKey.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims, ok := p.userinfo[tok]
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		writeGHJSON(w, claims)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if id, secret, ok := r.BasicAuth(); !ok || id != p.clientID || secret != p.secret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.ParseForm()
		ans, ok := p.introspect[r.PostForm.Get("token")]
		if !ok {
			ans = map[string]any{"active": false}
		}
		writeGHJSON(w, ans)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// accessClaims are the claims of a good JWT access token for user-1.
func (p *fakeOIDCProvider) accessClaims() map[string]any {
	now := time.Now()
	return map[string]any{"iss": p.srv.URL, "sub": "user-1", "aud": "https://tc.example/api", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "scope": "openid taskcluster-credentials", "groups": []string{"eng"}}
}

func (p *fakeOIDCProvider) mint(t *testing.T, alg jose.SignatureAlgorithm, edit func(map[string]any)) string {
	c := p.accessClaims()
	if edit != nil {
		edit(c)
	}
	switch alg {
	case jose.ES256:
		return signJWT(t, alg, p.ecKey, "ec1", c)
	case jose.HS256:
		return signJWT(t, alg, []byte(p.secret+"-0123456789abcdef0123456789abcdef"), "rsa1", c)
	case "none":
		return signJWT(t, alg, nil, "rsa1", c)
	}
	return signJWT(t, alg, p.rsaKey, "rsa1", c)
}

type bearerHarness struct {
	svc  *Service
	p    *fakeOIDCProvider
	gh   *fakeGitHubAPI
	logs *bytes.Buffer
	mu   sync.Mutex
}

func (h *bearerHarness) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.Write(b)
}

func newBearerHarness(t *testing.T) *bearerHarness {
	h := &bearerHarness{p: newFakeOIDCProvider(t), gh: newFakeGitHubAPI(t), logs: &bytes.Buffer{}}
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downURL := "http://" + down.Addr().String()
	down.Close()
	oidcSC := func(name string, b *BearerConfig, issuer string) StrategyConfig {
		return StrategyConfig{Name: name, Type: "oidc", ClientID: h.p.clientID, ClientSecret: h.p.secret, Issuer: issuer,
			GroupsClaim: "groups", Bearer: b}
	}
	strategies := []StrategyConfig{
		oidcSC("corp", &BearerConfig{Audience: "https://tc.example/api"}, h.p.srv.URL),
		oidcSC("intro", &BearerConfig{Audience: "https://tc.example/api", Introspect: true}, h.p.srv.URL),
		oidcSC("ui", &BearerConfig{}, h.p.srv.URL),
		oidcSC("plain", nil, h.p.srv.URL),
		oidcSC("down", &BearerConfig{Audience: "x"}, downURL),
		{Name: "github", Type: "github", ClientID: h.gh.client, ClientSecret: h.gh.secret, APIURL: h.gh.srv.URL, Bearer: &BearerConfig{}},
	}
	mb := newMemBackend()
	res, err := scopeengine.NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	mb.resolver = res
	mb.addClient(Client{ClientID: "static/taskcluster/web-server", Scopes: []string{"*"}})
	svc, err := New(Config{PublicURL: "https://tc.example", Sealer: provNopSealer{}, Strategies: strategies,
		HTTPClient: &http.Client{Timeout: 2 * time.Second},
		Logger:     slog.New(slog.NewTextHandler(h, &slog.HandlerOptions{Level: slog.LevelDebug}))}, mb)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	return h
}

func (h *bearerHarness) get(provider string, auth ...string) (int, map[string]any) {
	r := httptest.NewRequest(http.MethodGet, "/api/login/v1/oidc-credentials/"+provider, nil)
	for _, a := range auth {
		r.Header.Add("Authorization", a)
	}
	w := httptest.NewRecorder()
	h.svc.Handler().ServeHTTP(w, r)
	var body map[string]any
	json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

func TestOIDCCredentialsExchange(t *testing.T) {
	h := newBearerHarness(t)
	p := h.p
	opaque, inactive, otherAud, noScope := "opaque-"+randomToken(12), "opaque-"+randomToken(12), "opaque-"+randomToken(12), "opaque-"+randomToken(12)
	uiToken := "ui-" + randomToken(12)
	exp := float64(time.Now().Add(time.Minute).Unix())
	p.introspect[opaque] = map[string]any{"active": true, "sub": "user-2", "aud": "https://tc.example/api", "scope": "taskcluster-credentials", "exp": exp, "iss": p.srv.URL}
	p.introspect[inactive] = map[string]any{"active": false, "sub": "user-2"}
	p.introspect[otherAud] = map[string]any{"active": true, "sub": "user-2", "aud": []any{"another-api"}}
	p.introspect[noScope] = map[string]any{"active": true, "sub": "user-2", "scope": "openid"}
	p.userinfo[opaque] = map[string]any{"sub": "user-2", "groups": "ops"}
	p.userinfo[uiToken] = map[string]any{"sub": "user-3", "groups": []string{"a"}}
	_, ghToken := h.gh.issue(1234, true)
	h.gh.addUser(1234, "octocat").team("my-org", "core")

	refused := msgBearerRefused
	cases := []struct {
		name, provider string
		auth           []string
		status         int
		message        string // exact, when refused
		identity       string // when granted
	}{
		{"JWT RS256", "corp", []string{"Bearer " + p.mint(t, jose.RS256, nil)}, 200, "", "corp/user-1"},
		{"JWT ES256, lower-case scheme", "corp", []string{"bearer " + p.mint(t, jose.ES256, nil)}, 200, "", "corp/user-1"},
		{"scope in scp list", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = []string{"taskcluster-credentials"}
		})}, 200, "", "corp/user-1"},
		{"groups missing, userinfo refuses the token", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { c["sub"] = "user-3"; delete(c, "groups") })}, 400, refused, ""},
		{"wrong audience", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { c["aud"] = "tc-client" })}, 400, refused, ""},
		{"wrong issuer", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { c["iss"] = "https://evil.example" })}, 400, refused, ""},
		{"expired", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })}, 400, refused, ""},
		{"no exp", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { delete(c, "exp") })}, 400, refused, ""},
		{"missing scope", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { c["scope"] = "openid" })}, 400, refused, ""},
		{"scope as a substring only", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { c["scope"] = "taskcluster-credentials-x" })}, 400, refused, ""},
		{"signed by another key", "corp", []string{"Bearer " + signJWT(t, jose.RS256, provKeys(t), "rsa1", p.accessClaims())}, 400, refused, ""},
		{"alg none", "corp", []string{"Bearer " + p.mint(t, "none", nil)}, 400, refused, ""},
		{"HS256", "corp", []string{"Bearer " + p.mint(t, jose.HS256, nil)}, 400, refused, ""},
		{"missing identity claim", "corp", []string{"Bearer " + p.mint(t, jose.RS256, func(c map[string]any) { delete(c, "sub") })}, 400, refused, ""},
		{"opaque token to a JWT-only provider", "corp", []string{"Bearer " + opaque}, 200, "", "corp/user-2"},
		{"introspection active", "intro", []string{"Bearer " + opaque}, 200, "", "intro/user-2"},
		{"introspection inactive", "intro", []string{"Bearer " + inactive}, 400, refused, ""},
		{"introspection unknown", "intro", []string{"Bearer nope"}, 400, refused, ""},
		{"introspection other audience", "intro", []string{"Bearer " + otherAud}, 400, refused, ""},
		{"introspection without the scope", "intro", []string{"Bearer " + noScope}, 400, refused, ""},
		{"userinfo", "ui", []string{"Bearer " + uiToken}, 200, "", "ui/user-3"},
		{"userinfo refuses", "ui", []string{"Bearer nope"}, 400, refused, ""},
		{"GitHub token of our app", "github", []string{"Bearer " + ghToken}, 200, "", "github/1234|octocat"},
		{"GitHub unknown token", "github", []string{"Bearer gho_nope"}, 400, refused, ""},
		{"unknown provider", "nope", []string{"Bearer x"}, 400, "Invalid accessToken provider nope", ""},
		{"strategy without bearer", "plain", []string{"Bearer x"}, 400, "Invalid accessToken provider plain", ""},
		{"strategy without bearer, no header", "plain", nil, 400, "Invalid accessToken provider plain", ""},
		{"provider unreachable", "down", []string{"Bearer x"}, 503, "", ""},
		{"no Authorization", "corp", nil, 401, "An Authorization header with a Bearer access token is required", ""},
		{"Basic scheme", "corp", []string{"Basic dXNlcjpwYXNz"}, 401, "The Authorization header must use the Bearer scheme", ""},
		{"two headers", "corp", []string{"Bearer a", "Bearer b"}, 401, "Exactly one Authorization header is allowed", ""},
		{"empty token", "corp", []string{"Bearer "}, 401, "The Bearer access token is empty", ""},
		{"token with a space", "corp", []string{"Bearer a b"}, 401, "The Bearer access token is malformed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := h.get(c.provider, c.auth...)
			if status != c.status {
				t.Fatalf("status %d, want %d: %v", status, c.status, body)
			}
			// Taskcluster's error shape: the message, then a "---" block.
			msg, _, _ := strings.Cut(asString(body["message"]), "\n\n---")
			if c.message != "" && msg != c.message {
				t.Errorf("message %q, want %q", msg, c.message)
			}
			if c.identity != "" {
				creds, _ := body["credentials"].(map[string]any)
				if creds["clientId"] != c.identity || creds["accessToken"] == "" || creds["certificate"] == "" || body["expires"] == "" {
					t.Errorf("reply %v, want credentials for %s", body, c.identity)
				}
			}
		})
	}
	// The precise reasons are logged, never the tokens.
	h.mu.Lock()
	logs := h.logs.String()
	h.mu.Unlock()
	for _, secret := range []string{opaque, inactive, uiToken, ghToken, p.mint(t, jose.RS256, nil)[:40]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a token is in the log")
		}
	}
	if !strings.Contains(logs, "lacks the scope") || !strings.Contains(logs, "not active") {
		t.Errorf("refusal reasons missing from the log:\n%s", logs)
	}
}

func asString(v any) string { s, _ := v.(string); return s }

func TestOIDCCredentialsRoles(t *testing.T) {
	h := newBearerHarness(t)
	u, err := h.svc.strategies["corp"].BearerUser(t.Context(), h.p.mint(t, jose.RS256, nil))
	if err != nil || strings.Join(u.Scopes(), ",") != "assume:corp-group:eng,assume:login-identity:corp/user-1" {
		t.Fatalf("u=%+v err=%v", u, err)
	}
	// Groups absent from the token come from userinfo (same subject only).
	tok := h.p.mint(t, jose.RS256, func(c map[string]any) { delete(c, "groups") })
	h.p.userinfo[tok] = map[string]any{"sub": "user-1", "groups": []string{"ops"}}
	if u, err := h.svc.strategies["corp"].BearerUser(t.Context(), tok); err != nil || strings.Join(u.Roles, ",") != "corp-group:ops" {
		t.Fatalf("u=%+v err=%v", u, err)
	}
	h.p.userinfo[tok] = map[string]any{"sub": "user-9", "groups": []string{"ops"}}
	if _, err := h.svc.strategies["corp"].BearerUser(t.Context(), tok); err == nil {
		t.Fatal("userinfo of another subject accepted")
	}
}

func TestCheckIntrospection(t *testing.T) {
	now := time.Unix(1700000000, 0)
	cases := []struct {
		resp string
		ok   bool
	}{
		{`{"active":true,"sub":"u"}`, true},
		{`{"active":true,"sub":"u","aud":"api","scope":"a taskcluster-credentials","iss":"https://idp","exp":1700000060}`, true},
		{`{"active":true,"sub":"u","aud":["x","api"]}`, true},
		{`{"active":"true","sub":"u"}`, false},
		{`{"active":true}`, false},
		{`{"active":true,"sub":"u","exp":1699999999}`, false},
		{`{"active":true,"sub":"u","exp":1e300}`, false},
		{`{"active":true,"sub":"u","iss":"https://evil"}`, false},
		{`{"active":true,"sub":"u","aud":"other"}`, false},
		{`{"active":true,"sub":"u","aud":{"api":1}}`, false},
		{`{"active":true,"sub":"u","scope":"openid"}`, false},
		{`{"active":true,"sub":"u","scope":7}`, false},
	}
	for _, c := range cases {
		var m map[string]any
		json.Unmarshal([]byte(c.resp), &m)
		if _, err := checkIntrospection(m, "https://idp", "api", "taskcluster-credentials", now); (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.resp, err, c.ok)
		}
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct {
		h    []string
		want string
	}{
		{[]string{"Bearer abc.DEF-_~+/=="}, "abc.DEF-_~+/=="},
		{[]string{"BEARER abc"}, "abc"},
		{[]string{"  bearer   abc  "}, "abc"},
		{nil, ""}, {[]string{""}, ""}, {[]string{"Bearer"}, ""}, {[]string{"Bearerabc"}, ""},
		{[]string{"Token abc"}, ""}, {[]string{"Bearer a\x00b"}, ""}, {[]string{"Bearer ="}, ""},
		{[]string{"Bearer a", "Bearer a"}, ""}, {[]string{"Bearer " + strings.Repeat("a", maxBearerToken+1)}, ""},
	}
	for _, c := range cases {
		got, err := bearerToken(c.h)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("bearerToken(%q) = %q, %v; want %q", c.h, got, err, c.want)
		}
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Basic x", "Bearer a\nBearer b", "Bearer  ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := bearerToken(strings.Split(s, "\n"))
		if err == nil && (tok == "" || !b64token(tok) || !strings.HasPrefix(strings.ToLower(strings.TrimLeft(s, " \t")), "bearer ")) {
			t.Fatalf("bearerToken(%q) = %q", s, tok)
		}
		if err != nil && tok != "" {
			t.Fatalf("token with an error")
		}
	})
}

func FuzzCheckIntrospection(f *testing.F) {
	f.Add([]byte(`{"active":true,"sub":"u","aud":["api"],"scope":"taskcluster-credentials","exp":1700000060}`))
	f.Add([]byte(`{"active":true,"sub":"u","aud":[{"x":1}],"iss":[1]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return
		}
		if _, err := checkIntrospection(m, "https://idp", "api", "taskcluster-credentials", time.Unix(1700000000, 0)); err == nil {
			if m["active"] != true || m["sub"] == "" {
				t.Fatalf("accepted %s", data)
			}
		}
	})
}

func FuzzLooksLikeJWT(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.sig")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) { looksLikeJWT(s) })
}
