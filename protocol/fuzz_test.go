package protocol

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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

// FuzzParseBewit: ParseBewit never panics and agrees with HasBewit; and
// any URL signed with SignedURL verifies (and fails when moved).
func FuzzParseBewit(f *testing.F) {
	f.Add("GET", "/x?a=1&bewit=aXNzdWVyXDE3MDAwMDAwNjBcdTB3TllMLzRkZWQramZUbFJsbzIrbllWU3RZaU1FbFhDY2VIdTlBWjUzMD1c&b=2", "tester", "/p/q%2F?z=1&y")
	f.Add("HEAD", "/x?bewit=", "a", "/")
	f.Add("GET", "/x?bewit=ab+c$&bewit=x", "id", "/a b?c=d e")
	f.Add("get", "/\n?bewit=YVxiXGNcZA", "x:y/z", "/?bewit")
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

		// Round trip for a plausible client id and path.
		if !validAttrValue(id) || strings.ContainsAny(id, `\`) || !strings.HasPrefix(path, "/") || !utf8.ValidString(path) {
			return
		}
		c := Credentials{ClientID: id, AccessToken: "secret", AuthorizedScopes: []string{"s"}}
		u, err := SignedURL(c, "https://h.example"+path, time.Minute, vectorNow)
		if err != nil {
			return // not a URL, or it already carries a bewit
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
