package interop

import (
	"context"
	"strings"
	"testing"
)

// Requests the official client sends with permanent credentials — its own
// URL building, query encoding, ext and Hawk header — verify in a Go server
// running the Authenticator on the request as received; replaying the same
// header on a changed request fails.
func TestTaskclusterClientHeadersVerifyInGo(t *testing.T) {
	requireNode(t)
	srv := newAuthServer(t, newAuthenticator(testClients()))
	calls := []struct {
		method     string
		args       []any
		authorized []string
		wantMethod string
		wantPath   string // request-target prefix the client must have used
	}{
		{"ping", nil, nil, "GET", "/api/auth/v1/ping"},
		{"listClients", []any{map[string]string{"prefix": "a b/c"}}, nil, "GET", "/api/auth/v1/clients/?prefix="},
		{"client", []any{"my/client id"}, []string{"test:a"}, "GET", "/api/auth/v1/clients/"},
		{"createRole", []any{"role:x y", map[string]any{"description": "d", "scopes": []string{"a"}}}, nil, "PUT", "/api/auth/v1/roles/"},
		{"deleteClient", []any{"c"}, []string{}, "DELETE", "/api/auth/v1/clients/c"},
		{"testAuthenticate", []any{map[string]any{"clientScopes": []string{"x"}, "requiredScopes": []string{}}}, []string{"test:q:*"}, "POST", "/api/auth/v1/test-authenticate"},
	}
	cases := make([]any, len(calls))
	for i, c := range calls {
		m := map[string]any{"op": "call", "rootUrl": srv.URL, "method": c.method, "args": c.args, "now": frozen.UnixMilli(),
			"credentials": map[string]string{"clientId": testerID, "accessToken": testerKey}}
		if c.authorized != nil {
			m["authorizedScopes"] = c.authorized
		}
		cases[i] = m
	}
	out := runNode(t, "tc.js", cases)
	reqs, results := srv.takeRequests()
	if len(reqs) != len(calls) {
		t.Fatalf("the Go server saw %d requests for %d calls", len(reqs), len(calls))
	}
	auth := newAuthenticator(testClients())
	for i, c := range calls {
		var reply struct{ OK bool }
		out[i].value(t, c.method, &reply)
		req := reqs[i]
		t.Logf("%s: %s %s", c.method, req.Method, req.Resource)
		if req.Method != c.wantMethod || !strings.HasPrefix(req.Resource, c.wantPath) {
			t.Errorf("%s: client sent %s %s, want %s %s…", c.method, req.Method, req.Resource, c.wantMethod, c.wantPath)
		}
		want := []string{"assume:anonymous", "test:*"}
		if c.authorized != nil {
			want = append([]string{"assume:anonymous"}, c.authorized...)
		}
		wantSuccess(t, "taskcluster-client "+c.method, results[i], testerID, want)
		if !reply.OK {
			t.Errorf("%s: the client did not accept the Go server's 200", c.method)
		}
		for _, tm := range tamperings {
			wantFailure(t, c.method+", "+tm.name, auth.Authenticate(context.Background(), tm.f(req)), "Unauthorized: Bad mac")
		}
	}
}
