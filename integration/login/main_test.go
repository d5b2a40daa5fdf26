package login

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
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
	reserve := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			a, err := harness.ReserveAddr()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			out = append(out, a)
		}
		return out
	}
	clusterAddrs, singleAddrs = reserve(6), reserve(2)
	tokenCallback = "http://" + reserve(1)[0] + "/itest/callback"
	bin, reason := harness.OIDCExampleBin()
	if bin == "" {
		zitadelReason = reason
		return m.Run()
	}
	logDir, err := os.MkdirTemp("", "tcauth-login-oidc-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(logDir)
	_, port, _ := net.SplitHostPort(reserve(1)[0])
	redirects := []string{tokenCallback,
		"http://" + clusterAddrs[0] + "/login/zitadel/callback",
		"http://" + singleAddrs[0] + "/login/zitadel/callback"}
	zitadel, err = harness.StartOIDCExample(bin, port, logDir, []harness.OIDCUser{alice, bob}, redirects)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer zitadel.Stop()
	code := m.Run()
	if code != 0 {
		log := zitadel.Log()
		if len(log) > 4000 {
			log = "…" + log[len(log)-4000:]
		}
		fmt.Fprintf(os.Stderr, "---- zitadel-oidc-example ----\n%s\n", log)
	}
	return code
}

// needZitadel skips (or, under TCAUTH_REQUIRE_PEERS=1, fails) without the
// example OpenID provider.
func needZitadel(t *testing.T) {
	t.Helper()
	if zitadel != nil {
		return
	}
	if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
		t.Fatalf("the example OpenID provider is required: %s", zitadelReason)
	}
	t.Skip(zitadelReason)
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

// tcCall calls auth.<method>(...args) with the official taskcluster-client
// (integration/node/tc.js) against rootURL.
func tcCall(t *testing.T, rootURL string, c credsReply, method string, args ...any) (ok bool, body json.RawMessage, msg string) {
	t.Helper()
	node := harness.NeedNode(t)
	creds := map[string]string{"clientId": c.Credentials.ClientID, "accessToken": c.Credentials.AccessToken}
	if c.Credentials.Certificate != "" {
		creds["certificate"] = c.Credentials.Certificate
	}
	if args == nil {
		args = []any{}
	}
	in, _ := json.Marshal([]any{map[string]any{"op": "call", "rootUrl": rootURL, "method": method, "args": args, "credentials": creds}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "tc.js")
	cmd.Dir = harness.NodeDir()
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node tc.js: %v\n%s", err, stderr.String())
	}
	var out []struct {
		Result struct {
			OK      bool            `json:"ok"`
			Body    json.RawMessage `json:"body"`
			Message string          `json:"message"`
		} `json:"result"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != 1 {
		t.Fatalf("tc.js output %q: %v", stdout.String(), err)
	}
	if out[0].Error != "" {
		t.Fatalf("taskcluster-client threw: %s", out[0].Error)
	}
	return out[0].Result.OK, out[0].Result.Body, out[0].Result.Message
}

// currentScopes is auth.currentScopes() through taskcluster-client.
func currentScopes(t *testing.T, rootURL string, c credsReply) []string {
	t.Helper()
	ok, body, msg := tcCall(t, rootURL, c, "currentScopes")
	if !ok {
		t.Fatalf("taskcluster-client currentScopes with %s: %s", c.Credentials.ClientID, msg)
	}
	var s struct{ Scopes []string }
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s.Scopes
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
