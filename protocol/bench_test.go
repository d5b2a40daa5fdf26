package protocol

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
	"time"
)

// cheapScopes is a ScopeOps that costs (almost) nothing, so the benchmarks
// measure the protocol work: Expand returns its argument, Satisfies is the
// plain rule.
type cheapScopes struct{}

func (cheapScopes) Expand(s []string) []string { return s }
func (cheapScopes) Satisfies(have []string, need string) bool {
	return identityScopes{}.Satisfies(have, need)
}

func benchAuthenticator() *Authenticator {
	return &Authenticator{
		Clients: memClients{"issuer": {ClientID: "issuer", AccessToken: issuerKey,
			ExpandedScopes: []string{"assume:project:x", "auth:create-client:temp/*", "queue:*", "test:*"},
			Expires:        vectorNow.Add(365 * 24 * time.Hour)}},
		Scopes: cheapScopes{},
		Now:    func() time.Time { return vectorNow },
	}
}

const benchURL = "https://tc.example.com/api/queue/v1/task/abc123/runs/0/artifacts/public%2Flogs%2Flive.log?x=1"

func benchRequest(tb testing.TB, c Credentials) Request {
	h, err := SignRequest(c, "GET", benchURL, SignOptions{Now: vectorNow, Nonce: "n0nce1"})
	if err != nil {
		tb.Fatal(err)
	}
	return Request{Method: "GET", Resource: "/api/queue/v1/task/abc123/runs/0/artifacts/public%2Flogs%2Flive.log?x=1",
		Host: "tc.example.com", Port: 443, Authorization: h}
}

func benchTempCreds(tb testing.TB) Credentials {
	c, err := CreateTemporaryCredentials(TemporaryOptions{
		Issuer: Credentials{ClientID: "issuer", AccessToken: issuerKey}, ClientID: "temp/worker-1",
		Scopes: []string{"queue:create-task:*", "queue:get-artifact:public/*", "test:a", "test:b"},
		Start:  vectorNow.Add(-time.Minute), Expiry: vectorNow.Add(time.Hour),
	})
	if err != nil {
		tb.Fatal(err)
	}
	c.AuthorizedScopes = []string{"queue:get-artifact:public/*", "test:a"}
	return c
}

func benchAuthenticate(b *testing.B, req Request, mut ...func(*Authenticator)) {
	a := benchAuthenticator()
	for _, m := range mut {
		m(a)
	}
	ctx := context.Background()
	if r := a.Authenticate(ctx, req); r.Status != StatusSuccess {
		b.Fatalf("setup: %+v", r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := a.Authenticate(ctx, req); r.Status != StatusSuccess {
			b.Fatal(r.Message)
		}
	}
}

func BenchmarkAuthenticatePermanent(b *testing.B) {
	benchAuthenticate(b, benchRequest(b, Credentials{ClientID: "issuer", AccessToken: issuerKey}))
}

// BenchmarkAuthenticateCertAndAuthorizedScopes: "uncached" verifies the
// certificate every time (three HMACs); "cached" is the steady state of
// the control plane and the sidecar, whose CertificateCache remembers a
// verified certificate (one HMAC: the request's).
func BenchmarkAuthenticateCertAndAuthorizedScopes(b *testing.B) {
	b.Run("uncached", func(b *testing.B) { benchAuthenticate(b, benchRequest(b, benchTempCreds(b))) })
	b.Run("cached", func(b *testing.B) {
		benchAuthenticate(b, benchRequest(b, benchTempCreds(b)), func(a *Authenticator) { a.Certificates = NewCertificateCache(0) })
	})
}

func BenchmarkAuthenticateBewit(b *testing.B) {
	u, err := SignedURL(benchTempCreds(b), benchURL, time.Hour, vectorNow)
	if err != nil {
		b.Fatal(err)
	}
	benchAuthenticate(b, Request{Method: "GET", Resource: u[len("https://tc.example.com"):], Host: "tc.example.com", Port: 443})
}

func BenchmarkParseHeader(b *testing.B) {
	h := benchRequest(b, benchTempCreds(b)).Authorization
	b.ReportAllocs()
	b.SetBytes(int64(len(h)))
	for b.Loop() {
		if _, err := ParseHeader(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineHMAC is the yardstick for the figures above: one
// stdlib HMAC-SHA256 over the normalized string of the certificate +
// authorizedScopes request (the verifier computes three HMACs on that path,
// this one being the largest).
func BenchmarkBaselineHMAC(b *testing.B) {
	req := benchRequest(b, benchTempCreds(b))
	h, err := ParseHeader(req.Authorization)
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(NormalizedString("header", Artifacts{Method: req.Method, Resource: req.Resource, Host: req.Host, Port: req.Port,
		TS: h.TS, Nonce: h.Nonce, Ext: h.Ext}))
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, []byte(issuerKey))
		m.Write(msg)
		m.Sum(nil)
	}
}

// TestAuthenticateAllocations pins the allocation budget of the hot path
// (counts, not time, so it is deterministic). With a ScopeOps that does not
// allocate itself: a permanent-credential header costs one allocation (the
// scope list with assume:anonymous handed to ScopeOps.Expand); a named
// certificate + authorizedScopes header costs six: the decoded ext text,
// the two scope arrays, the "auth:create-client:<id>" scope to test, and
// two lists handed to Expand (the authorizedScopes check and the result).
// A bewit adds the decoded token.
func TestAuthenticateAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	a := benchAuthenticator()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		req  Request
		max  float64
	}{
		{"permanent", benchRequest(t, Credentials{ClientID: "issuer", AccessToken: issuerKey}), 1},
		{"certificate+authorizedScopes", benchRequest(t, benchTempCreds(t)), 6},
		{"bewit with certificate+authorizedScopes", func() Request {
			u, err := SignedURL(benchTempCreds(t), benchURL, time.Hour, vectorNow)
			if err != nil {
				t.Fatal(err)
			}
			return Request{Method: "GET", Resource: u[len("https://tc.example.com"):], Host: "tc.example.com", Port: 443}
		}(), 7},
	} {
		got := testing.AllocsPerRun(200, func() {
			if r := a.Authenticate(ctx, c.req); r.Status != StatusSuccess {
				t.Fatal(r.Message)
			}
		})
		if got > c.max {
			t.Errorf("%s: %.1f allocations per Authenticate, budget %.0f", c.name, got, c.max)
		}
	}
	h := benchRequest(t, benchTempCreds(t)).Authorization
	if got := testing.AllocsPerRun(200, func() { ParseHeader(h) }); got != 0 {
		t.Errorf("ParseHeader: %.1f allocations, want 0", got)
	}
}
