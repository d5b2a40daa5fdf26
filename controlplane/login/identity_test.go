package login

import (
	"slices"
	"testing"
)

// The identity vectors of web-server's codec.js, identityFromClientId.js
// and User.js.

func TestEncodeDecodeVectors(t *testing.T) {
	for _, tc := range []struct {
		in, enc   string
		decodeErr bool // decode(enc) fails as in web-server
	}{
		{"1234|octocat", "1234|octocat", false},
		{"ad|Mozilla-LDAP|jdoe", "ad|Mozilla-LDAP|jdoe", false},
		{"oauth2|firefoxaccounts|abc|a@b.c", "oauth2|firefoxaccounts|abc|a@b.c", false},
		{"a b/c!d%e", "a!20b!2Fc!21d!25e", false},
		{"üser", "!FCser", true},
		{"\x01", "!01", false},
		{"", "", false},
	} {
		if got := Encode(tc.in); got != tc.enc {
			t.Errorf("Encode(%q) = %q, want %q", tc.in, got, tc.enc)
		}
		dec, err := Decode(tc.enc)
		switch {
		case tc.decodeErr && err == nil:
			t.Errorf("Decode(%q) = %q, want an error", tc.enc, dec)
		case !tc.decodeErr && (err != nil || dec != tc.in):
			t.Errorf("Decode(%q) = %q, %v; want %q", tc.enc, dec, err, tc.in)
		}
	}
}

func TestIdentityFromClientIDVectors(t *testing.T) {
	for _, tc := range []struct {
		clientID, identity string
		ok                 bool
	}{
		{"mozilla-auth0/ad|Mozilla-LDAP|haali/", "mozilla-auth0/ad|Mozilla-LDAP|haali", true},
		{"github/1234|octocat/cli-abcdef", "github/1234|octocat", true},
		{"github/1234|octocat/a/b", "github/1234|octocat", true},
		{"static/taskcluster/root", "static/taskcluster", true},
		{"github/1234|octocat", "github/1234|octocat", true},
		{"nobody", "", false},
	} {
		got, ok := IdentityFromClientID(tc.clientID)
		if got != tc.identity || ok != tc.ok {
			t.Errorf("IdentityFromClientID(%q) = %q, %v; want %q, %v", tc.clientID, got, ok, tc.identity, tc.ok)
		}
	}
}

func TestUserScopesVector(t *testing.T) {
	u := User{ProviderID: "github", IdentityID: "1234|octocat",
		Roles: []string{"github-team:my-org/core", "github-org-admin:my-org", "github-team:my-org/core"}}
	if u.Identity() != "github/1234|octocat" || u.IdentityID != "1234|octocat" {
		t.Fatalf("identity %q", u.Identity())
	}
	want := []string{"assume:github-team:my-org/core", "assume:github-org-admin:my-org", "assume:login-identity:github/1234|octocat"}
	if got := u.Scopes(); !slices.Equal(got, want) {
		t.Fatalf("scopes %q, want %q", got, want)
	}
	if got := (User{ProviderID: "p", IdentityID: "x"}).Scopes(); !slices.Equal(got, []string{"assume:login-identity:p/x"}) {
		t.Fatalf("no roles: %q", got)
	}
}

func TestKeyOf(t *testing.T) {
	if KeyOf("abc") != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal("KeyOf is not SHA-256 hex")
	}
}
