package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// hawkCase is one request shape signed on one side and verified on the other.
type hawkCase struct {
	name        string
	method      string
	scheme      string
	host        string
	port        int
	resource    string // raw path + query, exactly as sent
	payload     *string
	contentType string
	authorized  []string // ext.authorizedScopes; nil = no ext
	tsOffset    time.Duration
}

func ptr(s string) *string { return &s }

var hawkCases = []hawkCase{
	{name: "GET default https port", method: "GET", scheme: "https", host: "tc.example.com", port: 443,
		resource: "/api/auth/v1/test-authenticate-get/"},
	{name: "GET non-default port with query", method: "GET", scheme: "http", host: "localhost", port: 8080,
		resource: "/api/auth/v1/clients/?prefix=a"},
	{name: "POST with payload hash", method: "POST", scheme: "https", host: "tc.example.com", port: 443,
		resource: "/api/auth/v1/test-authenticate", contentType: "application/json",
		payload: ptr(`{"clientScopes":["test:*"],"requiredScopes":["test:x"]}`)},
	{name: "PUT http default port, content-type parameters", method: "PUT", scheme: "http", host: "127.0.0.1", port: 80,
		resource: "/api/auth/v1/clients/my%2Fclient", contentType: "application/json; charset=utf-8",
		payload: ptr(`{"scopes":[]}`)},
	{name: "DELETE odd port, encoded query", method: "DELETE", scheme: "https", host: "auth.example.org", port: 8443,
		resource: "/api/auth/v1/roles/a%20b?x=1&y=%2F&x=2"},
	{name: "PATCH empty payload with authorizedScopes", method: "PATCH", scheme: "https", host: "tc.example.com", port: 443,
		resource: "/api/x/v1/thing", payload: ptr(""), authorized: []string{"test:a"}},
	{name: "HEAD with ext and tilde query", method: "HEAD", scheme: "http", host: "tc.example.com", port: 9000,
		resource: "/p/~x?a=1&a=2&b=%7E", authorized: []string{"test:a", "test:b:*"}},
	{name: "GET percent-encoded UTF-8", method: "GET", scheme: "https", host: "tc.example.com", port: 443,
		resource: "/api/%C3%A9t%C3%A9?q=%E2%9C%93&empty="},
	{name: "GET ts 899 s old", method: "GET", scheme: "https", host: "tc.example.com", port: 443,
		resource: "/api/auth/v1/ping", tsOffset: -899 * time.Second},
	{name: "POST authorizedScopes empty list", method: "POST", scheme: "https", host: "tc.example.com", port: 443,
		resource: "/api/auth/v1/x", authorized: []string{}, contentType: "text/plain", payload: ptr("hello\n")},
}

func (c hawkCase) url() string { return requestURL(c.scheme, c.host, c.port, c.resource) }

// ext is the base64 ext a Taskcluster client sends for c ("" = none).
func (c hawkCase) ext() string {
	if c.authorized == nil {
		return ""
	}
	b, _ := json.Marshal(map[string]any{"authorizedScopes": c.authorized})
	return base64.StdEncoding.EncodeToString(b)
}

func (c hawkCase) request(authorization string) protocol.Request {
	return protocol.Request{Method: c.method, Resource: c.resource, Host: c.host, Port: c.port, Authorization: authorization}
}

// wantScopes is what the Authenticator must grant tester for c.
func (c hawkCase) wantScopes() []string {
	if c.authorized != nil {
		return append([]string{"assume:anonymous"}, c.authorized...)
	}
	return []string{"assume:anonymous", "test:*"}
}

// tamperings are changes to a request that the MAC must catch.
var tamperings = []struct {
	name string
	f    func(protocol.Request) protocol.Request
}{
	{"other port", func(r protocol.Request) protocol.Request { r.Port++; return r }},
	{"other path", func(r protocol.Request) protocol.Request { r.Resource = "/y" + r.Resource; return r }},
	{"other query", func(r protocol.Request) protocol.Request { r.Resource += "&z=1"; return r }},
	{"other method", func(r protocol.Request) protocol.Request {
		if r.Method == "GET" {
			r.Method = "POST"
		} else {
			r.Method = "GET"
		}
		return r
	}},
	{"other host", func(r protocol.Request) protocol.Request { r.Host = "evil.example.com"; return r }},
}

// Headers made by @hapi/hawk's client verify in protocol.Authenticator, and
// every tampered variant fails with "Bad mac".
func TestHapiHeadersVerifyInGo(t *testing.T) {
	requireNode(t)
	cases := make([]any, len(hawkCases))
	for i, c := range hawkCases {
		m := map[string]any{
			"op": "header", "id": testerID, "key": testerKey, "method": c.method, "url": c.url(),
			"ts": frozen.Add(c.tsOffset).Unix(), "nonce": fmt.Sprintf("n%d", i),
		}
		if c.payload != nil {
			m["payload"], m["contentType"] = *c.payload, c.contentType
		}
		if ext := c.ext(); ext != "" {
			m["ext"] = ext
		}
		cases[i] = m
	}
	out := runNode(t, "hawk.js", cases)
	auth := newAuthenticator(testClients())
	wrongKey := testClients()
	tester := wrongKey[testerID]
	tester.AccessToken = "not-the-secret"
	wrongKey[testerID] = tester
	authWrongKey := newAuthenticator(wrongKey)
	ctx := context.Background()

	for i, c := range hawkCases {
		t.Run(c.name, func(t *testing.T) {
			var h struct{ Header string }
			out[i].value(t, "hapi header", &h)
			req := c.request(h.Header)
			res := auth.Authenticate(ctx, req)
			wantSuccess(t, "hapi header", res, testerID, c.wantScopes())
			if c.payload != nil {
				if want := protocol.PayloadHash(c.contentType, []byte(*c.payload)); res.Hash != want {
					t.Errorf("hash %q, want %q", res.Hash, want)
				}
			}
			for _, tm := range tamperings {
				wantFailure(t, tm.name, auth.Authenticate(ctx, tm.f(req)), "Unauthorized: Bad mac")
			}
			wantFailure(t, "wrong key", authWrongKey.Authenticate(ctx, req), "Unauthorized: Bad mac")
		})
	}
}

// Headers made by protocol.SignRequest verify in @hapi/hawk's server
// (including its payload check), and tampered requests fail there.
func TestGoHeadersVerifyInHapi(t *testing.T) {
	requireNode(t)
	type sent struct {
		what    string
		c       hawkCase
		req     protocol.Request
		payload *string
		clients map[string]string
		want    string // "" = accepted, else @hapi/hawk's message
	}
	var all []sent
	for _, c := range hawkCases {
		creds := protocol.Credentials{ClientID: testerID, AccessToken: testerKey, AuthorizedScopes: c.authorized}
		o := protocol.SignOptions{Now: frozen.Add(c.tsOffset), Nonce: "go1234"}
		if c.payload != nil {
			o.HasPayload, o.ContentType, o.Payload = true, c.contentType, []byte(*c.payload)
		}
		header, err := protocol.SignRequest(creds, c.method, c.url(), o)
		if err != nil {
			t.Fatalf("%s: SignRequest: %v", c.name, err)
		}
		ok := map[string]string{testerID: testerKey}
		req := c.request(header)
		all = append(all, sent{c.name, c, req, c.payload, ok, ""})
		for _, tm := range tamperings {
			all = append(all, sent{c.name + ", " + tm.name, c, tm.f(req), c.payload, ok, "Bad mac"})
		}
		all = append(all, sent{c.name + ", wrong key", c, req, c.payload, map[string]string{testerID: "x"}, "Bad mac"})
		all = append(all, sent{c.name + ", unknown id", c, req, c.payload, map[string]string{"other": testerKey}, "Unknown credentials"})
		if c.payload != nil {
			all = append(all, sent{c.name + ", other body", c, req, ptr(*c.payload + " "), ok, "Bad payload hash"})
		}
	}
	// A header older than the 15 minute window is stale on both sides.
	stale := hawkCases[0]
	staleHeader, err := protocol.SignRequest(protocol.Credentials{ClientID: testerID, AccessToken: testerKey},
		stale.method, stale.url(), protocol.SignOptions{Now: frozen.Add(-901 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, sent{"ts 901 s old", stale, stale.request(staleHeader), nil, map[string]string{testerID: testerKey}, "Stale timestamp"})
	wantFailure(t, "Go verifier, ts 901 s old", newAuthenticator(testClients()).Authenticate(context.Background(), stale.request(staleHeader)),
		"Unauthorized: Stale timestamp")

	cases := make([]any, len(all))
	for i, s := range all {
		m := map[string]any{
			"op": "authenticate", "clients": s.clients, "method": s.req.Method, "resource": s.req.Resource,
			"host": s.req.Host, "port": s.req.Port, "authorization": s.req.Authorization, "now": frozen.UnixMilli(),
		}
		if s.payload != nil {
			m["payload"], m["contentType"] = *s.payload, s.c.contentType
		}
		cases[i] = m
	}
	out := runNode(t, "hawk.js", cases)
	for i, s := range all {
		var r peerVerdict
		out[i].value(t, s.what, &r)
		switch {
		case s.want == "" && !r.OK:
			t.Errorf("%s: @hapi/hawk rejected a Go header: %s", s.what, r.Message)
		case s.want == "" && (r.ID != testerID || r.Artifacts.Ext != s.c.ext()):
			t.Errorf("%s: @hapi/hawk saw id %q ext %q, want %q %q", s.what, r.ID, r.Artifacts.Ext, testerID, s.c.ext())
		case s.want != "" && (r.OK || r.Message != s.want):
			t.Errorf("%s: @hapi/hawk ok=%v %q, want rejection %q", s.what, r.OK, r.Message, s.want)
		}
	}
}
