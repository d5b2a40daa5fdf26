package webui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// testClients: list, create (the id defaults under the user's identity;
// the token is shown once), view, edit, reset (a new token once; the old
// one stops working), disable, enable, the audit history, delete with
// its confirmation step — each checked through the API and, for the
// tokens, with taskcluster-client.
func (s *suite) testClients(t *testing.T) {
	s.alice.signIn(t)
	tb := s.alice.tab(t)
	id := identityOf(alice) + "/ui-test"

	tb.open("/auth/clients")
	tb.waitText(issuerID, "static/taskcluster/root")
	tb.shot("clients-list")

	// Create.
	tb.click("Create")
	tb.waitURL(s.pub + "/auth/clients/create")
	if v := tb.value("Client ID", "clientId"); !strings.HasPrefix(v, identityOf(alice)+"/") {
		t.Errorf("the new client's id defaults to %q, want it under %s/", v, identityOf(alice))
	}
	tb.fill("Client ID", "clientId", id)
	tb.fill("Description", "description", "made in the browser")
	tb.fill("Scopes", "scopes", "auth:current-scopes\nit:ui:read\nit:ui:write")
	tb.click("Create client")
	tb.waitText(id)
	token := s.shownToken(t, tb, "the created client's page")
	tb.shot("client-created")
	c, ok := s.client(t, id)
	if !ok || !slices.Equal(c.Scopes, []string{"auth:current-scopes", "it:ui:read", "it:ui:write"}) || c.Description != "made in the browser" {
		t.Fatalf("after create the API has %+v (exists %v)", c, ok)
	}
	s.wantWorks(t, creds(id, token), "it:ui:write")
	s.wantTokenGone(t, tb, id, token)

	// The list: prefix search finds it, and hides the others.
	tb.open("/auth/clients")
	tb.fill("Client ID starts with", "search", identityOf(alice)+"/")
	tb.click("Search")
	text := tb.waitText(id)
	if strings.Contains(text, "static/taskcluster/root") {
		t.Errorf("a prefix search for %s/ lists static/taskcluster/root", identityOf(alice))
	}

	// View, then edit.
	tb.open(clientPath(id))
	tb.waitText(id, "it:ui:read", "made in the browser")
	tb.shot("client-view")
	s.editClient(t, tb, id)

	// Reset: a new token, shown once; the old one no longer works.
	tb.open(clientPath(id))
	tb.click("Reset access token")
	newToken := s.shownToken(t, tb, "the reset page")
	if newToken == token {
		t.Fatalf("reset showed the old token")
	}
	tb.shot("client-reset")
	s.wantWorks(t, creds(id, newToken), "it:ui:edit")
	if _, ok, _ := harness.CurrentScopes(t, s.pub, creds(id, token)); ok {
		t.Errorf("the token from before the reset still works")
	}
	s.wantTokenGone(t, tb, id, newToken)

	s.disableEnable(t, tb, id, newToken)
	s.wantAudit(t, tb, id, "created", "updated", "access token reset", "client disabled", "client enabled")
	s.deleteClient(t, tb, id)
}

func (s *suite) editClient(t *testing.T, tb *tab, id string) {
	t.Helper()
	if sel := tb.find("Edit", clickables); sel != "" {
		tb.click("Edit")
	}
	tb.fill("Description", "description", "edited in the browser")
	tb.fill("Scopes", "scopes", "auth:current-scopes\nit:ui:read\nit:ui:edit")
	tb.click("Save")
	tb.waitText("edited in the browser")
	c, _ := s.client(t, id)
	got := slices.Sorted(slices.Values(c.Scopes))
	if want := []string{"auth:current-scopes", "it:ui:edit", "it:ui:read"}; !slices.Equal(got, want) {
		t.Errorf("after edit the scopes are %v, want %v", c.Scopes, want)
	}
	if c.Description != "edited in the browser" {
		t.Errorf("after edit the description is %q", c.Description)
	}
}

func (s *suite) disableEnable(t *testing.T, tb *tab, id, token string) {
	t.Helper()
	tb.open(clientPath(id))
	tb.click("Disable")
	s.waitClient(t, id, "disabled", func(c apiClient) bool { return c.Disabled })
	tb.open(clientPath(id))
	tb.waitText("Enable")
	if _, ok, _ := harness.CurrentScopes(t, s.pub, creds(id, token)); ok {
		t.Errorf("a disabled client still authenticates")
	}
	tb.click("Enable")
	s.waitClient(t, id, "enabled", func(c apiClient) bool { return !c.Disabled })
	s.wantWorks(t, creds(id, token), "it:ui:edit")
}

// wantAudit: the client's page lists the actions in its audit history.
func (s *suite) wantAudit(t *testing.T, tb *tab, id string, actions ...string) {
	t.Helper()
	tb.open(clientPath(id))
	text := tb.text()
	if sel := tb.find("history", clickables); sel != "" && !strings.Contains(text, actions[len(actions)-1]) {
		tb.click("history")
		text = tb.waitText(actions[0])
	}
	for _, a := range actions {
		if !strings.Contains(text, a) {
			t.Errorf("the audit history does not show %q:\n%s", a, text)
		}
	}
}

// deleteClient: the first click asks for confirmation and deletes
// nothing; the confirmation deletes.
func (s *suite) deleteClient(t *testing.T, tb *tab, id string) {
	t.Helper()
	tb.open(clientPath(id))
	tb.click("Delete")
	tb.waitText("Delete")
	if _, ok := s.client(t, id); !ok {
		t.Fatalf("the client was deleted before the confirmation")
	}
	tb.shot("client-delete-confirm")
	tb.click("Delete " + id)
	s.waitGone(t, id)
	tb.open("/auth/clients?search=" + identityOf(alice) + "/")
	if strings.Contains(tb.text(), id) {
		t.Errorf("the list still shows the deleted client")
	}
}

// shownToken is the one access token the page shows.
func (s *suite) shownToken(t *testing.T, tb *tab, where string) string {
	t.Helper()
	var toks []string
	for i := 0; i < 50 && len(toks) == 0; i++ {
		toks = tokensIn(tb.visibleText())
		time.Sleep(100 * time.Millisecond)
	}
	if len(toks) == 0 {
		t.Fatalf("%s shows no access token\n%s", where, tb.describe())
	}
	slices.Sort(toks)
	if toks = slices.Compact(toks); len(toks) != 1 {
		t.Errorf("%s shows %d token-like strings %v, want one", where, len(toks), toks)
	}
	return toks[0]
}

// wantWorks: taskcluster-client authenticates with c and gets scope.
func (s *suite) wantWorks(t *testing.T, c protocol.Credentials, scope string) {
	t.Helper()
	scopes, ok, msg := harness.CurrentScopes(t, s.pub, c)
	if !ok {
		t.Fatalf("taskcluster-client with %s: %s", c.ClientID, msg)
	}
	if !slices.Contains(scopes, scope) {
		t.Errorf("taskcluster-client with %s: scopes %v lack %s", c.ClientID, scopes, scope)
	}
}

func (s *suite) waitClient(t *testing.T, id, what string, ok func(apiClient) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, exists := s.client(t, id)
		if exists && ok(c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s is not %s: %+v (exists %v)", id, what, c, exists)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *suite) waitGone(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := s.client(t, id); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s still exists", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantTokenGone: once shown, the token is on no page: neither the URL
// the browser is at, opened again (a GET, as pressing Enter in the
// address bar), nor the client's page.
func (s *suite) wantTokenGone(t *testing.T, tb *tab, id, token string) {
	t.Helper()
	if strings.Contains(tb.url(), token) {
		t.Errorf("the access token is in the URL %s", tb.url())
	}
	for _, u := range []string{tb.url(), s.pub + clientPath(id)} {
		tb.open(u)
		if slices.Contains(tokensIn(tb.visibleText()), token) {
			t.Errorf("the access token is shown again at %s", u)
		}
	}
}

// testClientsPaging: more clients under a prefix than a page holds (the
// UI's page is 100) are reached through "Next page"; "Clients I can
// manage" keeps, for carol (who may read every client but manage only
// her own), her clients and drops the others.
func (s *suite) testClientsPaging(t *testing.T) {
	const n = 105
	prefix := identityOf(carol) + "/page-"
	for i := 0; i < n; i++ {
		s.putClient(t, fmt.Sprintf("%s%03d", prefix, i), "auth:current-scopes")
	}
	s.carol.signIn(t)
	tb := s.carol.tab(t)
	tb.open("/auth/clients")
	tb.fill("Client ID starts with", "search", prefix)
	tb.click("Search")
	first := tb.waitText(prefix + "000")
	if strings.Contains(first, fmt.Sprintf("%s%03d", prefix, n-1)) {
		t.Fatalf("all %d clients are on the first page", n)
	}
	tb.click("Next page")
	second := tb.waitText(fmt.Sprintf("%s%03d", prefix, n-1))
	seen := 0
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s%03d", prefix, i)
		if strings.Contains(first, id) || strings.Contains(second, id) {
			seen++
		}
		if strings.Contains(first, id) && strings.Contains(second, id) {
			t.Errorf("%s is on both pages", id)
		}
	}
	if seen != n {
		t.Errorf("the two pages list %d of the %d clients", seen, n)
	}

	tb.open("/auth/clients")
	tb.check("Clients I can manage")
	tb.click("Search")
	mine := tb.waitText(prefix + "000")
	for _, other := range []string{"static/taskcluster/root", issuerID} {
		if strings.Contains(mine, other) {
			t.Errorf("\"Clients I can manage\" lists %s to carol", other)
		}
	}
	tb.open("/auth/clients")
	if all := tb.text(); !strings.Contains(all, "static/taskcluster/root") {
		t.Errorf("without the filter carol does not see static/taskcluster/root:\n%.1500s", all)
	}
}

// putClient creates a client as root (set-up, not through the UI).
func (s *suite) putClient(t *testing.T, id string, scopes ...string) {
	t.Helper()
	body := map[string]any{"description": "made by the test", "scopes": scopes,
		"expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	if err := s.c.Client(0, nil).Do(ctxT(t), http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, body, nil); err != nil {
		t.Fatalf("client %s: %v", id, err)
	}
}

// testPhoneLayout: on a phone-sized screen the main pages fit the width
// (nothing to scroll sideways), and the nav is there.
func (s *suite) testPhoneLayout(t *testing.T) {
	s.alice.signIn(t)
	tb := s.alice.tab(t)
	tb.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	for _, p := range []struct{ path, shot string }{
		{"/auth/clients", "clients-list-phone"}, {"/profile", "profile-phone"}, {"/auth/scopes", "scope-inspector-phone"},
	} {
		tb.open(p.path)
		tb.waitText("Clients", "Roles", "Scopes")
		if w := eval[int](tb, `document.documentElement.scrollWidth - window.innerWidth`); w > 2 {
			t.Errorf("%s on a 390-pixel-wide phone is %d pixels too wide (it scrolls sideways)", p.path, w)
		}
		tb.shot(p.shot)
	}
}
