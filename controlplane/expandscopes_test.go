package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// putBroadRoles stores n roles (chains of star and plain roles) so that
// assume:* expands to more than scopeengine.DefaultSharedExpansionMin
// scopes.
func putBroadRoles(e *testEnv, n int) {
	for i := range n {
		e.putRole(fmt.Sprintf("bulk:%d:*", i), fmt.Sprintf("bulk-scope:%d:<..>", i), fmt.Sprintf("plain:%d", i))
	}
}

// TestStreamScopesetMatchesReply: the streamed encoding is byte for byte
// what reply (JSON.stringify(v, null, 2)) writes, also for scopes the
// fast path cannot write as they are.
func TestStreamScopesetMatchesReply(t *testing.T) {
	sets := [][]string{
		{},
		{"a"},
		{"notes:write:<..>/*", "x&y", "q\"uote", `back\slash`, "tab\there", "caf\u00e9", "\u2028line"},
		slices.Collect(func(yield func(string) bool) {
			for i := range 5000 {
				if !yield(fmt.Sprintf("scope:%05d", i)) {
					return
				}
			}
		}),
	}
	for i, set := range sets {
		want, err := marshalPretty(protocol.ScopesetJSON{Scopes: set})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		c := &call{w: rec}
		c.streamScopeset(set)
		if got := rec.Body.String(); got != string(want) {
			t.Fatalf("set %d: streamed\n%.300s\nwant\n%.300s", i, got, want)
		}
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("set %d: status %d, content type %q", i, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

// TestExpandScopesLarge: a large answer is streamed (no Content-Length,
// the same bytes as before) and repeated calls share one computed list.
func TestExpandScopesLarge(t *testing.T) {
	e := newMemEnv(t)
	putBroadRoles(e, 800)
	for _, in := range []string{`["assume:*"]`, `["assume:bulk:*", "z:1"]`, `["assume:bulk:1:x"]`} {
		r := e.api("POST", "/scopes/expand", asRoot(), withBody(`{"scopes": `+in+`}`), withContentType("application/json"))
		expectStatus(t, r, 200)
		var scopes []string
		if err := jsonUnmarshal(r.body, &scopes); err != nil {
			t.Fatal(err)
		}
		want := e.store.Resolver().Expand(mustStrings(t, in))
		if !slices.Equal(scopes, want) {
			t.Fatalf("%s: %d scopes, want %d", in, len(scopes), len(want))
		}
		wantBody, _ := marshalPretty(protocol.ScopesetJSON{Scopes: want})
		if string(r.body) != string(wantBody) {
			t.Fatalf("%s: body differs from the marshalled answer", in)
		}
		if large := len(want) >= scopeengine.DefaultSharedExpansionMin; large != (r.header.Get("Content-Length") == "") {
			t.Fatalf("%s: %d scopes, Content-Length %q: large answers must be streamed", in, len(want), r.header.Get("Content-Length"))
		}
	}
}

// TestExpandScopesBusy: with every large-expansion slot taken, a broad
// call waits LargeExpansionWait and gets 503 + Retry-After in the error
// shape; a narrow small call is not held up; a freed slot serves again.
func TestExpandScopesBusy(t *testing.T) {
	e := newMemEnv(t, func(c *Config) { c.MaxLargeExpansions, c.LargeExpansionWait = 2, 50*time.Millisecond })
	putBroadRoles(e, 800)
	e.srv.largeExpansions <- struct{}{}
	e.srv.largeExpansions <- struct{}{}
	cases := []struct {
		body   string
		status int
	}{
		{`{"scopes": ["assume:*"]}`, 503},
		{`{"scopes": ["assume:bulk:1*"]}`, 503}, // broad input, small answer: the input decides
		{`{"scopes": ["assu*"]}`, 503},
		{`{"scopes": ["assume:bulk:1:x"]}`, 200},
		{`{"scopes": ["a:b"]}`, 200},
	}
	for _, c := range cases {
		t0 := time.Now()
		r := e.api("POST", "/scopes/expand", asRoot(), withBody(c.body), withContentType("application/json"))
		if r.status != c.status {
			t.Fatalf("%s: status %d, want %d\n%s", c.body, r.status, c.status, r.body)
		}
		if c.status == 503 {
			m := expectError(t, r, 503, protocol.CodeInternalServerError)
			if r.header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(m["message"]), "retry later") {
				t.Fatalf("%s: no Retry-After or message: %v", c.body, m)
			}
			if d := time.Since(t0); d < 50*time.Millisecond {
				t.Fatalf("%s: refused after %v, before LargeExpansionWait", c.body, d)
			}
		}
	}
	<-e.srv.largeExpansions
	expectStatus(t, e.api("POST", "/scopes/expand", asRoot(), withBody(cases[0].body), withContentType("application/json")), 200)
	if n := len(e.srv.largeExpansions); n != 1 {
		t.Fatalf("%d slots held after the calls returned, want 1 (the test's own)", n)
	}
}

// TestBroadClientAuthenticationShares: authenticating a client holding
// assume:* hands out the resolver's shared expansion instead of copying
// and re-expanding it per request (which made each request of such a
// client cost a full expansion and a copy of it).
func TestBroadClientAuthenticationShares(t *testing.T) {
	e := newMemEnv(t)
	// 3,000 roles: the client's expanded scopes exceed the authenticator's
	// 64 KiB input memo (maxMemoKey), as at deployment scale.
	putBroadRoles(e, 3000)
	e.putRole("anonymous", "plain:1", "anon:only")
	e.addClient("broad", "broad-token-0123456789abcdef", "assume:*")
	e.addClient("narrow", "narrow-token-0123456789abcdef", "assume:bulk:3:x")
	for _, tc := range []struct {
		id, token string
		shared    bool
	}{{"broad", "broad-token-0123456789abcdef", true}, {"narrow", "narrow-token-0123456789abcdef", false}} {
		var first []string
		for i := range 3 {
			h, err := protocol.SignRequest(protocol.Credentials{ClientID: tc.id, AccessToken: tc.token}, "GET", "https://svc.example.com:443/x", protocol.SignOptions{Now: frozen})
			if err != nil {
				t.Fatal(err)
			}
			res := e.srv.authn.Authenticate(context.Background(), protocol.Request{Method: "GET", Resource: "/x", Host: "svc.example.com", Port: 443, Authorization: h})
			if res.Status != protocol.StatusSuccess {
				t.Fatalf("%s: %v %v", tc.id, res.Status, res.Err)
			}
			rec, _ := e.store.Client(tc.id)
			want := e.store.Resolver().Expand(append(slices.Clone(rec.Scopes), "assume:anonymous"))
			if !slices.Equal(res.Scopes, want) {
				t.Fatalf("%s: %d scopes, want %d", tc.id, len(res.Scopes), len(want))
			}
			if i == 0 {
				first = res.Scopes
			} else if tc.shared && unsafe.SliceData(first) != unsafe.SliceData(res.Scopes) {
				t.Fatalf("%s: request %d got its own copy of %d scopes", tc.id, i, len(res.Scopes))
			}
		}
	}
}

func mustStrings(t *testing.T, js string) []string {
	t.Helper()
	var s []string
	if err := jsonUnmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// jsonUnmarshal reads either a JSON array of strings or {"scopes": [...]}.
func jsonUnmarshal(b []byte, out *[]string) error {
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, out)
	}
	var v protocol.ScopesetJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*out = v.Scopes
	return nil
}
