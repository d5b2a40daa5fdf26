package webui

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// The tools-flow vectors: user github/1234|octocat, clock
// 2023-11-14T22:13:20.000Z, the current scopes below.
var (
	vecNow      = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	vecIdentity = "github/1234|octocat"
	vecCurrent  = []string{"assume:login-identity:github/1234|octocat", "auth:create-client:github/1234|octocat/*", "queue:*", "secrets:get:project/x/*"}
)

func TestToolsFlowPlanVectors(t *testing.T) {
	tests := []struct {
		requested, granted, lacking []string
	}{
		{[]string{"*"}, vecCurrent, []string{"*"}},
		{[]string{"queue:create-task:*", "secrets:*", "hooks:*"}, []string{"queue:create-task:*", "secrets:get:project/x/*"}, []string{"secrets:*", "hooks:*"}},
		{nil, []string{}, nil},
	}
	for _, tc := range tests {
		p, err := planClient(vecIdentity, toolsRequest{Name: "cli-AbCdEf", Expires: "1d", Scopes: tc.requested}, vecNow, vecCurrent)
		if err != nil || p.Error != nil {
			t.Fatalf("%q: %v %+v", tc.requested, err, p.Error)
		}
		if p.ClientID != "github/1234|octocat/cli-AbCdEf" || apiTime(p.ExpiresAt) != "2023-11-15T22:13:20.000Z" {
			t.Errorf("clientId %q, expires %s", p.ClientID, apiTime(p.ExpiresAt))
		}
		if !reflect.DeepEqual(p.Granted, tc.granted) || !reflect.DeepEqual(p.Lacking, tc.lacking) {
			t.Errorf("%q: granted %q lacking %q; want %q, %q", tc.requested, p.Granted, p.Lacking, tc.granted, tc.lacking)
		}
	}
}

func TestToolsFlowPlanExpiry(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "3023-11-14T22:13:20.000Z"}, // absent: now + 1000 years
		{"3h", "2023-11-15T01:13:20.000Z"},
		{"1 day 2 hours 3 min", "2023-11-16T00:16:20.000Z"},
		{"1 year", "2024-11-13T22:13:20.000Z"},
		{"2mo", "2024-01-13T22:13:20.000Z"},
		{"90s", "2023-11-14T22:14:50.000Z"},
	} {
		p, err := planClient(vecIdentity, toolsRequest{Name: "cli", Expires: tc.in}, vecNow, vecCurrent)
		if err != nil || apiTime(p.ExpiresAt) != tc.want {
			t.Errorf("expires %q: %s, %v; want %s", tc.in, apiTime(p.ExpiresAt), err, tc.want)
		}
	}
	_, err := planClient(vecIdentity, toolsRequest{Name: "cli", Expires: "3 fortnights"}, vecNow, vecCurrent)
	var pr *Problem
	if !errors.As(err, &pr) || pr.Status != 400 || pr.Message != "String: '3 fortnights' isn't a time expression" {
		t.Errorf("3 fortnights: %v", err)
	}
}

func TestToolsFlowPlanRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   toolsRequest
	}{
		{"no name", toolsRequest{}},
		{"space in name", toolsRequest{Name: "a b"}},
		{"invalid scope", toolsRequest{Name: "cli", Scopes: []string{"a\nb"}}},
	} {
		if _, err := planClient(vecIdentity, tc.tr, vecNow, vecCurrent); ErrorView(err) == nil || ErrorView(err).Status != 400 {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Without auth:create-client:<identity>/… the page explains, in
	// Taskcluster's words, and offers nothing.
	p, err := planClient(vecIdentity, toolsRequest{Name: "cli"}, vecNow, []string{"queue:*"})
	if err != nil || p.Error == nil || p.Error.Status != http.StatusForbidden || p.Error.Code != protocol.CodeInsufficientScopes ||
		p.Error.Missing != "auth:create-client:github/1234|octocat/cli" {
		t.Errorf("no create-client scope: %v %+v", err, p.Error)
	}
}

func TestToolsFlowCallbackAllowed(t *testing.T) {
	s := &Server{cfg: Config{AllowedCallbackHosts: []string{"tools.example.com"}}}
	tests := []struct {
		url, origin string // origin "" = refused
	}{
		// The reference vectors.
		{"http://localhost:51234", "http://localhost:51234"},
		{"https://localhost/cb", "https://localhost"},
		{"http://localhost.evil.com/", ""},
		// Refused by the reference, allowed by tcauth (a loopback address).
		{"http://127.0.0.1:5000/", "http://127.0.0.1:5000"},
		{"http://localhost:51234/?state=abc", "http://localhost:51234"},
		{"http://LOCALHOST:1/", "http://localhost:1"},
		{"http://localhost", "http://localhost"},
		{"https://tools.example.com/cb", "https://tools.example.com"},
		{"http://tools.example.com/cb", ""}, // configured hosts: https only
		{"https://tools.example.com.evil/cb", ""},
		{"http://localhost:51234@evil.com/", ""},
		{"http://evil.com@localhost/", ""},
		{"http://localhost\\@evil.com/", ""},
		{"http://127.0.0.1.nip.io/", ""},
		{"http://127.1/", ""},
		{"http://0x7f000001/", ""},
		{"http://[::1]:5000/", ""},
		{"http://localhost:0/", ""},
		{"http://localhost:65536/", ""},
		{"http://localhost:080/", ""},
		{"http://localhost:/", ""},
		{"http://localhost:12a/", ""},
		{"http://localhost/#frag", ""},
		{"http://localhost/a b", ""},
		{"http://localhost/\r\nSet-Cookie: x", ""},
		{"http://localhost/\u00e9", ""},
		{"ftp://localhost/", ""},
		{"javascript://localhost/%0aalert(1)", ""},
		{"http:localhost", ""},
		{"//localhost:1/", ""},
		{"localhost:1", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := s.callbackOrigin(tc.url)
		if tc.origin == "" {
			if err == nil {
				t.Errorf("%q allowed (origin %q)", tc.url, got)
			}
			continue
		}
		if err != nil || got != tc.origin {
			t.Errorf("%q: %q, %v; want %q", tc.url, got, err, tc.origin)
		}
	}
}

func TestToolsFlowCallbackRedirect(t *testing.T) {
	tok := "xwNQlsV-yytMaIxLAeV1RU687j5bgii_aIozE1DcIII"
	for _, tc := range []struct{ cb, id, want string }{
		// The reference vector, byte for byte: nothing encoded.
		{"http://localhost:51234", "github/1234|octocat/cli-AbCdEf", "http://localhost:51234?clientId=github/1234|octocat/cli-AbCdEf&accessToken=" + tok},
		{"https://localhost/cb", "a+b/c", "https://localhost/cb?clientId=a+b/c&accessToken=" + tok},
		// A callback with a query (tcauth signin's state) keeps it.
		{"http://localhost:1/?state=S", "x/y", "http://localhost:1/?state=S&clientId=x/y&accessToken=" + tok},
	} {
		if got := callbackRedirect(tc.cb, tc.id, tok); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.cb, got, tc.want)
		}
	}
}

func FuzzToolsFlowCallbackOrigin(f *testing.F) {
	for _, u := range []string{"http://localhost:1/", "https://localhost/cb?x=1", "http://a@localhost/", "http://[::1]/"} {
		f.Add(u)
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, raw string) {
		origin, err := s.callbackOrigin(raw)
		if err != nil {
			return
		}
		if origin != "http://localhost" && origin != "https://localhost" && origin != "http://127.0.0.1" && origin != "https://127.0.0.1" &&
			!hasLoopbackPrefix(origin) {
			t.Fatalf("%q allowed with origin %q", raw, origin)
		}
	})
}

func hasLoopbackPrefix(o string) bool {
	for _, p := range []string{"http://localhost:", "https://localhost:", "http://127.0.0.1:", "https://127.0.0.1:"} {
		if len(o) > len(p) && o[:len(p)] == p {
			return true
		}
	}
	return false
}
