package controlplane

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

type clientReply = protocol.ClientJSON

func decodeClient(t *testing.T, r response) clientReply {
	t.Helper()
	var c clientReply
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	return c
}

const createBody = `{"description":"d","expires":"2024-01-01T00:00:00.000Z","scopes":["a:b","c:d"]}`

func TestCreateClient(t *testing.T) {
	e := newEnv(t)
	e.addClient("creator", "creator-token-0123456789", "auth:create-client:my/*", "a:*", "c:*")
	creator := as("creator", "creator-token-0123456789")

	r := e.api("PUT", "/clients/my%2Fclient", creator, withBody(createBody))
	expectStatus(t, r, 200)
	c := decodeClient(t, r)
	if c.ClientID != "my/client" || len(c.AccessToken) != 44 || !c.Created.Equal(frozen) ||
		!c.LastRotated.Equal(frozen) || !c.LastDateUsed.Equal(frozen) || !c.Expires.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("unexpected client %+v", c)
	}
	if !strings.HasPrefix(string(r.body), "{\n  \"clientId\": \"my/client\",\n  \"description\"") {
		t.Errorf("not pretty-printed in key order:\n%s", r.body)
	}
	// The new credentials work.
	expectStatus(t, e.api("GET", "/scopes/current", as("my/client", c.AccessToken)), 403)
	// Idempotent retry returns the original token.
	r2 := e.api("PUT", "/clients/my%2Fclient", creator, withBody(createBody))
	expectStatus(t, r2, 200)
	if got := decodeClient(t, r2).AccessToken; got != c.AccessToken {
		t.Fatalf("retry token %q, want original %q", got, c.AccessToken)
	}
	// A different request conflicts.
	m := expectError(t, e.api("PUT", "/clients/my%2Fclient", creator, withBody(`{"description":"other","expires":"2024-01-01T00:00:00.000Z","scopes":["a:b","c:d"]}`)), 409, "RequestConflict")
	if !strings.HasPrefix(m["message"].(string), "Client already exists") {
		t.Errorf("message %q", m["message"])
	}
	// Audit: created by creator.
	r = e.api("GET", "/audit/client/my%2Fclient", asRoot())
	expectStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"actionType": "created"`) || !strings.Contains(string(r.body), `"clientId": "creator"`) {
		t.Errorf("audit:\n%s", r.body)
	}

	tests := []struct {
		name, path string
		opts       []opt
		status     int
		code       string
		msg        string
	}{
		{"escalation", "/clients/my%2Fother", []opt{creator, withBody(`{"description":"d","expires":"2024-01-01T00:00:00.000Z","scopes":["queue:*"]}`)}, 403, "InsufficientScopes", "Client ID creator does not have sufficient scopes"},
		{"star escalation", "/clients/my%2Fother", []opt{creator, withBody(`{"description":"d","expires":"2024-01-01T00:00:00.000Z","scopes":["*"]}`)}, 403, "InsufficientScopes", ""},
		{"outside prefix", "/clients/your%2Fclient", []opt{creator, withBody(createBody)}, 403, "InsufficientScopes", ""},
		{"static guard before auth", "/clients/static%2Fx", []opt{creator, withBody(createBody)}, 400, "InputError", `clientId "static/x" starts with "static/"`},
		{"double star", "/clients/my%2Fx", []opt{asRoot(), withBody(`{"description":"d","expires":"2024-01-01T00:00:00.000Z","scopes":["a**"]}`)}, 400, "InputError", "scopes must not end with `**`"},
		{"missing fields", "/clients/my%2Fx", []opt{asRoot(), withBody(`{"scopes":["a"],"extra":1}`)}, 400, "InputValidationError",
			"\nSchema Validation Failed!\nRejecting Schema: https://tc.example.com/schemas/auth/v1/create-client-request.json#\nErrors:\n  * data must have required property 'expires'\n  * data must have required property 'description'\n  * data must NOT have additional properties: \"extra\""},
		{"bad types", "/clients/my%2Fx", []opt{asRoot(), withBody(`{"description":1,"expires":"yesterday","scopes":["a","a"],"deleteOnExpiration":"no"}`)}, 400, "InputValidationError", ""},
		{"absent body", "/clients/my%2Fx", []opt{asRoot()}, 400, "InputValidationError", ""},
		{"not json", "/clients/my%2Fx", []opt{asRoot(), withBody(`{"description":`)}, 400, "MalformedPayload", "Failed to parse JSON"},
		{"wrong content type", "/clients/my%2Fx", []opt{asRoot(), withBody(createBody), withContentType("text/plain")}, 400, "MalformedPayload", "Payload must be JSON with content-type: application/json got content-type: text/plain"},
		{"bad id", "/clients/bad%20id", []opt{asRoot(), withBody(createBody)}, 400, "InvalidRequestArguments", ""},
		{"no credentials", "/clients/my%2Fx", []opt{withBody(createBody)}, 403, "InsufficientScopes", "This request requires Taskcluster credentials"},
		{"bad token", "/clients/my%2Fx", []opt{as("creator", "wrong-0123456789abcdefgh"), withBody(createBody)}, 401, "AuthenticationFailed", "Unauthorized: Bad mac"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := expectError(t, e.api("PUT", tc.path, tc.opts...), tc.status, tc.code)
			if !strings.HasPrefix(m["message"].(string), tc.msg) {
				t.Errorf("message %q, want prefix %q", m["message"], tc.msg)
			}
		})
	}
	// Payload hash is checked when the header carries one.
	expectStatus(t, e.api("PUT", "/clients/my%2Fhashed", creator, withBody(createBody), withPayloadHash()), 200)
	r = e.api("PUT", "/clients/my%2Fhashed2", creator, withBody(createBody), withPayloadHash(), withContentType("application/json; charset=utf-8"))
	expectStatus(t, r, 200)
	e.do("PUT", "/", creator) // unknown route does not crash
}

func TestCreateClientRetryWindow(t *testing.T) {
	e := newEnv(t)
	e.put(ClientRecord{ClientID: "old", Scopes: []string{}, Description: "d", Expires: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Created: frozen.Add(-16 * time.Minute)}, "old-token-0123456789abcdef")
	expectError(t, e.api("PUT", "/clients/old", asRoot(), withBody(`{"description":"d","expires":"2024-01-01T00:00:00.000Z"}`)), 409, "RequestConflict")
	e.put(ClientRecord{ClientID: "new", Scopes: []string{}, Description: "d", Expires: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Created: frozen.Add(-14 * time.Minute)}, "new-token-0123456789abcdef")
	r := e.api("PUT", "/clients/new", asRoot(), withBody(`{"description":"d","expires":"2024-01-01T00:00:00.000Z"}`))
	expectStatus(t, r, 200)
	if decodeClient(t, r).AccessToken != "new-token-0123456789abcdef" {
		t.Errorf("retry did not return the original token")
	}
}

func TestClientReadsAndVector10(t *testing.T) {
	e := newEnv(t)
	e.putRole("x", "X")
	e.put(ClientRecord{ClientID: "v10", Scopes: []string{"z", "assume:x", "b*", "bb", "a"}, Expires: frozen}, "v10-token-0123456789abcd")
	r := e.api("GET", "/clients/v10", asRoot())
	expectStatus(t, r, 200)
	c := decodeClient(t, r)
	if strings.Join(c.Scopes, ",") != "a,assume:x,b*,bb,z" || strings.Join(c.ExpandedScopes, ",") != "X,a,assume:x,b*,z" {
		t.Fatalf("scopes %v expanded %v", c.Scopes, c.ExpandedScopes)
	}
	expectError(t, e.api("GET", "/clients/nope", asRoot()), 404, "ResourceNotFound")
	// Trailing slash and no trailing slash both route.
	for _, p := range []string{"/clients/", "/clients"} {
		r := e.api("GET", p+"?prefix=v", asRoot())
		expectStatus(t, r, 200)
		if !strings.Contains(string(r.body), `"clientId": "v10"`) || strings.Contains(string(r.body), `"root"`) {
			t.Errorf("%s: %s", p, r.body)
		}
	}
	expectError(t, e.api("GET", "/clients/?prefix=bad%20p", asRoot()), 400, "InvalidRequestArguments")
	expectError(t, e.api("GET", "/clients/", as("v10", "v10-token-0123456789abcd")), 403, "InsufficientScopes")
	// HEAD works like GET.
	expectStatus(t, e.api("HEAD", "/clients/v10", asRoot()), 200)
}

func TestUpdateClient(t *testing.T) {
	e := newEnv(t)
	e.put(ClientRecord{ClientID: "u", Scopes: []string{"a:*"}, Description: "old", Expires: frozen, Created: frozen.Add(-time.Hour)}, "u-token-0123456789abcdef")
	e.addClient("updater", "updater-token-0123456789", "auth:update-client:u", "b:x")
	updater := as("updater", "updater-token-0123456789")

	// a:b is satisfied by the stored a:* but is not string-equal to it: it
	// counts as added (string difference) and the updater lacks it.
	m := expectError(t, e.api("POST", "/clients/u", updater, withBody(`{"description":"n","expires":"2025-01-01T00:00:00.000Z","scopes":["a:*","a:b"]}`)), 403, "InsufficientScopes")
	if !strings.Contains(m["message"].(string), "a:b") {
		t.Errorf("message %q", m["message"])
	}
	// Keeping a:* (not added) and adding b:x (held) is fine.
	r := e.api("POST", "/clients/u", updater, withBody(`{"description":"n","expires":"2025-01-01T00:00:00.000Z","scopes":["b:x","a:*"]}`))
	expectStatus(t, r, 200)
	c := decodeClient(t, r)
	if c.Description != "n" || strings.Join(c.Scopes, ",") != "a:*,b:x" || !c.LastModified.Equal(frozen) || c.AccessToken != "" {
		t.Fatalf("%+v", c)
	}
	// Scopes omitted = unchanged.
	r = e.api("POST", "/clients/u", updater, withBody(`{"description":"m","expires":"2025-01-01T00:00:00.000Z"}`))
	expectStatus(t, r, 200)
	if c := decodeClient(t, r); len(c.Scopes) != 2 || c.Description != "m" {
		t.Fatalf("%+v", c)
	}
	expectError(t, e.api("POST", "/clients/absent", asRoot(), withBody(`{"description":"m","expires":"2025-01-01T00:00:00.000Z"}`)), 404, "ResourceNotFound")
	expectError(t, e.api("POST", "/clients/static%2Fx", asRoot(), withBody(`{"description":"m","expires":"2025-01-01T00:00:00.000Z"}`)), 400, "InputError")
	expectError(t, e.api("POST", "/clients/u", asRoot(), withBody(`{"description":"m"}`)), 400, "InputValidationError")
}

func TestResetEnableDisableDelete(t *testing.T) {
	e := newEnv(t)
	e.addClient("target", "target-token-0123456789")
	e.addClient("limited", "limited-token-0123456789", "auth:reset-access-token:other")
	limited := as("limited", "limited-token-0123456789")

	expectError(t, e.api("POST", "/clients/target/reset", limited), 403, "InsufficientScopes")
	expectError(t, e.api("POST", "/clients/absent/reset", asRoot()), 404, "ResourceNotFound")
	// Auto endpoints: the 403 comes before the static guard.
	expectError(t, e.api("POST", "/clients/static%2Fx/reset", limited), 403, "InsufficientScopes")
	expectError(t, e.api("POST", "/clients/static%2Fx/reset", asRoot()), 400, "InputError")

	r := e.api("POST", "/clients/target/reset", asRoot())
	expectStatus(t, r, 200)
	c := decodeClient(t, r)
	if len(c.AccessToken) != 44 || !c.LastRotated.Equal(frozen) {
		t.Fatalf("%+v", c)
	}
	expectError(t, e.api("GET", "/scopes/current", as("target", "target-token-0123456789")), 401, "AuthenticationFailed")
	e.addClient("current", "current-token-0123456789", "auth:current-scopes")

	// disable → cannot authenticate; enable → can again.
	for _, step := range []struct {
		path     string
		disabled bool
		status   int
	}{{"/clients/current/disable", true, 401}, {"/clients/current/disable", true, 401}, {"/clients/current/enable", false, 200}} {
		r := e.api("POST", step.path, asRoot())
		expectStatus(t, r, 200)
		if decodeClient(t, r).Disabled != step.disabled {
			t.Fatalf("%s: disabled != %v", step.path, step.disabled)
		}
		expectStatus(t, e.api("GET", "/scopes/current", as("current", "current-token-0123456789")), step.status)
	}
	expectError(t, e.api("POST", "/clients/absent/enable", asRoot()), 404, "ResourceNotFound")

	r = e.api("DELETE", "/clients/current", asRoot())
	expectStatus(t, r, 204)
	if len(r.body) != 0 {
		t.Errorf("204 with body %q", r.body)
	}
	expectStatus(t, e.api("DELETE", "/clients/current", asRoot()), 204)
	expectError(t, e.api("DELETE", "/clients/current", limited), 403, "InsufficientScopes")
	expectError(t, e.api("DELETE", "/clients/static%2Froot", asRoot()), 400, "InputError")

	// Audit by entity and by actor.
	r = e.api("GET", "/audit/client/current", asRoot())
	expectStatus(t, r, 200)
	var h struct {
		AuditHistory []struct{ ClientID, ActionType, EntityID, EntityType string }
	}
	_ = json.Unmarshal(r.body, &h)
	var actions []string
	for _, a := range h.AuditHistory {
		actions = append(actions, a.ActionType)
	}
	if strings.Join(actions, ",") != "created,client disabled,client disabled,client enabled,deleted,deleted" {
		t.Errorf("actions %v", actions)
	}
	r = e.api("GET", "/clients/root/audit?limit=2", asRoot())
	expectStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"continuationToken"`) {
		t.Errorf("expected a continuation token:\n%s", r.body)
	}
	expectError(t, e.api("GET", "/audit/bogus/x", asRoot()), 400, "InputError")
	expectError(t, e.api("GET", "/audit/client/x", limited), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/clients/root/audit?limit=x", asRoot()), 400, "InvalidRequestArguments")
}
