package webui

import (
	"strings"
	"testing"
)

// testScopeInspector: expand a scope set (a role's scopes appear); a set
// that satisfies an expression says so; one that does not names what is
// missing.
func (s *suite) testScopeInspector(t *testing.T) {
	s.alice.signIn(t)
	s.putRole(t, "it-ui/inspect", "it:ui:inspected", "queue:create-task:it/*")
	tb := s.alice.tab(t)

	tb.open("/auth/scopes")
	tb.fill("#expand-scopes", "scopes", "assume:it-ui/inspect\nit:ui:own")
	tb.click("Expand")
	tb.waitText("it:ui:inspected", "queue:create-task:it/*", "it:ui:own")
	tb.shot("scope-inspector-expand")

	tb.open("/auth/scopes")
	tb.fill("#check-have", "have", "assume:it-ui/inspect")
	tb.fill("#check-expr", "expr", "it:ui:inspected")
	tb.check("Expand the scopes first")
	tb.click("Check")
	text := tb.waitText("it:ui:inspected")
	if !strings.Contains(text, "Satisfied") {
		t.Errorf("the inspector does not say that the expanded set satisfies it:ui:inspected:\n%s", text)
	}

	tb.open("/auth/scopes")
	tb.fill("#check-have", "have", "assume:it-ui/inspect")
	tb.fill("#check-expr", "expr", `{"AllOf": ["queue:create-task:it/x", "secrets:get:it/missing"]}`)
	tb.check("Expand the scopes first")
	tb.click("Check")
	text = tb.waitText("secrets:get:it/missing")
	i := strings.Index(text, "Not satisfied")
	if i < 0 || !strings.Contains(text[i:], "Missing") {
		t.Fatalf("the inspector does not say what is missing:\n%s", text)
	}
	// What is missing is the secrets scope alone: the queue scope is
	// satisfied through the role.
	missing := text[i:]
	if j := strings.Index(missing, "Expression"); j > 0 {
		missing = missing[:j]
	}
	if !strings.Contains(missing, "secrets:get:it/missing") || strings.Contains(missing, "queue:create-task:it/x") {
		t.Errorf("the missing part is %q, want secrets:get:it/missing alone", missing)
	}
	tb.shot("scope-inspector")
}
