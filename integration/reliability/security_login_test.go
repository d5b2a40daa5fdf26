package reliability

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tcauth/tcauth/integration/harness"
)

// Rows about the login service's unauthenticated surface, against a node
// of its own started with --login-config: a GitHub strategy at an
// in-test fake GitHub and an OIDC strategy at an in-test fake OIDC
// provider (both below, written for these rows: no GitHub-compatible
// server runs here, and these rows need a provider whose every call can
// be counted). Sources are told apart by loopback address.
func init() { securityGroups = append(securityGroups, loginRows) }

const secIssuer = "static/tcauth/sec-login"

func loginRows(t *testing.T, _ *securityEnv) []hostile {
	gh := newFakeGitHubSec()
	t.Cleanup(gh.Close)
	idp := newFakeOIDCSec(t)
	t.Cleanup(idp.Close)
	httpAddr, raftAddr := harness.FreeAddr(t), harness.FreeAddr(t)
	pub := "http://" + httpAddr
	cfg := fmt.Sprintf(`publicUrl: %s
issuer: %s
strategies:
  - name: github
    type: github
    clientId: sec-gh
    clientSecret: sec-gh-secret
    authorizeUrl: %s/login/oauth/authorize
    tokenUrl: %s/login/oauth/access_token
    apiUrl: %s
    bearer: {}
  - name: corp
    type: oidc
    issuer: %s
    clientId: corp-client
    clientSecret: corp-secret
    bearer:
      audience: tc-cli
registeredApps:
  - clientId: sec-app
    scope: ["auth:current-scopes"]
    redirectUri: ["http://127.0.0.1:9/cb"]
`, pub, secIssuer, gh.URL, gh.URL, gh.URL, idp.URL)
	file := filepath.Join(t.TempDir(), "login.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1, HTTPAddrs: []string{httpAddr}, RaftAddrs: []string{raftAddr},
		ExtraArgs: []string{"--login-config", file},
		StaticClients: []harness.StaticClient{{ClientID: secIssuer, AccessToken: strings.Repeat("k", 44), Description: "issues user credentials",
			Scopes: []string{"assume:login-identity:*", "assume:github-team:*", "assume:github-org-admin:*", "auth:create-client:github/*"}}}})
	if _, err := c.Leader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	l := &loginSec{c: c, pub: pub, gh: gh, idp: idp}
	return l.rows()
}

type loginSec struct {
	c   *harness.Cluster
	pub string
	gh  *fakeGitHubSec
	idp *fakeOIDCSec
}

type secAnswer struct {
	status int
	header http.Header
	body   []byte
	jar    http.CookieJar
}

// from is a client with its own cookie jar whose connections come from
// ip; follow says whether it follows redirects.
func secClient(ip string, follow bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 15 * time.Second, Jar: jar}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

func secDo(c *http.Client, method, u string, body []byte, hdr ...string) secAnswer {
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	if body == nil {
		req.Body = nil
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return secAnswer{status: 0, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return secAnswer{status: resp.StatusCode, header: resp.Header, body: b, jar: c.Jar}
}

func (a secAnswer) want(status int, contains ...string) error {
	if a.status != status {
		return fmt.Errorf("status %d, want %d: %.300s", a.status, status, a.body)
	}
	for _, s := range contains {
		if !bytes.Contains(a.body, []byte(s)) {
			return fmt.Errorf("answer lacks %q: %.300s", s, a.body)
		}
	}
	return nil
}

// signIn runs a whole GitHub sign-in with a fresh browser from ip and
// returns it (its jar holds the session cookie).
func (l *loginSec) signIn(ip string) (*http.Client, error) {
	b := secClient(ip, true)
	if a := secDo(b, "GET", l.pub+"/login/github", nil); a.status != 200 {
		return nil, fmt.Errorf("sign-in: status %d: %.300s", a.status, a.body)
	}
	return b, nil
}

// start begins a sign-in without following the redirect: the state and
// the flow cookie as a browser would hold them.
func (l *loginSec) start(ip string) (state string, cookie *http.Cookie, err error) {
	b := secClient(ip, false)
	a := secDo(b, "GET", l.pub+"/login/github", nil)
	if a.status != 302 {
		return "", nil, fmt.Errorf("start: status %d", a.status)
	}
	loc, _ := url.Parse(a.header.Get("Location"))
	state = loc.Query().Get("state")
	for _, ck := range (&http.Response{Header: a.header}).Cookies() {
		if strings.HasPrefix(ck.Name, "tcauth_flow_") {
			return state, ck, nil
		}
	}
	return "", nil, fmt.Errorf("start: no flow cookie")
}

func (l *loginSec) logins() (int, error) {
	st, err := l.c.State(0)
	return len(st.Logins), err
}

// unchanged runs try and fails if the number of stored login records changed.
func (l *loginSec) unchanged(try func() error) func(*testing.T) error {
	return func(*testing.T) error {
		before, err := l.logins()
		if err != nil {
			return err
		}
		if err := try(); err != nil {
			return err
		}
		after, err := l.logins()
		if err != nil {
			return err
		}
		if after != before {
			return fmt.Errorf("%d login records stored by a refused request (%d before)", after-before, before)
		}
		return nil
	}
}

func (l *loginSec) callback(ip, state string, ck *http.Cookie, code string) secAnswer {
	b := secClient(ip, false)
	h := []string{}
	if ck != nil {
		h = []string{"Cookie", ck.Name + "=" + ck.Value}
	}
	return secDo(b, "GET", l.pub+"/login/github/callback?"+url.Values{"code": {code}, "state": {state}}.Encode(), nil, h...)
}

func (l *loginSec) bearer(c *http.Client, provider, token string) secAnswer {
	return secDo(c, "GET", l.pub+"/api/login/v1/oidc-credentials/"+provider, nil, "Authorization", "Bearer "+token)
}

func jwtWith(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func (l *loginSec) rows() []hostile {
	pub := l.pub
	return []hostile{
		{"login: tampered flow cookie", l.unchanged(func() error {
			state, ck, err := l.start("127.0.0.1")
			if err != nil {
				return err
			}
			v := []byte(ck.Value)
			v[len(v)/2] ^= 1
			ck.Value = string(v)
			return l.callback("127.0.0.1", state, ck, "any").want(400)
		})},
		{"login: forged flow cookie (random bytes) and one under another state's name", l.unchanged(func() error {
			state, ck, err := l.start("127.0.0.1")
			if err != nil {
				return err
			}
			forged := &http.Cookie{Name: ck.Name, Value: base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 200))}
			if err := l.callback("127.0.0.1", state, forged, "any").want(400); err != nil {
				return err
			}
			_, ck2, err := l.start("127.0.0.1")
			if err != nil {
				return err
			}
			moved := &http.Cookie{Name: ck.Name, Value: ck2.Value} // another flow under the name of `state`
			return l.callback("127.0.0.1", state, moved, "any").want(400)
		})},
		{"login: replayed callback (captured URL and flow cookie)", func(t *testing.T) error {
			state, ck, err := l.start("127.0.0.1")
			if err != nil {
				return err
			}
			code := l.gh.authorize()
			if a := l.callback("127.0.0.1", state, ck, code); a.status != 200 {
				return fmt.Errorf("first callback: %d %.200s", a.status, a.body)
			}
			before, _ := l.logins()
			a := l.callback("127.0.0.1", state, ck, code)
			after, _ := l.logins()
			if err := a.want(400); err != nil {
				return err
			}
			for _, ck := range (&http.Response{Header: a.header}).Cookies() {
				if ck.Name == "tcauth_session" && ck.Value != "" {
					return errors.New("the replay set a session cookie")
				}
			}
			if after != before {
				return fmt.Errorf("the replay stored %d login records", after-before)
			}
			return nil
		}},
		{"login: 60 KB state", l.unchanged(func() error {
			return secDo(secClient("127.0.0.1", false), "GET", pub+"/login/github/callback?code=x&state="+strings.Repeat("s", 60<<10), nil).want(414, `"code"`)
		})},
		{"login: 500 flow cookies", l.unchanged(func() error {
			_, ck, err := l.start("127.0.0.1")
			if err != nil {
				return err
			}
			var b strings.Builder
			for i := 0; i < 500; i++ {
				fmt.Fprintf(&b, "tcauth_flow_%020d=%s; ", i, ck.Value[:40])
			}
			return secDo(secClient("127.0.0.1", false), "GET", pub+"/login/github/callback?code=x&state=s", nil, "Cookie", b.String()).want(431, `"InputTooLarge"`)
		})},
		{"login: oversize bodies (logout, token, decision, graphql)", l.unchanged(func() error {
			c := secClient("127.0.0.1", false)
			for _, p := range []string{"/login/logout", "/login/oauth/token", "/login/oauth/authorize/decision"} {
				if err := secDo(c, "POST", pub+p, bytes.Repeat([]byte("a"), 100<<10), "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin").want(413, `"InputTooLarge"`); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			return secDo(c, "POST", pub+"/graphql", bytes.Repeat([]byte(" "), 100<<10), "Content-Type", "application/json").want(413, `"errors"`)
		})},
		{"login: junk GraphQL documents (deep nesting, many aliases, token flood, mutation)", func(t *testing.T) error {
			c := secClient("127.0.0.1", false)
			var aliases strings.Builder
			for i := 0; i < 500; i++ {
				fmt.Fprintf(&aliases, "a%d: isLoggedIn ", i)
			}
			for name, q := range map[string]string{
				"deep":     strings.Repeat("{getCredentials", 200) + strings.Repeat("}", 200),
				"aliases":  "{" + aliases.String() + "}",
				"tokens":   "{" + strings.Repeat("isLoggedIn ", 5000) + "}",
				"long":     "{" + strings.Repeat("x", 60000) + "}",
				"mutation": "mutation { createClient }",
			} {
				body, _ := json.Marshal(map[string]string{"query": q})
				if err := secDo(c, "POST", pub+"/graphql", body, "Content-Type", "application/json").want(400, `"errors"`); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			return nil
		}},
		{"login: junk bearer tokens (garbage, alg none, HS256, random kid, expired)", func(t *testing.T) error {
			c := secClient("127.0.0.4", false)
			if err := l.bearer(c, "corp", "!!!").want(401, `"AuthenticationFailed"`); err != nil {
				return fmt.Errorf("garbage: %w", err)
			}
			claims := map[string]any{"iss": l.idp.URL, "aud": "tc-cli", "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix(), "scope": "taskcluster-credentials"}
			for name, tok := range map[string]string{
				"alg none":  jwtWith(map[string]any{"alg": "none", "typ": "JWT"}, claims, ""),
				"HS256":     jwtWith(map[string]any{"alg": "HS256", "kid": "k1"}, claims, "c2lnbmF0dXJl"),
				"expired":   l.idp.sign("k1", map[string]any{"iss": l.idp.URL, "aud": "tc-cli", "sub": "m", "exp": time.Now().Add(-time.Hour).Unix(), "scope": "taskcluster-credentials"}),
				"wrong aud": l.idp.sign("k1", map[string]any{"iss": l.idp.URL, "aud": "other", "sub": "m", "exp": time.Now().Add(time.Hour).Unix(), "scope": "taskcluster-credentials"}),
			} {
				if err := l.bearer(c, "corp", tok).want(400, "Could not generate credentials for this access token"); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			before := l.idp.jwksFetches.Load()
			kidClient := secClient("127.0.0.5", false)
			for i := 0; i < 300; i++ {
				tok := l.idp.signBy(l.idp.attacker, "rand-"+strconv.Itoa(i), claims)
				a := l.bearer(kidClient, "corp", tok)
				if a.status != 400 && a.status != 429 {
					return fmt.Errorf("random kid: %d %.200s", a.status, a.body)
				}
			}
			if n := l.idp.jwksFetches.Load() - before; n > 1 {
				return fmt.Errorf("300 tokens with random key ids cost %d JWKS fetches", n)
			}
			return nil
		}},
		{"login: the same junk token 50 times costs one provider call", func(t *testing.T) error {
			c := secClient("127.0.0.6", false)
			before := l.gh.tokenChecks.Load()
			for i := 0; i < 50; i++ {
				if err := l.bearer(c, "github", "gho_same_junk_token").want(400, "Could not generate credentials for this access token"); err != nil {
					return err
				}
			}
			if n := l.gh.tokenChecks.Load() - before; n != 1 {
				return fmt.Errorf("%d token checks at GitHub, want 1", n)
			}
			return nil
		}},
		{"login: cross-site logout and consent decision", func(t *testing.T) error {
			b, err := l.signIn("127.0.0.7")
			if err != nil {
				return err
			}
			cross := []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", "application/x-www-form-urlencoded"}
			if err := secDo(b, "POST", pub+"/login/logout", []byte("returnTo=/"), cross...).want(403); err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			if err := secDo(b, "POST", pub+"/login/oauth/authorize/decision", []byte("decision=allow&transaction_id=x&csrf_token=y"), cross...).want(403); err != nil {
				return fmt.Errorf("decision: %w", err)
			}
			return secDo(b, "GET", pub+"/login/credentials", nil).want(200, `"credentials"`)
		}},
		{"login: unknown strategies", l.unchanged(func() error {
			c := secClient("127.0.0.1", false)
			for _, p := range []string{"/login/nope", "/login/nope/callback?code=x&state=y"} {
				if err := secDo(c, "GET", pub+p, nil).want(404, `"ResourceNotFound"`); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			return l.bearer(c, "nope", "tok").want(400, "Invalid accessToken provider nope")
		})},
		{"login: one source flooding oidc-credentials neither reaches the provider beyond its budget nor refuses a signed-in user", l.flood},
	}
}

// flood: 127.0.0.8 sends distinct junk tokens as fast as it can while a
// user signed in from 127.0.0.9 fetches credentials; every one of the
// user's requests must succeed.
func (l *loginSec) flood(t *testing.T) error {
	start := time.Now()
	user, err := l.signIn("127.0.0.9")
	if err != nil {
		return err
	}
	before := l.gh.tokenChecks.Load()
	var throttled, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := secClient("127.0.0.8", false)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := l.bearer(c, "github", fmt.Sprintf("gho_flood_%d_%d", w, i))
				switch {
				case a.status == 429 && a.header.Get("Retry-After") != "" && bytes.Contains(a.body, []byte(`"TooManyRequests"`)):
					throttled.Add(1)
				case a.status == 400:
				default:
					other.Add(1)
				}
			}
		}(w)
	}
	probes, refused := 0, 0
	for i := 0; i < 20; i++ {
		probes++
		if a := secDo(user, "GET", l.pub+"/login/credentials", nil); a.status != 200 {
			refused++
			t.Logf("signed-in user refused during the flood: %d %.200s", a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	checks := l.gh.tokenChecks.Load() - before
	record(summaryRow{name: "security: login flood (one source)", hostile: int(throttled.Load()), probes: probes, refused: refused, duration: time.Since(start)})
	switch {
	case refused > 0:
		return fmt.Errorf("%d of %d credentials requests of a signed-in user refused during the flood", refused, probes)
	case throttled.Load() == 0:
		return fmt.Errorf("the flood was never throttled (%d provider calls)", checks)
	case checks > 40: // the burst (30) and about a second's refill
		return fmt.Errorf("the flood cost %d provider calls", checks)
	case other.Load() > 0:
		return fmt.Errorf("%d flood answers neither 400 nor 429", other.Load())
	}
	t.Logf("login flood: %d throttled, %d provider calls, %d/%d user probes answered", throttled.Load(), checks, probes-refused, probes)
	return nil
}

// fakeGitHubSec is a minimal fake of GitHub written for these rows: the
// OAuth endpoints, GET /user, /users/{login}, empty team and membership
// lists, and the OAuth app token check, which it counts.
type fakeGitHubSec struct {
	*httptest.Server
	tokenChecks atomic.Int64
	mu          sync.Mutex
	codes       map[string]bool
	tokens      map[string]bool
}

func newFakeGitHubSec() *fakeGitHubSec {
	f := &fakeGitHubSec{codes: map[string]bool{}, tokens: map[string]bool{}}
	m := http.NewServeMux()
	m.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		back, _ := url.Parse(r.URL.Query().Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {f.authorize()}, "state": {r.URL.Query().Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	m.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		ok := f.codes[r.PostForm.Get("code")] && r.PostForm.Get("client_secret") == "sec-gh-secret"
		delete(f.codes, r.PostForm.Get("code"))
		tok := "gho_" + randHexSec()
		if ok {
			f.tokens[tok] = true
		}
		f.mu.Unlock()
		if !ok {
			ghJSON(w, 200, map[string]string{"error": "bad_verification_code"})
			return
		}
		ghJSON(w, 200, map[string]string{"access_token": tok, "token_type": "bearer", "scope": "read:org"})
	})
	user := map[string]any{"id": 777, "login": "sec-user", "name": "Sec User"}
	m.HandleFunc("GET /user", f.authed(func(w http.ResponseWriter, r *http.Request) { ghJSON(w, 200, user) }))
	m.HandleFunc("GET /users/{login}", f.authed(func(w http.ResponseWriter, r *http.Request) { ghJSON(w, 200, user) }))
	m.HandleFunc("GET /user/teams", f.authed(func(w http.ResponseWriter, r *http.Request) { ghJSON(w, 200, []any{}) }))
	m.HandleFunc("GET /user/memberships/orgs", f.authed(func(w http.ResponseWriter, r *http.Request) { ghJSON(w, 200, []any{}) }))
	m.HandleFunc("POST /applications/{client}/token", func(w http.ResponseWriter, r *http.Request) {
		f.tokenChecks.Add(1)
		var body struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
		f.mu.Lock()
		ok := f.tokens[body.AccessToken]
		f.mu.Unlock()
		if !ok {
			ghJSON(w, 404, map[string]string{"message": "Not Found"})
			return
		}
		ghJSON(w, 200, map[string]any{"user": user})
	})
	f.Server = httptest.NewServer(m)
	return f
}

func (f *fakeGitHubSec) authorize() string {
	code := randHexSec()
	f.mu.Lock()
	f.codes[code] = true
	f.mu.Unlock()
	return code
}

func (f *fakeGitHubSec) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok {
			ghJSON(w, 401, map[string]string{"message": "Bad credentials"})
			return
		}
		h(w, r)
	}
}

func ghJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randHexSec() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// fakeOIDCSec is a minimal fake OIDC provider written for these rows:
// discovery and a JWKS with one ES256 key (fetches counted); its token
// endpoint refuses every code and its userinfo every token.
type fakeOIDCSec struct {
	*httptest.Server
	jwksFetches atomic.Int64
	key         jose.JSONWebKey
	attacker    jose.JSONWebKey
}

func newFakeOIDCSec(t *testing.T) *fakeOIDCSec {
	gen := func(kid string) jose.JSONWebKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"}
	}
	f := &fakeOIDCSec{key: gen("k1"), attacker: gen("")}
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ghJSON(w, 200, map[string]any{"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token",
			"jwks_uri": f.URL + "/jwks", "userinfo_endpoint": f.URL + "/userinfo", "id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"}})
	})
	m.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		f.jwksFetches.Add(1)
		ghJSON(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{f.key.Public()}})
	})
	m.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		ghJSON(w, 400, map[string]string{"error": "invalid_grant"})
	})
	m.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		ghJSON(w, 401, map[string]string{"error": "invalid_token"})
	})
	f.Server = httptest.NewServer(m)
	return f
}

func (f *fakeOIDCSec) sign(kid string, claims map[string]any) string {
	return f.signBy(f.key, kid, claims)
}

func (f *fakeOIDCSec) signBy(k jose.JSONWebKey, kid string, claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return "signing-failed"
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "signing-failed"
	}
	out, _ := obj.CompactSerialize()
	return out
}
