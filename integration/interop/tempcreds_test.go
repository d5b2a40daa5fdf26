package interop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

var (
	certStart  = frozen.Add(-time.Minute)
	certExpiry = frozen.Add(time.Hour)
)

// tcCreds are credentials as taskcluster-client takes and returns them.
type tcCreds struct {
	ClientID    string `json:"clientId"`
	AccessToken string `json:"accessToken"`
	Certificate string `json:"certificate,omitempty"`
}

func hmacBase64(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// tempCase is one set of temporary credentials, made by taskcluster-client
// (js) or protocol.CreateTemporaryCredentials (go), then used through
// taskcluster-client against a Go server.
type tempCase struct {
	name       string
	madeBy     string // "js" or "go"
	clientID   string // "" = unnamed
	scopes     []string
	authorized []string // client option authorizedScopes; nil = none
	lenient    bool     // server accepts the JS empty-scopes signature
	tamper     func(tcCreds) tcCreds
	wantID     string
	wantScopes []string
	wantError  string // "" = success
}

// withCertScopes rewrites the certificate's scopes, keeping its signature.
func withCertScopes(scopes ...string) func(tcCreds) tcCreds {
	return func(c tcCreds) tcCreds {
		var cert map[string]any
		if err := json.Unmarshal([]byte(c.Certificate), &cert); err != nil {
			panic(err)
		}
		cert["scopes"] = scopes
		b, _ := json.Marshal(cert)
		c.Certificate = string(b)
		return c
	}
}

var tempCases = []tempCase{
	{name: "unnamed", madeBy: "js", scopes: []string{"test:a", "test:b"},
		wantID: issuerID, wantScopes: []string{"assume:anonymous", "test:a", "test:b"}},
	{name: "named", madeBy: "js", clientID: "temp/worker-1", scopes: []string{"test:a", "assume:project:x"},
		wantID: "temp/worker-1", wantScopes: []string{"assume:anonymous", "assume:project:x", "test:a"}},
	{name: "unnamed with authorizedScopes", madeBy: "js", scopes: []string{"test:a", "test:b"}, authorized: []string{"test:b"},
		wantID: issuerID, wantScopes: []string{"assume:anonymous", "test:b"}},
	{name: "named with authorizedScopes []", madeBy: "js", clientID: "temp/worker-2", scopes: []string{"test:*"}, authorized: []string{},
		wantID: "temp/worker-2", wantScopes: []string{"assume:anonymous"}},
	{name: "named with authorizedScopes beyond the certificate", madeBy: "js", clientID: "temp/w3", scopes: []string{"test:a"},
		authorized: []string{"test:b"}, wantError: "Supplied credentials do not satisfy authorizedScopes"},
	{name: "named outside the issuer's create-client scope", madeBy: "js", clientID: "elsewhere/w", scopes: []string{"test:a"},
		wantError: "ext.certificate issuer `issuer` doesn't have `auth:create-client:elsewhere/w` for supplied clientId."},
	{name: "scopes beyond the issuer", madeBy: "js", scopes: []string{"test:a", "queue:x"},
		// The reference lists every certificate scope, not just the missing ones.
		wantError: "ext.certificate issuer `issuer` doesn't satisfy all certificate scopes test:a, queue:x.  The temporary credentials were not generated correctly."},
	{name: "unnamed, certificate scopes tampered", madeBy: "js", scopes: []string{"test:a"}, tamper: withCertScopes("test:a", "test:b"),
		wantError: "ext.certificate.signature is not valid"},
	{name: "named, certificate scopes tampered", madeBy: "js", clientID: "temp/w4", scopes: []string{"test:a"}, tamper: withCertScopes("test:*"),
		wantError: "ext.certificate.signature is not valid, or wrong clientId provided"},
	{name: "named, used under another temp name", madeBy: "js", clientID: "temp/w5", scopes: []string{"test:a"},
		tamper:    func(c tcCreds) tcCreds { c.ClientID = "temp/other"; return c },
		wantError: "ext.certificate.signature is not valid, or wrong clientId provided"},
	// [quirk] docs/protocol.md §7: the JS client signs "scopes:\n" when there are no
	// scopes, the server checks "scopes:", so its empty-scope credentials are
	// rejected — unless the verifier opts in to the JS variant.
	{name: "unnamed, no scopes (JS quirk)", madeBy: "js", scopes: []string{},
		wantError: "ext.certificate.signature is not valid"},
	{name: "named, no scopes (JS quirk)", madeBy: "js", clientID: "temp/w6", scopes: []string{},
		wantError: "ext.certificate.signature is not valid, or wrong clientId provided"},
	{name: "unnamed, no scopes, lenient verifier", madeBy: "js", scopes: []string{}, lenient: true,
		wantID: issuerID, wantScopes: []string{"assume:anonymous"}},

	{name: "unnamed", madeBy: "go", scopes: []string{"test:a", "test:b"},
		wantID: issuerID, wantScopes: []string{"assume:anonymous", "test:a", "test:b"}},
	{name: "named", madeBy: "go", clientID: "temp/worker-1", scopes: []string{"test:a", "assume:project:x"},
		wantID: "temp/worker-1", wantScopes: []string{"assume:anonymous", "assume:project:x", "test:a"}},
	{name: "named with authorizedScopes", madeBy: "go", clientID: "temp/g2", scopes: []string{"test:*"}, authorized: []string{"test:q"},
		wantID: "temp/g2", wantScopes: []string{"assume:anonymous", "test:q"}},
	{name: "unnamed, no scopes (signed the server's way)", madeBy: "go", scopes: []string{},
		wantID: issuerID, wantScopes: []string{"assume:anonymous"}},
	{name: "named, no scopes", madeBy: "go", clientID: "temp/g3", scopes: nil,
		wantID: "temp/g3", wantScopes: []string{"assume:anonymous"}},
	{name: "named, certificate scopes tampered", madeBy: "go", clientID: "temp/g4", scopes: []string{"test:a"}, tamper: withCertScopes("test:b"),
		wantError: "ext.certificate.signature is not valid, or wrong clientId provided"},
}

// Temporary credentials from both issuers are used through taskcluster-client
// (its ext building and Hawk header) against a Go server running the
// Authenticator; the server's verdict is what is checked.
func TestTemporaryCredentialsInterop(t *testing.T) {
	requireNode(t)
	issuer := map[string]string{"clientId": issuerID, "accessToken": issuerKey}

	// 1. Have taskcluster-client make the JS credentials.
	var toMake []any
	var jsIdx []int
	for i, c := range tempCases {
		if c.madeBy != "js" {
			continue
		}
		m := map[string]any{"op": "createTemporaryCredentials", "credentials": issuer, "scopes": c.scopes,
			"start": certStart.UnixMilli(), "expiry": certExpiry.UnixMilli()}
		if c.clientID != "" {
			m["clientId"] = c.clientID
		}
		toMake = append(toMake, m)
		jsIdx = append(jsIdx, i)
	}
	made := runNode(t, "tc.js", toMake)
	creds := make([]tcCreds, len(tempCases))
	for k, i := range jsIdx {
		made[k].value(t, tempCases[i].name, &creds[i])
		checkJSCertificate(t, tempCases[i], creds[i])
	}
	for i, c := range tempCases {
		if c.madeBy != "go" {
			continue
		}
		gc, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{
			Issuer:   protocol.Credentials{ClientID: issuerID, AccessToken: issuerKey},
			ClientID: c.clientID, Scopes: c.scopes, Start: certStart, Expiry: certExpiry,
		})
		if err != nil {
			t.Fatalf("go %s: CreateTemporaryCredentials: %v", c.name, err)
		}
		creds[i] = tcCreds{gc.ClientID, gc.AccessToken, gc.Certificate}
	}

	// 2. Use every set through taskcluster-client against the Go servers.
	strict := newAuthServer(t, newAuthenticator(testClients()))
	lenientAuth := newAuthenticator(testClients())
	lenientAuth.AcceptJSEmptyScopesSignature = true
	lenient := newAuthServer(t, lenientAuth)
	calls := make([]any, len(tempCases))
	for i, c := range tempCases {
		cr := creds[i]
		if c.tamper != nil {
			cr = c.tamper(cr)
		}
		root := strict.URL
		if c.lenient {
			root = lenient.URL
		}
		m := map[string]any{"op": "call", "rootUrl": root, "credentials": cr, "now": frozen.UnixMilli()}
		// Alternate a GET and a POST with a body, so both client paths sign.
		if i%2 == 0 {
			m["method"] = "currentScopes"
		} else {
			m["method"], m["args"] = "testAuthenticate", []any{map[string]any{"clientScopes": []string{}, "requiredScopes": []string{}}}
		}
		if c.authorized != nil {
			m["authorizedScopes"] = c.authorized
		}
		calls[i] = m
	}
	out := runNode(t, "tc.js", calls)
	strictResults, lenientResults := strict.take(), lenient.take()
	for i, c := range tempCases {
		var reply peerVerdict
		out[i].value(t, c.name, &reply)
		seen := &strictResults
		if c.lenient {
			seen = &lenientResults
		}
		if len(*seen) == 0 {
			t.Fatalf("%s %s: the Go server saw no request (client said %q)", c.madeBy, c.name, reply.Message)
		}
		res := (*seen)[0]
		*seen = (*seen)[1:]
		what := c.madeBy + "-made " + c.name
		if c.wantError == "" {
			wantSuccess(t, what, res, c.wantID, c.wantScopes)
			if !res.Expires.Equal(certExpiry) {
				t.Errorf("%s: expires %v, want the certificate's expiry %v", what, res.Expires, certExpiry)
			}
			if !reply.OK {
				t.Errorf("%s: taskcluster-client saw failure %d %s", what, reply.StatusCode, reply.Message)
			}
			continue
		}
		if res.Status != protocol.StatusFailed || !strings.HasPrefix(res.Message, c.wantError) {
			t.Errorf("%s: got %s %q, want auth-failed %q", what, res.Status, res.Message, c.wantError)
		}
		if reply.OK || reply.StatusCode != 401 {
			t.Errorf("%s: taskcluster-client saw ok=%v status %d, want 401", what, reply.OK, reply.StatusCode)
		}
	}
	if len(strictResults)+len(lenientResults) > 0 {
		t.Errorf("the Go servers saw %d more requests than calls made", len(strictResults)+len(lenientResults))
	}

	// 3. The same credentials in signed URLs (the certificate rides in the
	// bewit's ext) from taskcluster-client's buildSignedUrl.
	var signCases []any
	var signIdx []int
	for i, c := range tempCases {
		if c.wantError != "" || c.lenient {
			continue
		}
		m := map[string]any{"op": "buildSignedUrl", "rootUrl": "https://tc.example.com", "method": "currentScopes",
			"credentials": creds[i], "expiration": 600, "now": frozen.UnixMilli()}
		if c.authorized != nil {
			m["authorizedScopes"] = c.authorized
		}
		signCases = append(signCases, m)
		signIdx = append(signIdx, i)
	}
	signed := signedURLs(t, signCases)
	auth := newAuthenticator(testClients())
	for k, i := range signIdx {
		c := tempCases[i]
		checkGoBewit(t, c.madeBy+"-made "+c.name+" in a signed URL", auth, signed[k].Hostname(), 443, signed[k].RequestURI(),
			frozen.Add(600*time.Second), c.wantID, c.wantScopes)
	}
}

// checkJSCertificate recomputes what taskcluster-client produced from the
// spec's formulas: the temporary accessToken, and the signature over the
// server's signed string — or, for no scopes, over that string plus the
// trailing "\n" the JS client adds (the [quirk] of docs/protocol.md §7).
func checkJSCertificate(t *testing.T, c tempCase, got tcCreds) {
	t.Helper()
	cert, err := protocol.ParseCertificate(got.Certificate)
	if err != nil {
		t.Fatalf("js %s: %v", c.name, err)
	}
	wantID := issuerID
	if c.clientID != "" {
		wantID = c.clientID
		if cert.Issuer != issuerID {
			t.Errorf("js %s: issuer %q, want %q", c.name, cert.Issuer, issuerID)
		}
	} else if cert.Issuer != "" {
		t.Errorf("js %s: unnamed certificate has issuer %q", c.name, cert.Issuer)
	}
	if got.ClientID != wantID {
		t.Errorf("js %s: clientId %q, want %q", c.name, got.ClientID, wantID)
	}
	if cert.Version != 1 || cert.Start != certStart.UnixMilli() || cert.Expiry != certExpiry.UnixMilli() ||
		len(cert.Seed) != 44 || !slices.Equal(cert.Scopes, c.scopes) && len(c.scopes)+len(cert.Scopes) > 0 {
		t.Errorf("js %s: unexpected certificate %s", c.name, got.Certificate)
	}
	if want := protocol.TemporaryAccessToken(issuerKey, cert.Seed); got.AccessToken != want {
		t.Errorf("js %s: accessToken %q, want HMAC(issuer key, seed) = %q", c.name, got.AccessToken, want)
	}
	signed := cert.SignedText(wantID)
	serverSig := hmacBase64(issuerKey, signed)
	jsSig := hmacBase64(issuerKey, signed+"\n")
	switch {
	case len(c.scopes) > 0 && cert.Signature != serverSig:
		t.Errorf("js %s: signature %q, want %q over %q", c.name, cert.Signature, serverSig, signed)
	case len(c.scopes) == 0 && cert.Signature != jsSig:
		t.Errorf("js %s: with no scopes the JS client no longer signs %q+\"\\n\" (got %q, server-style would be %q): docs/protocol.md §7 quirk changed",
			c.name, signed, cert.Signature, serverSig)
	}
}
