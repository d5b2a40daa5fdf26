package login

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// TestIssueCredentialsVector reproduces web-server's getCredentials for
// github user 1234 octocat (fixed clock and seed) byte for byte.
func TestIssueCredentialsVector(t *testing.T) {
	h := newBrowserHarness(t) // clock 2023-11-14T22:13:20.000Z
	h.svc.seed = func() string { return "EEEEEEEEQEeEEEEEEEEEEAFFFFFFFFQFeFFFFFFFFFFA" }
	u := User{ProviderID: "github", IdentityID: "1234|octocat",
		Roles: []string{"github-team:my-org/core", "github-org-admin:my-org", "github-team:my-org/core"}}
	got, err := h.svc.issueCredentials(u)
	if err != nil {
		t.Fatal(err)
	}
	const cert = `{"version":1,"scopes":["assume:github-team:my-org/core","assume:github-org-admin:my-org","assume:login-identity:github/1234|octocat"],"start":1699999100000,"expiry":1700000900000,"seed":"EEEEEEEEQEeEEEEEEEEEEAFFFFFFFFQFeFFFFFFFFFFA","signature":"hc7nQEM/yebpIR9JJmIE2H/AFOCk1bh25abkrtg5Zjk=","issuer":"static/taskcluster/web-server"}`
	want := CredentialsReply{Expires: "2023-11-14T22:27:50.000Z", Credentials: ReplyCredentials{
		ClientID: vectorIdentity, AccessToken: "xwNQlsV-yytMaIxLAeV1RU687j5bgii_aIozE1DcIII", Certificate: cert}}
	if got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// TestIssueCredentialsChecksIssuer: an issuer that cannot sign for the
// user is refused before signing, with the precise reason in the log.
func TestIssueCredentialsChecksIssuer(t *testing.T) {
	u := User{ProviderID: "fake", IdentityID: "alice", Roles: []string{"fake-group:admins"}}
	for _, tc := range []struct {
		name, log string
		edit      func(h *browserHarness)
	}{
		{"missing", "does not exist", func(h *browserHarness) { delete(h.mb.clients, testIssuer) }},
		{"disabled", "is disabled", func(h *browserHarness) {
			c := h.mb.clients[testIssuer]
			c.Disabled = true
			h.mb.clients[testIssuer] = c
		}},
		{"expired", "has expired", func(h *browserHarness) {
			c := h.mb.clients[testIssuer]
			c.Expires = h.now.Add(-1)
			h.mb.clients[testIssuer] = c
		}},
		{"no create-client", "auth:create-client:fake/alice", func(h *browserHarness) {
			c := h.mb.clients[testIssuer]
			c.Scopes = []string{"assume:login-identity:*", "assume:fake-group:*"}
			h.mb.clients[testIssuer] = c
		}},
		{"lacks a role", "assume:fake-group:admins", func(h *browserHarness) {
			c := h.mb.clients[testIssuer]
			c.Scopes = []string{"auth:create-client:fake/*", "assume:login-identity:*"}
			h.mb.clients[testIssuer] = c
		}},
		{"no token", "access token is not available", func(h *browserHarness) { delete(h.mb.tokens, testIssuer) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			tc.edit(h)
			if _, err := h.svc.issueCredentials(u); !errors.Is(err, errIssuer) {
				t.Fatalf("err %v, want errIssuer", err)
			}
			if !strings.Contains(h.logText(), tc.log) {
				t.Fatalf("log lacks %q:\n%s", tc.log, h.logText())
			}
		})
	}
}

func TestCredentialsEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name        string
		setup       func(h *browserHarness, sc *http.Cookie) *http.Cookie
		status      int
		msg         string
		sessionLeft bool // the signed-in session still exists afterwards
	}{
		{"signed in", nil, 200, "", true},
		{"no cookie", func(h *browserHarness, sc *http.Cookie) *http.Cookie { return nil }, 401, msgAuthRequired, true},
		{"malformed cookie", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			return &http.Cookie{Name: SessionCookie, Value: "x"}
		}, 401, msgAuthRequired, true},
		{"unknown session", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			return &http.Cookie{Name: SessionCookie, Value: randomToken(32)}
		}, 401, msgAuthRequired, true},
		{"expired session", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			h.now = h.now.Add(time.Duration(h.svc.cfg.SessionLifetime) + 1)
			return sc
		}, 401, msgAuthRequired, true},
		{"logged out", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			req := httptest.NewRequest("POST", testPublicURL+"/login/logout", nil)
			req.AddCookie(sc)
			h.do(req)
			return sc
		}, 401, msgAuthRequired, false},
		{"user removed at the provider", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			h.fake.removeUser("alice")
			return sc
		}, 401, msgNoCredsUser, false},
		{"grant missing", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			delete(h.mb.records, recKey(KindGrant, KeyOf("fake/alice")))
			return sc
		}, 401, msgNoCredsUser, true},
		{"provider down", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			h.fake.refreshErr = errors.New("connection refused")
			return sc
		}, 503, "", true},
		{"store behind (sync fails)", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			h.mb.syncErr = ErrUnavailable
			return sc
		}, 503, "", true},
		{"issuer cannot sign", func(h *browserHarness, sc *http.Cookie) *http.Cookie {
			delete(h.mb.clients, testIssuer)
			return sc
		}, 500, msgNoCredsUser, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			sc := h.signIn("code-alice")
			c := sc
			if tc.setup != nil {
				c = tc.setup(h, sc)
			}
			res := h.get("/login/credentials", nilIfNone(c)...)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				var reply CredentialsReply
				if err := json.Unmarshal(body, &reply); err != nil || reply.Credentials.ClientID != "fake/alice" ||
					reply.Credentials.Certificate == "" || len(reply.Credentials.AccessToken) != 43 || reply.Expires != "2023-11-14T22:27:50.000Z" {
					t.Fatalf("reply %s", body)
				}
			} else if tc.msg != "" && !strings.HasPrefix(jsonField(t, body, "message"), tc.msg) {
				t.Fatalf("message %q, want %q", jsonField(t, body, "message"), tc.msg)
			}
			h.mb.syncErr = nil
			if got := h.mb.records[recKey(KindSession, KeyOf(sc.Value))].Key != ""; got != tc.sessionLeft {
				t.Fatalf("session left = %v, want %v", got, tc.sessionLeft)
			}
		})
	}
}

func nilIfNone(c *http.Cookie) []*http.Cookie {
	if c == nil {
		return nil
	}
	return []*http.Cookie{c}
}

func jsonField(t *testing.T, body []byte, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	s, _ := m[name].(string)
	return s
}

// TestUserGoneEndsEverySession: a user the provider no longer knows loses
// every session (all browsers) and the grant.
func TestUserGoneEndsEverySession(t *testing.T) {
	h := newBrowserHarness(t)
	a, b := h.signIn("code-alice"), h.signIn("code-alice")
	h.fake.removeUser("alice")
	if res := h.get("/login/credentials", a); res.StatusCode != 401 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if res := h.get("/login/credentials", b); res.StatusCode != 401 {
		t.Fatalf("other browser: %d", res.StatusCode)
	}
	if h.mb.count(KindSession) != 0 || h.mb.count(KindGrant) != 0 {
		t.Fatalf("sessions %d grants %d", h.mb.count(KindSession), h.mb.count(KindGrant))
	}
}

// TestRefreshRotatesGrant: a changed grant is stored again; the user's
// roles come from the provider at every request.
func TestRefreshRotatesGrant(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	h.fake.rotate = true
	h.fake.addUser("code-alice", User{IdentityID: "alice", Roles: []string{"fake-group:ops"}})
	res := h.get("/login/credentials", sc)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	var reply CredentialsReply
	json.NewDecoder(res.Body).Decode(&reply)
	if !strings.Contains(reply.Credentials.Certificate, `"assume:fake-group:ops"`) || strings.Contains(reply.Credentials.Certificate, "admins") {
		t.Fatalf("roles not re-derived: %s", reply.Credentials.Certificate)
	}
	var g Grant
	json.Unmarshal(h.mb.records[recKey(KindGrant, KeyOf("fake/alice"))].Data, &g)
	if !strings.HasSuffix(g.RefreshToken, "-rotated") || g.Strategy != "fake" {
		t.Fatalf("grant not stored again: %+v", g)
	}
}

// TestRefreshIdentityChange: a provider answering for another identity
// (e.g. a GitHub login now naming another account) is a gone user.
func TestRefreshIdentityChange(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	h.fake.mu.Lock()
	h.fake.users["alice"] = User{ProviderID: "fake", IdentityID: "mallory"}
	h.fake.mu.Unlock()
	if res := h.get("/login/credentials", sc); res.StatusCode != 401 || h.mb.count(KindSession) != 0 {
		t.Fatalf("status %d sessions %d", res.StatusCode, h.mb.count(KindSession))
	}
}

func TestCredentialsCORS(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	for _, tc := range []struct {
		origin string
		allow  bool
	}{{testUIOrigin, true}, {"https://evil.example", false}, {"null", false}, {"", false}, {testUIOrigin + ".evil.example", false}} {
		for _, path := range []string{"/login/credentials", "/graphql"} {
			req := httptest.NewRequest("OPTIONS", testPublicURL+path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			pre := h.do(req)
			req = httptest.NewRequest("GET", testPublicURL+"/login/credentials", nil)
			req.Header.Set("Origin", tc.origin)
			req.AddCookie(sc)
			res := h.do(req)
			for i, r := range []*http.Response{pre, res} {
				acao := r.Header.Get("Access-Control-Allow-Origin")
				if tc.allow != (acao == tc.origin && r.Header.Get("Access-Control-Allow-Credentials") == "true") || !tc.allow && acao != "" {
					t.Errorf("origin %q %s (preflight=%v): ACAO %q ACAC %q", tc.origin, path, i == 0, acao, r.Header.Get("Access-Control-Allow-Credentials"))
				}
				if !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
					t.Errorf("origin %q: no Vary: Origin", tc.origin)
				}
			}
			if tc.allow && pre.Header.Get("Access-Control-Allow-Headers") != "Content-Type" {
				t.Errorf("preflight headers %v", pre.Header)
			}
		}
	}
}

// TestCredentialsFitHawkHeader: a user in more teams than a 4096-character
// Hawk header can carry still gets credentials when most teams are roles
// nobody defined (they are left out, the defined ones kept), and a clear
// InputError when even the defined ones do not fit.
func TestCredentialsFitHawkHeader(t *testing.T) {
	teams := func(n int) []string {
		r := make([]string, n)
		for i := range r {
			r[i] = fmt.Sprintf("github-team:big-org/team-with-a-long-name-%03d", i)
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		defined []string // roles the deployment defines
		wantErr error
	}{
		{"few defined", []string{"github-team:big-org/team-with-a-long-name-007", "github-team:big-org/team-with-a-long-name-120"}, nil},
		{"all defined", teams(140), errTooManyRoles},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			setRoles(t, h.mb, tc.defined)
			c := h.mb.clients[testIssuer]
			c.Scopes = append(c.Scopes, "assume:github-team:*")
			h.mb.clients[testIssuer] = c
			u := User{ProviderID: "fake", IdentityID: "alice", Roles: teams(140)}
			got, err := h.svc.issueCredentials(u)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			cert, err := protocol.ParseCertificate(got.Credentials.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"assume:github-team:big-org/team-with-a-long-name-007", "assume:github-team:big-org/team-with-a-long-name-120", "assume:login-identity:fake/alice"}
			if !slices.Equal(cert.Scopes, want) {
				t.Fatalf("certificate scopes %q, want %q", cert.Scopes, want)
			}
		})
	}
}

// setRoles defines each role of ids with one scope of its own.
func setRoles(t *testing.T, m *memBackend, ids []string) {
	roles := make([]scopeengine.Role, len(ids))
	for i, id := range ids {
		roles[i] = scopeengine.Role{RoleID: id, Scopes: []string{"queue:route:" + id}}
	}
	r, err := scopeengine.NewResolver(roles)
	if err != nil {
		t.Fatal(err)
	}
	m.resolver = r
}
