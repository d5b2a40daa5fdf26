package webui

import (
	"strings"
	"testing"
)

// testSignInProfile: the sign-in button leads to the provider's real
// login form and back; the profile shows the identity, the credentials'
// expiry and the current scopes (the role's scopes, expanded).
func (s *suite) testSignInProfile(t *testing.T) {
	tb := s.alice.tab(t)
	tb.open("/")
	if strings.TrimSpace(tb.text()) == "" {
		t.Fatalf("the home page of a signed-out browser is blank")
	}
	tb.shot("sign-in")
	s.alice.signIn(t)
	tb.open("/profile")
	text := tb.waitText(identityOf(alice))
	for _, want := range []string{"assume:login-identity:" + identityOf(alice), "it:ui:*", "auth:*"} {
		if !strings.Contains(text, want) {
			t.Errorf("the profile does not show the current scope %q:\n%s", want, text)
		}
	}
	if !strings.Contains(strings.ToLower(text), "expire") {
		t.Errorf("the profile does not show when the credentials expire:\n%s", text)
	}
	tb.shot("profile")
}
