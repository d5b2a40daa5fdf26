package webui_test

import (
	"html"
	"net/url"
	"strings"
	"testing"
)

// TestInspectorExplain renders the "which scopes would a call need?"
// form's answers: the filled expression, body-dependent parts, a client's
// missing scopes (as the API's explain endpoint computes them, with the
// user's credentials) and errors.
func TestInspectorExplain(t *testing.T) {
	ui, b := newRolesUI(t)
	ui.rootDo(t, "PUT", "/clients/"+"partial", map[string]any{"description": "d", "expires": "2100-01-01T00:00:00.000Z",
		"scopes": []string{"auth:create-client:team/*", "notes:read:*"}}, nil)
	for _, tc := range []struct {
		name             string
		q                url.Values
		status           int
		want, wantAbsent []string
	}{
		{"auto route", url.Values{"method": {"GET"}, "url": {"/api/auth/v1/clients/a%2Fb"}}, 200,
			[]string{"client <code>GET /clients/&lt;clientId&gt;</code>", `<pre class="scopes">auth:get-client:a/b</pre>`, "&lt;clientId&gt;</code></td><td>path"}, nil},
		{"body fills for/each", url.Values{"method": {"PUT"}, "url": {"/clients/team%2Fx"}, "body": {`{"scopes":["notes:write:<..>/*"]}`}}, 200,
			[]string{html.EscapeString(`"notes:write:<..>/*"`), html.EscapeString(`"auth:create-client:team/x",`)}, []string{"At least this"}},
		{"no body: at least", url.Values{"method": {"PUT"}, "url": {"/clients/team%2Fx"}}, 200, []string{"At least this", "<code>scopes</code>"}, nil},
		{"client lacks one scope", url.Values{"method": {"PUT"}, "url": {"/clients/team%2Fx"}, "body": {`{"scopes":["notes:read:a","notes:write:a"]}`}, "client": {"partial"}}, 200,
			[]string{"partial lacks scopes.", `Missing:</p><pre class="scopes">notes:write:a</pre>`, "Granting any one of these sets would do:</p><ul class=\"scopes\"><li><code>notes:write:a</code></li></ul>"}, nil},
		{"client has them", url.Values{"method": {"GET"}, "url": {"/ping"}, "client": {"partial"}}, 200, []string{"partial has these scopes.", "No scopes."}, nil},
		{"unknown route", url.Values{"method": {"GET"}, "url": {"/api/auth/v1/nope"}}, 404, []string{"no such API endpoint: GET /api/auth/v1/nope"}, nil},
		{"bad body", url.Values{"method": {"PUT"}, "url": {"/clients/x"}, "body": {"[1]"}}, 400, []string{"The body must be a JSON object"}, nil},
		{"empty URL", url.Values{"method": {"GET"}, "url": {""}}, 400, []string{"Enter the URL"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get("/auth/scopes/explain?" + tc.q.Encode())
			checkPage(t, tc.name, p)
			if p.StatusCode != tc.status {
				t.Fatalf("status %d, want %d\n%s", p.StatusCode, tc.status, p.Body)
			}
			body := section(p.Body, "explain-h")
			for _, w := range tc.want {
				if !strings.Contains(p.Body, w) {
					t.Fatalf("page lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.wantAbsent {
				if strings.Contains(body, w) {
					t.Fatalf("page has %q:\n%s", w, body)
				}
			}
		})
	}
	// The form keeps what was entered, and the index shows it too.
	p := b.get("/auth/scopes/explain?" + url.Values{"method": {"DELETE"}, "url": {"/roles/r"}}.Encode())
	if !strings.Contains(p.Body, "<option selected>DELETE</option>") || !strings.Contains(p.Body, `value="/roles/r"`) {
		t.Fatalf("form not refilled:\n%s", section(p.Body, "explain-h"))
	}
	if p := b.get("/auth/scopes"); !strings.Contains(p.Body, `id="explain-h"`) {
		t.Fatal("the inspector index lacks the explain form")
	}
	// Checking a client is reading it: a user without auth:get-client gets the API's 403.
	bob := ui.signIn(t, "bob")
	p = bob.get("/auth/scopes/explain?" + url.Values{"method": {"GET"}, "url": {"/ping"}, "client": {"partial"}}.Encode())
	if p.StatusCode != 403 || !strings.Contains(p.Body, "auth:get-client:partial") {
		t.Fatalf("status %d\n%s", p.StatusCode, section(p.Body, "explain-h"))
	}
}
