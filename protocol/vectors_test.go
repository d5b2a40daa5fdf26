package protocol

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

type vectorRequest struct {
	Method        string  `json:"method"`
	Resource      string  `json:"resource"`
	Authorization *string `json:"authorization"`
	Port          *int    `json:"port"`
}

type vectorCase struct {
	Request *vectorRequest `json:"request"`
	Result  map[string]any `json:"result"`
}

func (v *vectorRequest) toRequest() Request {
	r := Request{Method: v.Method, Resource: v.Resource, Host: "tc.example.com", Port: 443}
	if v.Authorization != nil {
		r.Authorization = *v.Authorization
	}
	if v.Port != nil {
		r.Port = *v.Port
	}
	return r
}

// rejectedQuirks are the reference vectors whose [quirk] we reject on
// purpose (docs/protocol.md §5, §10): the reference accepts them; we answer
// with a clear failure instead. Each of these messages is only reachable
// after the MAC matched, so the vector still proves our MAC agrees with the
// reference's for these inputs.
var rejectedQuirks = map[string]string{
	"ts_non_numeric":        ErrInvalidTimestamp.Message,   // reference: success forever (NaN is never stale)
	"ts_float":              ErrInvalidTimestamp.Message,   // reference: success (ts coerced to 1700000000.5)
	"bewit_non_numeric_exp": ErrInvalidBewitExpiry.Message, // reference: success, the bewit never expires
}

func TestReferenceAuthenticateVectors(t *testing.T) {
	var top map[string]json.RawMessage
	loadSpec(t, "reference-vectors.json", &top)
	spec := map[string]map[string]json.RawMessage{}
	for _, group := range []string{"proto", "proto2"} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(top[group], &m); err != nil {
			t.Fatalf("%s: %v", group, err)
		}
		spec[group] = m
	}
	a := vectorAuthenticator()
	n := 0
	for _, group := range []string{"proto", "proto2"} {
		names := make([]string, 0, len(spec[group]))
		for name := range spec[group] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			var vc vectorCase
			if err := json.Unmarshal(spec[group][name], &vc); err != nil || vc.Request == nil {
				continue // not an authenticate case (fixtures, signed strings)
			}
			n++
			t.Run(group+"/"+name, func(t *testing.T) {
				got := resultJSON(t, a.Authenticate(context.Background(), vc.Request.toRequest()))
				want := vc.Result
				if msg, ok := rejectedQuirks[name]; ok {
					if want["status"] != string(StatusSuccess) {
						t.Fatalf("vector changed: reference result %v is no longer the accepted quirk", want)
					}
					want = map[string]any{"status": string(StatusFailed), "message": msg}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("result mismatch\n got: %v\nwant: %v", got, want)
				}
			})
		}
	}
	if n < 50 {
		t.Errorf("only %d authenticate vectors found; the vector file looks truncated", n)
	}
}

// TestReferenceTempcredsFixtures checks the credentials the proto vectors
// were signed with: certificate signatures and derived access tokens.
func TestReferenceTempcredsFixtures(t *testing.T) {
	var spec struct {
		Proto struct {
			Tempcreds map[string]Credentials `json:"tempcreds"`
		} `json:"proto"`
		Proto2 struct {
			Empty struct {
				SignedString string `json:"signedString"`
				Signature    string `json:"signature"`
			} `json:"emptyScopes_server_signature"`
		} `json:"proto2"`
	}
	loadSpec(t, "reference-vectors.json", &spec)
	issuer := spec.Proto.Tempcreds["issuer"]
	if issuer.AccessToken != "issuer-secret-0123456789abcdef" {
		t.Fatalf("unexpected issuer fixture %+v", issuer)
	}
	for _, name := range []string{"unnamed", "named", "emptyScopes"} {
		tc := spec.Proto.Tempcreds[name]
		t.Run(name, func(t *testing.T) {
			cert, err := ParseCertificate(tc.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if got := TemporaryAccessToken(issuer.AccessToken, cert.Seed); got != tc.AccessToken {
				t.Errorf("access token %q, want %q", got, tc.AccessToken)
			}
			got := hmacText(issuer.AccessToken, cert.SignedText(tc.ClientID))
			if name == "emptyScopes" {
				// The JS client's signature is over "scopes:\n"; ours
				// (the server rule) is not, so they must differ.
				if got == cert.Signature {
					t.Errorf("empty-scopes JS signature unexpectedly matches the server rule")
				}
				if js := hmacText(issuer.AccessToken, cert.SignedText(tc.ClientID)+"\n"); js != cert.Signature {
					t.Errorf("JS variant signature %q, want %q", js, cert.Signature)
				}
				return
			}
			if got != cert.Signature {
				t.Errorf("signature %q, want %q", got, cert.Signature)
			}
		})
	}
	e := spec.Proto2.Empty
	cert := Certificate{Version: 1, Scopes: []string{}, Start: 1699999940000, Expiry: 1700003600000,
		Seed: "AAAAAAAAQAeAAAAAAAAAAABBBBBBBBQBeBBBBBBBBBBA"}
	if got := cert.SignedText("issuer"); got != e.SignedString {
		t.Errorf("empty-scopes signed text %q, want %q", got, e.SignedString)
	}
	if got := hmacText(issuer.AccessToken, e.SignedString); got != e.Signature {
		t.Errorf("empty-scopes signature %q, want %q", got, e.Signature)
	}
}

func hmacText(key, text string) string {
	m := getMAC()
	defer putMAC(m)
	return string(m.hmacBase64(key, []byte(text)))
}

// TestReferenceTestAuthVectors replays the testAuthenticate(Get) cases
// against a tester-only validator with the identity expander.
func TestReferenceTestAuthVectors(t *testing.T) {
	var spec struct {
		TestAuth struct {
			H1, H3, H4, Bewit string
			Body1             TestAuthenticateRequest                  `json:"body1"`
			PostOK            struct{ Reply TestAuthenticateResponse } `json:"post_ok"`
			PostAS            struct{ Reply TestAuthenticateResponse } `json:"post_authorizedScopes"`
			PostNoAuth        struct{ Reply TestAuthenticateResponse } `json:"post_noauth"`
			GetTemp           struct{ Reply TestAuthenticateResponse } `json:"get_tempcreds"`
			GetBewit          struct{ Reply TestAuthenticateResponse } `json:"get_bewit"`
			Insufficient      struct {
				Message string `json:"message"`
			} `json:"post_insufficient"`
		} `json:"testauth"`
	}
	loadSpec(t, "reference-vectors.json", &spec)
	ta := spec.TestAuth
	getScopes := []string{"test:*", "auth:create-client:test:*"}
	const post, get = "/api/auth/v1/test-authenticate", "/api/auth/v1/test-authenticate-get/"
	cases := []struct {
		name     string
		scopes   []string
		method   string
		resource string
		auth     string
		want     TestAuthenticateResponse
	}{
		{"post_ok", ta.Body1.ClientScopes, "POST", post, ta.H1, ta.PostOK.Reply},
		{"post_authorizedScopes", ta.Body1.ClientScopes, "POST", post, ta.H3, ta.PostAS.Reply},
		{"post_noauth", ta.Body1.ClientScopes, "POST", post, "", ta.PostNoAuth.Reply},
		{"get_tempcreds", getScopes, "GET", get, ta.H4, ta.GetTemp.Reply},
		{"get_bewit", getScopes, "GET", get + "?bewit=" + ta.Bewit, "", ta.GetBewit.Reply},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := testerAuthenticator(c.scopes...)
			r := a.Authenticate(context.Background(), Request{Method: c.method, Resource: c.resource,
				Host: "tc.example.com", Port: 443, Authorization: c.auth})
			got := TestAuthenticateResponse{ClientID: r.ClientID, Scopes: r.Scopes}
			if r.Status == StatusNoAuth {
				got.ClientID = "auth-failed:no-auth"
			} else if r.Status != StatusSuccess {
				t.Fatalf("status %s: %s", r.Status, r.Message)
			}
			// Order matters here: the reference's sorted-merge quirk keeps
			// the caller's unsorted order after assume:anonymous.
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	t.Run("post_insufficient_message", func(t *testing.T) {
		got := InsufficientScopesMessage("tester", stringer("test:b"), stringer("{\n  \"AllOf\": [\n    \"test:b\"\n  ]\n}"), false)
		if got != ta.Insufficient.Message {
			t.Errorf("got %q\nwant %q", got, ta.Insufficient.Message)
		}
	})
}

type stringer string

func (s stringer) String() string { return string(s) }

// TestProtocolVectors checks protocol-vectors.json: signing headers and
// bewits, payload hashes, certificates and derived tokens.
func TestProtocolVectors(t *testing.T) {
	var pv struct {
		HeaderGet struct {
			URL, Method, ID, Key, Nonce, Header string
			TS                                  int64
		} `json:"header_get"`
		HeaderPost struct {
			URL, Method, Payload, ContentType, Nonce, Header string
			TS                                               int64
		} `json:"header_post_payload"`
		HeaderExt struct {
			URL, Method, Nonce, Header string
			TS                         int64
			ExtJSON                    struct {
				AuthorizedScopes []string `json:"authorizedScopes"`
			} `json:"ext_json"`
		} `json:"header_ext"`
		Bewit struct {
			URL, Bewit, Decoded string
			TTLSec, Exp         int64
		} `json:"bewit"`
		Unnamed, Named struct {
			ClientID, Issuer, IssuerClientID, IssuerAccessToken, SignedText, TemporaryAccessToken string
			Certificate                                                                           Certificate
		}
	}
	var raw map[string]json.RawMessage
	loadSpec(t, "protocol-vectors.json", &raw)
	for key, dst := range map[string]any{
		"header_get": &pv.HeaderGet, "header_post_payload": &pv.HeaderPost, "header_ext": &pv.HeaderExt,
		"bewit": &pv.Bewit, "tempcreds_unnamed": &pv.Unnamed, "tempcreds_named": &pv.Named,
	} {
		if err := json.Unmarshal(raw[key], dst); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	tester := Credentials{ClientID: "tester", AccessToken: "no-secret"}
	sign := func(c Credentials, method, url string, o SignOptions) string {
		t.Helper()
		h, err := SignRequest(c, method, url, o)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	t.Run("header_get", func(t *testing.T) {
		v := pv.HeaderGet
		got := sign(Credentials{ClientID: v.ID, AccessToken: v.Key}, v.Method, v.URL, SignOptions{Now: time.Unix(v.TS, 0), Nonce: v.Nonce})
		if got != v.Header {
			t.Errorf("got  %s\nwant %s", got, v.Header)
		}
	})
	t.Run("header_post_payload", func(t *testing.T) {
		v := pv.HeaderPost
		got := sign(tester, v.Method, v.URL, SignOptions{Now: time.Unix(v.TS, 0), Nonce: v.Nonce,
			ContentType: v.ContentType, Payload: []byte(v.Payload), HasPayload: true})
		if got != v.Header {
			t.Errorf("got  %s\nwant %s", got, v.Header)
		}
	})
	t.Run("header_ext", func(t *testing.T) {
		v := pv.HeaderExt
		c := tester
		c.AuthorizedScopes = v.ExtJSON.AuthorizedScopes
		got := sign(c, v.Method, v.URL, SignOptions{Now: time.Unix(v.TS, 0), Nonce: v.Nonce})
		if got != v.Header {
			t.Errorf("got  %s\nwant %s", got, v.Header)
		}
	})
	t.Run("bewit", func(t *testing.T) {
		v := pv.Bewit
		signed, err := SignedURL(tester, v.URL, time.Duration(v.TTLSec)*time.Second, time.Unix(v.Exp-v.TTLSec, 0))
		if err != nil {
			t.Fatal(err)
		}
		if want := v.URL + "?bewit=" + v.Bewit; signed != want {
			t.Errorf("got  %s\nwant %s", signed, want)
		}
		if got := string(decodeBase64Lenient(nil, v.Bewit)); got != v.Decoded {
			t.Errorf("decoded %q, want %q", got, v.Decoded)
		}
	})
	for name, v := range map[string]struct {
		ClientID, Issuer, IssuerClientID, IssuerAccessToken, SignedText, TemporaryAccessToken string
		Certificate                                                                           Certificate
	}{"unnamed": pv.Unnamed, "named": pv.Named} {
		t.Run("tempcreds_"+name, func(t *testing.T) {
			credName := v.ClientID
			if credName == "" {
				credName = v.IssuerClientID
			}
			if got := v.Certificate.SignedText(credName); got != v.SignedText {
				t.Errorf("signed text %q, want %q", got, v.SignedText)
			}
			if got := hmacText(v.IssuerAccessToken, v.SignedText); got != v.Certificate.Signature {
				t.Errorf("signature %q, want %q", got, v.Certificate.Signature)
			}
			if got := TemporaryAccessToken(v.IssuerAccessToken, v.Certificate.Seed); got != v.TemporaryAccessToken {
				t.Errorf("access token %q, want %q", got, v.TemporaryAccessToken)
			}
			issuerID := v.IssuerClientID
			if issuerID == "" {
				issuerID = v.Issuer
			}
			creds, err := CreateTemporaryCredentials(TemporaryOptions{
				Issuer:   Credentials{ClientID: issuerID, AccessToken: v.IssuerAccessToken},
				ClientID: v.ClientID, Scopes: v.Certificate.Scopes, Seed: v.Certificate.Seed,
				Start: time.UnixMilli(v.Certificate.Start), Expiry: time.UnixMilli(v.Certificate.Expiry),
			})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCertificate(creds.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cert, v.Certificate) || creds.AccessToken != v.TemporaryAccessToken || creds.ClientID != credName {
				t.Errorf("CreateTemporaryCredentials = %+v / %+v, want %+v", creds, cert, v.Certificate)
			}
		})
	}
}

// TestSpecTextVectors are the worked examples of docs/protocol.md
// ("Worked examples") that are not in the JSON files.
func TestSpecTextVectors(t *testing.T) {
	tester := Credentials{ClientID: "tester", AccessToken: "no-secret"}
	at := SignOptions{Now: time.Unix(1700000000, 0), Nonce: "abc123"}
	cases := []struct {
		name, method, url string
		creds             Credentials
		opts              SignOptions
		want              string
	}{
		{"V1", "GET", "https://tc.example.com/api/auth/v1/test-authenticate-get/", tester, at,
			`Hawk id="tester", ts="1700000000", nonce="abc123", mac="aZSnuGaqz/8X8DWzS72gI8h0vFzYSXp4i1Tu7xLeKLk="`},
		{"V2", "GET", "https://tc.example.com/api/auth/v1/test-authenticate-get/",
			Credentials{ClientID: "tester", AccessToken: "no-secret", AuthorizedScopes: []string{"test:a"}}, at,
			`Hawk id="tester", ts="1700000000", nonce="abc123", ext="eyJhdXRob3JpemVkU2NvcGVzIjpbInRlc3Q6YSJdfQ==", mac="krNwQcqR9vAmev7PdWTNTqJ9SM35dO+gX0jtsCrTcI4="`},
		{"V3", "POST", "https://tc.example.com/api/auth/v1/test-authenticate", tester,
			SignOptions{Now: at.Now, Nonce: at.Nonce, ContentType: "application/json", HasPayload: true,
				Payload: []byte(`{"clientScopes":["test:*"],"requiredScopes":["test:x"]}`)},
			`Hawk id="tester", ts="1700000000", nonce="abc123", hash="anRMAL5q3m20c+R+4gA0DDxDNf3HEIyOpAd6bAijWg8=", mac="SNWyzvLjLWu+ktWa0BlgJGNdpkiJsdXIF9+fUG4QL1U="`},
		{"V4", "GET", "http://localhost:8080/api/auth/v1/clients/?prefix=a", tester, at,
			`Hawk id="tester", ts="1700000000", nonce="abc123", mac="TYakedctJtfbLi6uM5WCI3lL6Hy9pFHuRRceSvMZa2k="`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := SignRequest(c.creds, c.method, c.url, c.opts)
			if err != nil || got != c.want {
				t.Errorf("got %s (%v)\nwant %s", got, err, c.want)
			}
		})
	}
	t.Run("V1 normalized", func(t *testing.T) {
		got := NormalizedString("header", Artifacts{Method: "get", Resource: "/api/auth/v1/test-authenticate-get/",
			Host: "TC.example.com", Port: 443, TS: "1700000000", Nonce: "abc123"})
		if want := "hawk.1.header\n1700000000\nabc123\nGET\n/api/auth/v1/test-authenticate-get/\ntc.example.com\n443\n\n\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	hashes := []struct{ ct, body, want string }{
		{"application/json", `{"clientScopes":["test:*"],"requiredScopes":["test:x"]}`, "anRMAL5q3m20c+R+4gA0DDxDNf3HEIyOpAd6bAijWg8="},
		{"application/json; charset=utf-8", `{"clientScopes":["test:*"],"requiredScopes":["test:x"]}`, "anRMAL5q3m20c+R+4gA0DDxDNf3HEIyOpAd6bAijWg8="},
		{" Application/JSON ;x", `{"clientScopes":["test:*"],"requiredScopes":["test:x"]}`, "anRMAL5q3m20c+R+4gA0DDxDNf3HEIyOpAd6bAijWg8="},
		{"", "", "B0weSUXsMcb5UhL41FZbrUJCAotzSI3HawE1NPLRUz8="},
		{"application/json", `{"scopes":[]}`, "im/w8O/YZqe6xv2htcJJ256koWGY/jBSwDsAHujqat0="},
		{"application/json", `{"scopes": []}`, "p+IOcsUCyITsTsZr56daGMOoFjTqJE7PmqTNkGQSYsw="},
	}
	for _, h := range hashes {
		if got := PayloadHash(h.ct, []byte(h.body)); got != h.want {
			t.Errorf("PayloadHash(%q, %q) = %s, want %s", h.ct, h.body, got, h.want)
		}
	}
	t.Run("V5 bewit", func(t *testing.T) {
		got, err := SignedURL(tester, "https://tc.example.com/api/auth/v1/test-authenticate-get/", 900*time.Second, time.UnixMilli(1700000000999))
		want := "https://tc.example.com/api/auth/v1/test-authenticate-get/?bewit=dGVzdGVyXDE3MDAwMDA5MDBcWnhoeXp5WDB4bW50dHViT0pUaUVlRTBWRGlBTzN0QmNna2QwYWdzMFlXOD1c"
		if err != nil || got != want {
			t.Errorf("got %s (%v)\nwant %s", got, err, want)
		}
		c := tester
		c.AuthorizedScopes = []string{"test:a"}
		got, err = SignedURL(c, "https://tc.example.com/api/auth/v1/clients/?prefix=a", 900*time.Second, vectorNow)
		if err != nil {
			t.Fatal(err)
		}
		_, token, _ := strings.Cut(got, "&bewit=")
		if dec, want := string(decodeBase64Lenient(nil, token)),
			`tester\1700000900\FikVRvwYqYUi7L8/biH6UeEneHYBE8v3gDHEP0EepnI=\eyJhdXRob3JpemVkU2NvcGVzIjpbInRlc3Q6YSJdfQ==`; dec != want {
			t.Errorf("decoded bewit %q, want %q", dec, want)
		}
	})
}
