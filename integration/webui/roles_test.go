package webui

import (
	"slices"
	"strings"
	"testing"
)

// testRoles: create a role, see its expanded scopes; edit it and see,
// before saving, which expanded scopes the change adds and removes (the
// preview); save and see the new expansion; delete with confirmation.
func (s *suite) testRoles(t *testing.T) {
	s.alice.signIn(t)
	// A role the edit will make the new role assume: its scope appears
	// in the expansion only through it.
	s.putRole(t, "it-ui/base", "it:ui:from-base")
	id := "it-ui/r1"
	tb := s.alice.tab(t)

	tb.open("/auth/roles")
	tb.waitText("login-identity:*", "it-ui/base")
	tb.shot("roles-list")

	tb.click("Create a role")
	tb.waitURL(s.pub + "/auth/roles/create")
	tb.fill("Role ID", "roleId", id)
	tb.fill("Description", "description", "made in the browser")
	tb.fill("Scopes", "scopes", "it:ui:a")
	tb.click("Preview")
	s.wantPreview(t, tb.waitText("it:ui:a"), []string{"it:ui:a"}, nil)
	if _, ok := s.role(t, id); ok {
		t.Fatalf("the preview created the role")
	}
	tb.click("Create role")
	tb.waitText(id, "it:ui:a")
	if r, ok := s.role(t, id); !ok || !slices.Equal(r.Scopes, []string{"it:ui:a"}) {
		t.Fatalf("after create the API has %+v (exists %v)", r, ok)
	}

	// Edit: drop it:ui:a, add it:ui:b and assume:it-ui/base. The preview
	// must name it:ui:from-base as added (only the expansion has it) and
	// it:ui:a as removed, and save nothing.
	tb.open(rolePath(id))
	tb.waitText("it:ui:a")
	tb.shot("role-view")
	tb.click("Edit")
	tb.fill("Scopes", "scopes", "it:ui:b\nassume:it-ui/base")
	tb.click("Preview")
	text := tb.waitText("it:ui:from-base")
	s.wantPreview(t, text, []string{"it:ui:b", "assume:it-ui/base", "it:ui:from-base"}, []string{"it:ui:a"})
	tb.shot("role-preview")
	if r, _ := s.role(t, id); !slices.Equal(r.Scopes, []string{"it:ui:a"}) {
		t.Errorf("the preview saved the role: %v", r.Scopes)
	}
	tb.click("Save role")
	tb.waitText("it:ui:from-base")
	r, _ := s.role(t, id)
	if !slices.Contains(r.ExpandedScopes, "it:ui:from-base") || slices.Contains(r.ExpandedScopes, "it:ui:a") {
		t.Errorf("after the edit the role expands to %v", r.ExpandedScopes)
	}
	tb.open(rolePath(id))
	if text := tb.text(); !strings.Contains(text, "it:ui:from-base") || strings.Contains(text, "it:ui:a\n") {
		t.Errorf("the role's page does not show the new expanded scopes:\n%s", text)
	}

	// Delete, with a confirmation step.
	tb.click("Delete")
	tb.waitText("Delete role " + id)
	if _, ok := s.role(t, id); !ok {
		t.Fatalf("the role was deleted before the confirmation")
	}
	tb.click("Delete role " + id)
	tb.waitURL(s.pub + "/auth/roles")
	if _, ok := s.role(t, id); ok {
		t.Errorf("role %s still exists after the confirmed delete", id)
	}
	s.roleWithoutScopes(t, tb)
}

// roleWithoutScopes: creating a role with no scopes warns, and needs the
// explicit "without scopes" confirmation.
func (s *suite) roleWithoutScopes(t *testing.T, tb *tab) {
	t.Helper()
	id := "it-ui/empty"
	tb.open("/auth/roles/create")
	tb.fill("Role ID", "roleId", id)
	tb.click("Preview")
	tb.waitText("no scopes")
	tb.click("without scopes")
	tb.waitURL(s.pub + rolePath(id))
	if r, ok := s.role(t, id); !ok || len(r.Scopes) != 0 {
		t.Errorf("role %s: %+v (exists %v), want it without scopes", id, r, ok)
	}
}

// wantPreview: the preview lists added under its "added" heading and
// removed under its "removed" heading (and neither in the other list).
func (s *suite) wantPreview(t *testing.T, text string, added, removed []string) {
	t.Helper()
	lower := strings.ToLower(text)
	ai, ri := strings.Index(lower, "scopes added"), strings.Index(lower, "scopes removed")
	if ai < 0 || ri < ai {
		t.Errorf("the preview has no added and removed lists:\n%s", text)
		return
	}
	addPart, remPart := text[ai:ri], text[ri:]
	for _, a := range added {
		if !strings.Contains(addPart, a) || strings.Contains(remPart, a) {
			t.Errorf("the preview does not list %s as added:\n%s", a, text)
		}
	}
	for _, r := range removed {
		if !strings.Contains(remPart, r) || strings.Contains(addPart, r) {
			t.Errorf("the preview does not list %s as removed:\n%s", r, text)
		}
	}
}
