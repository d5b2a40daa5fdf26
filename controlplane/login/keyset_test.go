package login

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/oauth2-proxy/mockoidc"
)

// fakeJWKSServer is an httptest JWKS endpoint written for these tests: it
// serves the public halves of keys (settable), counts fetches, and can
// fail or hold every fetch.
type fakeJWKSServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	status  int           // non-200: answer that
	hold    chan struct{} // non-nil: wait for it before answering
}

func newFakeJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *fakeJWKSServer {
	f := &fakeJWKSServer{keys: keys, status: http.StatusOK}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.fetches.Add(1)
		f.mu.Lock()
		hold, status := f.hold, f.status
		set := jose.JSONWebKeySet{}
		for _, k := range f.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		f.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeJWKSServer) set(fn func(f *fakeJWKSServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func ecKey(t testing.TB, kid string) jose.JSONWebKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

func tokenBy(t testing.TB, k jose.JSONWebKey, kid string, claims map[string]any) string {
	return signJWT(t, jose.ES256, k.Key, kid, claims)
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestKeySet(f *fakeJWKSServer, clock *testClock) *jwksKeySet {
	return newJWKSKeySet(f.URL, &http.Client{Timeout: 5 * time.Second}, DefaultJWKSMinRefresh, clock.Now, provDiscardLogger())
}

// verifyAll verifies tokens with workers goroutines and returns the errors.
func verifyAll(ks oidc.KeySet, tokens []string, workers int) []error {
	errs := make([]error, len(tokens))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(tokens); i = int(next.Add(1) - 1) {
				_, errs[i] = ks.VerifySignature(context.Background(), tokens[i])
			}
		}()
	}
	wg.Wait()
	return errs
}

// TestKeySetRandomKids: 1000 tokens naming random key ids cost one JWKS
// fetch (go-oidc's remote key set, measured beside it, fetches for every
// one of them), and a genuine token still verifies.
func TestKeySetRandomKids(t *testing.T) {
	real, attacker := ecKey(t, "k1"), ecKey(t, "")
	srv := newFakeJWKSServer(t, real)
	clock := &testClock{now: time.Now()}
	ks := newTestKeySet(srv, clock)
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = tokenBy(t, attacker, "kid-"+strconv.Itoa(i)+"-"+randomToken(6), map[string]any{"sub": "x"})
	}
	for i, err := range verifyAll(ks, tokens, 8) {
		if !errors.Is(err, errUnknownKey) {
			t.Fatalf("token %d: %v, want errUnknownKey", i, err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 1000 random key ids, want 1", n)
	}
	if _, err := ks.VerifySignature(context.Background(), tokenBy(t, real, "k1", map[string]any{"sub": "x"})); err != nil {
		t.Fatalf("a genuine token: %v", err)
	}

	// The same flood against go-oidc's own remote key set.
	plain := newFakeJWKSServer(t, real)
	remote := oidc.NewRemoteKeySet(context.Background(), plain.URL)
	verifyAll(remote, tokens, 1)
	t.Logf("JWKS fetches for 1000 tokens with random key ids: %d with jwksKeySet, %d with oidc.RemoteKeySet", srv.fetches.Load(), plain.fetches.Load())
}

// TestKeySetRotation: a token signed by a key published since the last
// fetch verifies once minRefresh has passed; before, it is refused
// without a fetch.
func TestKeySetRotation(t *testing.T) {
	k1, k2 := ecKey(t, "k1"), ecKey(t, "k2")
	srv := newFakeJWKSServer(t, k1)
	clock := &testClock{now: time.Now()}
	ks := newTestKeySet(srv, clock)
	if _, err := ks.VerifySignature(context.Background(), tokenBy(t, k1, "k1", map[string]any{})); err != nil {
		t.Fatal(err)
	}
	srv.set(func(f *fakeJWKSServer) { f.keys = append(f.keys, k2) })
	new := tokenBy(t, k2, "k2", map[string]any{})
	clock.add(DefaultJWKSMinRefresh / 2)
	if _, err := ks.VerifySignature(context.Background(), new); !errors.Is(err, errUnknownKey) || srv.fetches.Load() != 1 {
		t.Fatalf("inside minRefresh: %v after %d fetches", err, srv.fetches.Load())
	}
	clock.add(DefaultJWKSMinRefresh)
	if _, err := ks.VerifySignature(context.Background(), new); err != nil || srv.fetches.Load() != 2 {
		t.Fatalf("after minRefresh: %v after %d fetches", err, srv.fetches.Load())
	}
}

// TestKeySetRefusals: a known key id with a forged signature, a token
// without key id signed by nobody, alg none and HS256 are refused; only
// the first fetch happens (a bad signature is no rotation signal).
func TestKeySetRefusals(t *testing.T) {
	k1, other := ecKey(t, "k1"), ecKey(t, "")
	srv := newFakeJWKSServer(t, k1)
	clock := &testClock{now: time.Now()}
	ks := newTestKeySet(srv, clock)
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"known kid, forged signature", tokenBy(t, other, "k1", map[string]any{}), errBadSignature},
		{"known kid, forged again", tokenBy(t, other, "k1", map[string]any{"a": 1}), errBadSignature},
		{"no kid, nobody's key", tokenBy(t, other, "", map[string]any{}), errBadSignature},
		{"alg none", signJWT(t, "none", nil, "k1", map[string]any{}), nil},
		{"HS256", signJWT(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "k1", map[string]any{}), nil},
		{"garbage", "a.b.c", nil},
	} {
		_, err := ks.VerifySignature(context.Background(), tc.token)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if n := srv.fetches.Load(); n > 1 {
		t.Fatalf("%d JWKS fetches, want at most 1", n)
	}
}

// TestKeySetCoalesces: concurrent verifications with unknown key ids
// while a fetch is slow wait for that one fetch.
func TestKeySetCoalesces(t *testing.T) {
	k1, attacker := ecKey(t, "k1"), ecKey(t, "")
	srv := newFakeJWKSServer(t, k1)
	hold := make(chan struct{})
	srv.set(func(f *fakeJWKSServer) { f.hold = hold })
	ks := newTestKeySet(srv, &testClock{now: time.Now()})
	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = tokenBy(t, attacker, "r"+strconv.Itoa(i), map[string]any{})
	}
	done := make(chan []error)
	go func() { done <- verifyAll(ks, tokens, 50) }()
	time.Sleep(100 * time.Millisecond)
	close(hold)
	<-done
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 50 concurrent unknown key ids, want 1", n)
	}
}

// TestKeySetFetchFailure: a failed fetch is retried after
// discoveryRetryInterval, not at every token; keys fetched before a
// failure stay in use.
func TestKeySetFetchFailure(t *testing.T) {
	k1 := ecKey(t, "k1")
	srv := newFakeJWKSServer(t, k1)
	srv.set(func(f *fakeJWKSServer) { f.status = http.StatusBadGateway })
	clock := &testClock{now: time.Now()}
	ks := newTestKeySet(srv, clock)
	good := tokenBy(t, k1, "k1", map[string]any{})
	for i := 0; i < 20; i++ {
		if _, err := ks.VerifySignature(context.Background(), good); err == nil {
			t.Fatal("verified without keys")
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches while the JWKS is down, want 1", n)
	}
	srv.set(func(f *fakeJWKSServer) { f.status = http.StatusOK })
	clock.add(discoveryRetryInterval + time.Second)
	if _, err := ks.VerifySignature(context.Background(), good); err != nil {
		t.Fatalf("after the retry interval: %v", err)
	}
	srv.set(func(f *fakeJWKSServer) { f.status = http.StatusBadGateway })
	clock.add(DefaultJWKSMinRefresh + time.Second)
	ks.VerifySignature(context.Background(), tokenBy(t, k1, "unknown", map[string]any{}))
	if _, err := ks.VerifySignature(context.Background(), good); err != nil {
		t.Fatalf("the keys fetched before a failure: %v", err)
	}
}

// TestOIDCBearerRandomKids: the OIDC strategy's verifiers use the bounded
// key set: 1000 JWT access tokens with the right issuer, audience and
// expiry but random key ids cost at most one JWKS fetch beyond the first.
func TestOIDCBearerRandomKids(t *testing.T) {
	var fetches atomic.Int64
	m := startMockOIDC(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.JWKSEndpoint {
				fetches.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	sc := mockStrategyConfig(m)
	sc.Bearer = &BearerConfig{Audience: "tc-cli", RequiredScope: "taskcluster-credentials"}
	st := newTestOIDC(t, sc, nil)
	attacker := ecKey(t, "")
	claims := map[string]any{"iss": m.Issuer(), "aud": "tc-cli", "sub": "s", "exp": time.Now().Add(time.Hour).Unix(),
		"scope": "taskcluster-credentials"}
	for i := 0; i < 1000; i++ {
		if _, err := st.BearerUser(context.Background(), tokenBy(t, attacker, "kid"+strconv.Itoa(i), claims)); err == nil {
			t.Fatal("a token of an unknown key was accepted")
		}
	}
	if n := fetches.Load(); n > 1 {
		t.Fatalf("%d JWKS fetches for 1000 random key ids, want at most 1", n)
	}
	t.Logf("JWKS fetches for 1000 bearer tokens with random key ids: %d", fetches.Load())
}
