package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Defaults of the OIDC strategy.
const (
	// DefaultOIDCScopes are requested at sign-in when the strategy names
	// none. offline_access asks for a refresh token: without one a session
	// cannot outlive the provider's access token (see Refresh).
	DefaultOIDCScopes = "openid profile email offline_access"
	// DefaultIdentityClaim names the user in the ID token.
	DefaultIdentityClaim = "sub"
	// DefaultRequiredScope must be granted to an access token exchanged at
	// /api/login/v1/oidc-credentials/<name> (the historical login service's
	// scope).
	DefaultRequiredScope = "taskcluster-credentials"
	// discoveryRetryInterval is how long a failed discovery is remembered
	// before the next use tries again, so an unreachable provider costs one
	// timeout per interval and not one per request.
	discoveryRetryInterval = 5 * time.Second
)

// ErrProviderUnavailable: the provider could not be reached or answered
// with a server error. Nothing about the user was decided: sessions stay,
// callers answer 503.
var ErrProviderUnavailable = errors.New("login: the identity provider is unavailable")

// oidcSigningAlgs are the only ID token and access token algorithms
// accepted: asymmetric, widely deployed. HS256 (a client-secret MAC that
// anyone holding the secret can forge) and "none" are refused by
// go-jose's parser before any key is looked at.
var oidcSigningAlgs = []string{oidc.RS256, oidc.ES256}

// oidcPreset is what StrategyConfig.Preset fills in.
type oidcPreset struct{ groupsClaim, groupRolePrefix string }

// oidcPresets: "mozilla-auth0" reads Mozilla IAM's groups claim from the
// ID token. Unlike web-server it does not query the Person API (no
// `active: false` check, no separate mozilla-hris:/mozillians-group: roles:
// every entry of the claim becomes mozilla-group:<entry>), and its
// identity is the ID token's sub, which is the Person API's user_id that
// web-server encodes (but without web-server's `|<nickname>` suffix for
// github|… and oauth2|firefoxaccounts|… users).
var oidcPresets = map[string]oidcPreset{
	"mozilla-auth0": {groupsClaim: "https://sso.mozilla.com/claim/groups", groupRolePrefix: "mozilla-group:"},
}

// oidcStrategy signs people in with a generic OpenID Connect provider.
type oidcStrategy struct {
	name          string
	issuer        string
	clientID      string
	clientSecret  string
	scopes        []string
	identityClaim string
	groupsClaim   string
	groupPrefix   string
	bearer        *BearerConfig
	client        *http.Client
	now           func() time.Time
	log           *slog.Logger
	// jwksMinRefresh: Config.JWKSMinRefresh (keyset.go).
	jwksMinRefresh time.Duration

	refreshes refreshFlights

	mu       sync.Mutex // guards the fields below; held during discovery
	disc     *oidcProvider
	lastFail time.Time
	lastErr  error
}

// oidcProvider is what discovery found, cached for the process lifetime.
type oidcProvider struct {
	endpoint      oauth2.Endpoint
	idVerifier    *oidc.IDTokenVerifier
	atVerifier    *oidc.IDTokenVerifier // JWT access tokens; nil without a bearer audience
	userinfoURL   string
	introspectURL string
}

func newOIDCStrategy(cfg Config, sc StrategyConfig) (Strategy, error) {
	u, err := url.Parse(sc.Issuer)
	if sc.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("login: strategy %s: issuer %q: want an absolute http(s) URL", sc.Name, sc.Issuer)
	}
	if sc.ClientID == "" {
		return nil, fmt.Errorf("login: strategy %s: clientId is required", sc.Name)
	}
	if sc.Preset != "" {
		p, ok := oidcPresets[sc.Preset]
		if !ok {
			return nil, fmt.Errorf("login: strategy %s: unknown preset %q (known: mozilla-auth0)", sc.Name, sc.Preset)
		}
		setDefault(&sc.GroupsClaim, p.groupsClaim)
		setDefault(&sc.GroupRolePrefix, p.groupRolePrefix)
	}
	setDefault(&sc.IdentityClaim, DefaultIdentityClaim)
	setDefault(&sc.GroupRolePrefix, sc.Name+"-group:")
	if len(sc.Scopes) == 0 {
		sc.Scopes = strings.Fields(DefaultOIDCScopes)
	}
	if !slices.Contains(sc.Scopes, oidc.ScopeOpenID) {
		return nil, fmt.Errorf("login: strategy %s: scopes must include openid", sc.Name)
	}
	s := &oidcStrategy{
		name: sc.Name, issuer: sc.Issuer, clientID: sc.ClientID, clientSecret: sc.ClientSecret,
		scopes: sc.Scopes, identityClaim: sc.IdentityClaim, groupsClaim: sc.GroupsClaim,
		groupPrefix: sc.GroupRolePrefix, client: cfg.HTTPClient, now: cfg.Now, log: cfg.Logger,
		jwksMinRefresh: time.Duration(cfg.JWKSMinRefresh),
	}
	if sc.Bearer != nil {
		b := *sc.Bearer
		setDefault(&b.RequiredScope, DefaultRequiredScope)
		if b.Audience == "" && !b.Introspect {
			// Only the userinfo check would remain, which accepts any access
			// token the provider issued to any client: say so loudly.
			s.log.Warn("oidc-credentials accepts any access token of this provider (no bearer.audience, no bearer.introspect)", "strategy", sc.Name)
		}
		s.bearer = &b
	}
	return s, nil
}

func (s *oidcStrategy) Name() string { return s.name }

// clientCtx carries cfg.HTTPClient to go-oidc and x/oauth2.
func (s *oidcStrategy) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, s.client)
}

// discover returns the provider's metadata, fetching it on first use. A
// provider that is down when the control plane starts therefore does not
// stop it from starting; a failure is retried after discoveryRetryInterval.
func (s *oidcStrategy) discover(ctx context.Context) (*oidcProvider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disc != nil {
		return s.disc, nil
	}
	if s.lastErr != nil && s.now().Sub(s.lastFail) < discoveryRetryInterval {
		return nil, s.lastErr
	}
	p, err := s.fetchProvider(ctx)
	if err != nil {
		s.lastFail, s.lastErr = s.now(), fmt.Errorf("%w: OIDC discovery at %s: %v", ErrProviderUnavailable, s.issuer, err)
		s.log.Warn("OIDC discovery failed; retrying on a later use", "strategy", s.name, "error", err.Error())
		return nil, s.lastErr
	}
	s.disc, s.lastErr = p, nil
	return p, nil
}

func (s *oidcStrategy) fetchProvider(ctx context.Context) (*oidcProvider, error) {
	prov, err := oidc.NewProvider(s.clientCtx(ctx), s.issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		Issuer        string   `json:"issuer"`
		JWKS          string   `json:"jwks_uri"`
		Introspection string   `json:"introspection_endpoint"`
		Userinfo      string   `json:"userinfo_endpoint"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return nil, err
	}
	p := &oidcProvider{endpoint: prov.Endpoint(), userinfoURL: meta.Userinfo, introspectURL: meta.Introspection}
	p.endpoint.AuthStyle = authStyle(meta.AuthMethods)
	// One key set for both verifiers, refreshed at most once per
	// jwksMinRefresh however many unknown key ids arrive (keyset.go);
	// go-oidc's own remote key set fetches once per such token.
	if meta.JWKS == "" {
		return nil, errors.New("the discovery document names no jwks_uri")
	}
	keys := newJWKSKeySet(meta.JWKS, s.client, s.jwksMinRefresh, s.now, s.log)
	p.idVerifier = oidc.NewVerifier(meta.Issuer, keys, &oidc.Config{ClientID: s.clientID, SupportedSigningAlgs: oidcSigningAlgs, Now: s.now})
	if s.bearer != nil && s.bearer.Audience != "" {
		p.atVerifier = oidc.NewVerifier(meta.Issuer, keys, &oidc.Config{ClientID: s.bearer.Audience, SupportedSigningAlgs: oidcSigningAlgs, Now: s.now})
	}
	return p, nil
}

// authStyle picks how the client authenticates at the token endpoint from
// the discovery document: client_secret_post when offered (some servers
// advertise basic but read only the form), else HTTP Basic, the default
// of RFC 6749 §2.3.1 and OIDC Discovery.
func authStyle(methods []string) oauth2.AuthStyle {
	switch {
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader
	default:
		return oauth2.AuthStyleAutoDetect
	}
}

func (s *oidcStrategy) oauth(p *oidcProvider, redirectURL string) *oauth2.Config {
	return &oauth2.Config{ClientID: s.clientID, ClientSecret: s.clientSecret, Endpoint: p.endpoint, RedirectURL: redirectURL, Scopes: s.scopes}
}

// AuthCodeURL returns "" when the provider cannot be discovered (the
// caller answers 503): the Strategy interface has no error here.
func (s *oidcStrategy) AuthCodeURL(state, nonce, pkceVerifier, redirectURL string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := s.discover(ctx)
	if err != nil {
		return ""
	}
	return s.oauth(p, redirectURL).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkceVerifier))
}

func (s *oidcStrategy) Exchange(ctx context.Context, code, nonce, pkceVerifier, redirectURL string) (User, Grant, error) {
	p, err := s.discover(ctx)
	if err != nil {
		return User{}, Grant{}, err
	}
	tok, err := s.oauth(p, redirectURL).Exchange(s.clientCtx(ctx), code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		return User{}, Grant{}, fmt.Errorf("login: %s: code exchange: %w", s.name, tokenError(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return User{}, Grant{}, fmt.Errorf("login: %s: the token endpoint returned no id_token", s.name)
	}
	idt, claims, err := s.verifyIDToken(ctx, p, raw)
	if err != nil {
		return User{}, Grant{}, err
	}
	// go-oidc leaves the nonce to the caller (OIDC Core §3.1.3.7 step 11).
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return User{}, Grant{}, fmt.Errorf("login: %s: ID token nonce does not match this sign-in", s.name)
	}
	u, idValue, err := s.userFromClaims(claims, idt.Expiry)
	if err != nil {
		return User{}, Grant{}, err
	}
	g := Grant{Strategy: s.name, Subject: idt.Subject, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	if s.identityClaim != "sub" {
		g.Login = idValue // the identity must keep naming this user (Refresh)
	}
	return u, g, nil
}

// verifyIDToken checks signature (RS256/ES256 from the JWKS), issuer,
// audience = clientId, expiry, and azp when several audiences are named.
func (s *oidcStrategy) verifyIDToken(ctx context.Context, p *oidcProvider, raw string) (*oidc.IDToken, map[string]any, error) {
	idt, err := p.idVerifier.Verify(s.clientCtx(ctx), raw)
	if err != nil {
		return nil, nil, fmt.Errorf("login: %s: ID token refused: %v", s.name, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, nil, fmt.Errorf("login: %s: ID token claims: %v", s.name, err)
	}
	if azp, ok := claims["azp"].(string); ok && len(idt.Audience) > 1 && azp != s.clientID {
		return nil, nil, fmt.Errorf("login: %s: ID token issued to another party (azp)", s.name)
	}
	return idt, claims, nil
}

// errIdentityClaim: the configured identity claim is missing, empty or not a string.
var errIdentityClaim = errors.New("login: the identity claim is missing or not a string")

// userFromClaims makes the user of verified claims; it also returns the
// raw identity claim value.
func (s *oidcStrategy) userFromClaims(claims map[string]any, expires time.Time) (User, string, error) {
	v, ok := claims[s.identityClaim].(string)
	if !ok || v == "" {
		return User{}, "", fmt.Errorf("%w (strategy %s, claim %q)", errIdentityClaim, s.name, s.identityClaim)
	}
	u := User{ProviderID: s.name, IdentityID: Encode(v), ProviderExpires: expires, DisplayName: displayName(claims)}
	u.Roles = s.groupRoles(claims)
	return u, v, nil
}

func displayName(claims map[string]any) string {
	for _, k := range []string{"name", "preferred_username", "email"} {
		if v, ok := claims[k].(string); ok && v != "" {
			return v
		}
	}
	return ""
}

// groupRoles reads the groups claim: a list of strings or one string.
// Anything else is ignored with a log line, as are entries that cannot be
// a role (see roleSafe).
func (s *oidcStrategy) groupRoles(claims map[string]any) []string {
	if s.groupsClaim == "" {
		return nil
	}
	raw, present := claims[s.groupsClaim]
	var groups []string
	switch v := raw.(type) {
	case nil:
		if present {
			s.log.Info("groups claim is null; ignored", "strategy", s.name, "claim", s.groupsClaim)
		}
	case string:
		groups = []string{v}
	case []any:
		for _, e := range v {
			if g, ok := e.(string); ok {
				groups = append(groups, g)
			} else {
				s.log.Info("groups claim entry is not a string; ignored", "strategy", s.name, "claim", s.groupsClaim)
			}
		}
	default:
		s.log.Info("groups claim is neither a string nor a list; ignored", "strategy", s.name, "claim", s.groupsClaim, "type", fmt.Sprintf("%T", raw))
	}
	var roles []string
	for _, g := range groups {
		if !roleSafe(g) {
			s.log.Info("group name cannot be a role; ignored", "strategy", s.name, "group", fmt.Sprintf("%.80q", g))
			continue
		}
		roles = append(roles, s.groupPrefix+g)
	}
	return roles
}

// roleSafe reports whether a provider-given name may become part of a
// role id: non-empty printable ASCII (a scope's alphabet) and not ending
// in "*", which would turn assume:<prefix><name> into a wildcard over
// every role sharing that prefix.
func roleSafe(name string) bool {
	if name == "" || len(name) > 512 || strings.HasSuffix(name, "*") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return false
		}
	}
	return true
}

// tokenError describes a token endpoint failure without the response
// body or description, which may echo the code or token that was sent.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("%w: %v", ErrProviderUnavailable, err)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	msg := fmt.Sprintf("token endpoint answered %d %q", status, re.ErrorCode)
	if status >= 500 || status == http.StatusTooManyRequests {
		return fmt.Errorf("%w: %s", ErrProviderUnavailable, msg)
	}
	return errors.New(msg)
}

// refreshError classifies a refused refresh. invalid_grant (and other
// 400/401 answers) means the provider withdrew the grant: the user is
// gone. invalid_client/unauthorized_client mean our own client
// credentials are wrong — a configuration error that must not sign
// everybody out — so they are transient, as are network errors and 5xx.
func (s *oidcStrategy) refreshError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client":
			s.log.Error("the provider refused our client credentials at refresh; check clientId/clientSecret", "strategy", s.name, "status", status)
			return fmt.Errorf("%w: refresh: client refused (%s)", ErrProviderUnavailable, re.ErrorCode)
		case re.ErrorCode == "invalid_grant" || status == http.StatusBadRequest || status == http.StatusUnauthorized:
			s.log.Info("the provider refused the refresh token; the user must sign in again", "strategy", s.name, "status", status, "error", re.ErrorCode)
			return fmt.Errorf("%w: refresh refused (%d %s)", ErrUserGone, status, re.ErrorCode)
		}
	}
	return fmt.Errorf("login: %s: refresh: %w", s.name, tokenError(err))
}

// Refresh re-derives the user. With a refresh token: a new ID token from
// the token endpoint (same subject required, groups re-read; a rotated
// refresh token is kept). Without: userinfo with the access token while
// it is valid.
func (s *oidcStrategy) Refresh(ctx context.Context, g Grant) (User, Grant, bool, error) {
	p, err := s.discover(ctx)
	if err != nil {
		return User{}, g, false, err
	}
	if g.RefreshToken == "" {
		u, err := s.refreshByUserinfo(ctx, p, g)
		return u, g, false, err
	}
	tok, err := s.refreshes.do(s.now(), KeyOf(g.RefreshToken), func() (*oauth2.Token, error) {
		return s.oauth(p, "").TokenSource(s.clientCtx(ctx), &oauth2.Token{RefreshToken: g.RefreshToken}).Token()
	})
	if err != nil {
		return User{}, g, false, s.refreshError(err)
	}
	updated, changed := g, false
	updated.AccessToken, updated.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" && tok.RefreshToken != g.RefreshToken {
		updated.RefreshToken, changed = tok.RefreshToken, true
	}
	claims, expires, err := s.refreshedClaims(ctx, p, tok)
	if err != nil {
		return User{}, g, false, err
	}
	u, err := s.checkSameUser(g, claims, expires)
	return u, updated, changed, err
}

// refreshedClaims are the claims of the refresh answer's ID token (no
// nonce on refresh, OIDC Core §12.2), or of userinfo when the provider
// sends no new ID token. A token that fails verification is a provider
// or key-rotation problem, not a verdict on the user: transient.
func (s *oidcStrategy) refreshedClaims(ctx context.Context, p *oidcProvider, tok *oauth2.Token) (map[string]any, time.Time, error) {
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, claims, err := s.verifyIDToken(ctx, p, raw)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("%w: %v", ErrProviderUnavailable, err)
		}
		return claims, idt.Expiry, nil
	}
	claims, err := s.userinfo(ctx, p, tok.AccessToken)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusUnauthorized {
			return nil, time.Time{}, fmt.Errorf("%w: userinfo refused the refreshed access token", ErrUserGone)
		}
		return nil, time.Time{}, err
	}
	return claims, tok.Expiry, nil
}

// checkSameUser derives the user and insists it is the one who signed in:
// the same subject, and the same identity claim value (else the identity,
// and every client named after it, would silently change owner).
func (s *oidcStrategy) checkSameUser(g Grant, claims map[string]any, expires time.Time) (User, error) {
	if sub, _ := claims["sub"].(string); sub != g.Subject {
		s.log.Info("the provider now names another subject for this grant", "strategy", s.name)
		return User{}, fmt.Errorf("%w: subject changed", ErrUserGone)
	}
	u, idValue, err := s.userFromClaims(claims, expires)
	if err != nil {
		s.log.Info("the identity claim is gone from the provider's answer", "strategy", s.name, "claim", s.identityClaim)
		return User{}, fmt.Errorf("%w: %v", ErrUserGone, err)
	}
	if s.identityClaim != "sub" && idValue != g.Login {
		s.log.Info("the identity claim changed value since sign-in", "strategy", s.name, "claim", s.identityClaim)
		return User{}, fmt.Errorf("%w: identity claim changed", ErrUserGone)
	}
	return u, nil
}

func (s *oidcStrategy) refreshByUserinfo(ctx context.Context, p *oidcProvider, g Grant) (User, error) {
	if g.AccessToken == "" || (!g.Expiry.IsZero() && !s.now().Before(g.Expiry)) {
		s.log.Info("the access token expired and there is no refresh token: request the offline_access scope "+
			"(and allow refresh tokens at the provider) for sessions longer than the access token", "strategy", s.name)
		return User{}, fmt.Errorf("%w: access token expired, no refresh token", ErrUserGone)
	}
	claims, err := s.userinfo(ctx, p, g.AccessToken)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusUnauthorized {
			return User{}, fmt.Errorf("%w: userinfo refused the access token", ErrUserGone)
		}
		return User{}, err
	}
	return s.checkSameUser(g, claims, g.Expiry)
}

// userinfo fetches the userinfo claims for an access token (JSON answers
// only; a signed application/jwt answer is refused as unsupported).
func (s *oidcStrategy) userinfo(ctx context.Context, p *oidcProvider, accessToken string) (map[string]any, error) {
	if p.userinfoURL == "" {
		return nil, fmt.Errorf("login: %s: the provider has no userinfo endpoint", s.name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.userinfoURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	var claims map[string]any
	if _, err := fetchJSON(s.client, req, "userinfo", &claims); err != nil {
		return nil, fmt.Errorf("login: %s: %w", s.name, err)
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, fmt.Errorf("login: %s: userinfo has no sub", s.name)
	}
	return claims, nil
}

// refreshDedupWindow is how long a refresh answer is reused for the same
// refresh token.
const refreshDedupWindow = 30 * time.Second

// refreshFlights makes concurrent and back-to-back refreshes of one
// refresh token (two tabs asking for credentials at once, or a second
// request before the rotated grant is stored) share one token endpoint
// call. With rotation, a provider that detects refresh-token reuse
// (Auth0, Okta, Keycloak) would otherwise revoke the whole grant and sign
// the user out. Per process only: two nodes refreshing the same grant in
// the same instant can still race.
type refreshFlights struct {
	mu      sync.Mutex
	flights map[string]*refreshFlight
}

type refreshFlight struct {
	done chan struct{}
	at   time.Time
	tok  *oauth2.Token
	err  error
}

func (r *refreshFlights) do(now time.Time, key string, fn func() (*oauth2.Token, error)) (*oauth2.Token, error) {
	r.mu.Lock()
	if r.flights == nil {
		r.flights = map[string]*refreshFlight{}
	}
	for k, f := range r.flights { // drop finished flights past the window
		if !f.at.IsZero() && now.Sub(f.at) > refreshDedupWindow {
			delete(r.flights, k)
		}
	}
	if f, ok := r.flights[key]; ok {
		r.mu.Unlock()
		<-f.done
		return f.tok, f.err
	}
	f := &refreshFlight{done: make(chan struct{})}
	r.flights[key] = f
	r.mu.Unlock()

	f.tok, f.err = fn()
	r.mu.Lock()
	f.at = now
	if f.err != nil {
		delete(r.flights, key) // a failure is not remembered: the next call retries
	}
	r.mu.Unlock()
	close(f.done)
	return f.tok, f.err
}
