package login

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzGraphQL: any document parses or fails cleanly, within the limits,
// and every plan executes without panicking.
func FuzzGraphQL(f *testing.F) {
	for _, s := range []string{
		credsQuery, `{isLoggedIn}`, `query Q($a: [Int!]! = [1] @d) { a: isLoggedIn ...F } fragment F on Query { __typename }`,
		`mutation { x }`, `{ getCredentials { ... on Credentials { expires } credentials { clientId } } }`,
		`{ a(x: {y: [1, 2.5e3, "s", """block""", $v, true, null, ENUM]}) }`, "\uFEFF# c\n{,isLoggedIn,}", `{ "`, `{ 0x }`,
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, query, opName string) {
		if len(query) > gqlMaxBody {
			return
		}
		plan, status, errs := planGraphQL(query, opName)
		if errs != nil {
			if status < 400 || status > 499 {
				t.Fatalf("refused with status %d", status)
			}
			return
		}
		if depth(plan) > gqlMaxDepth {
			t.Fatalf("plan deeper than the limit")
		}
	})
}

func depth(fs []*gqlField) int {
	d := 0
	for _, f := range fs {
		d = max(d, depth(f.sub))
	}
	return d + 1
}

// FuzzFlowCookie: no value opens unless it was sealed by this service,
// and nothing panics.
func FuzzFlowCookie(f *testing.F) {
	s, err := New(Config{PublicURL: testPublicURL, Sealer: newAEADSealer(f)}, newMemBackend())
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	good, _ := s.sealFlow(flow{Version: 1, Strategy: "fake", State: "st", Issued: now.Unix()})
	f.Add(good, "fake", "st")
	f.Add("", "fake", "")
	f.Add("AAAA", "x", "y")
	f.Fuzz(func(t *testing.T, value, strategy, state string) {
		fl, err := s.openFlow(value, strategy, state, now)
		if err == nil && (value != good || fl.Strategy != strategy || fl.State != state) {
			t.Fatalf("accepted %q for %q/%q", value, strategy, state)
		}
	})
}

// FuzzReturnTo: an accepted returnTo, appended to the public origin,
// never leaves it.
func FuzzReturnTo(f *testing.F) {
	for _, s := range []string{"/", "//evil", "/\\evil", "/a?b#c", "/%2F%2Fevil", "/\t/evil", "/.//evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !validReturnTo(p) {
			return
		}
		u, err := url.Parse(testPublicURL + p)
		if err != nil || u.Scheme != "https" || u.Host != "tc.example.com" || strings.ContainsAny(p, "\\ \t\r\n") {
			t.Fatalf("returnTo %q leaves the origin: %v %v", p, u, err)
		}
	})
}
