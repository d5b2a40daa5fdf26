package webui

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// suite is one control-plane node with the login service and the web
// UI, and one browser context per user. The subtests share them and run
// in order: each leaves what it made behind only where a later one says
// it uses it.
type suite struct {
	c     *harness.Cluster
	pub   string // the UI's origin (the login config's publicUrl)
	alice *userBrowser
	bob   *userBrowser
	carol *userBrowser
}

// The static client that issues users' credentials, with the scopes
// web-server's static client has (integration/login has the same).
const issuerID = "static/tcauth/it-webui"

var issuerScopes = []string{
	"assume:login-identity:*", "auth:create-client:zitadel/*",
	"auth:disable-client:zitadel/*", "auth:delete-client:zitadel/*",
}

// userRole is every signed-in user's role (the convention of Taskcluster
// deployments): manage clients under one's own identity.
var userRole = []string{"auth:current-scopes",
	"auth:create-client:<..>/*", "auth:update-client:<..>/*", "auth:reset-access-token:<..>/*",
	"auth:disable-client:<..>/*", "auth:enable-client:<..>/*", "auth:delete-client:<..>/*"}

// adminRole is alice's own role: the auth service, and the scopes of the
// roles and clients the tests make (a caller must hold the scopes it
// grants).
var adminRole = []string{"auth:*", "it:ui:*", "assume:it-ui/*"}

func TestWebUI(t *testing.T) {
	needPeers(t)
	start := time.Now()
	s := &suite{pub: "http://" + nodeAddrs[0]}
	yaml := fmt.Sprintf("publicUrl: %s\nissuer: %s\nstrategies:\n%s", s.pub, issuerID, zitadelStrategy())
	cfgFile := filepath.Join(t.TempDir(), "login.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.c = harness.StartCluster(t, harness.ClusterConfig{Size: 1, HTTPAddrs: nodeAddrs[:1], RaftAddrs: nodeAddrs[1:2],
		ExtraArgs: []string{"--login-config", cfgFile},
		StaticClients: []harness.StaticClient{{ClientID: issuerID, AccessToken: randToken(),
			Description: "issues the web UI tests' user credentials", Scopes: issuerScopes}}})
	s.putRole(t, "login-identity:*", userRole...)
	s.putRole(t, "login-identity:"+identityOf(alice), adminRole...)
	s.putRole(t, "login-identity:"+identityOf(carol), "auth:list-clients", "auth:get-client:*")
	s.alice = newUserBrowser(t, alice, s.pub)
	s.bob = newUserBrowser(t, bob, s.pub)
	s.carol = newUserBrowser(t, carol, s.pub)
	t.Logf("node, provider and browser ready after %v", time.Since(start).Round(time.Millisecond))

	t.Run("SignInProfile", s.testSignInProfile)
	t.Run("Clients", s.testClients)
	t.Run("PhoneLayout", s.testPhoneLayout)
	t.Run("ClientsPagingAndFilter", s.testClientsPaging)
	t.Run("Roles", s.testRoles)
	t.Run("ScopeInspector", s.testScopeInspector)
	t.Run("SigninCLI", s.testSigninCLI)
	t.Run("CallbackNotLoopbackRefused", s.testCallbackRefused)
	t.Run("CrossOriginPostRefused", s.testCrossOrigin)
	t.Run("InsufficientScopes", s.testInsufficientScopes)
	t.Logf("TestWebUI took %v", time.Since(start).Round(time.Millisecond))
}

// zitadelStrategy is the OIDC strategy entry for the example provider
// (its confidential client "web").
func zitadelStrategy() string {
	return fmt.Sprintf("  - name: zitadel\n    type: oidc\n    issuer: %s\n    clientId: web\n    clientSecret: secret\n", zitadel.Issuer)
}

func ctxT(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// putRole creates or replaces a role as root, through the API (not the
// UI: this is the deployment's set-up).
func (s *suite) putRole(t *testing.T, id string, scopes ...string) {
	t.Helper()
	body := map[string]any{"description": "web UI integration test", "scopes": scopes}
	path := "/roles/" + tcclient.PathSegment(id)
	if err := s.c.Client(0, nil).Do(ctxT(t), http.MethodPut, path, nil, body, nil); err != nil {
		if err = s.c.Client(0, nil).Do(ctxT(t), http.MethodPost, path, nil, body, nil); err != nil {
			t.Fatalf("role %s: %v", id, err)
		}
	}
}

// client is the API's view of a client, read as root; ok is false when
// it does not exist.
type apiClient struct {
	ClientID       string    `json:"clientId"`
	Description    string    `json:"description"`
	Scopes         []string  `json:"scopes"`
	ExpandedScopes []string  `json:"expandedScopes"`
	Disabled       bool      `json:"disabled"`
	Expires        time.Time `json:"expires"`
	DeleteOnExp    bool      `json:"deleteOnExpiration"`
	LastRotated    time.Time `json:"lastRotated"`
}

func (s *suite) client(t *testing.T, id string) (c apiClient, ok bool) {
	t.Helper()
	err := s.c.Client(0, nil).Do(ctxT(t), http.MethodGet, "/clients/"+tcclient.PathSegment(id), nil, nil, &c)
	if err != nil {
		if strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "ResourceNotFound") {
			return c, false
		}
		t.Fatalf("reading client %s: %v", id, err)
	}
	return c, true
}

type apiRole struct {
	RoleID         string   `json:"roleId"`
	Scopes         []string `json:"scopes"`
	ExpandedScopes []string `json:"expandedScopes"`
}

func (s *suite) role(t *testing.T, id string) (r apiRole, ok bool) {
	t.Helper()
	err := s.c.Client(0, nil).Do(ctxT(t), http.MethodGet, "/roles/"+tcclient.PathSegment(id), nil, nil, &r)
	if err != nil {
		if strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "ResourceNotFound") {
			return r, false
		}
		t.Fatalf("reading role %s: %v", id, err)
	}
	return r, true
}

// state is the node's stored clients and login records.
func (s *suite) state(t *testing.T) harness.StateCounts {
	t.Helper()
	st, err := s.c.State(0)
	if err != nil {
		t.Fatalf("reading the state: %v", err)
	}
	return st
}

// clientIDs is the stored client ids (login records left out: a page
// view may refresh a user's grant).
func (s *suite) clientIDs(t *testing.T) string {
	t.Helper()
	return fmt.Sprint(s.state(t).Clients)
}

// clientPath is the UI path of a client: the id is one path segment,
// "/" escaped as %2F (encodeURIComponent, as Taskcluster's UI).
func clientPath(id string) string { return "/auth/clients/" + tcclient.PathSegment(id) }

func rolePath(id string) string { return "/auth/roles/" + tcclient.PathSegment(id) }
