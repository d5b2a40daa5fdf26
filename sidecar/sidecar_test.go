package sidecar

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// authCase is one row of the authorization table run in both modes.
type authCase struct {
	name       string
	c          call
	status     int
	code       string
	client     string // expected X-Taskcluster-Client-Id upstream
	hasScope   string // a scope the upstream must see
	msgHas     string // substring of the error message
	challenged bool   // WWW-Authenticate: hawk
}

var badMAC = &protocol.Credentials{ClientID: "alice", AccessToken: "wrong"}
var ghost = &protocol.Credentials{ClientID: "ghost", AccessToken: "x"}

var authTable = []authCase{
	{name: "allowed", c: call{method: "GET", path: "/notes/a", creds: alice}, status: 200, client: "alice", hasScope: "notes:read:*"},
	{name: "allowed via role", c: call{method: "PUT", path: "/notes/x-1", creds: alice, body: "hi"}, status: 200, client: "alice", hasScope: "notes:write:x-*"},
	{name: "anonymous role scopes included", c: call{method: "GET", path: "/notes/a", creds: bob}, status: 403, code: "InsufficientScopes",
		msgHas: "Client ID bob does not have sufficient scopes and is missing the following scopes:\n\n```\n{\n  \"AnyOf\": [\n    \"notes:read:a\",\n    \"notes:write:a\"\n  ]\n}\n```"},
	{name: "denied names the unsatisfied part", c: call{method: "DELETE", path: "/notes/x-1", creds: alice}, status: 403, code: "InsufficientScopes",
		msgHas: "is missing the following scopes:\n\n```\nnotes:delete\n```"},
	{name: "anonymous allowed by anonymous role", c: call{method: "GET", path: "/notes/open"}, status: 200, hasScope: "notes:read:open"},
	{name: "missing credentials", c: call{method: "GET", path: "/notes/a"}, status: 401, code: "AuthenticationFailed", challenged: true,
		msgHas: "This request requires Taskcluster credentials that satisfy the following scope expression"},
	{name: "bad mac", c: call{method: "GET", path: "/notes/a", creds: badMAC}, status: 401, code: "AuthenticationFailed", challenged: true, msgHas: "Bad mac"},
	{name: "unknown client", c: call{method: "GET", path: "/notes/a", creds: ghost}, status: 401, code: "AuthenticationFailed", msgHas: "Client with clientId 'ghost' not found"},
	{name: "no route", c: call{method: "GET", path: "/nothing", creds: alice}, status: 404, code: "ResourceNotFound"},
	{name: "public without credentials", c: call{method: "GET", path: "/public"}, status: 200},
	{name: "public ignores bad credentials", c: call{method: "GET", path: "/public", creds: badMAC}, status: 200},
	{name: "authenticated route refuses anonymous", c: call{method: "GET", path: "/whoami"}, status: 401, code: "AuthenticationFailed", challenged: true},
	{name: "authenticated route", c: call{method: "POST", path: "/whoami", creds: bob}, status: 200, client: "bob"},
	{name: "rest capture", c: call{method: "GET", path: "/files/a/b/c", creds: alice}, status: 403,
		msgHas: "files:read:a/b/c"},
	{name: "encoded slash in a rest capture", c: call{method: "GET", path: "/files/a/b%2Fc", creds: &protocol.Credentials{ClientID: "issuer", AccessToken: "issuer-secret"}}, status: 400,
		code: "InputError", msgHas: "%2F"},
	{name: "dot segment refused", c: call{method: "GET", path: "/notes/%2e%2e", creds: alice}, status: 400, code: "InputError"},
	{name: "query and body params", c: call{method: "POST", path: "/share/b?to=carol", creds: bob, body: `{"team":"red"}`, contentType: "application/json"}, status: 200, client: "bob"},
	{name: "body params must be JSON", c: call{method: "POST", path: "/share/b?to=carol", creds: bob, body: `nope`}, status: 400, code: "InputError"},
	{name: "missing query param", c: call{method: "POST", path: "/share/b", creds: bob, body: `{"team":"red"}`}, status: 400, code: "InputError"},
}

func runAuthTable(t *testing.T, h *harness) {
	for _, tc := range authTable {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(tc.c)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", a.status, tc.status, a.body)
			}
			if tc.code != "" && a.err.Code != tc.code {
				t.Errorf("code %q, want %q", a.err.Code, tc.code)
			}
			if tc.msgHas != "" && !strings.Contains(a.err.Message, tc.msgHas) {
				t.Errorf("message %q does not contain %q", a.err.Message, tc.msgHas)
			}
			if got := a.header.Get("WWW-Authenticate"); tc.challenged && got != "hawk" {
				t.Errorf("WWW-Authenticate %q, want hawk", got)
			}
			if a.status != 200 {
				return
			}
			if got := a.echo.Header.Get(HeaderClientID); got != tc.client {
				t.Errorf("upstream saw client %q, want %q", got, tc.client)
			}
			if tc.hasScope != "" && !slices.Contains(scopesHeader(t, a.echo.Header), tc.hasScope) {
				t.Errorf("upstream scopes %v lack %q", scopesHeader(t, a.echo.Header), tc.hasScope)
			}
			if a.echo.Header.Get("Authorization") != "" {
				t.Error("Authorization was forwarded")
			}
			if tc.c.body != "" && a.echo.Body != tc.c.body {
				t.Errorf("upstream body %q, want %q", a.echo.Body, tc.c.body)
			}
		})
	}
}

func TestAuthorizationLocal(t *testing.T) {
	runAuthTable(t, newHarness(t))
}

func TestAuthorizationRemote(t *testing.T) {
	h := newHarness(t, remoteMode)
	runAuthTable(t, h)
	if h.cp.authCalls.Load() == 0 {
		t.Fatal("remote mode never called authenticateHawk")
	}
}

func TestIdentityHeadersUpstream(t *testing.T) {
	h := newHarness(t)
	a := h.do(call{method: "GET", path: "/notes/a", creds: alice})
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	hd := a.echo.Header
	want := map[string]string{HeaderClientID: "alice", HeaderAuthScheme: "hawk", HeaderRoute: "GET /notes/<name>"}
	for k, v := range want {
		if hd.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, hd.Get(k), v)
		}
	}
	if hd.Get(HeaderExpires) != "" {
		t.Errorf("a client without expiry got %s %q", HeaderExpires, hd.Get(HeaderExpires))
	}
	if got, want := scopesHeader(t, hd), []string{"assume:anonymous", "assume:project:x", "notes:read:*", "notes:write:x-*"}; !slices.Equal(got, want) {
		t.Errorf("scopes %v, want %v", got, want)
	}
	if hd.Get("X-Forwarded-For") == "" || hd.Get("X-Forwarded-Host") == "" {
		t.Errorf("X-Forwarded headers missing: %v", hd)
	}
}

func TestSpoofedIdentityHeadersStripped(t *testing.T) {
	h := newHarness(t)
	spoof := http.Header{
		"X-Taskcluster-Client-Id":        {"root"},
		"x-taskcluster-scopes":           {`["*"]`},
		"X_Taskcluster_Scopes_Truncated": {"false"},
		"X-TASKCLUSTER-EXPIRES":          {"2999-01-01T00:00:00.000Z"},
		"X-Taskcluster-Anything":         {"forged"},
		// Naming our headers in Connection must not make them vanish.
		"Connection": {"X-Taskcluster-Client-Id, x-taskcluster-scopes, keep-alive"},
	}
	for _, tc := range []struct {
		name   string
		c      call
		client string
	}{
		{"authenticated", call{method: "GET", path: "/notes/a", creds: alice, header: spoof}, "alice"},
		{"public", call{method: "GET", path: "/public", header: spoof}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(tc.c)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			for name, vs := range a.echo.Header {
				n := normalizeHeaderName(name)
				if !strings.HasPrefix(n, "x-taskcluster-") {
					continue
				}
				for _, v := range vs {
					if v == "root" || v == `["*"]` || v == "forged" || v == "false" || strings.HasPrefix(v, "2999") {
						t.Errorf("spoofed %s: %q reached the upstream", name, v)
					}
				}
			}
			if got := a.echo.Header.Get(HeaderClientID); got != tc.client {
				t.Errorf("client %q, want %q", got, tc.client)
			}
			if tc.client != "" && len(scopesHeader(t, a.echo.Header)) == 0 {
				t.Error("the sidecar's own scopes header was dropped")
			}
		})
	}
}

func TestBewit(t *testing.T) {
	bothModes(t, func(t *testing.T, tweak func(*Config)) {
		{
			h := newHarness(t, tweak)
			signed, err := protocol.SignedURL(*alice, h.front.URL+"/notes/a?x=1&y=2", time.Minute, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			path := strings.TrimPrefix(signed, h.front.URL)
			a := h.do(call{method: "GET", path: path})
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if a.echo.URI != "/notes/a?x=1&y=2" {
				t.Errorf("upstream URI %q still carries the bewit or lost params", a.echo.URI)
			}
			if a.echo.Header.Get(HeaderAuthScheme) != "bewit" || a.echo.Header.Get(HeaderClientID) != "alice" {
				t.Errorf("identity %v", a.echo.Header)
			}
			// Bewits are for GET/HEAD only.
			if a := h.do(call{method: "PUT", path: path}); a.status != 401 {
				t.Errorf("PUT with bewit: %d", a.status)
			}
			// Both schemes at once are refused.
			if a := h.do(call{method: "GET", path: path, creds: alice}); a.status != 401 || !strings.Contains(a.err.Message, "two authentication schemes") {
				t.Errorf("bewit + header: %d %s", a.status, a.err.Message)
			}
			// A bewit for one path does not open another.
			other := strings.Replace(path, "/notes/a", "/notes/b", 1)
			if a := h.do(call{method: "GET", path: other}); a.status != 401 {
				t.Errorf("moved bewit: %d", a.status)
			}
		}
	})
}

func TestTemporaryCredentialsAndAuthorizedScopes(t *testing.T) {
	bothModes(t, func(t *testing.T, tweak func(*Config)) {
		{
			h := newHarness(t, tweak)
			temp, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{
				Issuer: issuer, ClientID: "temp/worker-1", Scopes: []string{"notes:read:t"}, Expiry: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			unnamed, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{
				Issuer: issuer, Scopes: []string{"notes:write:u"}, Expiry: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			narrowed := *alice
			narrowed.AuthorizedScopes = []string{"notes:read:a"}
			tooWide := *alice
			tooWide.AuthorizedScopes = []string{"notes:delete"}
			for _, tc := range []struct {
				name    string
				c       call
				status  int
				client  string
				expires bool
			}{
				{"named temp allowed", call{method: "GET", path: "/notes/t", creds: &temp}, 200, "temp/worker-1", true},
				{"named temp limited to its scopes", call{method: "GET", path: "/notes/u", creds: &temp}, 403, "", false},
				{"unnamed temp", call{method: "PUT", path: "/notes/u", creds: &unnamed, body: "x"}, 200, "issuer", true},
				{"authorizedScopes allow", call{method: "GET", path: "/notes/a", creds: &narrowed}, 200, "alice", false},
				{"authorizedScopes restrict", call{method: "GET", path: "/notes/b", creds: &narrowed}, 403, "", false},
				{"authorizedScopes beyond the client", call{method: "GET", path: "/notes/a", creds: &tooWide}, 401, "", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					a := h.do(tc.c)
					if a.status != tc.status {
						t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
					}
					if a.status == 200 {
						if got := a.echo.Header.Get(HeaderClientID); got != tc.client {
							t.Errorf("client %q, want %q", got, tc.client)
						}
						if got := a.echo.Header.Get(HeaderExpires) != ""; got != tc.expires {
							t.Errorf("expires header present=%v, want %v", got, tc.expires)
						}
					}
				})
			}
		}
	})
}

func TestReplayRejected(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tweak      func(*Config)
		wantSecond int
	}{
		{"local", func(*Config) {}, 401},
		{"remote", remoteMode, 401},
		{"check disabled", func(c *Config) { c.DisableReplayCheck = true }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.tweak)
			req := h.request(call{method: "GET", path: "/notes/a", creds: alice})
			auth := req.Header.Get("Authorization")
			if a := h.send(req); a.status != 200 {
				t.Fatalf("first: %d %s", a.status, a.body)
			}
			again := h.request(call{method: "GET", path: "/notes/a"})
			again.Header.Set("Authorization", auth)
			a := h.send(again)
			if a.status != tc.wantSecond {
				t.Fatalf("replay: %d, want %d: %s", a.status, tc.wantSecond, a.body)
			}
			if tc.wantSecond == 401 && !strings.Contains(a.err.Message, "Replay") {
				t.Errorf("message %q", a.err.Message)
			}
			// A fresh nonce is fine.
			if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != 200 {
				t.Errorf("fresh nonce: %d", a.status)
			}
		})
	}
}

func TestPayloadHash(t *testing.T) {
	bothModes(t, func(t *testing.T, tweak func(*Config)) {
		{
			h := newHarness(t, tweak, func(c *Config) { c.MaxHashedBody = 64 })
			body := `{"text":"hello"}`
			a := h.do(call{method: "PUT", path: "/notes/x-1", creds: alice, body: body, contentType: "application/json", hash: true})
			if a.status != 200 || a.echo.Body != body {
				t.Fatalf("correct hash: %d, upstream body %q", a.status, a.echo.Body)
			}
			// Sign one body, send another.
			req := h.request(call{method: "PUT", path: "/notes/x-1", creds: alice, body: body, contentType: "application/json", hash: true})
			req.Body = http.NoBody
			forged := h.request(call{method: "PUT", path: "/notes/x-1", body: `{"text":"HELLO"}`, contentType: "application/json"})
			forged.Header.Set("Authorization", req.Header.Get("Authorization"))
			if a := h.send(forged); a.status != 401 || !strings.Contains(a.err.Message, "Invalid payload hash") {
				t.Errorf("forged body: %d %s", a.status, a.err.Message)
			}
			// Too big to hash within the limit.
			big := strings.Repeat("x", 65)
			if a := h.do(call{method: "PUT", path: "/notes/x-1", creds: alice, body: big, contentType: "text/plain", hash: true}); a.status != 413 {
				t.Errorf("big body: %d", a.status)
			}
			// Without a hash, big bodies stream through.
			if a := h.do(call{method: "PUT", path: "/notes/x-1", creds: alice, body: big}); a.status != 200 || a.echo.Body != big {
				t.Errorf("unhashed big body: %d", a.status)
			}
		}
	})
}

func TestRevocationViaFeed(t *testing.T) {
	h := newHarness(t)
	ok := func() int { return h.do(call{method: "PUT", path: "/notes/x-1", creds: alice, body: "x"}).status }
	if s := ok(); s != 200 {
		t.Fatalf("before: %d", s)
	}
	within := func(what string, want int, f func() int) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			got := f()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %d after 1 s, want %d", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A role change removes the grant.
	h.cp.setRole("project:x", "notes:write:y-*")
	within("role change", 403, ok)
	// A token reset makes the old token useless.
	h.cp.setClient("alice", "alice-new-secret", "notes:read:*")
	within("token reset", 401, func() int { return h.do(call{method: "GET", path: "/notes/a", creds: alice}).status })
	newAlice := &protocol.Credentials{ClientID: "alice", AccessToken: "alice-new-secret"}
	if s := h.do(call{method: "GET", path: "/notes/a", creds: newAlice}).status; s != 200 {
		t.Fatalf("new token: %d", s)
	}
	// Deletion.
	h.cp.deleteClient("alice")
	within("delete", 401, func() int { return h.do(call{method: "GET", path: "/notes/a", creds: newAlice}).status })
}

// A role change re-expands cached clients from their own scopes: the new
// grant applies at once, without a refetch, and the clients stay usable
// if the control plane then goes away.
func TestRoleChangeReexpandsWithoutRefetch(t *testing.T) {
	h := newHarness(t)
	write := func() int { return h.do(call{method: "PUT", path: "/notes/x-1", creds: alice, body: "x"}).status }
	if s := write(); s != 200 {
		t.Fatalf("before: %d", s)
	}
	fetches := h.cp.fetches("alice")
	h.cp.setRole("project:x", "notes:write:y-*")
	deadline := time.Now().Add(time.Second)
	for write() != 403 {
		if time.Now().After(deadline) {
			t.Fatal("role change not applied within 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.cp.fetches("alice"); got != fetches {
		t.Errorf("alice fetched %d more times after a role change; want a local re-expansion", got-fetches)
	}
	h.cp.setRole("project:x", "notes:write:x-*")
	for write() != 200 {
		if time.Now().After(deadline.Add(time.Second)) {
			t.Fatal("role grant not applied within 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.cp.setDown(true)
	if s := write(); s != 200 {
		t.Fatalf("cached client after a role change, control plane down: %d", s)
	}
}

func TestCacheServesWithoutControlPlaneRoundTrips(t *testing.T) {
	h := newHarness(t)
	repeatOneFetch(t, h, alice, 5, 200)
	// A silent change (no feed event) is not seen: the cache answered.
	h.cp.setClientSilently("alice", "other")
	if s := h.do(call{method: "GET", path: "/notes/a", creds: alice}).status; s != 200 {
		t.Fatalf("cached alice: %d", s)
	}
}

func TestControlPlaneDown(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxStale = 700 * time.Millisecond })
	if s := h.do(call{method: "GET", path: "/notes/a", creds: alice}).status; s != 200 {
		t.Fatal(s)
	}
	// Let the long poll run for a while: the time it was open counts as
	// current, not as stale.
	time.Sleep(400 * time.Millisecond)
	h.cp.setDown(true)
	// Wait until the sidecar noticed (the long poll was dropped).
	deadline := time.Now().Add(2 * time.Second)
	for h.sc.local.staleness(time.Now()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sidecar did not notice the control plane going away")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.sc.local.staleness(time.Now()); st > 300*time.Millisecond {
		t.Errorf("staleness %v right after the failure: the open poll was not counted as current", st)
	}
	a := h.do(call{method: "GET", path: "/notes/a", creds: alice})
	if a.status != 200 {
		t.Fatalf("cached client while down: %d %s", a.status, a.body)
	}
	if a.header.Get(HeaderAuthStale) == "" || a.echo.Header.Get(HeaderAuthStale) == "" {
		t.Errorf("stale marker missing: response %q upstream %q", a.header.Get(HeaderAuthStale), a.echo.Header.Get(HeaderAuthStale))
	}
	u := h.do(call{method: "GET", path: "/notes/a", creds: bob})
	if u.status != 503 || u.err.Code != CodeServiceUnavailable {
		t.Errorf("uncached client while down: %d %s", u.status, u.body)
	}
	if ok, _ := h.sc.Ready(); !ok {
		t.Error("not ready within max-stale")
	}
	time.Sleep(800 * time.Millisecond)
	if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != 503 {
		t.Errorf("past max-stale: %d %s", a.status, a.body)
	}
	if ok, _ := h.sc.Ready(); ok {
		t.Error("ready past max-stale")
	}
	// Back up: the feed resynchronises and requests work again.
	h.cp.setDown(false)
	deadline = time.Now().Add(10 * time.Second)
	for h.do(call{method: "GET", path: "/notes/a", creds: alice}).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("did not recover")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNegativeCache(t *testing.T) {
	repeatOneFetch(t, newHarness(t), ghost, 30, 401)
}

func TestSingleflight(t *testing.T) {
	h := newHarness(t)
	h.cp.credDelay.Store(int64(200 * time.Millisecond))
	var wg sync.WaitGroup
	statuses := make([]int, 16)
	reqs := make([]*http.Request, len(statuses))
	for i := range reqs {
		reqs[i] = h.request(call{method: "GET", path: "/notes/a", creds: alice})
	}
	for i := range reqs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.DefaultClient.Do(reqs[i])
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}(i)
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Errorf("request %d: %d", i, s)
		}
	}
	if n := h.cp.fetches("alice"); n != 1 {
		t.Fatalf("%d concurrent misses made %d fetches, want 1", len(statuses), n)
	}
}

func TestFeedExpiredResynchronises(t *testing.T) {
	h := newHarness(t)
	if s := h.do(call{method: "GET", path: "/notes/a", creds: alice}).status; s != 200 {
		t.Fatal(s)
	}
	// The feed loses its history and a change happens meanwhile.
	h.cp.mu.Lock()
	h.cp.lost = h.cp.index + 1
	h.cp.clients["alice"].token = "rotated"
	h.cp.publishLocked("client", "unrelated", "updated")
	h.cp.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for h.do(call{method: "GET", path: "/notes/a", creds: alice}).status != 401 {
		if time.Now().After(deadline) {
			t.Fatal("the sidecar kept the old token after a 410")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScopesHeaderTruncated(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxScopesHeader = 40 })
	a := h.do(call{method: "PUT", path: "/notes/x-1", creds: alice, body: "x"})
	if a.status != 200 {
		t.Fatal(a.status)
	}
	if a.echo.Header.Get(HeaderScopesTruncated) != "true" {
		t.Fatalf("not flagged as truncated: %v", a.echo.Header)
	}
	if got := scopesHeader(t, a.echo.Header); !slices.Equal(got, []string{"notes:write:x-1"}) {
		t.Errorf("truncated scopes %v, want the route's satisfied scopes", got)
	}
}

func TestAdminHandler(t *testing.T) {
	h := newHarness(t)
	h.do(call{method: "GET", path: "/notes/a", creds: alice})
	h.do(call{method: "GET", path: "/notes/a", creds: alice})
	h.do(call{method: "DELETE", path: "/notes/a", creds: alice})
	srv := h.sc.AdminHandler()
	for _, tc := range []struct {
		path   string
		status int
		has    []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/readyz", 200, []string{"ready"}},
		{"/metrics", 200, []string{
			`tcauth_sidecar_requests_total{outcome="allowed",route="GET /notes/<name>"} 2`,
			`tcauth_sidecar_requests_total{outcome="insufficient_scopes",route="DELETE /notes/<name>"} 1`,
			`tcauth_sidecar_cache_requests_total{cache="client",result="hit"}`,
			`tcauth_sidecar_upstream_duration_seconds_count{code="2xx"} 2`,
			`tcauth_sidecar_verify_duration_seconds_count{mode="local"} 3`,
			`tcauth_sidecar_feed_lag_seconds 0`,
		}},
	} {
		rec := httpRecorder(srv, tc.path)
		if rec.status != tc.status {
			t.Errorf("%s: %d", tc.path, rec.status)
		}
		for _, s := range tc.has {
			if !strings.Contains(rec.body, s) {
				t.Errorf("%s lacks %q", tc.path, s)
			}
		}
	}
}

type recorded struct {
	status int
	body   string
}

func httpRecorder(hd http.Handler, path string) recorded {
	w := &memWriter{h: http.Header{}, status: 200}
	r, _ := http.NewRequest("GET", path, nil)
	hd.ServeHTTP(w, r)
	return recorded{w.status, w.b.String()}
}

type memWriter struct {
	h      http.Header
	status int
	b      strings.Builder
}

func (m *memWriter) Header() http.Header         { return m.h }
func (m *memWriter) WriteHeader(s int)           { m.status = s }
func (m *memWriter) Write(p []byte) (int, error) { return m.b.Write(p) }

func TestErrorBodyShape(t *testing.T) {
	h := newHarness(t)
	a := h.do(call{method: "DELETE", path: "/notes/x-1", creds: alice})
	var body map[string]any
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"code", "message", "requestInfo"} {
		if _, ok := body[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, a.body)
		}
	}
	if !strings.Contains(a.err.Message, "* errorCode:  InsufficientScopes") {
		t.Errorf("message lacks lib-api's suffix: %q", a.err.Message)
	}
	if a.err.RequestInfo.Params["name"] != "x-1" {
		t.Errorf("params %v", a.err.RequestInfo.Params)
	}
}

// bothModes runs f for local and for remote verification.
func bothModes(t *testing.T, f func(t *testing.T, tweak func(*Config))) {
	t.Run("local", func(t *testing.T) { f(t, func(*Config) {}) })
	t.Run("remote", func(t *testing.T) { f(t, remoteMode) })
}

// repeatOneFetch sends n requests as creds, expects status for each, and
// checks that the control plane was asked about the client exactly once.
func repeatOneFetch(t *testing.T, h *harness, creds *protocol.Credentials, n, status int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if s := h.do(call{method: "GET", path: "/notes/a", creds: creds}).status; s != status {
			t.Fatalf("request %d: %d, want %d", i, s, status)
		}
	}
	if got := h.cp.fetches(creds.ClientID); got != 1 {
		t.Fatalf("%s fetched %d times for %d requests, want 1", creds.ClientID, got, n)
	}
}

// TestLaggingControlPlaneAnswerRefused: after the feed reported a token
// reset at index N, an answer read at an index below N (a follower that
// has not applied it yet) must not bring the old token back.
func TestLaggingControlPlaneAnswerRefused(t *testing.T) {
	h := newHarness(t)
	if s := h.do(call{method: "GET", path: "/notes/a", creds: alice}).status; s != 200 {
		t.Fatal(s)
	}
	h.cp.mu.Lock()
	old := *h.cp.clients["alice"]
	oldIndex := h.cp.index
	h.cp.mu.Unlock()
	h.cp.lagging.Store("alice", &laggingAnswer{client: old, index: oldIndex})
	h.cp.setClient("alice", "alice-rotated", "notes:read:*")
	deadline := time.Now().Add(time.Second)
	for {
		a := h.do(call{method: "GET", path: "/notes/a", creds: alice})
		if a.status == 503 {
			break
		}
		if a.status == 200 && time.Now().After(deadline) {
			t.Fatal("the old token still works after the reset")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Once the node catches up, the new token works and the old does not.
	h.cp.lagging.Delete("alice")
	rotated := &protocol.Credentials{ClientID: "alice", AccessToken: "alice-rotated"}
	if s := h.do(call{method: "GET", path: "/notes/a", creds: rotated}).status; s != 200 {
		t.Fatalf("new token: %d", s)
	}
	if s := h.do(call{method: "GET", path: "/notes/a", creds: alice}).status; s != 401 {
		t.Fatalf("old token: %d", s)
	}
}
