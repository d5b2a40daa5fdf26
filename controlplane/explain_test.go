package controlplane

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

const nobodyToken = "nobody-token-0123456789abcdef"

// explainCases cover every kind of template: auto (path only), derived
// path values (if/then/else on the level), for/each over the body, and
// the stored state of updates.
var explainCases = []struct {
	name, method, url, body string
	want                    string // the filled expression, compact JSON
}{
	{"get client, encoded slash", "GET", "/api/auth/v1/clients/a%2Fb", "", `"auth:get-client:a/b"`},
	{"relative to the API", "GET", "/clients/plain", "", `"auth:get-client:plain"`},
	{"absolute URL", "DELETE", "https://tc.example.com/api/auth/v1/clients/gone", "", `"auth:delete-client:gone"`},
	{"HEAD is GET", "HEAD", "/api/auth/v1/roles/r", "", `"auth:get-role:r"`},
	{"static scope", "POST", "/api/auth/v1/scopes/expand", `{"scopes":[]}`, `"auth:expand-scopes"`},
	{"audit", "GET", "/api/auth/v1/audit/client/x?limit=2", "", `"auth:audit-history:client"`},
	{"createClient for/each", "PUT", "/api/auth/v1/clients/new", `{"expires":"2030-01-01T00:00:00.000Z","description":"d","scopes":["x:1","notes:write:<..>/*"]}`,
		`{"AllOf":["auth:create-client:new","x:1","notes:write:<..>/*"]}`},
	{"createClient without scopes", "PUT", "/api/auth/v1/clients/new", `{"expires":"2030-01-01T00:00:00.000Z","description":"d"}`,
		`{"AllOf":["auth:create-client:new"]}`},
	{"updateClient: only added scopes", "POST", "/api/auth/v1/clients/existing", `{"expires":"2030-01-01T00:00:00.000Z","description":"d","scopes":["old:1","new:1"]}`,
		`{"AllOf":["auth:update-client:existing","new:1"]}`},
	{"createRole", "PUT", "/api/auth/v1/roles/project:x", `{"description":"d","scopes":["a:b"]}`, `{"AllOf":["auth:create-role:project:x","a:b"]}`},
	{"updateRole: satisfied scopes are not added", "POST", "/api/auth/v1/roles/existing-role", `{"description":"d","scopes":["r:sub","s:1"]}`,
		`{"AllOf":["auth:update-role:existing-role","s:1"]}`},
	{"s3 read-only: then", "GET", "/api/auth/v1/aws/s3/read-only/bkt/a/b/", "",
		`{"AnyOf":["auth:aws-s3:read-only:bkt/a/b/","auth:aws-s3:read-write:bkt/a/b/"]}`},
	{"s3 read-write: else", "GET", "/api/auth/v1/aws/s3/read-write/bkt/p", "", `"auth:aws-s3:read-write:bkt/p"`},
	{"azure table read-only", "GET", "/api/auth/v1/azure/acct/table/Tbl/read-only", "",
		`{"AnyOf":["auth:azure-table:read-only:acct/Tbl","auth:azure-table:read-write:acct/Tbl"]}`},
	{"azure container read-write", "GET", "/api/auth/v1/azure/acct/containers/box/read-write", "", `"auth:azure-container:read-write:acct/box"`},
	{"github repoPerms from the body", "POST", "/api/auth/v1/github/app/Owner/repo-token", `{"permissions":{"issues":"write","contents":"read"},"repositories":["Repo1","r2"]}`,
		`{"AllOf":["auth:github-repo-token:app/owner/repo1:contents:read","auth:github-repo-token:app/owner/r2:contents:read","auth:github-repo-token:app/owner/repo1:issues:write","auth:github-repo-token:app/owner/r2:issues:write"]}`},
	{"sentry", "GET", "/api/auth/v1/sentry/proj/dsn", "", `"auth:sentry:proj"`},
	{"websocktunnel", "GET", "/api/auth/v1/websocktunnel/aud/cli", "", `"auth:websocktunnel-token:aud/cli"`},
	{"gcp", "GET", "/api/auth/v1/gcp/credentials/proj/sa@x", "", `"auth:gcp:access-token:proj/sa@x"`},
	{"cluster remove", "DELETE", "/api/auth/v1/tcauth/cluster/members/n1", "", `"auth:tcauth:cluster:remove:n1"`},
	{"explain with a client", "POST", "/api/auth/v1/tcauth/explain", `{"method":"GET","url":"/ping","clientId":"c1"}`, `"auth:get-client:c1"`},
}

func explainSeed(e *testEnv) {
	e.addClient("nobody", nobodyToken)
	e.addClient("existing", "existing-token-0123456789abcdef", "old:1")
	e.putRole("existing-role", "r:*")
}

func storeLookup(st Store) storedFunc {
	return func(kind, id string) ([]string, bool, error) {
		if kind == "client" {
			rec, ok := st.Client(id)
			return rec.Scopes, ok, nil
		}
		r, ok := st.Role(id)
		if !ok {
			return nil, false, nil
		}
		return st.Resolver().Expand(r.Scopes), true, nil
	}
}

// TestExplainMatchesServer fills each template with Explain and checks it
// against what the server itself demands: the 403 a client without scopes
// gets names the same required expression.
func TestExplainMatchesServer(t *testing.T) {
	e := newEnv(t)
	explainSeed(e)
	for _, tc := range explainCases {
		t.Run(tc.name, func(t *testing.T) {
			var body json.RawMessage
			if tc.body != "" {
				body = json.RawMessage(tc.body)
			}
			ex, err := Explain(tc.method, tc.url, ExplainOptions{Body: body, Stored: storeLookup(e.store)})
			if err != nil {
				t.Fatal(err)
			}
			if ex.Needs != NeedsScopes || ex.Expression == nil || len(ex.Partial)+len(ex.Unknown) != 0 {
				t.Fatalf("needs %s, partial %v, unknown %v", ex.Needs, ex.Partial, ex.Unknown)
			}
			got, _ := protocol.Marshal(ex.Expression)
			if string(got) != tc.want {
				t.Fatalf("expression %s\nwant       %s", got, tc.want)
			}
			path := tc.url
			if i := strings.Index(path, "/api/"); i >= 0 {
				path = path[i:]
			} else {
				path = apiPrefix + path
			}
			opts := []opt{as("nobody", nobodyToken)}
			if tc.body != "" {
				opts = append(opts, withBody(tc.body))
			}
			method := tc.method
			if method == "HEAD" {
				method = "GET" // to read the error body
			}
			r := e.do(method, path, opts...)
			m := expectError(t, r, 403, protocol.CodeInsufficientScopes)
			if msg, _ := m["message"].(string); !strings.Contains(msg, ex.Expression.String()) {
				t.Fatalf("the server requires something else:\n%s\nexplained:\n%s", msg, ex.Expression.String())
			}
		})
	}
}

func TestExplainEveryTemplatedRoute(t *testing.T) {
	// A route whose template uses a parameter explainParam does not know
	// would be explained with that parameter unknown forever.
	for _, rt := range routeTable().routes {
		if rt.tmpl == nil {
			continue
		}
		for _, name := range rt.tmpl.Params() {
			p := explainParam(rt, name, map[string]string{}, map[string]any{}, nil)
			if p.Value == nil && p.How == "" && !rt.hasPathParam(name) {
				t.Errorf("%s: template parameter %q has no source in explainParam", rt.name, name)
			}
		}
	}
}

func TestExplainPartialAndUnknown(t *testing.T) {
	for _, tc := range []struct {
		name, method, url string
		needs             string
		expr              string
		partial, unknown  []string
	}{
		{"createClient without body", "PUT", "/clients/x", NeedsScopes, `{"AllOf":["auth:create-client:x"]}`, []string{"scopes"}, nil},
		{"updateRole without body", "POST", "/roles/x", NeedsScopes, `{"AllOf":["auth:update-role:x"]}`, []string{"scopesAdded"}, nil},
		{"github without body", "POST", "/github/a/o/repo-token", NeedsScopes, `{"AllOf":[]}`, []string{"repoPerms"}, nil},
		{"explain without body: the if is unknown", "POST", "/tcauth/explain", NeedsBody, "", nil, []string{"checkClient", "clientId"}},
		{"no template", "GET", "/ping", NeedsNone, "", nil, nil},
		{"dockerflow at the root", "GET", "/__heartbeat__", NeedsNone, "", nil, nil},
		{"test-authenticate", "POST", "/api/auth/v1/test-authenticate", NeedsNone, "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Explain(tc.method, tc.url, ExplainOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ex.Needs != tc.needs || !reflect.DeepEqual(ex.Partial, tc.partial) || !reflect.DeepEqual(ex.Unknown, tc.unknown) {
				t.Fatalf("needs %s partial %v unknown %v", ex.Needs, ex.Partial, ex.Unknown)
			}
			if tc.expr != "" {
				got, _ := protocol.Marshal(ex.Expression)
				if string(got) != tc.expr {
					t.Fatalf("expression %s, want %s", got, tc.expr)
				}
			} else if ex.Expression != nil {
				t.Fatalf("expression %v, want none", ex.Expression)
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		want        error
		text        string
	}{
		{"GET", "/api/auth/v1/nope", ErrNoEndpoint, "GET /api/auth/v1/nope"},
		{"PATCH", "/api/auth/v1/clients/x", ErrNoEndpoint, "takes GET, PUT, POST, DELETE"},
		{"GET", "https://tc.example.com/api/queue/v1/task/x", ErrNoEndpoint, "not an auth API URL"},
		{"GE T", "/ping", ErrBadExplainInput, "not an HTTP method"},
		{"GET", "", ErrBadExplainInput, "cannot read"},
		{"GET", "http://[::1", ErrBadExplainInput, "cannot read"},
	} {
		_, err := Explain(tc.method, tc.url, ExplainOptions{})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Explain(%s %s) = %v; want %v containing %q", tc.method, tc.url, err, tc.want, tc.text)
		}
	}
	if _, err := Explain("PUT", "/clients/x", ExplainOptions{Body: json.RawMessage(`[1]`)}); !errors.Is(err, ErrBadExplainInput) {
		t.Errorf("array body: %v", err)
	}
	if _, err := Explain("PUT", "/clients/x", ExplainOptions{Body: json.RawMessage(`{"scopes":[{}]}`)}); !errors.Is(err, ErrBadExplainInput) {
		t.Errorf("non-string scope: %v", err)
	}
}

func TestExplainNotes(t *testing.T) {
	ex, err := Explain("GET", "/clients/bad%20id%20%3F", ExplainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Notes) != 1 || !strings.Contains(ex.Notes[0], "400 InvalidRequestArguments") {
		t.Errorf("notes %q", ex.Notes)
	}
	ex, _ = Explain("PUT", "/clients/x", ExplainOptions{Body: json.RawMessage(`{"scopes":["a"]}`)})
	if len(ex.Notes) == 0 || !strings.Contains(strings.Join(ex.Notes, "\n"), "must have required property 'expires'") {
		t.Errorf("schema notes %q", ex.Notes)
	}
	ex, _ = Explain("POST", "/clients/x", ExplainOptions{Body: json.RawMessage(`{"scopes":["a"]}`)})
	if p := ex.Parameters[1]; p.Name != "scopesAdded" || !strings.Contains(p.How, "upper bound") && !strings.Contains(p.How, "all of the body's scopes") {
		t.Errorf("scopesAdded without the store: %+v", p)
	}
}

func TestExplainCheck(t *testing.T) {
	body := json.RawMessage(`{"expires":"2030-01-01T00:00:00.000Z","description":"d","scopes":["x:1","y:2"]}`)
	for _, tc := range []struct {
		name         string
		have         []string
		satisfied    *bool
		missing      string
		alternatives [][]string
	}{
		{"all", []string{"auth:create-client:*", "x:*", "y:2"}, ptr(true), "", nil},
		{"one scope missing", []string{"auth:create-client:n", "x:1"}, ptr(false), `"y:2"`, [][]string{{"y:2"}}},
		{"nothing", nil, ptr(false), `{"AllOf":["auth:create-client:n","x:1","y:2"]}`, [][]string{{"auth:create-client:n", "x:1", "y:2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Explain("PUT", "/clients/n", ExplainOptions{Body: body})
			if err != nil {
				t.Fatal(err)
			}
			ex.Check("c", scopeengine.NewScopeSet(tc.have))
			checkOutcome(t, ex, tc.satisfied, tc.missing, tc.alternatives)
		})
	}
	// AnyOf: the alternatives are the branches.
	ex, _ := Explain("GET", "/aws/s3/read-only/b/p", ExplainOptions{})
	ex.Check("c", scopeengine.NewScopeSet([]string{"auth:aws-s3:read-only:other"}))
	checkOutcome(t, ex, ptr(false), `{"AnyOf":["auth:aws-s3:read-only:b/p","auth:aws-s3:read-write:b/p"]}`,
		[][]string{{"auth:aws-s3:read-only:b/p"}, {"auth:aws-s3:read-write:b/p"}})
	// Partial: satisfied so far is not "satisfied".
	ex, _ = Explain("PUT", "/clients/n", ExplainOptions{})
	ex.Check("c", scopeengine.NewScopeSet([]string{"*"}))
	checkOutcome(t, ex, nil, "", nil)
	// No scopes needed.
	ex, _ = Explain("GET", "/ping", ExplainOptions{})
	ex.Check("c", nil)
	checkOutcome(t, ex, ptr(true), "", nil)
}

func ptr(b bool) *bool { return &b }

func checkOutcome(t *testing.T, ex *Explanation, satisfied *bool, missing string, alts [][]string) {
	t.Helper()
	if (satisfied == nil) != (ex.Satisfied == nil) || satisfied != nil && *satisfied != *ex.Satisfied {
		t.Fatalf("satisfied %v, want %v", ex.Satisfied, satisfied)
	}
	var got string
	if ex.Missing != nil {
		b, _ := protocol.Marshal(ex.Missing)
		got = string(b)
	}
	if got != missing || !reflect.DeepEqual(ex.MissingAlternatives, alts) {
		t.Fatalf("missing %s %v, want %s %v", got, ex.MissingAlternatives, missing, alts)
	}
}

func TestExplainEndpoint(t *testing.T) {
	e := newEnv(t)
	explainSeed(e)
	post := func(body string, opts ...opt) response {
		return e.api("POST", "/tcauth/explain", append(opts, withBody(body))...)
	}
	// Explaining needs no credentials at all.
	r := post(`{"method":"GET","url":"/api/auth/v1/clients/x"}`)
	expectStatus(t, r, 200)
	m := r.json(t)
	if m["endpoint"] != "client" || m["expression"] != "auth:get-client:x" || m["needs"] != "scopes" || m["satisfied"] != nil {
		t.Fatalf("anonymous explain: %s", r.body)
	}
	// Against given scopes: what is missing.
	r = post(`{"method":"PUT","url":"/clients/q","body":{"expires":"2030-01-01T00:00:00.000Z","description":"d","scopes":["old:1"]},"scopes":["auth:create-client:*"]}`)
	expectStatus(t, r, 200)
	jsonField(t, r, "missing", "old:1")
	jsonField(t, r, "missingAlternatives", [][]string{{"old:1"}})
	// Against a client: needs auth:get-client:<id>.
	const checkExisting = `{"method":"PUT","url":"/clients/q","body":{"expires":"2030-01-01T00:00:00.000Z","description":"d","scopes":["old:1"]},"clientId":"existing"}`
	m = expectError(t, post(checkExisting, as("nobody", nobodyToken)), 403, protocol.CodeInsufficientScopes)
	if !strings.Contains(m["message"].(string), "auth:get-client:existing") {
		t.Fatalf("403 message: %v", m["message"])
	}
	r = post(checkExisting, asRoot())
	expectStatus(t, r, 200)
	jsonField(t, r, "clientId", "existing")
	jsonField(t, r, "satisfied", false)
	jsonField(t, r, "missing", "auth:create-client:q")
	// updateClient: the stored scopes are subtracted only for a caller that may read them.
	const update = `{"method":"POST","url":"/clients/existing","body":{"expires":"2030-01-01T00:00:00.000Z","description":"d","scopes":["old:1","new:1"]}}`
	r = post(update, asRoot())
	expectStatus(t, r, 200)
	jsonField(t, r, "expression", map[string]any{"AllOf": []string{"auth:update-client:existing", "new:1"}})
	r = post(update, as("nobody", nobodyToken))
	expectStatus(t, r, 200)
	jsonField(t, r, "expression", map[string]any{"AllOf": []string{"auth:update-client:existing", "old:1", "new:1"}})
	if !strings.Contains(string(r.body), "that needs auth:get-client:existing") {
		t.Fatalf("upper bound not explained: %s", r.body)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code, text string
	}{
		{"unknown route", `{"method":"GET","url":"/nope"}`, 404, protocol.CodeResourceNotFound, "no such API endpoint: GET /api/auth/v1/nope"},
		{"other service", `{"method":"GET","url":"/api/queue/v1/task/x"}`, 404, protocol.CodeResourceNotFound, "not an auth API URL"},
		{"no such client", `{"method":"GET","url":"/ping","clientId":"ghost"}`, 404, protocol.CodeResourceNotFound, "Client not found"},
		{"bad method", `{"method":"G T","url":"/ping"}`, 400, protocol.CodeInputValidationError, "data/method must match pattern"},
		{"missing url", `{"method":"GET"}`, 400, protocol.CodeInputValidationError, "must have required property 'url'"},
		{"url too long", `{"method":"GET","url":"/` + strings.Repeat("a", maxExplainURL) + `"}`, 400, protocol.CodeInputValidationError, "must NOT have more than"},
		{"body not an object", `{"method":"GET","url":"/ping","body":[1]}`, 400, protocol.CodeInputValidationError, "data/body must be object"},
		{"body too large", `{"method":"PUT","url":"/clients/x","body":{"d":"` + strings.Repeat("a", maxExplainBody) + `"}}`, 413, protocol.CodeInputTooLarge, "exceeds"},
		{"client and scopes", `{"method":"GET","url":"/ping","clientId":"existing","scopes":[]}`, 400, protocol.CodeInputError, "not both"},
		{"bad body value", `{"method":"PUT","url":"/clients/x","body":{"scopes":[{}]}}`, 400, protocol.CodeInputError, "bad explain input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := expectError(t, post(tc.body, asRoot()), tc.status, tc.code)
			if msg, _ := m["message"].(string); !strings.Contains(msg, tc.text) {
				t.Fatalf("message %q, want %q", msg, tc.text)
			}
			if _, ok := m["requestInfo"]; !ok {
				t.Fatal("no requestInfo: not Taskcluster's error shape")
			}
		})
	}
}

func jsonField(t *testing.T, r response, name string, want any) {
	t.Helper()
	m := r.json(t)
	g, _ := json.Marshal(m[name])
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s = %s, want %s\n%s", name, g, w, r.body)
	}
}

// FuzzExplain: any method, URL and body give an explanation or one of the
// sentinel errors, never a panic.
func FuzzExplain(f *testing.F) {
	f.Add("PUT", "/api/auth/v1/clients/a%2Fb", `{"scopes":["x"]}`)
	f.Add("POST", "/github/a/O/repo-token", `{"permissions":{"contents":"read"},"repositories":["r"]}`)
	f.Add("GET", "https://h/api/auth/v1/aws/s3/read-only/b/p/", "")
	f.Fuzz(func(t *testing.T, method, rawURL, body string) {
		var b json.RawMessage
		if body != "" {
			b = json.RawMessage(body)
		}
		e, err := Explain(method, rawURL, ExplainOptions{Body: b})
		if err != nil {
			if !errors.Is(err, ErrNoEndpoint) && !errors.Is(err, ErrBadExplainInput) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if (e.Needs == NeedsScopes) != (e.Expression != nil) {
			t.Fatalf("needs %s with expression %v", e.Needs, e.Expression)
		}
		e.Check("c", nil)
	})
}
