package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// bewitURL is a URL to sign with a bewit and where to present it.
type bewitURL struct {
	name       string
	scheme     string
	host       string
	port       int
	resource   string
	authorized []string
}

var bewitURLs = []bewitURL{
	{"plain path", "https", "tc.example.com", 443, "/api/auth/v1/test-authenticate-get/", nil},
	{"query", "https", "tc.example.com", 443, "/api/auth/v1/clients/?prefix=a", []string{"test:a"}},
	{"non-default port, encoded query", "http", "localhost", 8080, "/api/x/v1/a%20b?k=%2F&k=2", nil},
	{"authorizedScopes empty", "http", "127.0.0.1", 80, "/artifact/public/log.txt", []string{}},
}

func (b bewitURL) ext() string {
	if b.authorized == nil {
		return ""
	}
	j, _ := json.Marshal(map[string]any{"authorizedScopes": b.authorized})
	return base64.StdEncoding.EncodeToString(j)
}

func (b bewitURL) wantScopes() []string {
	if b.authorized != nil {
		return append([]string{"assume:anonymous"}, b.authorized...)
	}
	return []string{"assume:anonymous", "test:*"}
}

// withBewit appends the bewit to a request-target as the clients do.
func withBewit(resource, token string) string {
	if strings.Contains(resource, "?") {
		return resource + "&bewit=" + token
	}
	return resource + "?bewit=" + token
}

// checkGoBewit verifies a signed resource in Go, then the ways it must fail.
func checkGoBewit(t *testing.T, what string, auth *protocol.Authenticator, host string, port int, signed string, exp time.Time, wantID string, wantScopes []string) {
	t.Helper()
	ctx := context.Background()
	req := protocol.Request{Method: "GET", Resource: signed, Host: host, Port: port}
	wantSuccess(t, what, auth.Authenticate(ctx, req), wantID, wantScopes)
	head := req
	head.Method = "HEAD"
	wantSuccess(t, what+", HEAD", auth.Authenticate(ctx, head), wantID, wantScopes)

	post := req
	post.Method = "POST"
	wantFailure(t, what+", POST", auth.Authenticate(ctx, post), "Unauthorized: Invalid method")
	for _, tm := range tamperings[:3] { // port, path, query; method is the case above
		wantFailure(t, what+", "+tm.name, auth.Authenticate(ctx, tm.f(req)), "Unauthorized: Bad mac")
	}
	late := *auth
	late.Now = func() time.Time { return exp }
	wantFailure(t, what+", at exp", late.Authenticate(ctx, req), "Unauthorized: Access expired")
	early := *auth
	early.Now = func() time.Time { return exp.Add(-time.Millisecond) }
	wantSuccess(t, what+", 1 ms before exp", early.Authenticate(ctx, req), wantID, wantScopes)
}

// Bewits made by @hapi/hawk verify in Go.
func TestHapiBewitsVerifyInGo(t *testing.T) {
	requireNode(t)
	const ttl = 900
	cases := make([]any, len(bewitURLs))
	for i, b := range bewitURLs {
		m := map[string]any{"op": "bewit", "id": testerID, "key": testerKey, "ttlSec": ttl,
			"url": requestURL(b.scheme, b.host, b.port, b.resource), "now": frozen.UnixMilli()}
		if ext := b.ext(); ext != "" {
			m["ext"] = ext
		}
		cases[i] = m
	}
	out := runNode(t, "hawk.js", cases)
	auth := newAuthenticator(testClients())
	for i, b := range bewitURLs {
		var token string
		out[i].value(t, b.name, &token)
		checkGoBewit(t, "@hapi/hawk bewit, "+b.name, auth, b.host, b.port, withBewit(b.resource, token),
			frozen.Add(ttl*time.Second), testerID, b.wantScopes())
	}
}

// Signed URLs made by taskcluster-client's buildSignedUrl verify in Go.
func TestTaskclusterClientSignedURLsVerifyInGo(t *testing.T) {
	requireNode(t)
	type signed struct {
		name       string
		method     string
		args       []any
		authorized []string
		expiration int
	}
	urls := []signed{
		{"testAuthenticateGet", "testAuthenticateGet", nil, nil, 900},
		{"listClients with query and authorizedScopes", "listClients", []any{map[string]string{"prefix": "a b/c"}}, []string{"test:a"}, 60},
		{"client by id needing encoding", "client", []any{"my/client id"}, nil, 300},
	}
	cases := make([]any, len(urls))
	for i, u := range urls {
		m := map[string]any{"op": "buildSignedUrl", "rootUrl": "https://tc.example.com", "method": u.method,
			"credentials": map[string]string{"clientId": testerID, "accessToken": testerKey},
			"args":        u.args, "expiration": u.expiration, "now": frozen.UnixMilli()}
		if u.authorized != nil {
			m["authorizedScopes"] = u.authorized
		}
		cases[i] = m
	}
	got := signedURLs(t, cases)
	auth := newAuthenticator(testClients())
	for i, u := range urls {
		want := []string{"assume:anonymous", "test:*"}
		if u.authorized != nil {
			want = append([]string{"assume:anonymous"}, u.authorized...)
		}
		checkGoBewit(t, "taskcluster-client signed URL, "+u.name, auth, got[i].Hostname(), 443, got[i].RequestURI(),
			frozen.Add(time.Duration(u.expiration)*time.Second), testerID, want)
	}
}

// Signed URLs made by protocol.SignedURL verify in @hapi/hawk; tampered and
// expired ones fail there too.
func TestGoBewitsVerifyInHapi(t *testing.T) {
	requireNode(t)
	type check struct {
		what             string
		method, resource string
		host             string
		port             int
		now              time.Time
		want             string // "" = accepted
	}
	var checks []check
	const ttl = 900 * time.Second
	for _, b := range bewitURLs {
		raw, err := protocol.SignedURL(protocol.Credentials{ClientID: testerID, AccessToken: testerKey, AuthorizedScopes: b.authorized},
			requestURL(b.scheme, b.host, b.port, b.resource), ttl, frozen)
		if err != nil {
			t.Fatalf("%s: SignedURL: %v", b.name, err)
		}
		pu, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		res := pu.RequestURI()
		if !strings.HasPrefix(res, b.resource) {
			t.Fatalf("%s: SignedURL changed the resource: %q", b.name, res)
		}
		checks = append(checks,
			check{b.name, "GET", res, b.host, b.port, frozen, ""},
			check{b.name + ", HEAD", "HEAD", res, b.host, b.port, frozen, ""},
			check{b.name + ", 1 ms before exp", "GET", res, b.host, b.port, frozen.Add(ttl - time.Millisecond), ""},
			check{b.name + ", at exp", "GET", res, b.host, b.port, frozen.Add(ttl), "Access expired"},
			check{b.name + ", POST", "POST", res, b.host, b.port, frozen, "Invalid method"},
			check{b.name + ", other port", "GET", res, b.host, b.port + 1, frozen, "Bad mac"},
			check{b.name + ", other host", "GET", res, "evil.example.com", b.port, frozen, "Bad mac"},
			check{b.name + ", other path", "GET", "/y" + res, b.host, b.port, frozen, "Bad mac"},
		)
	}
	cases := make([]any, len(checks))
	for i, c := range checks {
		cases[i] = map[string]any{"op": "authenticateBewit", "clients": map[string]string{testerID: testerKey},
			"method": c.method, "resource": c.resource, "host": c.host, "port": c.port, "now": c.now.UnixMilli()}
	}
	out := runNode(t, "hawk.js", cases)
	for i, c := range checks {
		var r peerVerdict
		out[i].value(t, c.what, &r)
		switch {
		case c.want == "" && (!r.OK || r.ID != testerID):
			t.Errorf("%s: @hapi/hawk rejected a Go bewit: %s", c.what, r.Message)
		case c.want != "" && (r.OK || r.Message != c.want):
			t.Errorf("%s: @hapi/hawk ok=%v %q, want rejection %q", c.what, r.OK, r.Message, c.want)
		}
	}
}
