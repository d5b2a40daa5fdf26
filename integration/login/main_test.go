package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// The example OpenID provider runs once per test binary. Its redirect
// URIs are fixed when it starts, so the addresses of every node whose
// public URL receives its callbacks are reserved here, before any cluster.
var (
	zitadel       *harness.OIDCExample
	zitadelReason string
	// clusterAddrs and singleAddrs are the HTTP and Raft addresses of the
	// three-node cluster and of the single node (HTTP first, then Raft).
	clusterAddrs, singleAddrs []string
	// tokenCallback is a redirect URI registered at the provider that
	// nobody serves: the tests stop the browser there and read the code,
	// to obtain provider access tokens of their own (oidc-credentials).
	tokenCallback string
)

// Users of the example provider (USERS_FILE). Identities are
// zitadel/<sub>, sub being the user id.
var (
	alice = harness.OIDCUser{ID: "u-alice", Username: "alice", Password: "alice-pass-1", FirstName: "Alice", LastName: "A", Email: "alice@example.com", EmailVerified: true}
	bob   = harness.OIDCUser{ID: "u-bob", Username: "bob", Password: "bob-pass-2", FirstName: "Bob", LastName: "B", Email: "bob@example.com", EmailVerified: true}
)

// The static client that issues users' credentials (the login config's
// issuer), with the scopes web-server's static client has for its
// providers, for the providers configured here.
const issuerID = "static/tcauth/it-login"

var issuerScopes = []string{
	"assume:login-identity:*", "assume:zitadel-group:*", "assume:github-team:*", "assume:github-org-admin:*",
	"auth:create-client:zitadel/*", "auth:create-client:github/*",
	"auth:disable-client:zitadel/*", "auth:disable-client:github/*",
	"auth:delete-client:zitadel/*", "auth:delete-client:github/*",
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	addrs, err := harness.ReserveAddrs(6 + 2 + 2)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	clusterAddrs, singleAddrs = addrs[:6], addrs[6:8]
	tokenCallback = "http://" + addrs[8] + "/itest/callback"
	_, port, _ := net.SplitHostPort(addrs[9])
	redirects := []string{tokenCallback,
		"http://" + clusterAddrs[0] + "/login/zitadel/callback",
		"http://" + singleAddrs[0] + "/login/zitadel/callback"}
	return harness.WithOIDCExample(port, []harness.OIDCUser{alice, bob}, redirects, func(o *harness.OIDCExample, reason string) int {
		zitadel, zitadelReason = o, reason
		return m.Run()
	})
}

// needZitadel skips (or, under TCAUTH_REQUIRE_PEERS=1, fails) without the
// example OpenID provider.
func needZitadel(t *testing.T) {
	t.Helper()
	harness.NeedPeer(t, zitadelReason)
}

func randToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loginCluster starts size nodes on addrs (HTTP addresses, then Raft)
// with the login configuration yaml on every node and the issuer static
// client.
func loginCluster(t *testing.T, addrs []string, yaml string) *harness.Cluster {
	t.Helper()
	size := len(addrs) / 2
	cfgFile := filepath.Join(t.TempDir(), "login.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("login config:\n%s", yaml)
	return harness.StartCluster(t, harness.ClusterConfig{Size: size, HTTPAddrs: addrs[:size], RaftAddrs: addrs[size:],
		ExtraArgs: []string{"--login-config", cfgFile},
		StaticClients: []harness.StaticClient{{ClientID: issuerID, AccessToken: randToken(),
			Description: "issues the login tests' user credentials", Scopes: issuerScopes}}})
}

// zitadelStrategy is the OIDC strategy entry for the example provider:
// the confidential client "web"; the bearer exchange introspects opaque
// tokens (the example issues no JWT access tokens) and requires the one
// non-standard scope the example allows, custom_scope.
func zitadelStrategy() string {
	return fmt.Sprintf(`  - name: zitadel
    type: oidc
    issuer: %s
    clientId: web
    clientSecret: secret
    bearer:
      introspect: true
      requiredScope: custom_scope
`, zitadel.Issuer)
}

// credsReply is {expires, credentials} of /login/credentials,
// oidc-credentials and /login/oauth/credentials.
type credsReply struct {
	Expires     time.Time `json:"expires"`
	Credentials struct {
		ClientID    string `json:"clientId"`
		AccessToken string `json:"accessToken"`
		Certificate string `json:"certificate,omitempty"`
	} `json:"credentials"`
}

func decodeCreds(t *testing.T, what string, p page) credsReply {
	t.Helper()
	var c credsReply
	if p.Status != 200 {
		t.Fatalf("%s: status %d:\n%.1500s", what, p.Status, p.Body)
	}
	if err := json.Unmarshal([]byte(p.Body), &c); err != nil || c.Credentials.ClientID == "" || c.Credentials.AccessToken == "" {
		t.Fatalf("%s: not credentials (%v):\n%.1500s", what, err, p.Body)
	}
	return c
}

// creds are c's credentials, for taskcluster-client.
func (c credsReply) creds() protocol.Credentials {
	return protocol.Credentials{ClientID: c.Credentials.ClientID, AccessToken: c.Credentials.AccessToken, Certificate: c.Credentials.Certificate}
}

// currentScopes is auth.currentScopes() through taskcluster-client; the
// credentials must be accepted.
func currentScopes(t *testing.T, rootURL string, c credsReply) []string {
	t.Helper()
	scopes, ok, msg := harness.CurrentScopes(t, rootURL, c.creds())
	if !ok {
		t.Fatalf("taskcluster-client currentScopes with %s: %s", c.Credentials.ClientID, msg)
	}
	return scopes
}

func hasAll(have []string, want ...string) error {
	set := map[string]bool{}
	for _, s := range have {
		set[s] = true
	}
	var missing []string
	for _, w := range want {
		if !set[w] {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %v in %v", missing, have)
	}
	return nil
}

func ctxT(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// putRole creates or replaces a role through node i as root.
func putRole(t *testing.T, c *harness.Cluster, i int, id string, scopes ...string) {
	t.Helper()
	err := c.Client(i, nil).Do(ctxT(t), http.MethodPut, "/roles/"+tcclient.PathSegment(id), nil,
		map[string]any{"description": "login integration test", "scopes": scopes}, nil)
	if err != nil {
		// PUT creates; an existing role is updated with POST.
		err = c.Client(i, nil).Do(ctxT(t), http.MethodPost, "/roles/"+tcclient.PathSegment(id), nil,
			map[string]any{"description": "login integration test", "scopes": scopes}, nil)
	}
	if err != nil {
		t.Fatalf("role %s: %v", id, err)
	}
}

// apiError decodes Taskcluster's error shape.
type apiError struct {
	Code        string         `json:"code"`
	Message     string         `json:"message"`
	RequestInfo map[string]any `json:"requestInfo"`
}

// wantRefused checks a 4xx answer; msg, if set, must be in the message of
// a Taskcluster-shaped JSON error.
func wantRefused(t *testing.T, what string, p page, msg string) {
	t.Helper()
	if p.Status < 400 || p.Status > 499 {
		t.Errorf("%s: status %d, want 4xx:\n%.800s", what, p.Status, p.Body)
		return
	}
	if msg == "" {
		return
	}
	var e apiError
	if err := json.Unmarshal([]byte(p.Body), &e); err != nil || e.Code == "" || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: want a Taskcluster error with %q, got %d:\n%.800s", what, msg, p.Status, p.Body)
	}
}
