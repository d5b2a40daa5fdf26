package protocol

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestJSONReaderAgreesWithEncodingJSON(t *testing.T) {
	// Validity must match JSON.parse, which for these inputs is what
	// encoding/json's Valid says.
	for _, s := range []string{
		`{}`, ` {"a" : [1, -0.5e+3, true, false, null, "x\"y\\u00e9\ud83d\ude00"]} `, `[]`, `"s"`, `0`, `-0`, `1E5`,
		`{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `+1`, `"\x"`, `"a` + "\x01" + `"`, `{"a"}`, `{a:1}`, `[1 2]`, `nul`, `"`, ``,
		`{"a":{"b":[{"c":{}}]}}`, `"\u12"`, "\t[\r\n]\n", `1e400`,
	} {
		r := jsonReader{s: s}
		_, ok := r.value()
		if ok {
			r.ws()
			ok = r.i == len(s)
		}
		if want := json.Valid([]byte(s)); ok != want && s != `1e400` {
			t.Errorf("valid(%q) = %v, want %v", s, ok, want)
		}
	}
	r := jsonReader{s: `"a\u00e9\ud83d\ude00\ud800x\n"`}
	if v, ok := r.value(); !ok || v.str != "aé😀\ufffdx\n" {
		t.Errorf("unescape: %q %v", v.str, ok)
	}
	r = jsonReader{s: `1e400`}
	if v, ok := r.value(); !ok || !math.IsInf(v.num, 1) {
		t.Errorf("1e400 = %v %v, want +Inf (JavaScript's Infinity)", v.num, ok)
	}
	deep := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	r = jsonReader{s: deep}
	if _, ok := r.value(); ok {
		t.Error("unbounded nesting accepted")
	}
}

func TestDecodeExt(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	d, err := decodeExt(enc(`{"certificate":{"version":1,"scopes":["a","b"],"start":5,"expiry":6.5,"seed":"s","signature":"g","issuer":"i","clientId":null},"authorizedScopes":["x"],"other":{"certificate":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := d.cert
	if d.certificate.kind != kindObject || c.version.num != 1 || c.start.num != 5 || c.expiry.num != 6.5 || c.seed.str != "s" ||
		c.signature.str != "g" || c.issuer.str != "i" || !c.hasClientID || c.scopes.kind != kindArray || d.authorizedScopes.kind != kindArray {
		t.Errorf("decoded %+v", d)
	}
	if s, ok := scopeArray(c.scopes.raw); !ok || strings.Join(s, ",") != "a,b" {
		t.Errorf("scopes %v %v", s, ok)
	}
	// URL-safe alphabet and missing padding are accepted, as Node does.
	if _, err := decodeExt(strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(enc(`{"authorizedScopes":["a?>"]}`)), "=")); err != nil {
		t.Error(err)
	}
	truthy := map[string]bool{`null`: false, `false`: false, `0`: false, `-0`: false, `0.0`: false, `""`: false,
		`true`: true, `1`: true, `"0"`: true, `[]`: true, `{}`: true, `-1e-300`: true}
	for text, want := range truthy {
		r := jsonReader{s: text}
		v, _ := r.value()
		if v.truthy() != want {
			t.Errorf("truthy(%s) = %v", text, !want)
		}
	}
}

func TestAppendJSNumber(t *testing.T) {
	cases := map[float64]string{
		1700000000000: "1700000000000", 0: "0", math.Copysign(0, -1): "0", 1.5: "1.5", -2: "-2",
		1e21: "1e+21", 1.5e22: "1.5e+22", 1e-7: "1e-7", 1.25e-10: "1.25e-10", 0.000001: "0.000001", 123456789012345680000: "123456789012345680000",
		math.Inf(1): "Infinity", math.Inf(-1): "-Infinity", 0.30000000000000004: "0.30000000000000004",
	}
	for f, want := range cases {
		if got := string(appendJSNumber(nil, f)); got != want {
			t.Errorf("appendJSNumber(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestCredentialsExt(t *testing.T) {
	cases := []struct {
		c    Credentials
		want string
	}{
		{Credentials{}, ""},
		{Credentials{AuthorizedScopes: []string{}}, `{"authorizedScopes":[]}`},
		{Credentials{AuthorizedScopes: []string{`a"b\c<&>`}}, `{"authorizedScopes":["a\"b\\c<&>"]}`},
		{Credentials{Certificate: " {\n \"version\": 1, \"b\":[ ] }\n"}, `{"certificate":{"version":1,"b":[]}}`},
		{Credentials{Certificate: `{"z":1,"a":2}`, AuthorizedScopes: []string{"s"}}, `{"certificate":{"z":1,"a":2},"authorizedScopes":["s"]}`},
	}
	for _, c := range cases {
		got, err := c.c.Ext()
		if err != nil {
			t.Fatal(err)
		}
		if dec, _ := base64.StdEncoding.DecodeString(got); string(dec) != c.want {
			t.Errorf("Ext() = %s, want %s", dec, c.want)
		}
	}
	for _, bad := range []Credentials{{Certificate: "[]"}, {Certificate: "{"}, {AuthorizedScopes: []string{"é"}}} {
		if _, err := bad.Ext(); err == nil {
			t.Errorf("Ext(%+v) accepted", bad)
		}
	}
}

func TestCreateTemporaryCredentialsValidation(t *testing.T) {
	issuer := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	start := vectorNow
	ok := TemporaryOptions{Issuer: issuer, Scopes: []string{"a"}, Start: start, Expiry: start.Add(time.Hour)}
	for name, mutate := range map[string]func(*TemporaryOptions){
		"no issuer token":      func(o *TemporaryOptions) { o.Issuer.AccessToken = "" },
		"temporary issuer":     func(o *TemporaryOptions) { o.Issuer.Certificate = "{}" },
		"name equals issuer":   func(o *TemporaryOptions) { o.ClientID = "issuer" },
		"name not header-safe": func(o *TemporaryOptions) { o.ClientID = `a"b` },
		"no expiry":            func(o *TemporaryOptions) { o.Expiry = time.Time{} },
		"expiry before start":  func(o *TemporaryOptions) { o.Expiry = start.Add(-time.Second) },
		"over 31 days":         func(o *TemporaryOptions) { o.Expiry = start.Add(MaxCertificateLifetime + time.Millisecond) },
		"invalid scope":        func(o *TemporaryOptions) { o.Scopes = []string{"a\nb"} },
		"short seed":           func(o *TemporaryOptions) { o.Seed = "abc" },
	} {
		o := ok
		mutate(&o)
		if _, err := CreateTemporaryCredentials(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := ok
	o.Expiry = start.Add(MaxCertificateLifetime)
	c, err := CreateTemporaryCredentials(o)
	if err != nil {
		t.Fatalf("exactly 31 days: %v", err)
	}
	cert, err := ParseCertificate(c.Certificate)
	if err != nil || len(cert.Seed) != 44 || cert.Issuer != "" || c.ClientID != "issuer" || len(c.AccessToken) != 43 {
		t.Errorf("unnamed credentials %+v / %+v", c, cert)
	}
	if !strings.HasPrefix(c.Certificate, `{"version":1,"scopes":["a"],"start":1700000000000,"expiry":`) {
		t.Errorf("member order: %s", c.Certificate)
	}
	// Random seeds are two slugids.
	for i := 0; i < 50; i++ {
		s := Slugid()
		b, err := base64.RawURLEncoding.DecodeString(s)
		if len(s) != 22 || err != nil || b[6]>>4 != 4 || b[8]>>6 != 2 || s[0] == '-' {
			t.Fatalf("bad slugid %q", s)
		}
	}
	if _, err := ParseCertificate("nope"); err == nil {
		t.Error("ParseCertificate accepted garbage")
	}
}

// FuzzDecodeExt: decoding and validating any ext (through the whole
// certificate pipeline) never panics; ext parse failures match JSON
// validity; and temporary credentials made by CreateTemporaryCredentials
// from arbitrary valid scopes and names are refused as too large, or sign
// a header that verifies exactly when the issuer may grant the scopes.
func FuzzDecodeExt(f *testing.F) {
	f.Add(`{"certificate":{"version":1,"scopes":["a"],"start":1699999940000,"expiry":1700003600000,"seed":"AAAAAAAAQAeAAAAAAAAAAABBBBBBBBQBeBBBBBBBBBBA","signature":"x","issuer":"issuer"},"authorizedScopes":["a"]}`, "a\x00b", "temp/x")
	f.Add(`{"certificate":[],"authorizedScopes":{}}`, "", "")
	f.Add(`{"certificate":{"issuer":5,"clientId":null}}`, "test:*", "issuer")
	f.Add(`{"authorizedScopes":["\u0061",1e400,-0.0]}`, "x", "y")
	f.Add(`null`, "", "z")
	a := vectorAuthenticator()
	issuer := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	f.Fuzz(func(t *testing.T, extJSON, scopesText, name string) {
		ext := base64.StdEncoding.EncodeToString([]byte(extJSON))
		d, err := decodeExt(ext)
		valid := json.Valid([]byte(extJSON))
		if err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", extJSON)
		}
		if err != nil && valid && utf8.ValidString(extJSON) && strings.TrimSpace(extJSON) != "null" && !strings.Contains(extJSON, "[[[[") && !strings.Contains(extJSON, "{{{{") {
			t.Fatalf("rejected valid JSON %q", extJSON)
		}
		_ = d
		// The whole pipeline, with both a permanent and a derived key.
		for _, id := range []string{"issuer", "temp/x", name} {
			if !validAttrValue(id) {
				continue
			}
			r := authGET(a, extHeader(id, issuerKey, extJSON, vectorNow.Unix()))
			if r.Status == "" || r.Status == StatusFailed && r.Message == "" {
				t.Fatalf("empty result %+v", r)
			}
		}

		// Round trip: arbitrary (valid) scopes and name.
		scopes := strings.Split(scopesText, "\x00")
		for _, s := range scopes {
			if !ValidScope(s) {
				return
			}
		}
		named := strings.HasPrefix(name, "temp/") && validAttrValue(name)
		opts := TemporaryOptions{Issuer: issuer, Scopes: scopes, Start: vectorNow, Expiry: vectorNow.Add(time.Hour)}
		if named {
			opts.ClientID = name
		}
		// Round trip: issuing and signing refuse only for size (the
		// scopes are valid), and whatever they produce verifies.
		creds, err := CreateTemporaryCredentials(opts)
		if err != nil {
			if !errors.Is(err, ErrSignHeaderTooLong) {
				t.Fatal(err)
			}
			return
		}
		h, err := SignRequest(creds, "GET", "https://tc.example.com/x", SignOptions{Now: vectorNow})
		if err != nil {
			if !errors.Is(err, ErrSignHeaderTooLong) {
				t.Fatal(err)
			}
			return
		}
		r := authGET(a, h)
		allowed := true
		for _, s := range scopes {
			if !vectorRoles.Satisfies(vectorRoles.Expand([]string{"test:*", "auth:create-client:temp/*", "assume:project:x"}), s) {
				allowed = false
			}
		}
		if allowed && r.Status != StatusSuccess || !allowed && r.Status == StatusSuccess {
			t.Fatalf("scopes %q named %v: %s %s", scopes, named, r.Status, r.Message)
		}
	})
}
