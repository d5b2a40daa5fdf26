package protocol

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// verifyOnTheWire sends a signed header through Go's client and server
// request code and verifies it for a client "id"/"k" (or c's id) with
// every scope.
func verifyOnTheWire(t *testing.T, c Credentials, method, rawURL, header string) Result {
	t.Helper()
	a := &Authenticator{Now: func() time.Time { return vectorNow },
		Clients: memClients{c.ClientID: {ClientID: c.ClientID, AccessToken: c.AccessToken, ExpandedScopes: []string{"*"}}}}
	return a.Authenticate(context.Background(), requestOnTheWire(t, method, rawURL, header))
}

// headerLength is the length of the header SignRequest makes for id with
// a default-length nonce, no ext and no hash.
func headerLength(t *testing.T, id string) int {
	h, err := SignRequest(Credentials{ClientID: id, AccessToken: "k"}, "GET", "https://h/", SignOptions{Now: vectorNow, Nonce: "nnnnnn"})
	if err != nil {
		t.Fatal(err)
	}
	return len(h)
}

// TestSignRequestRefuses: every limit of the header parser and of the
// path to the verifier, just inside (signs and verifies through Go's
// client and server code) and just outside (refused with its sentinel).
func TestSignRequestRefuses(t *testing.T) {
	longestID := strings.Repeat("a", 1+MaxHeaderLength-headerLength(t, "a"))
	deep := func(n int) string { return `{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}` }
	for _, c := range []struct {
		name, method, url, id, nonce, cert string
		scopes                             []string
		want                               error
	}{
		{name: "plain", url: "https://tc.example.com/x?a=1"},
		{name: "header at 4096", id: longestID, url: "https://h/"},
		{name: "header at 4097", id: longestID + "a", url: "https://h/", want: ErrSignHeaderTooLong},
		{name: "huge authorizedScopes", scopes: []string{strings.Repeat("s", 3000)}, want: ErrSignHeaderTooLong},
		{name: "lower-case method", method: "get"},
		{name: "extension method", method: "M-SEARCH"},
		{name: "empty method (Go sends GET)", method: "", want: ErrSignMethod},
		{name: "method with space", method: "GE T", want: ErrSignMethod},
		{name: "method with non-ASCII", method: "GÉT", want: ErrSignMethod},
		{name: "empty clientId", id: "", want: ErrSignClientID},
		{name: "quote in clientId", id: `a"b`, want: ErrSignClientID},
		{name: "backslash in clientId", id: `a\b`, want: ErrSignClientID},
		{name: "non-ASCII clientId", id: "é", want: ErrSignClientID},
		{name: "DEL in clientId", id: "a\x7f", want: ErrSignClientID},
		{name: "space in clientId (hawk allows it)", id: "a b"},
		{name: "space in nonce (hawk allows it)", nonce: "n n"},
		{name: "quote in nonce", nonce: `n"`, want: ErrSignNonce},
		{name: "tab in nonce", nonce: "n\t", want: ErrSignNonce},
		{name: "IDN host", url: "https://ü.example/", want: ErrSignHost},
		{name: "punycode host", url: "https://xn--tda.example/"},
		{name: "upper-case host", url: "https://TC.Example.COM/"},
		{name: "IPv6 host", url: "https://[::1]:8443/"},
		{name: "IPv6 zone", url: "https://[fe80::1%25eth0]/", want: ErrSignHost},
		{name: "empty host", url: "http://:80/", want: ErrSignHost},
		{name: "port 65535", url: "http://h:65535/"},
		{name: "port 65536", url: "http://h:65536/", want: ErrSignPort},
		{name: "port with leading zeros", url: "http://h:0080/"},
		{name: "no host", url: "/just/a/path", want: ErrSignURL},
		{name: "no scheme (fuzz-found: signed 443, served on 80)", url: "//h/p", want: ErrSignURL},
		{name: "other scheme", url: "ftp://h/p", want: ErrSignURL},
		{name: "upper-case scheme", url: "HTTPS://h/p"},
		{name: "bad escape", url: "https://h/%zz", want: ErrSignURL},
		{name: "space in query", url: "https://h/p?a b", want: ErrSignResourceChars},
		{name: "escaped space in query", url: "https://h/p?a%20b"},
		{name: "space in path (escaped by Go)", url: "https://h/a b"},
		{name: "U+2028 in query (fine for headers)", url: "https://h/p?q=\u2028"},
		{name: "certificate nesting at the limit", cert: deep(maxJSONDepth - 2), want: nil},
		{name: "certificate nesting past the limit", cert: deep(maxJSONDepth - 1), want: ErrSignExt},
		{name: "certificate with invalid UTF-8", cert: "{\"a\":\"\xff\"}", want: ErrSignExt},
		{name: "certificate not an object", cert: `[1]`, want: ErrSignExt},
		{name: "invalid authorizedScope", scopes: []string{"a\nb"}, want: ErrSignExt},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.method == "" && c.name != "empty method (Go sends GET)" {
				c.method = "GET"
			}
			if c.url == "" {
				c.url = "https://tc.example.com/x"
			}
			if c.id == "" && c.want != ErrSignClientID {
				c.id = "tester"
			}
			creds := Credentials{ClientID: c.id, AccessToken: "k", Certificate: c.cert, AuthorizedScopes: c.scopes}
			h, err := SignRequest(creds, c.method, c.url, SignOptions{Now: vectorNow, Nonce: c.nonce})
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("got %q, %v; want %v", h, err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := verifyOnTheWire(t, creds, c.method, c.url, h)
			if c.cert != "" { // not a real certificate: it must fail as one, not as a parse error
				if r.Message != "ext.certificate.version must be 1" {
					t.Fatalf("got %+v", r)
				}
				return
			}
			if r.Status != StatusSuccess || r.ClientID != c.id {
				t.Fatalf("signed %q, verified %+v", h, r)
			}
		})
	}
}

// TestSignedURLRefuses: the bewit verifier's limits, just inside (signs
// and verifies) and just outside (refused with its sentinel). The first
// is the fuzz-found case: a URL that fits alone but not with its bewit.
func TestSignedURLRefuses(t *testing.T) {
	creds := Credentials{ClientID: "tester", AccessToken: "k", AuthorizedScopes: []string{"s"}}
	base, err := SignedURL(creds, "https://h/p", time.Minute, vectorNow)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("a", MaxBewitResourceLength-len(strings.TrimPrefix(base, "https://h")))
	for _, c := range []struct {
		name, url string
		id        string
		want      error
	}{
		{name: "resource with bewit at 4096", url: "https://h/p" + pad},
		{name: "resource with bewit at 4097", url: "https://h/p" + pad + "a", want: ErrSignResourceTooLong},
		{name: "query, at 4096", url: "https://h/p?" + pad[1:]},
		{name: "query, at 4097", url: "https://h/p?" + pad, want: ErrSignResourceTooLong},
		{name: "U+2028 in query", url: "https://h/p?q=\u2028", want: ErrSignResourceChars},
		{name: "U+2029 in query", url: "https://h/p?q=\u2029", want: ErrSignResourceChars},
		{name: "other non-ASCII in query", url: "https://h/p?q=\u2027é"},
		{name: "space in query", url: "https://h/p?q=a b", want: ErrSignResourceChars},
		{name: "already has a bewit", url: "https://h/p?a=1&bewit=x", want: ErrSignHasBewit},
		{name: "quote in clientId", url: "https://h/p", id: `a"b`, want: ErrSignClientID},
		{name: "backslash in clientId", url: "https://h/p", id: `a\b`, want: ErrSignClientID},
		{name: "IDN host", url: "https://ü.example/p", want: ErrSignHost},
		{name: "port 65536", url: "https://h:65536/p", want: ErrSignPort},
	} {
		t.Run(c.name, func(t *testing.T) {
			cr := creds
			if c.id != "" {
				cr.ClientID = c.id
			}
			u, err := SignedURL(cr, c.url, time.Minute, vectorNow)
			if c.want != nil {
				if !errors.Is(err, c.want) || u != "" {
					t.Fatalf("got %q, %v; want %v", u, err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			a := &Authenticator{Now: func() time.Time { return vectorNow },
				Clients: memClients{cr.ClientID: {ClientID: cr.ClientID, AccessToken: "k", ExpandedScopes: []string{"s"}}}}
			r := a.Authenticate(context.Background(), Request{Method: "GET", Resource: parsed.RequestURI(), Host: "h", Port: 443})
			if r.Status != StatusSuccess || !r.Bewit {
				t.Fatalf("%d-character resource: %+v", len(parsed.RequestURI()), r)
			}
		})
	}
}

// TestCreateTemporaryCredentialsRefuses: what the verifier would refuse
// is refused at issue time; just inside each limit the credentials sign a
// header that verifies.
func TestCreateTemporaryCredentialsRefuses(t *testing.T) {
	issuer := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	seed44 := strings.Repeat("s", 44)
	for _, c := range []struct {
		name string
		o    TemporaryOptions
		want error
	}{
		{"seed of 44", TemporaryOptions{Seed: seed44}, nil},
		{"seed of 43", TemporaryOptions{Seed: seed44[1:]}, ErrSignCertificate},
		{"seed of 45", TemporaryOptions{Seed: seed44 + "s"}, ErrSignCertificate},
		{"seed with control characters (JSON escapes them)", TemporaryOptions{Seed: "\x00\n\u2028" + seed44[3:]}, nil},
		{"seed with invalid UTF-8", TemporaryOptions{Seed: "\xff" + seed44[1:]}, ErrSignCertificate},
		{"lifetime 31 days", TemporaryOptions{Start: vectorNow, Expiry: vectorNow.Add(MaxCertificateLifetime)}, nil},
		{"lifetime 31 days + 1 ms", TemporaryOptions{Start: vectorNow, Expiry: vectorNow.Add(MaxCertificateLifetime + time.Millisecond)}, ErrSignCertificate},
		{"named with a quote", TemporaryOptions{ClientID: `temp/"`}, ErrSignCertificate},
		{"issuer with a quote", TemporaryOptions{Issuer: Credentials{ClientID: `iss"uer`, AccessToken: "k"}}, ErrSignCertificate},
		{"invalid scope", TemporaryOptions{Scopes: []string{"test:\n"}}, ErrSignCertificate},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			if o.Issuer.ClientID == "" {
				o.Issuer = issuer
			}
			if o.Expiry.IsZero() {
				o.Start, o.Expiry = vectorNow, vectorNow.Add(time.Hour)
			}
			creds, err := CreateTemporaryCredentials(o)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, err := SignRequest(creds, "GET", "https://tc.example.com/x", SignOptions{Now: vectorNow})
			if err != nil {
				t.Fatal(err)
			}
			if r := authGET(vectorAuthenticator(), h); r.Status != StatusSuccess {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

// TestCreateTemporaryCredentialsSizeLimit: the largest certificate that
// fits a default header signs and verifies; one scope character more is
// ErrSignHeaderTooLong at issue time, not a header nobody accepts.
func TestCreateTemporaryCredentialsSizeLimit(t *testing.T) {
	issuer := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	var last Credentials
	for n := 2000; n < 4096; n++ {
		creds, err := CreateTemporaryCredentials(TemporaryOptions{Issuer: issuer, ClientID: "temp/x",
			Scopes: []string{"test:" + strings.Repeat("x", n)}, Start: vectorNow, Expiry: vectorNow.Add(time.Hour)})
		if err == nil {
			last = creds
			continue
		}
		if !errors.Is(err, ErrSignHeaderTooLong) || last.ClientID == "" {
			t.Fatalf("scope of %d: %v", n, err)
		}
		h, err := SignRequest(last, "GET", "https://tc.example.com/x", SignOptions{Now: vectorNow})
		if err != nil {
			t.Fatalf("largest certificate that fits: %v", err)
		}
		if len(h) < MaxHeaderLength-8 { // base64 grows in steps of 4
			t.Fatalf("largest header only %d characters", len(h))
		}
		if r := authGET(vectorAuthenticator(), h); r.Status != StatusSuccess {
			t.Fatalf("got %+v", r)
		}
		return
	}
	t.Fatal("never refused")
}
