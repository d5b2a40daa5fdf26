package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/controlplanetest"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

func TestScopesExplainCLI(t *testing.T) {
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	writeFile(t, routes, `routes:
  - {method: GET, path: /healthz, public: true}
  - {method: POST, path: /share/<id>, query: [to], body: [tags],
     scopes: {AllOf: ["notes:share:<id>:<to>", {for: t, in: tags, each: "notes:tag:<t>"}]}}
  - {method: GET, path: /if/<x>, body: [ro], scopes: {if: ro, then: "r:<x>", else: "w:<x>"}}
`)
	body := filepath.Join(dir, "body.json")
	writeFile(t, body, `{"permissions":{"contents":"read"},"repositories":["Tc"]}`)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        []string // substrings of the output
		wantErr     string
		code        int
	}{
		{name: "auto", args: []string{"GET", "/api/auth/v1/clients/a%2Fb"}, want: []string{"endpoint:  client (GET /clients/<clientId>)", `template:  "auth:get-client:<clientId>"`, "requires:  auth:get-client:a/b"}},
		{name: "for/each from --body", args: []string{"--body", `{"scopes":["x:1"]}`, "PUT", "/clients/n"}, want: []string{`"auth:create-client:n",`, `"x:1"`, "from the body"}},
		{name: "body on stdin", stdin: `{"scopes":["y:2"]}`, args: []string{"--body", "-", "PUT", "/clients/n"}, want: []string{`"y:2"`}},
		{name: "body from a file", args: []string{"--body", "@" + body, "POST", "/github/app/Org/repo-token"}, want: []string{"auth:github-repo-token:app/org/tc:contents:read"}},
		{name: "no body: at least", args: []string{"PUT", "/clients/n"}, want: []string{"at least; more from scopes"}},
		{name: "if/else", args: []string{"GET", "/aws/s3/read-write/bucket/p"}, want: []string{"requires:  auth:aws-s3:read-write:bucket/p"}},
		{name: "no scopes", args: []string{"GET", "/ping"}, want: []string{"requires:  no scopes"}},
		{name: "json", args: []string{"--json", "DELETE", "/roles/r"}, want: []string{`"expression": "auth:delete-role:r"`, `"endpoint": "deleteRole"`}},
		{name: "unknown route", args: []string{"GET", "/api/auth/v1/nope"}, wantErr: "no such API endpoint: GET /api/auth/v1/nope", code: 2},
		{name: "wrong method", args: []string{"PATCH", "/clients/x"}, wantErr: "that path takes GET, PUT, POST, DELETE", code: 2},
		{name: "one argument", args: []string{"GET"}, wantErr: "takes METHOD and URL", code: 2},
		{name: "bad body", args: []string{"--body", "[]", "PUT", "/clients/n"}, wantErr: "want a JSON object", code: 2},
		{name: "routes file", args: []string{"--routes", routes, "--body", `{"tags":["a","b"]}`, "POST", "/share/n1?to=bob"},
			want: []string{`"notes:share:n1:bob",`, `"notes:tag:a",`, `"notes:tag:b"`, "<to> from the query"}},
		{name: "routes: if from the body", args: []string{"--routes", routes, "--body", `{"ro":true}`, "GET", "/if/k"}, want: []string{"requires:  r:k"}},
		{name: "routes: if unknown without the body", args: []string{"--routes", routes, "GET", "/if/k"}, want: []string{"cannot tell without ro"}},
		{name: "routes: public", args: []string{"--routes", routes, "GET", "/healthz"}, want: []string{"no scopes", "public route"}},
		{name: "routes: no route", args: []string{"--routes", routes, "GET", "/x"}, wantErr: "no route of the policy matches: GET /x", code: 2},
		{name: "routes: refused path", args: []string{"--routes", routes, "GET", "/if/..%2Fx"}, wantErr: "refuses this request", code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errText, code := runCLI(t, tc.stdin, append([]string{"scopes", "explain"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errText, tc.wantErr) {
				t.Fatalf("exit %d, error %q; want %d, %q\n%s", code, errText, tc.code, tc.wantErr, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestScopesExplainClient checks a client of a real control plane: what
// it lacks, as minimal alternatives, and exit 1.
func TestScopesExplainClient(t *testing.T) {
	n := controlplanetest.Start(t, raftstore.NewTestCluster(t, 1), func(cfg *controlplane.Config) {
		cfg.StaticClients = append(cfg.StaticClients, controlplanetest.RootClient())
	})[0]
	root := &tcclient.Client{RootURL: n.URL, Credentials: &protocol.Credentials{ClientID: controlplanetest.RootID, AccessToken: controlplanetest.RootToken}}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := root.Do(t.Context(), "PUT", "/roles/"+tcclient.PathSegment("project:ops"), nil,
			map[string]any{"description": "ops", "scopes": []string{"auth:create-client:ops/*"}}, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control plane not ready: %v", err)
		}
	}
	if err := root.Do(t.Context(), "PUT", "/clients/"+tcclient.PathSegment("ops/bot"), nil, map[string]any{"description": "bot",
		"expires": "2100-01-01T00:00:00.000Z", "scopes": []string{"assume:project:ops", "notes:read:*"}}, nil); err != nil {
		t.Fatal(err)
	}
	setCreds(t, n.URL, controlplanetest.RootID, controlplanetest.RootToken)
	body := `{"scopes":["notes:read:x","notes:write:x"]}`
	// One scope missing: through the role the client has create-client.
	out, errText, code := runCLI(t, "", "scopes", "explain", "--client", "ops/bot", "--body", body, "PUT", "/clients/ops%2Fnew")
	if code != 1 || errText != "" || !strings.Contains(out, "client:    ops/bot lacks notes:write:x") || !strings.Contains(out, "grant one of:\n  - notes:write:x\n") {
		t.Fatalf("exit %d %q:\n%s", code, errText, out)
	}
	out, _, code = runCLI(t, "", "scopes", "explain", "--json", "--client", "ops/bot", "GET", "/aws/s3/read-only/bkt/p")
	var e controlplane.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil || code != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if len(e.MissingAlternatives) != 2 || e.MissingAlternatives[0][0] != "auth:aws-s3:read-only:bkt/p" || *e.Satisfied {
		t.Fatalf("alternatives %v", e.MissingAlternatives)
	}
	out, _, code = runCLI(t, "", "scopes", "explain", "--client", "ops/bot", "GET", "/clients/x")
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// Partial (no body) and satisfied so far: it cannot be told, exit 0.
	out, _, code = runCLI(t, "", "scopes", "explain", "--client", "ops/bot", "PUT", "/clients/ops%2Fx")
	if code != 0 || !strings.Contains(out, "ops/bot: cannot tell without the body") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, errText, code = runCLI(t, "", "scopes", "explain", "--client", "ghost", "GET", "/ping"); code != 1 || !strings.Contains(errText, "Client") {
		t.Fatalf("unknown client: exit %d %q", code, errText)
	}
}
