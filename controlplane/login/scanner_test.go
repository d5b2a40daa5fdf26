package login

import (
	"context"
	"io"
	"testing"

	"github.com/tcauth/tcauth/scopeengine"
)

// scanHarness: alice (fake-group:admins) and bob (fake-group:admins)
// signed in, with clients under their identities, a client of a user who
// never signed in here, an "other" strategy client, and unrelated ones.
func newScanHarness(t *testing.T) *oauthHarness {
	h := newOAuthHarness(t)
	h.fake.addUser("code-bob", User{IdentityID: "bob", Roles: []string{"fake-group:admins"}})
	h.signIn("code-bob")
	for _, c := range []Client{
		{ClientID: "fake/alice/app-1", Scopes: []string{"secrets:get:x"}},
		{ClientID: "fake/alice/app-2", Scopes: []string{"queue:create-task:proj/a"}},
		{ClientID: "fake/alice/off", Scopes: []string{"auth:*"}, Disabled: true},
		{ClientID: "fake/bob/cli", Scopes: []string{"assume:fake-group:admins"}},
		{ClientID: "fake/bob", Scopes: []string{"secrets:get:x"}},
		{ClientID: "fake/nobody/x", Scopes: []string{}},
		{ClientID: "static/taskcluster/queue", Scopes: []string{"*"}},
		{ClientID: "fakeish/alice/x", Scopes: []string{"*"}},
	} {
		h.mb.addClient(c)
	}
	return h
}

func disabledIDs(h *oauthHarness) map[string]string {
	out := map[string]string{}
	for _, a := range h.mb.disabled {
		out[a.ClientID] = a.Actor
	}
	return out
}

func TestScanClients(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *oauthHarness)
		want  []string // disabled, besides fake/nobody/x (no grant stored)
	}{
		{"everyone still entitled", func(h *oauthHarness) {}, nil},
		{"alice leaves the team", func(h *oauthHarness) {
			h.fake.addUser("code-alice", User{IdentityID: "alice", Roles: nil})
		}, []string{"fake/alice/app-1", "fake/alice/app-2"}},
		{"alice's team loses a scope", func(h *oauthHarness) {
			h.fake.addUser("code-alice", User{IdentityID: "alice", Roles: []string{"fake-group:admins"}})
			h.setRolesTo(map[string][]string{"fake-group:admins": {"secrets:get:*"}})
		}, []string{"fake/alice/app-2"}},
		{"bob is gone at the provider", func(h *oauthHarness) { h.fake.removeUser("bob") }, []string{"fake/bob/cli", "fake/bob"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newScanHarness(t)
			tc.setup(h)
			before := h.fake.refreshes
			n, err := h.svc.ScanClients(t.Context())
			want := append([]string{"fake/nobody/x"}, tc.want...)
			got := disabledIDs(h)
			if err != nil || n != len(want) || len(got) != len(want) {
				t.Fatalf("disabled %d %v (%v), want %v", n, got, err, want)
			}
			for _, id := range want {
				if actor, ok := got[id]; !ok || actor != testIssuer {
					t.Errorf("%s: disabled %v by %q, want by %s", id, ok, actor, testIssuer)
				}
				if c, _ := h.mb.Client(id); !c.Disabled {
					t.Errorf("%s still enabled", id)
				}
			}
			if r := h.fake.refreshes - before; r != 2 {
				t.Errorf("%d provider refreshes, want one per identity (2)", r)
			}
			// a second scan finds nothing more to do
			if n, _ := h.svc.ScanClients(t.Context()); n != 0 {
				t.Errorf("second scan disabled %d", n)
			}
		})
	}
}

// TestScanClientsTransient: a provider outage decides nothing.
func TestScanClientsTransient(t *testing.T) {
	h := newScanHarness(t)
	h.fake.removeUser("alice") // would be disabled if the provider answered
	h.fake.refreshErr = io.ErrUnexpectedEOF
	n, err := h.svc.ScanClients(t.Context())
	if got := disabledIDs(h); err != nil || n != 1 || len(got) != 1 || got["fake/nobody/x"] == "" {
		t.Fatalf("disabled %d %v (%v); want only the client without a stored grant", n, got, err)
	}
	// the outage ends: alice's clients go
	h.fake.refreshErr = nil
	if n, _ := h.svc.ScanClients(t.Context()); n != 2 {
		t.Fatalf("after the outage: disabled %d, want 2", n)
	}
}

func TestScanClientsStopsOnCancel(t *testing.T) {
	h := newScanHarness(t)
	h.fake.removeUser("alice")
	ctx, cancel := contextWithCancel(t)
	cancel()
	if n, err := h.svc.ScanClients(ctx); err == nil || n != 0 {
		t.Fatalf("cancelled scan: %d, %v", n, err)
	}
}

// setRolesTo replaces the roles (with the login-identity convention).
func (h *oauthHarness) setRolesTo(roles map[string][]string) {
	h.t.Helper()
	h.setRoles(true)
	r := h.mb.resolver
	for id, scopes := range roles {
		var err error
		if r, err = r.Put(roleOf(id, scopes)); err != nil {
			h.t.Fatal(err)
		}
	}
	h.mb.mu.Lock()
	h.mb.resolver = r
	h.mb.mu.Unlock()
}

func roleOf(id string, scopes []string) scopeengine.Role {
	return scopeengine.Role{RoleID: id, Scopes: scopes}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
