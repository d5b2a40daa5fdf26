package login_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/controlplanetest"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
)

// TestOAuthFlowRealBackend runs third-party sign-in over a real
// single-node raftstore and the control plane's login backend: consent,
// code (single use in the Raft apply), token, a permanent client created
// and audited, then the scanner disabling it once the user leaves the team
// (audited with the issuer as actor).
func TestOAuthFlowRealBackend(t *testing.T) {
	rc := raftstore.NewTestCluster(t, 1)
	fake := login.NewFakeStrategy("fake")
	fake.AddUser("code-alice", login.User{IdentityID: "alice", Roles: []string{"fake-group:admins"}})
	base, srv := newOAuthNode(t, rc, fake)
	ctx := t.Context()
	for _, r := range []raftstore.Role{
		{RoleID: "login-identity:*", Scopes: []string{"auth:create-client:<..>/*"}},
		{RoleID: "fake-group:admins", Scopes: []string{"secrets:get:x"}},
	} {
		if _, err := rc.WaitLeader().Apply(ctx, raftstore.Command{Op: raftstore.OpCreateRole, Time: time.Now(), Actor: "test", Role: &r}); err != nil {
			t.Fatal(err)
		}
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(req *http.Request, cookies ...*http.Cookie) (*http.Response, string) {
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(b)
	}
	get := func(u string, cookies ...*http.Cookie) (*http.Response, string) {
		req, _ := http.NewRequest("GET", u, nil)
		return do(req, cookies...)
	}
	post := func(u string, form url.Values, cookies ...*http.Cookie) (*http.Response, string) {
		req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		return do(req, cookies...)
	}
	// sign in
	res, _ := get(base + "/login/fake")
	loc, _ := url.Parse(res.Header.Get("Location"))
	state := loc.Query().Get("state")
	var flow, sess *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == login.FlowCookieName(state) {
			flow = ck
		}
	}
	res, _ = get(base+"/login/fake/callback?code=code-alice&state="+state, flow)
	for _, ck := range res.Cookies() {
		if ck.Name == login.SessionCookie {
			sess = ck
		}
	}
	if sess == nil {
		t.Fatalf("no session: %d", res.StatusCode)
	}
	// authorize → consent → allow
	q := url.Values{"response_type": {"code"}, "client_id": {"myapp"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"secrets:get:x"}, "state": {"xyz"}}
	res, page := get(base+"/login/oauth/authorize?"+q.Encode(), sess)
	tx := regexp.MustCompile(`name="transaction_id" value="([^"]+)"`).FindStringSubmatch(page)
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if res.StatusCode != 200 || tx == nil || csrf == nil {
		t.Fatalf("consent page: %d %s", res.StatusCode, page)
	}
	form := url.Values{"transaction_id": {html.UnescapeString(tx[1])}, "csrf_token": {html.UnescapeString(csrf[1])},
		"decision": {"allow"}, "scope": {"secrets:get:x"}}
	res, _ = post(base+"/login/oauth/authorize/decision", form, sess)
	back, _ := url.Parse(res.Header.Get("Location"))
	code := back.Query().Get("code")
	if res.StatusCode != 302 || code == "" || back.Query().Get("state") != "xyz" {
		t.Fatalf("decision: %d %s", res.StatusCode, back)
	}
	// a replayed decision is refused
	if res, _ = post(base+"/login/oauth/authorize/decision", form, sess); res.StatusCode != 400 {
		t.Fatalf("replayed decision: %d", res.StatusCode)
	}
	// code → token (once)
	tf := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}, "client_id": {"myapp"}}
	res, body := post(base+"/login/oauth/token", tf)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %s", res.StatusCode, body)
	}
	if res, _ = post(base+"/login/oauth/token", tf); res.StatusCode != 400 {
		t.Fatalf("replayed code: %d", res.StatusCode)
	}
	// token → permanent client (same answer on repeat)
	creds := func() (*http.Response, string) {
		req, _ := http.NewRequest("GET", base+"/login/oauth/credentials", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return do(req)
	}
	res, body = creds()
	var reply login.CredentialsReply
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &reply) != nil {
		t.Fatalf("credentials: %d %s", res.StatusCode, body)
	}
	if _, again := creds(); again != body {
		t.Fatalf("repeat differs:\n%s\n%s", again, body)
	}
	b := srv.LoginBackend()
	cl, ok := b.Client(reply.Credentials.ClientID)
	if !ok || !cl.DeleteOnExpiration || strings.Join(cl.Scopes, ",") != "secrets:get:x" || !strings.HasPrefix(cl.ClientID, "fake/alice/myapp-") {
		t.Fatalf("client %+v", cl)
	}
	// alice leaves the team: the scanner disables the client, audited
	fake.AddUser("code-alice", login.User{IdentityID: "alice"})
	if n, err := srv.Login().ScanClients(ctx); err != nil || n != 1 {
		t.Fatalf("scan: %d %v", n, err)
	}
	if cl, _ = b.Client(cl.ClientID); !cl.Disabled {
		t.Fatal("client still enabled")
	}
	entries, _ := rc.Nodes[0].Audit(raftstore.AuditQuery{EntityType: "client", EntityID: cl.ClientID}, 0, 10)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.ActionType+" by "+e.ClientID)
	}
	if got := strings.Join(actions, "; "); !strings.Contains(got, "by "+controlplanetest.IssuerID) || len(entries) < 2 {
		t.Fatalf("audit: %s", got)
	}
	// a disabled client is not handed out again
	if res, _ = creds(); res.StatusCode != 400 {
		t.Fatalf("credentials of a disabled client: %d", res.StatusCode)
	}
}

func newOAuthNode(t *testing.T, rc *raftstore.TestCluster, fake *login.FakeStrategy) (string, *controlplane.Server) {
	n := controlplanetest.Start(t, rc, func(cfg *controlplane.Config) {
		cfg.Login.Apps = []login.App{{ClientID: "myapp", Scopes: []string{"secrets:get:x"}, RedirectURIs: []string{"https://app.example/cb"}}}
	}, fake)[0]
	return n.URL, n.Server
}
