package webui

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/scopeengine"
)

// TestOwns: the UI's paths, and never a path of the API, the login
// service, metrics or the Dockerflow/readiness endpoints.
func TestOwns(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/", true}, {"/profile", true}, {"/auth", true}, {"/auth/clients", true}, {"/auth/clients/a%2Fb", true},
		{"/auth/clients/create", true}, {"/auth/roles", true}, {"/auth/roles/x/y", true}, {"/auth/scopes", true},
		{"/auth/sign-in", true}, {"/ui/static/app.css", true},
		{"/api/auth/v1/clients/", false}, {"/api/auth/v1/ping", false}, {"/api/login/v1/oidc-credentials/x", false},
		{"/login", false}, {"/login/github", false}, {"/login/logout", false}, {"/graphql", false}, {"/metrics", false},
		{"/__heartbeat__", false}, {"/__lbheartbeat__", false}, {"/__version__", false}, {"/readyz", false}, {"/ping", false},
		{"/authx", false}, {"/profilex", false}, {"/profile/", false}, {"/ui/staticx", false}, {"/ui", false}, {"", false},
		{"/api/auth/v1/tcauth/internal/login-apply", false}, {"/schemas/auth/v1/x.json", false}, {"/references/manifest.json", false},
	} {
		if got := Owns(c.path); got != c.want {
			t.Errorf("Owns(%q) = %v, want %v", c.path, got, c.want)
		}
	}
}

// TestRouteMatch: one escaped segment per {param}, decoded; literal
// routes win; ids with "/", "..", "//" survive.
func TestRouteMatch(t *testing.T) {
	s := &Server{}
	h := func(*Request) error { return nil }
	s.page("GET", "/auth/clients", h)
	s.page("GET", "/auth/clients/create", h)
	s.page("GET", "/auth/clients/{clientId}", h)
	s.page("POST", "/auth/clients/{clientId}/reset", h)
	for _, c := range []struct {
		method, path, want, id string
		allowed                bool
	}{
		{"GET", "/auth/clients", "/auth/clients", "", false},
		{"GET", "/auth/clients/create", "/auth/clients/create", "", false},
		{"GET", "/auth/clients/" + tcclient.PathSegment("create/x"), "/auth/clients/{clientId}", "create/x", false},
		{"GET", "/auth/clients/" + tcclient.PathSegment("a/../b"), "/auth/clients/{clientId}", "a/../b", false},
		{"GET", "/auth/clients/" + tcclient.PathSegment("a//b"), "/auth/clients/{clientId}", "a//b", false},
		{"GET", "/auth/clients/" + tcclient.PathSegment("a|b!c@d:e+f.g"), "/auth/clients/{clientId}", "a|b!c@d:e+f.g", false},
		{"POST", "/auth/clients/a%2Fb/reset", "/auth/clients/{clientId}/reset", "a/b", false},
		{"GET", "/auth/clients/a%2Fb/reset", "", "", true},
		{"GET", "/auth/clients/a/b", "", "", false},
		{"GET", "/auth/clients/%zz", "", "", false},
		{"GET", "/auth/clients/", "", "", false},
	} {
		rt, params, allowed := s.match(c.method, c.path)
		got := ""
		if rt != nil {
			got = "/" + joinSegs(rt.segs)
		}
		if got != c.want || params["clientId"] != c.id || allowed != c.allowed {
			t.Errorf("%s %s: route %q id %q allowed %v; want %q %q %v", c.method, c.path, got, params["clientId"], allowed, c.want, c.id, c.allowed)
		}
	}
}

func joinSegs(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "/"
		}
		out += x
	}
	return out
}

// TestErrorView: API errors keep their status and code; InsufficientScopes
// shows the missing part and the required expression; login sentinels.
func TestErrorView(t *testing.T) {
	msg := "Client ID fake/bob does not have sufficient scopes and is missing the following scopes:\n\n```\n{\n  \"AnyOf\": [\n    \"auth:list-clients\"\n  ]\n}\n```\n\nThis request requires the client to satisfy the following scope expression:\n\n```\nauth:list-clients\n```\n\n---\n\n* method:     listClients\n* errorCode:  InsufficientScopes\n* statusCode: 403\n* time:       2023-11-14T22:13:20.000Z"
	ev := ErrorView(fmt.Errorf("wrapped: %w", &tcclient.Error{StatusCode: 403, Code: "InsufficientScopes", Message: msg}))
	if ev.Status != 403 || ev.Required != "auth:list-clients" || ev.Missing != "{\n  \"AnyOf\": [\n    \"auth:list-clients\"\n  ]\n}" ||
		ev.Message != "Client ID fake/bob does not have sufficient scopes." {
		t.Fatalf("%+v", ev)
	}
	noAuth := "This request requires Taskcluster credentials that satisfy the following scope expression:\n\n```\nauth:x\n```\n\n---\n\n* method: x"
	if ev := ErrorView(&tcclient.Error{StatusCode: 403, Code: "InsufficientScopes", Message: noAuth}); ev.Required != "auth:x" || ev.Missing != "" {
		t.Fatalf("no-auth: %+v", ev)
	}
	if ev := ErrorView(&tcclient.Error{StatusCode: 404, Code: "ResourceNotFound", Message: "Client not found\n\n---\n\n* x"}); ev.Status != 404 || ev.Message != "Client not found" {
		t.Fatalf("404: %+v", ev)
	}
	for err, status := range map[error]int{
		fmt.Errorf("%w: x", login.ErrProviderUnavailable): http.StatusServiceUnavailable,
		fmt.Errorf("%w: x", login.ErrUnavailable):         http.StatusServiceUnavailable,
		fmt.Errorf("%w: x", login.ErrCannotIssue):         http.StatusInternalServerError,
		&Problem{Status: 400, Code: "InputError"}:         400,
	} {
		if ev := ErrorView(err); ev == nil || ev.Status != status {
			t.Errorf("%v: %+v, want %d", err, ev, status)
		}
	}
	if ErrorView(errors.New("boom")) != nil {
		t.Fatal("an unknown error got a view (it must be a 500 with an incident id)")
	}
}

// TestManageable: "clients I can manage" = under the identity, or
// updatable with the user's scopes.
func TestManageable(t *testing.T) {
	cs := []Client{{ClientID: "fake/alice/a"}, {ClientID: "fake/alice2/b"}, {ClientID: "proj/x"}, {ClientID: "proj2/y"}, {ClientID: "fake/alice"}}
	got := manageable(cs, "fake/alice", scopeengine.NewScopeSet([]string{"auth:update-client:proj/*"}))
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ClientID)
	}
	if fmt.Sprint(ids) != "[fake/alice/a proj/x]" {
		t.Fatalf("%v", ids)
	}
}
