package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksFetchTimeout bounds one JWKS fetch. The fetch runs detached from
// the request that caused it (other requests wait for the same fetch),
// so it needs a deadline of its own.
const jwksFetchTimeout = 10 * time.Second

// Sentinel errors of the key set.
var (
	// errUnknownKey: no key of the provider's JWKS has the token's key id,
	// and the JWKS was fetched less than Config.JWKSMinRefresh ago.
	errUnknownKey = errors.New("login: the token's key id is not in the provider's JWKS")
	// errBadSignature: a key with the token's key id exists but the
	// signature does not verify with it. No refresh: a forged signature is
	// not a sign of key rotation.
	errBadSignature = errors.New("login: the token's signature does not verify")
)

// jwksKeySet is the oidc.KeySet of an OIDC strategy's verifiers. go-oidc's
// remote key set fetches the JWKS again for every token whose key id it
// does not know, so anyone can turn a flood of tokens with random key ids
// into a flood of JWKS fetches at the provider. This one verifies with the
// cached keys, and fetches again on an unknown key id (the rotation signal
// of OIDC Core §10.1.1) at most once per minRefresh — all concurrent
// verifications wait for that one fetch. A provider publishes a new key
// before it signs with it, so the one fetch an attacker can trigger per
// interval also picks up a real rotation.
type jwksKeySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu       sync.Mutex // guards the fields below
	keys     []jose.JSONWebKey
	lastTry  time.Time // of the last fetch, successful or not
	lastErr  error     // of the last fetch
	inflight *jwksFetch
}

type jwksFetch struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

func newJWKSKeySet(url string, client *http.Client, minRefresh time.Duration, now func() time.Time, log *slog.Logger) *jwksKeySet {
	if minRefresh <= 0 { // an unfilled Config
		minRefresh = DefaultJWKSMinRefresh
	}
	return &jwksKeySet{url: url, client: client, minRefresh: minRefresh, now: now, log: log}
}

// joseAlgs are the signature algorithms a token may name (oidcSigningAlgs).
var joseAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// VerifySignature implements oidc.KeySet: the payload of a JWS signed by
// a key of the provider's JWKS.
func (k *jwksKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, joseAlgs)
	if err != nil {
		return nil, fmt.Errorf("login: malformed JWT: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("login: a JWT has exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	payload, known, ok := verifyJWS(jws, keys, kid)
	if ok {
		return payload, nil
	}
	if known && kid != "" {
		return nil, errBadSignature
	}
	keys, err = k.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if payload, known, ok = verifyJWS(jws, keys, kid); ok {
		return payload, nil
	}
	if known {
		return nil, errBadSignature
	}
	return nil, errUnknownKey
}

// verifyJWS tries the keys with the token's key id (every key when it
// names none); known reports whether any key had that id.
func verifyJWS(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known, ok bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = true
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true, true
		}
	}
	return nil, known, false
}

// refresh returns the keys after a fetch, or the cached keys when the last
// fetch is more recent than minRefresh (discoveryRetryInterval after a
// failure, so an outage at start-up does not lock tokens out for long).
// Concurrent callers share one fetch.
func (k *jwksKeySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if f := k.inflight; f != nil {
		k.mu.Unlock()
		select {
		case <-f.done:
			return f.keys, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	now := k.now()
	interval := k.minRefresh
	if k.lastErr != nil {
		interval = min(interval, discoveryRetryInterval)
	}
	// (A clock that went back, d < 0, allows a fetch rather than none for long.)
	if d := now.Sub(k.lastTry); !k.lastTry.IsZero() && d >= 0 && d < interval {
		keys, err := k.keys, k.lastErr
		k.mu.Unlock()
		if err != nil && len(keys) == 0 {
			return nil, err
		}
		return keys, nil
	}
	f := &jwksFetch{done: make(chan struct{})}
	k.inflight, k.lastTry = f, now
	k.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	keys, fetchErr := k.fetch(fctx)
	cancel()
	err := fetchErr
	k.mu.Lock()
	if fetchErr == nil {
		k.keys = keys
	} else {
		k.log.Warn("fetching the provider's JWKS failed; keeping the keys fetched before", "url", k.url, "error", fetchErr.Error())
		if keys = k.keys; len(keys) > 0 {
			err = nil
		}
	}
	k.lastErr = fetchErr
	k.inflight = nil
	k.mu.Unlock()
	f.keys, f.err = keys, err
	close(f.done)
	return keys, err
}

// fetch reads the JWKS. Keys of types or algorithms go-jose does not
// support are skipped, not fatal (RFC 7517 §5: implementations SHOULD
// ignore JWKs they do not understand), as are encryption keys.
func (k *jwksKeySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if _, err := fetchJSON(k.client, req, "JWKS", &set); err != nil {
		return nil, err
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(raw, &key); err != nil || !key.Valid() || !key.IsPublic() || key.Use == "enc" {
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS: no usable signing key")
	}
	return keys, nil
}
