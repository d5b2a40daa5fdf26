package controlplane

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// These tests drive the official Taskcluster JS client (taskcluster-client,
// installed by `make deps` in integration/node) against the Go server: a
// real peer, not a fake. They skip when node or the npm packages are absent.

const nodeDir = "../integration/node"

func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(nodeDir, "node_modules", "taskcluster-client"))
	}
	if err != nil {
		// make test installs them first and sets TCAUTH_REQUIRE_PEERS:
		// there, their absence is a failure, not a skip.
		if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatalf("node and integration/node/node_modules are required: %v", err)
		}
		t.Skipf("needs node and integration/node/node_modules (make deps): %v", err)
	}
	return node
}

func runNode(t *testing.T, node string, args []string, stdin []byte) []byte {
	t.Helper()
	cmd := exec.Command(node, args...)
	cmd.Dir = nodeDir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestRoutesMatchOfficialReference compares the route table with the auth
// API reference shipped in taskcluster-client: every endpoint, method,
// route, query parameter and scope template.
func TestRoutesMatchOfficialReference(t *testing.T) {
	node := needNode(t)
	out := runNode(t, node, []string{"-e", `import('taskcluster-client/src/apis.js').then(m => {
		const e = (m.default || m).Auth.reference.entries.filter(x => x.type === 'function');
		process.stdout.write(JSON.stringify(e.map(x => ({name: x.name, method: x.method, route: x.route, query: x.query, scopes: x.scopes}))));
	})`}, nil)
	var ref []struct {
		Name, Method, Route string
		Query               []string
		Scopes              any
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	ours := map[string]*route{}
	for _, r := range s.buildRoutes() {
		ours[r.name] = r
	}
	for _, e := range ref {
		r, ok := ours[e.Name]
		if !ok {
			t.Errorf("%s: not routed", e.Name)
			continue
		}
		var segs []string
		for _, p := range r.path {
			if p[0] == ':' || p[0] == '*' {
				p = "<" + p[1:] + ">"
			}
			segs = append(segs, p)
		}
		if got, want := "/"+strings.Join(segs, "/"), strings.TrimSuffix(e.Route, "/"); got != want {
			t.Errorf("%s: route %s, reference %s", e.Name, got, want)
		}
		if !strings.EqualFold(r.method, e.Method) {
			t.Errorf("%s: method %s, reference %s", e.Name, r.method, e.Method)
		}
		var q []string
		for _, p := range r.query {
			q = append(q, p.name)
		}
		sort.Strings(q)
		sort.Strings(e.Query)
		if strings.Join(q, ",") != strings.Join(e.Query, ",") && e.Name != "heartbeat" { // tcauth adds ?standbyok
			t.Errorf("%s: query %v, reference %v", e.Name, q, e.Query)
		}
		var ourScopes any
		if r.tmpl != nil {
			src, _ := templateSources.Load(r.tmpl)
			_ = json.Unmarshal([]byte(src.(string)), &ourScopes)
		}
		if !reflect.DeepEqual(ourScopes, e.Scopes) && e.Name != "testAuthenticate" && e.Name != "testAuthenticateGet" {
			t.Errorf("%s: scopes %v, reference %v", e.Name, ourScopes, e.Scopes)
		}
	}
}

type tcOutcome struct {
	Result struct {
		OK         bool            `json:"ok"`
		Body       json.RawMessage `json:"body"`
		StatusCode int             `json:"statusCode"`
		Message    string          `json:"message"`
	} `json:"result"`
	Error string `json:"error"`
}

// TestOfficialClient runs a session of Auth API calls made by the official
// JS client (its Hawk headers, its %2F escaping, its temporary credentials
// and authorizedScopes) against the server.
func TestOfficialClient(t *testing.T) {
	node := needNode(t)
	e := newEnv(t)
	e.putRole("anonymous", "auth:current-scopes")
	root := map[string]string{"clientId": "root", "accessToken": rootToken}
	now := frozen.UnixMilli()
	call := func(method string, creds any, args ...any) map[string]any {
		c := map[string]any{"op": "call", "rootUrl": e.base, "method": method, "args": args, "now": now}
		if creds != nil {
			c["credentials"] = creds
		}
		return c
	}
	expires := frozen.Add(24 * time.Hour).Format(time.RFC3339)
	cases := []map[string]any{
		call("ping", nil),
		call("createClient", root, "tc/one", map[string]any{"expires": expires, "description": "one", "scopes": []string{"auth:current-scopes", "assume:project:x"}}),
		call("client", root, "tc/one"),
		call("listClients", root, map[string]any{"prefix": "tc/"}),
		call("createRole", root, "project:*", map[string]any{"description": "p", "scopes": []string{"secrets:get:project/<..>/*"}}),
		call("role", root, "project:*"),
		call("listRoleIds", root, map[string]any{"limit": 1}),
		call("expandScopes", root, map[string]any{"scopes": []string{"assume:project:y"}}),
		call("currentScopes", nil),
		call("authenticateHawk", nil, map[string]any{"method": "get", "resource": "/", "host": "example.com", "port": 443}),
		call("testAuthenticate", map[string]string{"clientId": "tester", "accessToken": "no-secret"}, map[string]any{"clientScopes": []string{"test:*"}, "requiredScopes": []string{"test:x"}}),
		call("testAuthenticateGet", map[string]string{"clientId": "tester", "accessToken": "no-secret"}),
		call("createClient", map[string]string{"clientId": "tester", "accessToken": "no-secret"}, "tc/two", map[string]any{"expires": expires, "description": "two"}),
		call("deleteClient", root, "tc/gone"),
		{"op": "call", "rootUrl": e.base, "method": "currentScopes", "now": now, "credentials": root, "authorizedScopes": []string{"auth:current-scopes"}},
		call("updateRole", root, "project:*", map[string]any{"description": "p2", "scopes": []string{"secrets:get:project/<..>/*", "x"}}),
		call("deleteRole", root, "project:*"),
	}
	in, _ := json.Marshal(cases)
	var outs []tcOutcome
	if err := json.Unmarshal(runNode(t, node, []string{"tc.js"}, in), &outs); err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(cases) {
		t.Fatalf("%d outcomes for %d cases", len(outs), len(cases))
	}
	body := func(i int) map[string]any {
		t.Helper()
		o := outs[i]
		if o.Error != "" || !o.Result.OK {
			t.Fatalf("case %d (%v): %s %d %s", i, cases[i]["method"], o.Error, o.Result.StatusCode, o.Result.Message)
		}
		var m map[string]any
		_ = json.Unmarshal(o.Result.Body, &m)
		return m
	}
	if body(0)["alive"] != true {
		t.Error("ping")
	}
	one := body(1)
	if one["clientId"] != "tc/one" || len(one["accessToken"].(string)) != 44 {
		t.Errorf("createClient: %v", one)
	}
	if body(2)["description"] != "one" || len(body(3)["clients"].([]any)) != 1 {
		t.Error("client/listClients")
	}
	if body(5)["roleId"] != "project:*" || body(6)["continuationToken"] != "wpfg" {
		t.Errorf("role/listRoleIds: %v %v", body(5), body(6))
	}
	jsonEq(t, outs[7].Result.Body, map[string]any{"scopes": []string{"assume:project:y", "secrets:get:project/y/*"}})
	jsonEq(t, outs[8].Result.Body, map[string]any{"scopes": []string{"assume:anonymous", "auth:current-scopes"}})
	if body(9)["status"] != "no-auth" {
		t.Errorf("authenticateHawk: %v", body(9))
	}
	if body(10)["clientId"] != "tester" || body(11)["clientId"] != "tester" {
		t.Errorf("testAuthenticate(Get): %v %v", body(10), body(11))
	}
	if outs[12].Result.OK || outs[12].Result.StatusCode != 401 {
		t.Errorf("createClient with unknown credentials: %+v", outs[12])
	}
	if !outs[13].Result.OK {
		t.Errorf("deleteClient of an absent client: %+v", outs[13])
	}
	jsonEq(t, outs[14].Result.Body, map[string]any{"scopes": []string{"assume:anonymous", "auth:current-scopes"}})
	if body(15)["description"] != "p2" || !outs[16].Result.OK {
		t.Errorf("updateRole/deleteRole: %+v %+v", outs[15], outs[16])
	}

	// Temporary credentials made by the official client work against the server.
	tmpIn, _ := json.Marshal([]map[string]any{{"op": "createTemporaryCredentials", "credentials": map[string]string{"clientId": "tc/one", "accessToken": one["accessToken"].(string)},
		"scopes": []string{"auth:current-scopes"}, "start": now - 60000, "expiry": now + 3600000}})
	var tmp []struct {
		Result map[string]string `json:"result"`
	}
	if err := json.Unmarshal(runNode(t, node, []string{"tc.js"}, tmpIn), &tmp); err != nil || tmp[0].Result["certificate"] == "" {
		t.Fatalf("createTemporaryCredentials: %v %v", err, tmp)
	}
	in, _ = json.Marshal([]map[string]any{call("currentScopes", tmp[0].Result)})
	if err := json.Unmarshal(runNode(t, node, []string{"tc.js"}, in), &outs); err != nil {
		t.Fatal(err)
	}
	jsonEq(t, outs[0].Result.Body, map[string]any{"scopes": []string{"assume:anonymous", "auth:current-scopes"}})
}
