package protocol

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// specDir holds the reference vectors, kept in the repository
// (testdata/spec/README.md) so that they run on every clean clone.
const specDir = "../testdata/spec"

// loadSpec decodes a spec JSON file or skips the test when it is missing.
func loadSpec(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(specDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
}

// vectorNow is the frozen clock of every reference vector.
var vectorNow = time.UnixMilli(1700000000000).UTC()

// memClients is a trivial in-memory ClientSource.
type memClients map[string]*Client

func (m memClients) Client(_ context.Context, id string) (*Client, error) {
	if c, ok := m[id]; ok {
		return c, nil
	}
	return nil, ErrClientNotFound
}

// testRoles is a small, independent implementation of docs/scopes.md §7 role
// expansion (fixpoint of direct grants, then sort + normalize), enough for
// the handful of roles the vectors use. The real one is scopeengine's.
type testRoles map[string][]string

func (r testRoles) grants(s string) []string {
	var x string
	switch {
	case strings.HasPrefix(s, "assume:"):
		x = s[len("assume:"):]
	case s == "*" || s == "a*" || s == "as*" || s == "ass*" || s == "assu*" || s == "assum*" || s == "assume*":
		x = "*"
	default:
		return nil
	}
	xs := strings.HasSuffix(x, "*")
	xp := strings.TrimSuffix(x, "*")
	var out []string
	for id, scopes := range r {
		if !strings.HasSuffix(id, "*") {
			if x == id || xs && strings.HasPrefix(id, xp) {
				out = append(out, scopes...)
			}
			continue
		}
		q := strings.TrimSuffix(id, "*")
		var param string
		switch {
		case strings.HasPrefix(x, q):
			param = x[len(q):]
		case xs && strings.HasPrefix(q, xp):
			param = "*"
		default:
			continue
		}
		for _, sc := range scopes {
			if i := strings.Index(sc, "<..>"); i >= 0 {
				if strings.HasSuffix(param, "*") {
					sc = sc[:i] + param
				} else {
					sc = sc[:i] + param + sc[i+4:]
				}
			}
			out = append(out, sc)
		}
	}
	return out
}

func (r testRoles) Expand(in []string) []string {
	seen := map[string]bool{}
	queue := append([]string(nil), in...)
	for len(queue) > 0 {
		s := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		queue = append(queue, r.grants(s)...)
	}
	all := make([]string, 0, len(seen))
	for s := range seen {
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool { return scopeCompare(all[i], all[j]) < 0 })
	var out []string
	for i := 0; i < len(all); i++ {
		s := all[i]
		out = append(out, s)
		if strings.HasSuffix(s, "*") {
			for i+1 < len(all) && strings.HasPrefix(all[i+1], strings.TrimSuffix(s, "*")) {
				i++
			}
		}
	}
	return out
}

func (r testRoles) Satisfies(have []string, need string) bool {
	return identityScopes{}.Satisfies(have, need)
}

// vectorRoles and vectorAuthenticator are the world the reference
// vectors' "authenticate" cases assume (reference-vectors.json _about).
var vectorRoles = testRoles{
	"anonymous": {"auth:current-scopes"},
	"project:*": {"secrets:get:project/<..>/*"},
}

func vectorAuthenticator() *Authenticator {
	exp := func(scopes ...string) []string { return vectorRoles.Expand(scopes) }
	return &Authenticator{
		Clients: memClients{
			"issuer": {ClientID: "issuer", AccessToken: "issuer-secret-0123456789abcdef",
				ExpandedScopes: exp("test:*", "auth:create-client:temp/*", "assume:project:x"),
				Expires:        time.Date(2024, 11, 13, 22, 13, 20, 0, time.UTC)},
			"plain": {ClientID: "plain", AccessToken: "plain-secret-0123456789abcdef",
				ExpandedScopes: exp("test:read"), Expires: time.Date(2024, 11, 13, 22, 13, 20, 0, time.UTC)},
			"off": {ClientID: "off", AccessToken: "off-secret-0123456789abcdef", Disabled: true,
				Expires: time.Date(2024, 11, 13, 22, 13, 20, 0, time.UTC)},
			"old": {ClientID: "old", AccessToken: "old-secret-0123456789abcdef",
				Expires: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		Scopes: vectorRoles,
		Now:    func() time.Time { return vectorNow },
	}
}

// testerAuthenticator is testAuthenticate's validator: one client
// tester/no-secret with the given scopes, no roles (docs/protocol.md §12).
func testerAuthenticator(scopes ...string) *Authenticator {
	return &Authenticator{
		Clients: memClients{"tester": {ClientID: "tester", AccessToken: "no-secret", ExpandedScopes: scopes}},
		Now:     func() time.Time { return vectorNow },
	}
}

// resultJSON renders a Result and re-decodes it generically for
// comparison with a vector.
func resultJSON(t *testing.T, r Result) map[string]any {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
