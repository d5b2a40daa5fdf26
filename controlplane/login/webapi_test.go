package login

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

func (h *browserHarness) webCreds(c *http.Cookie) (SessionCredentials, error) {
	req := httptest.NewRequest("GET", testPublicURL+"/profile", nil)
	if c != nil {
		req.AddCookie(c)
	}
	return h.svc.SessionCredentials(req)
}

func (f *fakeStrategy) refreshCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes
}

// TestSessionCredentialsCache: credentials are derived once, served from
// the cache until WebRenewBefore before their expiry, then re-derived
// through the provider.
func TestSessionCredentialsCache(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	first, err := h.webCreds(sc)
	if err != nil {
		t.Fatal(err)
	}
	if first.Identity != "fake/alice" || first.Strategy != "fake" || first.Credentials.ClientID != "fake/alice" ||
		first.Credentials.Certificate == "" || len(first.FormKey) != 32 || first.SessionExpires.IsZero() {
		t.Fatalf("credentials %+v", first)
	}
	if want := h.now.Add(CredentialsLifetime - userCredsEarly); !first.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", first.Expires, want)
	}
	if bytes.Contains(first.FormKey, []byte(sc.Value)) {
		t.Fatal("the form key contains the session id")
	}
	base := h.fake.refreshCount()
	h.now = first.Expires.Add(-WebRenewBefore - time.Second)
	again, err := h.webCreds(sc)
	if err != nil || again.Credentials.Certificate != first.Credentials.Certificate || h.fake.refreshCount() != base {
		t.Fatalf("not served from the cache: %v, refreshes %d → %d", err, base, h.fake.refreshCount())
	}
	if !bytes.Equal(again.FormKey, first.FormKey) {
		t.Fatal("form key changed within a session")
	}
	h.now = first.Expires.Add(-WebRenewBefore)
	renewed, err := h.webCreds(sc)
	if err != nil || renewed.Credentials.Certificate == first.Credentials.Certificate || h.fake.refreshCount() != base+1 || !renewed.Expires.After(first.Expires) {
		t.Fatalf("not renewed %v before expiry: %v, refreshes %d", WebRenewBefore, err, h.fake.refreshCount())
	}
	other := h.signIn("code-alice")
	o, err := h.webCreds(other)
	if err != nil || bytes.Equal(o.FormKey, first.FormKey) {
		t.Fatalf("a second session shares the form key: %v", err)
	}
}

// TestSessionCredentialsLongSession: a user who keeps using the UI is
// never handed expired credentials nor signed out while the session
// lives (Taskcluster #1890), with calls at any spacing.
func TestSessionCredentialsLongSession(t *testing.T) {
	h := newBrowserHarness(t)
	sc := h.signIn("code-alice")
	end := h.now.Add(6 * time.Hour)
	for _, step := range []time.Duration{time.Second, 7 * time.Minute, 13 * time.Minute, 14*time.Minute + 29*time.Second, 40 * time.Minute} {
		for h.now.Before(end) {
			c, err := h.webCreds(sc)
			if err != nil {
				t.Fatalf("at %v (step %v): %v", h.now, step, err)
			}
			if !c.Expires.After(h.now.Add(WebRenewBefore - time.Second)) {
				t.Fatalf("at %v: credentials expiring at %v handed out", h.now, c.Expires)
			}
			h.now = h.now.Add(step)
		}
		end = h.now.Add(6 * time.Hour)
	}
}

// TestSessionCredentialsErrors: the sentinels.
func TestSessionCredentialsErrors(t *testing.T) {
	h := newBrowserHarness(t)
	if _, err := h.webCreds(nil); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("no cookie: %v", err)
	}
	if _, err := h.webCreds(&http.Cookie{Name: SessionCookie, Value: randomToken(32)}); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("unknown session: %v", err)
	}
	sc := h.signIn("code-alice")
	if _, err := h.webCreds(sc); err != nil {
		t.Fatal(err)
	}
	// provider down: transient, the session stays
	h.fake.mu.Lock()
	h.fake.refreshErr = ErrProviderUnavailable
	h.fake.mu.Unlock()
	h.now = h.now.Add(CredentialsLifetime)
	if _, err := h.webCreds(sc); !errors.Is(err, ErrProviderUnavailable) || errors.Is(err, ErrSignedOut) {
		t.Fatalf("provider down: %v", err)
	}
	h.fake.mu.Lock()
	h.fake.refreshErr = errors.New("some network error")
	h.fake.mu.Unlock()
	if _, err := h.webCreds(sc); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("other transient error: %v", err)
	}
	h.fake.mu.Lock()
	h.fake.refreshErr = nil
	h.fake.mu.Unlock()
	if _, err := h.webCreds(sc); err != nil {
		t.Fatalf("after the provider is back: %v", err)
	}
	// issuer cannot sign: not a sign-out
	h.mb.addClient(Client{ClientID: testIssuer, Scopes: []string{"assume:login-identity:*"}})
	h.now = h.now.Add(CredentialsLifetime)
	if _, err := h.webCreds(sc); !errors.Is(err, ErrCannotIssue) {
		t.Fatalf("issuer without scopes: %v", err)
	}
	h.mb.addClient(Client{ClientID: testIssuer, Scopes: []string{"auth:create-client:fake/*", "assume:login-identity:*", "assume:fake-group:*"}})
	// logout ends it at once, even with cached credentials
	if _, err := h.webCreds(sc); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", testPublicURL+"/login/logout", nil)
	req.AddCookie(sc)
	if res := h.do(req); res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout %d", res.StatusCode)
	}
	if _, err := h.webCreds(sc); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("after logout: %v", err)
	}
	// the provider says the user is gone
	sc = h.signIn("code-alice")
	h.fake.removeUser("alice")
	h.now = h.now.Add(CredentialsLifetime)
	if _, err := h.webCreds(sc); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("gone user: %v", err)
	}
}

func TestSignInPath(t *testing.T) {
	h := newBrowserHarness(t)
	for _, c := range []struct{ strategy, returnTo, want string }{
		{"fake", "/auth/clients?search=a%2Fb", "/login/fake?mode=redirect&returnTo=%2Fauth%2Fclients%3Fsearch%3Da%252Fb"},
		{"other", "/profile", "/login/other?mode=redirect&returnTo=%2Fprofile"},
		{"fake", "", "/login/fake?mode=redirect&returnTo=%2F"},
		{"fake", "//evil.example/x", "/login/fake?mode=redirect&returnTo=%2F"},
		{"fake", "https://evil.example/", "/login/fake?mode=redirect&returnTo=%2F"},
		{"fake", "/\\evil.example", "/login/fake?mode=redirect&returnTo=%2F"},
		{"fake", "/a\nb", "/login/fake?mode=redirect&returnTo=%2F"},
		{"nope", "/profile", ""},
	} {
		if got := h.svc.SignInPath(c.strategy, c.returnTo); got != c.want {
			t.Errorf("SignInPath(%q, %q) = %q, want %q", c.strategy, c.returnTo, got, c.want)
		}
	}
	// the path works: the start page accepts it
	res := h.get(h.svc.SignInPath("fake", "/profile"))
	if res.StatusCode != http.StatusFound {
		t.Fatalf("sign-in path answered %d", res.StatusCode)
	}
	got := h.svc.Strategies()
	if !slices.Equal(got, []string{"fake", "other"}) {
		t.Fatalf("strategies %v", got)
	}
	got[0] = "changed"
	if h.svc.Strategies()[0] != "fake" {
		t.Fatal("Strategies returned the service's own slice")
	}
}
