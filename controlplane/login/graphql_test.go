package login

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const credsQuery = `query { getCredentials { expires credentials { clientId accessToken certificate } } }`

func (h *browserHarness) graphql(body, contentType string, c *http.Cookie) (int, string) {
	req := httptest.NewRequest("POST", testPublicURL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if c != nil {
		req.AddCookie(c)
	}
	res := h.do(req)
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func gqlBody(query string, extra ...string) string {
	q, _ := json.Marshal(query)
	return `{"query":` + string(q) + strings.Join(extra, "") + `}`
}

// TestGraphQLAnswers: web-server's shapes and errors, byte for byte where
// the answer does not depend on random credentials.
func TestGraphQLAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signedIn bool
		body     string
		ct       string
		status   int
		want     string // exact body, or a prefix ending in "…"
	}{
		{"unauthorized", false, gqlBody(credsQuery), "application/json", 200,
			`{"errors":[{"message":"Authentication is required to generate credentials","locations":[{"line":1,"column":9}],"path":["getCredentials"],"extensions":{"code":"Unauthorized"}}],"data":{"getCredentials":null}}`},
		{"isLoggedIn false", false, gqlBody(`{ isLoggedIn }`), "application/json", 200, `{"data":{"isLoggedIn":false}}`},
		{"isLoggedIn true", true, gqlBody(`{ isLoggedIn }`), "application/json", 200, `{"data":{"isLoggedIn":true}}`},
		{"aliases and typename", true, gqlBody(`query Q { a: isLoggedIn b: isLoggedIn __typename }`), "application/json", 200,
			`{"data":{"a":true,"b":true,"__typename":"Query"}}`},
		{"application/graphql", false, `{isLoggedIn}`, "application/graphql", 200, `{"data":{"isLoggedIn":false}}`},
		{"operationName picks", false, gqlBody(`query A { isLoggedIn } query B { x: isLoggedIn }`, `,"operationName":"B","variables":{"v":1}`), "application/json", 200,
			`{"data":{"x":false}}`},
		{"fragments", false, gqlBody(`query { ...F ... on Query { y: isLoggedIn } } fragment F on Query { isLoggedIn }`), "application/json", 200,
			`{"data":{"isLoggedIn":false,"y":false}}`},
		{"signed in credentials", true, gqlBody(`{ getCredentials { __typename expires credentials { clientId } } }`), "application/json", 200,
			`{"data":{"getCredentials":{"__typename":"Credentials","expires":"2023-11-14T22:27:50.000Z","credentials":{"clientId":"fake/alice"}}}}`},
		{"mutation", true, gqlBody(`mutation { deleteClient(clientId: "x") { clientId } }`), "application/json", 400,
			`{"errors":[{"message":"mutation operations are not served by tcauth: tcauth serves only the getCredentials and isLoggedIn queries of Taskcluster's web-server GraphQL API.","locations":[{"line":1,"column":1}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`},
		{"subscription", true, gqlBody(`subscription { tasks }`), "application/json", 400, `{"errors":[{"message":"subscription operations are not served by tcauth…`},
		{"other query", true, gqlBody(`{ isLoggedIn clients { edges { node { clientId } } } }`), "application/json", 400,
			`{"errors":[{"message":"Cannot query field \"clients\" on type \"Query\". tcauth serves only the getCredentials and isLoggedIn queries of Taskcluster's web-server GraphQL API.","locations":[{"line":1,"column":14}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`},
		{"unknown subfield", true, gqlBody(`{ getCredentials { scopes } }`), "application/json", 400, `{"errors":[{"message":"Cannot query field \"scopes\" on type \"Credentials\".…`},
		{"arguments", true, gqlBody(`{ getCredentials(x: 1) { expires } }`), "application/json", 400, `{"errors":[{"message":"Field \"getCredentials\" on type \"Query\" takes no arguments.…`},
		{"object without selection", true, gqlBody(`{ getCredentials }`), "application/json", 400, `{"errors":[{"message":"Field \"getCredentials\" of type \"Credentials\" must have a selection of subfields.…`},
		{"leaf with selection", true, gqlBody(`{ isLoggedIn { x } }`), "application/json", 400, `{"errors":[{"message":"Field \"isLoggedIn\" must not have a selection…`},
		{"conflicting alias", true, gqlBody(`{ a: isLoggedIn a: getCredentials { expires } }`), "application/json", 400, `{"errors":[{"message":"Fields \"a\" conflict…`},
		{"directive", true, gqlBody(`{ isLoggedIn @include(if: true) }`), "application/json", 400, `{"errors":[{"message":"Directives are not served by tcauth.…`},
		{"unknown fragment", true, gqlBody(`{ ...F }`), "application/json", 400, `{"errors":[{"message":"Unknown fragment \"F\".…`},
		{"fragment cycle", true, gqlBody(`{ ...F } fragment F on Query { ...G } fragment G on Query { ...F }`), "application/json", 400, `{"errors":[{"message":"Cannot spread fragment…`},
		{"fragment wrong type", true, gqlBody(`{ ...F } fragment F on Credentials { expires }`), "application/json", 400, `{"errors":[{"message":"Fragment \"F\" cannot be spread here…`},
		{"two operations, no name", true, gqlBody(`query A { isLoggedIn } query B { isLoggedIn }`), "application/json", 400, `{"errors":[{"message":"Must provide operation name if query contains multiple operations.","extensions":{"code":"BAD_REQUEST"}}]}`},
		{"unknown operation name", true, gqlBody(`query A { isLoggedIn }`, `,"operationName":"B"`), "application/json", 400, `{"errors":[{"message":"Unknown operation named \"B\".…`},
		{"syntax error", true, gqlBody(`{ isLoggedIn `), "application/json", 400,
			`{"errors":[{"message":"Syntax Error: Unexpected <EOF>.","locations":[{"line":1,"column":14}],"extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]}`},
		{"bad string escape", true, gqlBody(`{ a(x: "\q") }`), "application/json", 400, `{"errors":[{"message":"Syntax Error: Invalid character escape sequence.…`},
		{"empty query", true, gqlBody(``), "application/json", 400, `{"errors":[{"message":"GraphQL operations must contain a non-empty ` + "`query`" + `.…`},
		{"no query", true, `{}`, "application/json", 400, `{"errors":[{"message":"GraphQL operations must contain a non-empty…`},
		{"variables not an object", true, gqlBody(`{isLoggedIn}`, `,"variables":[1]`), "application/json", 400, `{"errors":[{"message":"` + "`variables`" + ` in a POST body should be provided as an object.…`},
		{"batch", true, `[` + gqlBody(`{isLoggedIn}`) + `]`, "application/json", 400, `{"errors":[{"message":"The request body must be one JSON object…`},
		{"not JSON", true, `{"query":`, "application/json", 400, `{"errors":[{"message":"The request body must be one JSON object…`},
		{"text/plain (CSRF)", true, gqlBody(credsQuery), "text/plain", 415, `{"errors":[{"message":"POST /graphql needs Content-Type application/json…`},
		{"form (CSRF)", true, `query=` + credsQuery, "application/x-www-form-urlencoded", 415, `{"errors":[{"message":"POST /graphql needs…`},
		{"too large", true, gqlBody(`{isLoggedIn}` + strings.Repeat(" ", gqlMaxBody)), "application/json", 413, `{"errors":[{"message":"The request body is larger than…`},
		{"too deep", true, gqlBody(`{` + strings.Repeat(`a{`, 20) + strings.Repeat(`}`, 21)), "application/json", 400, `{"errors":[{"message":"Syntax Error: Document nests deeper than 12 levels.…`},
		{"too many tokens", true, gqlBody(`{` + strings.Repeat(`isLoggedIn `, gqlMaxTokens) + `}`), "application/json", 400, `{"errors":[{"message":"Syntax Error: Document contains more than 2000 tokens.…`},
		{"fragment blow-up", true, gqlBody(`{...A} fragment A on Query {...B ...B ...B ...B ...B ...B ...B ...B ...B ...B} fragment B on Query {...C ...C ...C ...C ...C ...C ...C ...C ...C ...C} fragment C on Query {isLoggedIn isLoggedIn isLoggedIn}`), "application/json", 400, `{"errors":[{"message":"The query selects more than 200 fields.…`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBrowserHarness(t)
			var c *http.Cookie
			if tc.signedIn {
				c = h.signIn("code-alice")
			}
			status, body := h.graphql(tc.body, tc.ct, c)
			body = strings.TrimSuffix(body, "\n")
			ok := body == tc.want
			if p, cut := strings.CutSuffix(tc.want, "…"); cut {
				ok = strings.HasPrefix(body, p)
			}
			if status != tc.status || !ok {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tc.status, tc.want)
			}
		})
	}
}

// TestGraphQLCredentialsMatchREST: getCredentials answers what
// /login/credentials answers (same certificate with a fixed seed).
func TestGraphQLCredentialsMatchREST(t *testing.T) {
	h := newBrowserHarness(t)
	h.svc.seed = func() string { return "EEEEEEEEQEeEEEEEEEEEEAFFFFFFFFQFeFFFFFFFFFFA" }
	sc := h.signIn("code-alice")
	_, body := h.graphql(gqlBody(credsQuery), "application/json", sc)
	var g struct {
		Data struct{ GetCredentials CredentialsReply }
	}
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	res := h.get("/login/credentials", sc)
	var rest CredentialsReply
	json.NewDecoder(res.Body).Decode(&rest)
	if g.Data.GetCredentials != rest || rest.Credentials.Certificate == "" {
		t.Fatalf("graphql %+v\nrest    %+v", g.Data.GetCredentials, rest)
	}
}

func TestGraphQLUserGone(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	h.fake.removeUser("alice")
	status, body := h.graphql(gqlBody(`{ c: getCredentials { expires } isLoggedIn }`), "application/json", sc)
	want := `{"errors":[{"message":"Could not generate credentials for this user","locations":[{"line":1,"column":3}],"path":["c"],"extensions":{"code":"InputError"}}],"data":{"c":null,"isLoggedIn":true}}`
	if status != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("got %d %s\nwant %s", status, body, want)
	}
	if h.mb.count(KindSession) != 0 {
		t.Fatal("sessions of a gone user survive")
	}
}

func TestGraphQLUnavailable(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	h.mb.syncErr = ErrUnavailable
	status, body := h.graphql(gqlBody(`{ isLoggedIn }`), "application/json", sc)
	if status != 503 || !strings.Contains(body, "SERVICE_UNAVAILABLE") {
		t.Fatalf("got %d %s", status, body)
	}
}

func TestGraphQLGetNotServed(t *testing.T) {
	h := newBrowserHarness(t)
	res := h.get("/graphql?query=%7BisLoggedIn%7D")
	if res.StatusCode != http.StatusMethodNotAllowed && res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /graphql: %d", res.StatusCode)
	}
}
