package protocol

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func replaceJSON(t *testing.T, doc, key string, value any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	b, _ := json.Marshal(m)
	return string(b)
}

// The certificate cache must never change a verdict: every case is
// authenticated with and without it, twice (miss, then hit).
func TestCertificateCacheKeepsVerdicts(t *testing.T) {
	ctx := context.Background()
	issuer := Credentials{ClientID: "issuer", AccessToken: issuerKey}
	mk := func(o TemporaryOptions) Credentials {
		t.Helper()
		o.Issuer = issuer
		if o.Expiry.IsZero() {
			o.Start, o.Expiry = vectorNow.Add(-time.Minute), vectorNow.Add(time.Hour)
		}
		c, err := CreateTemporaryCredentials(o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := mk(TemporaryOptions{Scopes: []string{"test:a"}})
	named := mk(TemporaryOptions{ClientID: "temp/x", Scopes: []string{"test:b"}})
	tamperedSig := good
	tamperedSig.Certificate = replaceJSON(t, good.Certificate, "signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	shortLived := mk(TemporaryOptions{Scopes: []string{"test:a"}, Start: vectorNow.Add(-time.Hour), Expiry: vectorNow.Add(time.Minute)})

	for _, tc := range []struct {
		name  string
		creds Credentials
		want  Status
	}{
		{"unnamed", good, StatusSuccess},
		{"named", named, StatusSuccess},
		{"tampered signature after a good one", tamperedSig, StatusFailed},
		{"unnamed again", good, StatusSuccess},
		{"short-lived", shortLived, StatusSuccess},
	} {
		plain := benchAuthenticator()
		cached := benchAuthenticator()
		cached.Certificates = NewCertificateCache(16)
		req := benchRequest(t, tc.creds)
		for round := 0; round < 2; round++ {
			req.Authorization, _ = SignRequest(tc.creds, "GET", benchURL, SignOptions{Now: vectorNow})
			p, c := plain.Authenticate(ctx, req), cached.Authenticate(ctx, req)
			if p.Status != tc.want || c.Status != p.Status || c.Message != p.Message || c.ClientID != p.ClientID ||
				!slices.Equal(c.Scopes, p.Scopes) || !c.Expires.Equal(p.Expires) {
				t.Fatalf("%s round %d: cached %+v, uncached %+v, want %s", tc.name, round, c, p, tc.want)
			}
		}
	}
}

// A hit still re-checks what is not a function of the certificate text
// and the issuer's token: the clock and the issuer's scopes. A reset
// token misses.
func TestCertificateCacheRechecks(t *testing.T) {
	ctx := context.Background()
	now := vectorNow
	a := benchAuthenticator()
	a.Now = func() time.Time { return now }
	a.Certificates = NewCertificateCache(16)
	temp, err := CreateTemporaryCredentials(TemporaryOptions{Issuer: Credentials{ClientID: "issuer", AccessToken: issuerKey},
		Scopes: []string{"test:a"}, Start: now.Add(-time.Minute), Expiry: now.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	auth := func() Result {
		h, _ := SignRequest(temp, "GET", benchURL, SignOptions{Now: now})
		r := benchRequest(t, temp)
		r.Authorization = h
		return a.Authenticate(ctx, r)
	}
	if r := auth(); r.Status != StatusSuccess || a.Certificates.Len() != 1 {
		t.Fatalf("first: %+v (cache %d)", r, a.Certificates.Len())
	}
	// Expired since.
	now = vectorNow.Add(20 * time.Minute)
	if r := auth(); r.Status != StatusFailed {
		t.Fatalf("expired certificate accepted from the cache: %+v", r)
	}
	now = vectorNow
	// The issuer lost the certificate's scope.
	clients := a.Clients.(memClients)
	iss := clients["issuer"]
	saved := iss.ExpandedScopes
	iss.ExpandedScopes = []string{"queue:*"}
	clients["issuer"] = iss
	if r := auth(); r.Status != StatusFailed {
		t.Fatalf("certificate beyond the issuer accepted from the cache: %+v", r)
	}
	// The issuer's token was reset: the cached verdict no longer applies.
	iss.ExpandedScopes, iss.AccessToken = saved, "another-token-0123456789abcdefgh"
	clients["issuer"] = iss
	if r := auth(); r.Status != StatusFailed {
		t.Fatalf("certificate signed with the old token accepted: %+v", r)
	}
	var nilCache *CertificateCache
	if _, ok := nilCache.lookup("a", nil, "t", "s"); ok || nilCache.Len() != 0 {
		t.Fatal("nil cache answered")
	}
	nilCache.store("a", nil, "t", "s", [43]byte{})
}
