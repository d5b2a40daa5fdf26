package login

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// TestLoginOIDCThreeNodes: sign in through node 1 with the real OIDC
// provider, get credentials through node 2 and use them with
// taskcluster-client (role-derived scopes included); kill the leader and
// get credentials through a survivor; log out through a third node and
// the session is refused on every node.
func TestLoginOIDCThreeNodes(t *testing.T) {
	needZitadel(t)
	harness.NeedNode(t)
	pub := "http://" + clusterAddrs[0]
	c := loginCluster(t, clusterAddrs, fmt.Sprintf("publicUrl: %s\nissuer: %s\nstrategies:\n%s", pub, issuerID, zitadelStrategy()))
	putRole(t, c, 2, "login-identity:*", "it:user:<..>", "auth:current-scopes")
	identity := "zitadel/" + alice.ID

	b := newBrowser(t)
	p := b.signInZitadel(pub+"/login/zitadel", alice.Username, alice.Password)
	if p.Status != 200 || !strings.Contains(p.Body, "postMessage") || !strings.Contains(p.Body, pub) {
		t.Fatalf("callback page: %d at %s, want 200 posting the login message to %s:\n%.2000s", p.Status, p.URL, pub, p.Body)
	}
	session := checkSessionCookie(t, p)

	creds := decodeCreds(t, "credentials through n2", b.get(c.Nodes[1].URL()+"/login/credentials"))
	if creds.Credentials.ClientID != identity || creds.Credentials.Certificate == "" {
		t.Fatalf("credentials %+v: want named temporary credentials for %s", creds.Credentials, identity)
	}
	if d := time.Until(creds.Expires); d < 13*time.Minute || d > 15*time.Minute {
		t.Errorf("expires in %v, want 15 min − 30 s", d)
	}
	if err := harness.Eventually(10*time.Second, func() error {
		return hasAll(currentScopes(t, c.Nodes[1].URL(), creds), "assume:login-identity:"+identity, "it:user:"+identity)
	}); err != nil {
		t.Fatalf("taskcluster-client currentScopes: %v", err)
	}

	leader, err := c.Leader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Nodes[leader].Kill()
	survivor := (leader + 1) % 3
	t.Logf("killed leader %s; fetching credentials through %s", c.Nodes[leader].ID, c.Nodes[survivor].ID)
	var again credsReply
	if err := harness.Eventually(30*time.Second, func() error {
		p := sessionGet(t, c.Nodes[survivor].URL()+"/login/credentials", session)
		if p.Status != 200 {
			return fmt.Errorf("status %d: %.300s", p.Status, p.Body)
		}
		again = decodeCreds(t, "credentials after failover", p)
		return nil
	}); err != nil {
		t.Fatalf("credentials after the leader died: %v", err)
	}
	if err := hasAll(currentScopes(t, c.Nodes[survivor].URL(), again), "it:user:"+identity); err != nil {
		t.Error(err)
	}

	// The old leader rejoins, so "every node" is all three again.
	if err := c.Nodes[leader].Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(leader, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	third := (survivor + 1) % 3
	if lp := sessionPost(t, c.Nodes[third].URL()+"/login/logout", session); lp.Status >= 400 {
		t.Fatalf("logout through %s: %d %.300s", c.Nodes[third].ID, lp.Status, lp.Body)
	}
	for i, n := range c.Nodes {
		if p := sessionGet(t, n.URL()+"/login/credentials", session); p.Status != http.StatusUnauthorized && (p.Status < 400 || p.Status > 499) {
			t.Errorf("after logout through %s, %s still answers %d:\n%.300s", c.Nodes[third].ID, c.Nodes[i].ID, p.Status, p.Body)
		}
	}
}

// checkSessionCookie returns the session cookie the callback set and
// checks its attributes (HttpOnly, SameSite=Strict, not Secure on a
// loopback public URL, a week).
func checkSessionCookie(t *testing.T, p page) string {
	t.Helper()
	for _, line := range p.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != "tcauth_session" || c.Value == "" {
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" {
			t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, not Secure on loopback, Path=/", line)
		}
		if c.MaxAge < 6*24*3600 && time.Until(c.Expires) < 6*24*time.Hour {
			t.Errorf("session cookie %q: want a week", line)
		}
		return c.Value
	}
	t.Fatalf("the callback set no tcauth_session cookie: %v", p.Header.Values("Set-Cookie"))
	return ""
}

// sessionGet/sessionPost send the session cookie explicitly, outside any
// jar (a logout may clear the jar's copy; the server must refuse the value).
func sessionGet(t *testing.T, u, session string) page {
	return sessionDo(t, http.MethodGet, u, session)
}

func sessionPost(t *testing.T, u, session string) page {
	return sessionDo(t, http.MethodPost, u, session)
}

func sessionDo(t *testing.T, method, u, session string) page {
	t.Helper()
	b := newBrowser(t)
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "tcauth_session", Value: session})
	return b.do(req)
}
