package protocol

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const issuerKey = "issuer-secret-0123456789abcdef"

var nowMs = vectorNow.UnixMilli()

// extHeader signs GET /x on tc.example.com:443 with a raw ext JSON text.
func extHeader(id, key, extJSON string, ts int64) string {
	ext := ""
	if extJSON != "" {
		ext = base64.StdEncoding.EncodeToString([]byte(extJSON))
	}
	a := Artifacts{Method: "GET", Resource: "/x", Host: "tc.example.com", Port: 443, TS: strconv.FormatInt(ts, 10), Nonce: "n", Ext: ext}
	h := `Hawk id="` + id + `", ts="` + a.TS + `", nonce="n"`
	if ext != "" {
		h += `, ext="` + ext + `"`
	}
	return h + `, mac="` + MAC("header", []byte(key), a) + `"`
}

func authGET(a *Authenticator, header string) Result {
	return a.Authenticate(context.Background(), Request{Method: "GET", Resource: "/x", Host: "tc.example.com", Port: 443, Authorization: header})
}

// certMembers renders a certificate with the given members (raw JSON
// values) in the official clients' order; a member set to "" is left out.
type certMembers struct{ version, scopes, start, expiry, seed, signature, issuer, clientID string }

func (c certMembers) json() string {
	var parts []string
	for _, m := range []struct{ k, v string }{
		{"version", c.version}, {"scopes", c.scopes}, {"start", c.start}, {"expiry", c.expiry},
		{"seed", c.seed}, {"signature", c.signature}, {"issuer", c.issuer}, {"clientId", c.clientID},
	} {
		if m.v != "" {
			parts = append(parts, strconv.Quote(m.k)+":"+m.v)
		}
	}
	return `{"certificate":{` + strings.Join(parts, ",") + `}}`
}

// validCert is a correctly signed certificate for credential name id.
func validCert(id, issuer string, scopes []string, start, expiry int64, seed string) certMembers {
	c := Certificate{Version: 1, Scopes: scopes, Start: start, Expiry: expiry, Seed: seed, Issuer: issuer}
	sj, _ := json.Marshal(scopes)
	m := certMembers{version: "1", scopes: string(sj), start: strconv.FormatInt(start, 10), expiry: strconv.FormatInt(expiry, 10),
		seed: strconv.Quote(seed), signature: strconv.Quote(hmacText(issuerKey, c.SignedText(id)))}
	if issuer != "" {
		m.issuer = strconv.Quote(issuer)
	}
	return m
}

// TestCertificateAndExtValidation has one row per validation message of
// docs/protocol.md §6–§8 (and the boundaries around them).
func TestCertificateAndExtValidation(t *testing.T) {
	seed := strings.Repeat("S", 44)
	tempKey := TemporaryAccessToken(issuerKey, seed)
	start, expiry := nowMs-60_000, nowMs+3_600_000
	ok := validCert("issuer", "", []string{"test:a"}, start, expiry, seed)
	named := validCert("temp/w", "issuer", []string{"test:a"}, start, expiry, seed)
	with := func(f func(*certMembers)) string { c := ok; f(&c); return c.json() }
	permScopes := []string{"assume:anonymous", "assume:project:x", "auth:create-client:temp/*", "auth:current-scopes", "secrets:get:project/x/*", "test:*"}

	cases := []struct {
		name, id, key, ext string
		want               string   // failure message; "" = success
		scopes             []string // checked on success when set
	}{
		// §6 ext
		{"ext not base64 JSON", "issuer", issuerKey, "\x00garbage", "Failed to parse ext", nil},
		{"ext JSON null", "issuer", issuerKey, "null", "Failed to parse ext", nil},
		{"ext trailing garbage", "issuer", issuerKey, `{}x`, "Failed to parse ext", nil},
		{"ext byte-order mark", "issuer", issuerKey, "\ufeff{}", "Failed to parse ext", nil},
		{"ext invalid UTF-8 in a string (rejected quirk)", "issuer", issuerKey, "{\"a\":\"\xff\"}", "Failed to parse ext", nil},
		{"ext empty object", "issuer", issuerKey, ` {} `, "", permScopes},
		{"ext string", "issuer", issuerKey, `"str"`, "", permScopes},
		{"ext array", "issuer", issuerKey, `[1,{"certificate":5}]`, "", permScopes},
		{"ext falsy members ignored", "issuer", issuerKey, `{"certificate":null,"authorizedScopes":0}`, "", permScopes},
		{"ext falsy members ignored 2", "issuer", issuerKey, `{"certificate":false,"authorizedScopes":""}`, "", permScopes},
		{"ext falsy members ignored 3", "issuer", issuerKey, `{"certificate":"","authorizedScopes":false}`, "", permScopes},
		{"ext duplicate key: last wins", "issuer", issuerKey, `{"authorizedScopes":["nope:*"],"authorizedScopes":["test:x"]}`, "",
			[]string{"assume:anonymous", "auth:current-scopes", "test:x"}},
		{"ext escaped key", "issuer", issuerKey, `{"\u0061uthorizedScopes":["test:x"]}`, "", []string{"assume:anonymous", "auth:current-scopes", "test:x"}},

		// §7 step 1: issuer
		{"issuer not a string", "issuer", issuerKey, `{"certificate":{"issuer":5}}`, "ext.certificate.issuer must be a string", nil},
		{"issuer true", "issuer", issuerKey, `{"certificate":{"issuer":true}}`, "ext.certificate.issuer must be a string", nil},
		{"issuer equals id", "issuer", issuerKey, `{"certificate":{"issuer":"issuer"}}`, "ext.certificate.issuer must differ from the supplied clientId", nil},
		// §7 step 2: issuing client
		{"issuer unknown", "temp/w", issuerKey, `{"certificate":{"issuer":"ghost"}}`, "Client with clientId 'ghost' not found", nil},
		{"issuer disabled", "temp/w", issuerKey, `{"certificate":{"issuer":"off"}}`, "Client with clientId 'off' is disabled", nil},
		{"issuer expired", "temp/w", issuerKey, `{"certificate":{"issuer":"old"}}`, "Client with clientId: 'old' has expired", nil},
		// §7 step 3–4: shape
		{"certificate a string", "issuer", issuerKey, `{"certificate":"{}"}`, "ext.certificate must be a JSON object", nil},
		{"certificate a number", "issuer", issuerKey, `{"certificate":5}`, "ext.certificate must be a JSON object", nil},
		{"certificate true", "issuer", issuerKey, `{"certificate":true}`, "ext.certificate must be a JSON object", nil},
		{"certificate an array", "issuer", issuerKey, `{"certificate":[1]}`, "ext.certificate.version must be 1", nil},
		{"version 2", "issuer", issuerKey, with(func(c *certMembers) { c.version = "2" }), "ext.certificate.version must be 1", nil},
		{"version string", "issuer", issuerKey, with(func(c *certMembers) { c.version = `"1"` }), "ext.certificate.version must be 1", nil},
		{"version 1.0 is 1", "issuer", tempKey, with(func(c *certMembers) { c.version = "1.0" }), "", nil},
		{"seed missing", "issuer", issuerKey, with(func(c *certMembers) { c.seed = "" }), "ext.certificate.seed must be a string", nil},
		{"seed number", "issuer", issuerKey, with(func(c *certMembers) { c.seed = "5" }), "ext.certificate.seed must be a string", nil},
		{"seed 43", "issuer", issuerKey, with(func(c *certMembers) { c.seed = strconv.Quote(seed[:43]) }), "ext.certificate.seed must be 44 characters", nil},
		{"seed 45 UTF-16 units", "issuer", issuerKey, with(func(c *certMembers) { c.seed = `"` + seed[:43] + `\ud83d\ude00"` }), "ext.certificate.seed must be 44 characters", nil},
		{"seed 44 UTF-16 units with astral char", "issuer", issuerKey, with(func(c *certMembers) { c.seed = `"` + seed[:42] + `\ud83d\ude00"` }), "ext.certificate.signature is not valid", nil},
		{"start string", "issuer", issuerKey, with(func(c *certMembers) { c.start = `"1"` }), "ext.certificate.start must be a number", nil},
		{"start missing", "issuer", issuerKey, with(func(c *certMembers) { c.start = "" }), "ext.certificate.start must be a number", nil},
		{"expiry null", "issuer", issuerKey, with(func(c *certMembers) { c.expiry = "null" }), "ext.certificate.expiry must be a number", nil},
		{"scopes null", "issuer", issuerKey, with(func(c *certMembers) { c.scopes = "null" }), "ext.certificate.scopes must be an array", nil},
		{"scopes object", "issuer", issuerKey, with(func(c *certMembers) { c.scopes = `{"0":"a"}` }), "ext.certificate.scopes must be an array", nil},
		{"scopes number element", "issuer", issuerKey, with(func(c *certMembers) { c.scopes = `[1]` }), "ext.certificate.scopes must be an array of valid scopes", nil},
		{"scopes newline", "issuer", issuerKey, with(func(c *certMembers) { c.scopes = `["a\nb"]` }), "ext.certificate.scopes must be an array of valid scopes", nil},
		{"scopes non-ASCII", "issuer", issuerKey, with(func(c *certMembers) { c.scopes = `["é"]` }), "ext.certificate.scopes must be an array of valid scopes", nil},
		// §7 step 5: times (boundaries pass)
		{"start > now+5min", "issuer", issuerKey, validCert("issuer", "", []string{"test:a"}, nowMs+300_001, expiry, seed).json(), "ext.certificate.start > now", nil},
		{"start = now+5min", "issuer", tempKey, validCert("issuer", "", []string{"test:a"}, nowMs+300_000, expiry, seed).json(), "", nil},
		{"expiry < now-5min", "issuer", issuerKey, validCert("issuer", "", []string{"test:a"}, start-3_600_000, nowMs-300_001, seed).json(), "ext.certificate.expiry < now", nil},
		{"expiry = now-5min", "issuer", tempKey, validCert("issuer", "", []string{"test:a"}, start-3_600_000, nowMs-300_000, seed).json(), "", nil},
		{"31 days + 1 ms", "issuer", issuerKey, validCert("issuer", "", []string{"test:a"}, start, start+2_678_400_001, seed).json(), "ext.certificate cannot last longer than 31 days!", nil},
		{"31 days", "issuer", tempKey, validCert("issuer", "", []string{"test:a"}, start, start+2_678_400_000, seed).json(), "", nil},
		// §7 step 6: naming
		{"named without create-client", "elsewhere/w", issuerKey, validCert("elsewhere/w", "issuer", []string{"test:a"}, start, expiry, seed).json(),
			"ext.certificate issuer `issuer` doesn't have `auth:create-client:elsewhere/w` for supplied clientId.", nil},
		{"unnamed with clientId member", "issuer", issuerKey, with(func(c *certMembers) { c.clientID = "null" }),
			"ext.certificate.clientId must only be used with ext.certificate.issuer", nil},
		{"named with clientId member is fine", "temp/w", tempKey, func() string { c := named; c.clientID = `"x"`; return c.json() }(), "",
			[]string{"assume:anonymous", "auth:current-scopes", "test:a"}},
		// §7 step 7: certificate scopes within the issuer's
		{"scopes exceed issuer", "issuer", issuerKey, validCert("issuer", "", []string{"test:a", "other:x", "more:y"}, start, expiry, seed).json(),
			"ext.certificate issuer `issuer` doesn't satisfy all certificate scopes test:a, other:x, more:y.  The temporary credentials were not generated correctly.", nil},
		{"cert scopes checked unexpanded", "issuer", issuerKey, validCert("issuer", "", []string{"secrets:get:project/y/a"}, start, expiry, seed).json(),
			"ext.certificate issuer `issuer` doesn't satisfy all certificate scopes secrets:get:project/y/a.  The temporary credentials were not generated correctly.", nil},
		// §7 step 8: signature
		{"bad signature unnamed", "issuer", issuerKey, with(func(c *certMembers) { c.signature = strconv.Quote(hmacText("wrong", "x")) }), "ext.certificate.signature is not valid", nil},
		{"signature wrong length", "issuer", issuerKey, with(func(c *certMembers) { c.signature = `"abc"` }), "ext.certificate.signature is not valid", nil},
		{"signature not a string", "issuer", issuerKey, with(func(c *certMembers) { c.signature = "5" }), "ext.certificate.signature is not valid", nil},
		{"signature missing", "issuer", issuerKey, with(func(c *certMembers) { c.signature = "" }), "ext.certificate.signature is not valid", nil},
		{"bad signature named", "temp/other", issuerKey, func() string { c := named; return c.json() }(),
			"ext.certificate.signature is not valid, or wrong clientId provided", nil},
		{"temp creds with permanent key", "issuer", issuerKey, ok.json(), "Unauthorized: Bad mac", nil},
		{"valid unnamed", "issuer", tempKey, ok.json(), "", []string{"assume:anonymous", "auth:current-scopes", "test:a"}},

		// §8 authorizedScopes
		{"authorizedScopes string", "issuer", issuerKey, `{"authorizedScopes":"test:a"}`, "ext.authorizedScopes must be an array", nil},
		{"authorizedScopes object", "issuer", issuerKey, `{"authorizedScopes":{}}`, "ext.authorizedScopes must be an array", nil},
		{"authorizedScopes true", "issuer", issuerKey, `{"authorizedScopes":true}`, "ext.authorizedScopes must be an array", nil},
		{"authorizedScopes number element", "issuer", issuerKey, `{"authorizedScopes":[1]}`, "ext.authorizedScopes must be an array of valid scopes", nil},
		{"authorizedScopes tab", "issuer", issuerKey, `{"authorizedScopes":["a\tb"]}`, "ext.authorizedScopes must be an array of valid scopes", nil},
		{"authorizedScopes exceed", "issuer", issuerKey, `{"authorizedScopes":["other:*"]}`,
			"Supplied credentials do not satisfy authorizedScopes; credentials have scopes:\n\n```\n" + strings.Join(permScopes, "\n") +
				"\n```\n\nauthorizedScopes are:\n\n```\nother:*\n```", nil},
		{"authorizedScopes anonymous's scopes are available", "plain", "plain-secret-0123456789abcdef", `{"authorizedScopes":["auth:current-scopes"]}`, "",
			[]string{"assume:anonymous", "auth:current-scopes"}},
		{"authorizedScopes empty", "issuer", issuerKey, `{"authorizedScopes":[]}`, "", []string{"assume:anonymous", "auth:current-scopes"}},
		{"authorizedScopes limit a certificate", "issuer", tempKey, strings.TrimSuffix(ok.json(), "}") + `,"authorizedScopes":["test:a"]}`, "",
			[]string{"assume:anonymous", "auth:current-scopes", "test:a"}},
		{"authorizedScopes beyond a certificate", "issuer", tempKey, strings.TrimSuffix(ok.json(), "}") + `,"authorizedScopes":["test:b"]}`,
			"Supplied credentials do not satisfy authorizedScopes; credentials have scopes:\n\n```\nassume:anonymous\nauth:current-scopes\ntest:a\n```\n\nauthorizedScopes are:\n\n```\ntest:b\n```", nil},
	}
	a := vectorAuthenticator()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := authGET(a, extHeader(c.id, c.key, c.ext, vectorNow.Unix()))
			if c.want != "" {
				if r.Status != StatusFailed || r.Message != c.want {
					t.Fatalf("got %s %q\nwant failure %q", r.Status, r.Message, c.want)
				}
				return
			}
			if r.Status != StatusSuccess || r.ClientID != c.id {
				t.Fatalf("got %s %q, want success", r.Status, r.Message)
			}
			if c.scopes != nil && !reflect.DeepEqual(r.Scopes, c.scopes) {
				t.Errorf("scopes %v, want %v", r.Scopes, c.scopes)
			}
		})
	}
}

func TestTimestampSkew(t *testing.T) {
	a := vectorAuthenticator()
	base := vectorNow.Unix()
	cases := []struct {
		name string
		ts   string
		now  time.Time
		want string
	}{
		{"now", strconv.FormatInt(base, 10), vectorNow, ""},
		{"-900s", strconv.FormatInt(base-900, 10), vectorNow, ""},
		{"+900s", strconv.FormatInt(base+900, 10), vectorNow, ""},
		{"-901s", strconv.FormatInt(base-901, 10), vectorNow, ErrStaleTimestamp.Message},
		{"+901s", strconv.FormatInt(base+901, 10), vectorNow, ErrStaleTimestamp.Message},
		{"-900s with now +500ms (ms precision)", strconv.FormatInt(base-900, 10), vectorNow.Add(500 * time.Millisecond), ErrStaleTimestamp.Message},
		{"milliseconds instead of seconds", strconv.FormatInt(nowMs, 10), vectorNow, ErrStaleTimestamp.Message},
		{"absurdly long", strings.Repeat("9", 30), vectorNow, ErrStaleTimestamp.Message},
		{"leading zeros are still an integer", "00" + strconv.FormatInt(base, 10), vectorNow, ""},
		// [quirk] rejected: the reference accepts these.
		{"non-numeric", "abc", vectorNow, ErrInvalidTimestamp.Message},
		{"fractional", strconv.FormatInt(base, 10) + ".5", vectorNow, ErrInvalidTimestamp.Message},
		{"signed", "+" + strconv.FormatInt(base, 10), vectorNow, ErrInvalidTimestamp.Message},
		{"exponent", "1.7e9", vectorNow, ErrInvalidTimestamp.Message},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a.Now = func() time.Time { return c.now }
			art := Artifacts{Method: "GET", Resource: "/x", Host: "tc.example.com", Port: 443, TS: c.ts, Nonce: "n"}
			h := `Hawk id="issuer", ts="` + c.ts + `", nonce="n", mac="` + MAC("header", []byte(issuerKey), art) + `"`
			r := authGET(a, h)
			if c.want == "" && r.Status != StatusSuccess || c.want != "" && r.Message != c.want {
				t.Errorf("got %s %q, want %q", r.Status, r.Message, c.want)
			}
		})
	}
	// A custom skew applies too.
	a.Now = func() time.Time { return vectorNow }
	a.Skew = time.Minute
	if r := authGET(a, extHeader("issuer", issuerKey, "", base-61)); r.Reason != ErrStaleTimestamp {
		t.Errorf("custom skew: %+v", r)
	}
}

// TestCheckOrder pins docs/protocol.md §5: credentials before MAC before skew.
func TestCheckOrder(t *testing.T) {
	a := vectorAuthenticator()
	stale := vectorNow.Unix() - 10_000
	// Bad certificate, wrong MAC, stale: the certificate error wins.
	h := extHeader("issuer", "wrong-key", `{"certificate":{"version":2}}`, stale)
	if r := authGET(a, h); r.Message != "ext.certificate.version must be 1" {
		t.Errorf("got %q", r.Message)
	}
	// Unknown client with a wrong MAC: the lookup error wins.
	if r := authGET(a, extHeader("nobody", "x", "", stale)); r.Message != "Client with clientId 'nobody' not found" {
		t.Errorf("got %q", r.Message)
	}
	// Wrong MAC and stale: Bad mac.
	if r := authGET(a, extHeader("issuer", "wrong-key", "", stale)); r.Reason != ErrBadMAC {
		t.Errorf("got %q", r.Message)
	}
	// Non-integer ts with a wrong MAC: Bad mac (the ts rule sits at the skew step).
	if r := authGET(a, `Hawk id="issuer", ts="abc", nonce="n", mac="AAAA"`); r.Reason != ErrBadMAC {
		t.Errorf("got %q", r.Message)
	}
}

type failingSource struct{ err error }

func (f failingSource) Client(context.Context, string) (*Client, error) { return nil, f.err }

func TestLookupFailureIsNotAnAuthFailure(t *testing.T) {
	down := errors.New("store unreachable")
	a := &Authenticator{Clients: failingSource{down}, Now: func() time.Time { return vectorNow }}
	r := authGET(a, extHeader("issuer", issuerKey, "", vectorNow.Unix()))
	if r.Status != StatusFailed || !errors.Is(r.Err, down) || strings.Contains(r.Message, "unreachable") {
		t.Errorf("got %+v", r)
	}
	// A nil client without error is "not found", not a crash.
	a.Clients = failingSource{nil}
	if r := authGET(a, extHeader("issuer", issuerKey, "", vectorNow.Unix())); r.Err != nil || r.Message != "Client with clientId 'issuer' not found" {
		t.Errorf("got %+v", r)
	}
	// Wrapped ErrClientNotFound counts as not found.
	a.Clients = failingSource{fmt.Errorf("bolt: %w", ErrClientNotFound)}
	if r := authGET(a, extHeader("issuer", issuerKey, "", vectorNow.Unix())); r.Err != nil || r.Message != "Client with clientId 'issuer' not found" {
		t.Errorf("got %+v", r)
	}
	// Empty access token: never authenticates.
	a.Clients = memClients{"issuer": {ClientID: "issuer"}}
	if r := authGET(a, extHeader("issuer", "", "", vectorNow.Unix())); r.Reason != ErrInvalidCredentials {
		t.Errorf("got %+v", r)
	}
}

// TestBewitExpiry: no skew for bewits; a ttl that yields a bewit expired
// at signing is refused by the signer (ErrSignExpiry) rather than signed.
func TestBewitExpiry(t *testing.T) {
	a := vectorAuthenticator()
	creds := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	for _, c := range []struct {
		name        string
		ttl         time.Duration
		signAt, now time.Time
		want        string
		wantSignErr error
	}{
		{"1s left", time.Second, vectorNow, vectorNow, "", nil},
		{"exp == now", time.Second, vectorNow.Add(-time.Second), vectorNow, ErrAccessExpired.Message, nil},
		{"exp == floor(now), now has ms", time.Second, vectorNow.Add(-time.Second), vectorNow.Add(999 * time.Millisecond), ErrAccessExpired.Message, nil},
		{"expired a second ago", time.Second, vectorNow.Add(-2 * time.Second), vectorNow, ErrAccessExpired.Message, nil},
		{"ttl 0 refused", 0, vectorNow, vectorNow, "", ErrSignExpiry},
		{"ttl just under 1s refused", time.Second - 1, vectorNow, vectorNow, "", ErrSignExpiry},
		{"negative ttl refused", -time.Second, vectorNow, vectorNow, "", ErrSignExpiry},
		{"exp before 1970 refused", time.Second, time.Unix(-5, 0), vectorNow, "", ErrSignExpiry},
		{"exp 0 (1970) is digits", 5 * time.Second, time.Unix(-5, 0), vectorNow, ErrAccessExpired.Message, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := SignedURL(creds, "https://tc.example.com/x?a=1", c.ttl, c.signAt)
			if !errors.Is(err, c.wantSignErr) || (err == nil) != (c.wantSignErr == nil) {
				t.Fatalf("SignedURL: %v, want %v", err, c.wantSignErr)
			}
			if err != nil {
				return
			}
			a.Now = func() time.Time { return c.now }
			r := a.Authenticate(context.Background(), Request{Method: "GET", Resource: strings.TrimPrefix(u, "https://tc.example.com"), Host: "tc.example.com", Port: 443})
			if c.want == "" && (r.Status != StatusSuccess || !r.Bewit || r.Hash != "") || c.want != "" && r.Message != c.want {
				t.Errorf("got %+v, want %q", r, c.want)
			}
		})
	}
}

// TestRoundTrips signs with our client code and verifies with our verifier.
func TestRoundTrips(t *testing.T) {
	a := vectorAuthenticator()
	perm := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	unnamed, err := CreateTemporaryCredentials(TemporaryOptions{Issuer: perm, Scopes: []string{"test:a", "assume:project:x"},
		Start: vectorNow.Add(-time.Minute), Expiry: vectorNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	named, err := CreateTemporaryCredentials(TemporaryOptions{Issuer: perm, ClientID: "temp/rt", Scopes: []string{"test:b"},
		Start: vectorNow.Add(-time.Minute), Expiry: vectorNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := CreateTemporaryCredentials(TemporaryOptions{Issuer: perm, Scopes: nil, Start: vectorNow, Expiry: vectorNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	restricted := named
	restricted.AuthorizedScopes = []string{}
	certExpiry := vectorNow.Add(time.Hour)
	cases := []struct {
		name    string
		creds   Credentials
		id      string
		scopes  []string
		expires time.Time
	}{
		{"permanent", perm, "issuer", []string{"assume:anonymous", "assume:project:x", "auth:create-client:temp/*", "auth:current-scopes", "secrets:get:project/x/*", "test:*"}, time.Date(2024, 11, 13, 22, 13, 20, 0, time.UTC)},
		{"authorizedScopes", Credentials{ClientID: "issuer", AccessToken: issuerKey, AuthorizedScopes: []string{"test:q"}}, "issuer", []string{"assume:anonymous", "auth:current-scopes", "test:q"}, time.Date(2024, 11, 13, 22, 13, 20, 0, time.UTC)},
		{"unnamed temporary", unnamed, "issuer", []string{"assume:anonymous", "assume:project:x", "auth:current-scopes", "secrets:get:project/x/*", "test:a"}, certExpiry},
		{"named temporary", named, "temp/rt", []string{"assume:anonymous", "auth:current-scopes", "test:b"}, certExpiry},
		{"empty-scopes temporary", empty, "issuer", []string{"assume:anonymous", "auth:current-scopes"}, certExpiry},
		{"named temporary + authorizedScopes []", restricted, "temp/rt", []string{"assume:anonymous", "auth:current-scopes"}, certExpiry},
	}
	for _, c := range cases {
		t.Run(c.name+"/header", func(t *testing.T) {
			body := []byte(`{"a":1}`)
			h, err := SignRequest(c.creds, "PUT", "https://tc.example.com/api/auth/v1/clients/a%2Fb?x=1", SignOptions{Now: vectorNow.Add(3 * time.Second),
				ContentType: "application/json", Payload: body, HasPayload: true})
			if err != nil {
				t.Fatal(err)
			}
			r := a.Authenticate(context.Background(), Request{Method: "put", Resource: "/api/auth/v1/clients/a%2Fb?x=1", Host: "TC.EXAMPLE.COM", Port: 443, Authorization: h})
			if r.Status != StatusSuccess || r.ClientID != c.id || !reflect.DeepEqual(r.Scopes, c.scopes) || !r.Expires.Equal(c.expires) ||
				r.Hash != PayloadHash("application/json", body) || r.Bewit || r.Scheme != "hawk" {
				t.Errorf("got %+v", r)
			}
			if !r.PayloadHashValid("application/json; charset=utf-8", body) || r.PayloadHashValid("application/json", []byte(`{"a": 1}`)) ||
				r.PayloadHashValid("text/plain", body) {
				t.Error("payload hash check")
			}
			// Anything the MAC covers, changed, fails.
			for _, req := range []Request{
				{Method: "POST", Resource: "/api/auth/v1/clients/a%2Fb?x=1", Host: "tc.example.com", Port: 443, Authorization: h},
				{Method: "PUT", Resource: "/api/auth/v1/clients/a/b?x=1", Host: "tc.example.com", Port: 443, Authorization: h},
				{Method: "PUT", Resource: "/api/auth/v1/clients/a%2Fb?x=1", Host: "tc.example.org", Port: 443, Authorization: h},
				{Method: "PUT", Resource: "/api/auth/v1/clients/a%2Fb?x=1", Host: "tc.example.com", Port: 80, Authorization: h},
			} {
				if r := a.Authenticate(context.Background(), req); r.Reason != ErrBadMAC {
					t.Errorf("tampered %+v: %s", req, r.Message)
				}
			}
		})
		t.Run(c.name+"/bewit", func(t *testing.T) {
			u, err := SignedURL(c.creds, "https://tc.example.com/api/auth/v1/clients/?prefix=a", 15*time.Minute, vectorNow)
			if err != nil {
				t.Fatal(err)
			}
			res := strings.TrimPrefix(u, "https://tc.example.com")
			for _, m := range []string{"GET", "HEAD"} {
				r := a.Authenticate(context.Background(), Request{Method: m, Resource: res, Host: "tc.example.com", Port: 443})
				if r.Status != StatusSuccess || r.ClientID != c.id || !reflect.DeepEqual(r.Scopes, c.scopes) || !r.Bewit || r.Scheme != "hawk" ||
					!r.PayloadHashValid("", nil) {
					t.Errorf("%s: got %+v", m, r)
				}
			}
			if r := a.Authenticate(context.Background(), Request{Method: "GET", Resource: strings.Replace(res, "prefix=a", "prefix=b", 1), Host: "tc.example.com", Port: 443}); r.Reason != ErrBadMAC {
				t.Errorf("tampered bewit: %s", r.Message)
			}
		})
	}
}

// TestOverHTTP runs the whole path through a real HTTP server: client
// signs a URL, the server derives Request with RequestFromHTTP.
func TestOverHTTP(t *testing.T) {
	a := vectorAuthenticator()
	a.Now = time.Now
	a.Clients = memClients{"c": {ClientID: "c", AccessToken: "secret-of-c", ExpandedScopes: []string{"x:y"}}}
	a.Scopes = nil // no roles: identity expander
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := a.Authenticate(r.Context(), RequestFromHTTP(r, false))
		json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()
	target := srv.URL + "/a%2Fb/c?z=1&y=%20"
	h, err := SignRequest(Credentials{ClientID: "c", AccessToken: "secret-of-c"}, "GET", target, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url, auth string) Result {
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r Result
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := get(target, h); r.Status != StatusSuccess || r.ClientID != "c" || !reflect.DeepEqual(r.Scopes, []string{"assume:anonymous", "x:y"}) {
		t.Errorf("header: %+v", r)
	}
	u, err := SignedURL(Credentials{ClientID: "c", AccessToken: "secret-of-c"}, target, time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if r := get(u, ""); r.Status != StatusSuccess || r.ClientID != "c" {
		t.Errorf("bewit: %+v", r)
	}
	if r := get(srv.URL+"/", ""); r.Status != StatusNoAuth || !reflect.DeepEqual(r.Scopes, []string{"assume:anonymous"}) {
		t.Errorf("anonymous: %+v", r)
	}
}

// TestJSEmptyScopesKnob: certificates without scopes signed the JS way.
func TestJSEmptyScopesKnob(t *testing.T) {
	seed := strings.Repeat("J", 44)
	c := Certificate{Version: 1, Scopes: []string{}, Start: nowMs, Expiry: nowMs + 60_000, Seed: seed}
	js := certMembers{version: "1", scopes: "[]", start: strconv.FormatInt(c.Start, 10), expiry: strconv.FormatInt(c.Expiry, 10),
		seed: strconv.Quote(seed), signature: strconv.Quote(hmacText(issuerKey, c.SignedText("issuer")+"\n"))}
	h := extHeader("issuer", TemporaryAccessToken(issuerKey, seed), js.json(), vectorNow.Unix())
	a := vectorAuthenticator()
	if r := authGET(a, h); r.Message != "ext.certificate.signature is not valid" {
		t.Errorf("default: %+v", r)
	}
	a.AcceptJSEmptyScopesSignature = true
	if r := authGET(a, h); r.Status != StatusSuccess {
		t.Errorf("knob on: %+v", r)
	}
	// The knob does not widen anything else: a non-empty certificate with a
	// trailing newline stays invalid.
	c.Scopes = []string{"test:a"}
	js.scopes = `["test:a"]`
	js.signature = strconv.Quote(hmacText(issuerKey, c.SignedText("issuer")+"\n"))
	if r := authGET(a, extHeader("issuer", TemporaryAccessToken(issuerKey, seed), js.json(), vectorNow.Unix())); r.Message != "ext.certificate.signature is not valid" {
		t.Errorf("non-empty: %+v", r)
	}
}

func TestResultJSON(t *testing.T) {
	exp := time.Date(2024, 11, 13, 22, 13, 20, 0, time.UTC)
	cases := []struct {
		r    Result
		want string
	}{
		{Result{Status: StatusSuccess, Scheme: "hawk", ClientID: "c", Scopes: []string{"a"}, Expires: exp, Hash: "h"},
			`{"status":"auth-success","scheme":"hawk","expires":"2024-11-13T22:13:20.000Z","scopes":["a"],"clientId":"c","hash":"h"}`},
		{Result{Status: StatusSuccess, Scheme: "hawk", ClientID: "tester"},
			`{"status":"auth-success","scheme":"hawk","scopes":[],"clientId":"tester"}`},
		{Result{Status: StatusNoAuth, Scheme: "none", Scopes: []string{"assume:anonymous"}, Expires: exp.Add(123 * time.Microsecond)},
			`{"status":"no-auth","scheme":"none","expires":"2024-11-13T22:13:20.000Z","scopes":["assume:anonymous"]}`},
		{Result{Status: StatusFailed, Message: "Unauthorized: Bad mac", Reason: ErrBadMAC},
			`{"status":"auth-failed","message":"Unauthorized: Bad mac"}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.r)
		if err != nil || string(got) != c.want {
			t.Errorf("got %s (%v)\nwant %s", got, err, c.want)
			continue
		}
		var back Result
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(back)
		if string(again) != c.want {
			t.Errorf("round trip %s", again)
		}
	}
	if _, err := json.Marshal(Result{}); err == nil {
		t.Error("Result without status marshalled")
	}
	var r Result
	if err := json.Unmarshal([]byte(`{"status":"weird"}`), &r); err == nil {
		t.Error("unknown status accepted")
	}
}
