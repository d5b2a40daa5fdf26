package protocol

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseHeader: ParseHeader never panics; whatever it accepts is
// well-formed, re-serialises canonically and parses back to the same
// attributes; and a header signed from accepted attributes verifies.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		`Hawk id="tester", ts="1700000000", nonce="abc123", mac="aZSnuGaqz/8X8DWzS72gI8h0vFzYSXp4i1Tu7xLeKLk="`,
		`Hawk id="a", ts="1", nonce="n", hash="h", ext="e", mac="m", app="p", dlg="d"`,
		`hawk id="a",ts="1",nonce="n",mac="m",`, `Bearer x`, `Hawk`, `Hawk x id="a"`, `Hawk id="a" ts="b"`,
		"Hawk\u00a0id=\"a\"", `Hawk id="é"`, `Hawk foo="a", id="a", id="b"`,
	} {
		f.Add(s)
	}
	a := &Authenticator{Clients: memClients{}, Now: func() time.Time { return vectorNow }}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHeader(s)
		if err != nil {
			if _, ok := err.(*AuthError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if len(s) > MaxHeaderLength {
			t.Fatal("accepted an over-long header")
		}
		canonical := `Hawk id="` + h.ID + `", ts="` + h.TS + `", nonce="` + h.Nonce + `"`
		for _, kv := range [][2]string{{"hash", h.Hash}, {"ext", h.Ext}, {"mac", h.MAC}, {"app", h.App}, {"dlg", h.Dlg}} {
			if kv[1] != "" {
				if !validAttrValue(kv[1]) {
					t.Fatalf("accepted bad %s value %q", kv[0], kv[1])
				}
				canonical += `, ` + kv[0] + `="` + kv[1] + `"`
			}
		}
		if len(canonical) > MaxHeaderLength {
			return
		}
		h2, err := ParseHeader(canonical)
		if err != nil || h2 != h {
			t.Fatalf("canonical form %q parsed as %+v, %v; want %+v", canonical, h2, err, h)
		}
		// Sign → parse → verify with the parsed attributes.
		a.Clients = memClients{h.ID: {ClientID: h.ID, AccessToken: "k"}}
		art := Artifacts{Method: "GET", Resource: "/r", Host: "h", Port: 1, TS: h.TS, Nonce: h.Nonce, Hash: h.Hash, Ext: h.Ext, App: h.App, Dlg: h.Dlg}
		h.MAC = MAC("header", []byte("k"), art)
		signed := strings.Replace(canonical, `mac="`+h2.MAC+`"`, `mac="`+h.MAC+`"`, 1)
		r := a.Authenticate(context.Background(), Request{Method: "GET", Resource: "/r", Host: "h", Port: 1, Authorization: signed})
		if r.Reason == ErrBadMAC {
			t.Fatalf("own MAC rejected for %q", signed)
		}
	})
}

// signRefusals are the errors a signer may refuse with; ErrSignSelfCheck
// is not among them: it means the signer's checks missed a case.
var signRefusals = []error{ErrSignURL, ErrSignHost, ErrSignPort, ErrSignMethod, ErrSignClientID, ErrSignNonce,
	ErrSignExt, ErrSignHeaderTooLong, ErrSignResourceTooLong, ErrSignResourceChars, ErrSignHasBewit, ErrSignExpiry,
	ErrSignCertificate}

func requireRefusal(t *testing.T, err error, what string) {
	t.Helper()
	for _, want := range signRefusals {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("%s: %v (%T) is not a signer refusal", what, err, err)
}

// FuzzParseBewit: ParseBewit never panics and agrees with HasBewit; and
// the round trip holds for every input: SignedURL refuses (with an
// ErrSign… error), or the URL it returns verifies (and fails when moved).
func FuzzParseBewit(f *testing.F) {
	f.Add("GET", "/x?a=1&bewit=aXNzdWVyXDE3MDAwMDAwNjBcdTB3TllMLzRkZWQramZUbFJsbzIrbllWU3RZaU1FbFhDY2VIdTlBWjUzMD1c&b=2", "tester", "/p/q%2F?z=1&y")
	f.Add("HEAD", "/x?bewit=", "a", "/")
	f.Add("GET", "/x?bewit=ab+c$&bewit=x", "id", "/a b?c=d e")
	f.Add("get", "/\n?bewit=YVxiXGNcZA", "x:y/z", "/?bewit")
	f.Add("GET", "/", "a", "/"+strings.Repeat("p", 3900))
	f.Add("GET", "/", `a"b`, "/?q=\u2028")
	a := &Authenticator{Now: func() time.Time { return vectorNow }}
	f.Fuzz(func(t *testing.T, method, resource, id, path string) {
		b, macURL, err := ParseBewit(method, resource)
		if err == nil {
			if !HasBewit(resource) {
				t.Fatalf("ParseBewit accepted %q but HasBewit says no", resource)
			}
			if b.ID == "" || b.Exp == "" || b.MAC == "" || strings.Contains(b.Ext, `\`) || len(macURL) >= len(resource) {
				t.Fatalf("bad parse %+v %q", b, macURL)
			}
		} else if _, ok := err.(*AuthError); !ok {
			t.Fatalf("error of type %T", err)
		}

		// Round trip; the path must start with "/" so that it cannot
		// change the host.
		if !strings.HasPrefix(path, "/") {
			return
		}
		c := Credentials{ClientID: id, AccessToken: "secret", AuthorizedScopes: []string{"s"}}
		u, err := SignedURL(c, "https://h.example"+path, time.Minute, vectorNow)
		if err != nil {
			requireRefusal(t, err, "SignedURL")
			if errors.Is(err, ErrSignClientID) && validAttrValue(id) {
				t.Fatalf("clientId %q: %v", id, err)
			}
			return
		}
		if !validAttrValue(id) {
			t.Fatalf("signed with clientId %q", id)
		}
		res := strings.TrimPrefix(u, "https://h.example")
		if i := strings.IndexByte(res, '#'); i >= 0 {
			res = res[:i]
		}
		a.Clients = memClients{id: {ClientID: id, AccessToken: "secret", ExpandedScopes: []string{"s"}}}
		r := a.Authenticate(context.Background(), Request{Method: "GET", Resource: res, Host: "h.example", Port: 443})
		if r.Status != StatusSuccess || r.ClientID != id {
			t.Fatalf("signed URL %q (resource %q) did not verify: %s", u, res, r.Message)
		}
		if r := a.Authenticate(context.Background(), Request{Method: "GET", Resource: res, Host: "h.example", Port: 80}); r.Status == StatusSuccess {
			t.Fatalf("signed URL verified on the wrong port")
		}
	})
}

// FuzzSignRequest: for every URL, method, clientId, nonce, certificate
// and authorizedScopes, SignRequest refuses (with an ErrSign… error) or
// the request it signs, written by Go's client and read by Go's server as
// on the wire, passes the verifier's parsers: with no certificate it
// verifies; with one, any failure is about the certificate, never the
// header grammar, its length or the ext's JSON.
func FuzzSignRequest(f *testing.F) {
	f.Add("GET", "https://tc.example.com/x?a=1", "tester", "", "", "s")
	f.Add("get", "http://h:8080/p%2Fq", "a/b", "n0nce", "", "")
	f.Add("PUT", "https://[::1]:1/", "id", "", `{"version":1,"scopes":[],"start":0,"expiry":1,"seed":"x","signature":"y"}`, "")
	f.Add("GET", "https://ü.example/", "id", "", "", "")
	f.Add("GET", "https://[fe80::1%25eth0]/", "id", "", "", "")
	f.Add("GET", "https://h/?q=a b", "id", "", "", "")
	f.Add("", "https://h:65536/", "i\"d", "no nce", "[]", "")
	f.Add("GET", "https://h/", "id", "", `{"a":"\xff"}`, "")
	f.Add("GET", "https://h/", "id", "", `{"a":`+strings.Repeat("[", 600)+strings.Repeat("]", 600)+`}`, "")
	f.Add("GET", "https://h/", "id", "", "", strings.Repeat("scope:", 700))
	a := &Authenticator{Now: func() time.Time { return vectorNow }}
	f.Fuzz(func(t *testing.T, method, rawURL, id, nonce, certificate, scopesText string) {
		c := Credentials{ClientID: id, AccessToken: "k", Certificate: certificate}
		if scopesText != "" {
			c.AuthorizedScopes = strings.Split(scopesText, "\x00")
		}
		header, err := SignRequest(c, method, rawURL, SignOptions{Now: vectorNow, Nonce: nonce})
		if err != nil {
			requireRefusal(t, err, "SignRequest")
			return
		}
		req := requestOnTheWire(t, method, rawURL, header)
		a.Clients = memClients{id: {ClientID: id, AccessToken: "k", ExpandedScopes: []string{"*"}}}
		r := a.Authenticate(context.Background(), req)
		if certificate == "" && (r.Status != StatusSuccess || r.ClientID != id) {
			t.Fatalf("%s %q signed as %q did not verify: %s", method, rawURL, header, r.Message)
		}
		if r.Status == StatusFailed && (strings.HasPrefix(r.Message, "Bad Request: ") || r.Reason == ErrUnauthorized || r.Reason == ErrFailedToParseExt || r.Reason == ErrBadMAC) {
			t.Fatalf("%s %q signed as %q failed to parse: %s", method, rawURL, header, r.Message)
		}
	})
}

// requestOnTheWire sends a signed request through Go's client and server
// code without a network: Request.Write (what the client puts on the
// wire: punycode Host, request line) and http.ReadRequest (what the server
// parses), then RequestFromHTTP. A signed request Go cannot send is a
// signer bug too.
func requestOnTheWire(t *testing.T, method, rawURL, header string) Request {
	t.Helper()
	out, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatalf("signed %s %q, which Go's client refuses: %v", method, rawURL, err)
	}
	out.Header.Set("Authorization", header)
	var wire bytes.Buffer
	if err := out.Write(&wire); err != nil {
		t.Fatalf("signed %s %q, which Go's client cannot write: %v", method, rawURL, err)
	}
	in, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil {
		t.Fatalf("signed %s %q, whose request %q Go's server cannot read: %v", method, rawURL, wire.String(), err)
	}
	if strings.EqualFold(out.URL.Scheme, "https") {
		in.TLS = &tls.ConnectionState{}
	}
	return RequestFromHTTP(in, false)
}
