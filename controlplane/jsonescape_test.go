package controlplane

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The API's answers and its error messages keep <, > and & as written
// (JSON.stringify does), for every writer: handler replies, the
// hand-written heartbeat bodies and errors.
func TestAnswersNotHTMLEscaped(t *testing.T) {
	e := newMemEnv(t)
	e.putRole("project-admin:*", "notes:write:<..>/*", "a&b")
	e.addClient("nobody", "nobody-token-0123456789abcdefghij")
	tests := []struct {
		name string
		r    response
		want string
	}{
		{"reply", e.api("GET", "/roles/project-admin:*", asRoot()), `"notes:write:<..>/*"`},
		{"reply of a MarshalJSON type", e.api("POST", "/scopes/expand", asRoot(), withBody(`{"scopes": ["assume:project-admin:x<y>"]}`)), `"notes:write:x<y>/*"`},
		{"error message", e.api("GET", "/roles/x<y>&z", as("nobody", "nobody-token-0123456789abcdefghij")), `auth:get-role:x<y>&z`},
		{"error of an unknown path", e.api("GET", "/no<such>&path"), `/no%3Csuch%3E&path`},
	}
	for _, tc := range tests {
		body := string(tc.r.body)
		if strings.Contains(body, `\u00`) || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s\nwant %s and no \\u00 escapes", tc.name, tc.r.status, body, tc.want)
		}
	}
}

// The login backend's answers (loginApply and friends) too.
func TestLoginBackendJSONNotHTMLEscaped(t *testing.T) {
	rec := httptest.NewRecorder()
	(&loginBackend{}).writeJSON(rec, 200, map[string]any{"scopes": []string{"notes:write:<..>/*", "a&b"}})
	if body := rec.Body.String(); strings.Contains(body, `\u00`) || !strings.Contains(body, `"notes:write:<..>/*","a&b"`) {
		t.Errorf("%s", body)
	}
}
