package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// The answers of GET /api/login/v1/oidc-credentials/<provider>, as the
// historical login service worded them.
const (
	msgInvalidProvider = "Invalid accessToken provider "
	msgBearerRefused   = "Could not generate credentials for this access token"
	maxBearerToken     = 16 << 10
	maxProviderBody    = 4 << 20 // one provider answer (a userinfo, a page of teams)
)

// serveOIDCCredentials exchanges a provider access token for temporary
// credentials of its user: the tools' counterpart of GET /login/credentials.
func (s *Service) serveOIDCCredentials(w http.ResponseWriter, r *http.Request) {
	const method = "oidcCredentials"
	provider := r.PathValue("provider")
	params := map[string]string{"provider": provider}
	st, ok := s.strategies[provider]
	if !ok || !s.bearerEnabled(provider) {
		s.log.Info("oidc-credentials: unknown provider or no bearer configuration", "provider", fmt.Sprintf("%.64q", provider))
		s.writeError(w, method, protocol.CodeInputError, msgInvalidProvider+provider, params)
		return
	}
	token, err := bearerToken(r.Header.Values("Authorization"))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tcauth"`)
		s.writeError(w, method, protocol.CodeAuthenticationFailed, err.Error(), params)
		return
	}
	// A token refused a moment ago is refused again from memory: the same
	// junk token costs one provider call, not one per request (limits.go).
	refusal := refusalKey(provider, token)
	if s.lim.refused.has(refusal, s.cfg.Now()) {
		s.log.Info("oidc-credentials refused", "provider", provider, "reason", "the provider refused this token moments ago")
		s.writeError(w, method, protocol.CodeInputError, msgBearerRefused, params)
		return
	}
	done, ok := s.costly(w, r, method, true, false)
	if !ok {
		return
	}
	u, err := st.BearerUser(r.Context(), token)
	done()
	if err != nil {
		s.log.Info("oidc-credentials refused", "provider", provider, "reason", err.Error())
		switch {
		case errors.Is(err, ErrProviderUnavailable):
			s.writeServiceUnavailable(w, method)
		case errors.Is(err, ErrNotSupported):
			s.writeError(w, method, protocol.CodeInputError, msgInvalidProvider+provider, params)
		default:
			// JWT refusals are local verdicts (signature, claims; the JWKS
			// fetch has its own bound, keyset.go): remembering them would
			// only keep refusing a token whose key the provider published
			// after the last JWKS fetch.
			if !looksLikeJWT(token) {
				s.lim.refused.add(refusal, s.cfg.Now())
			}
			s.writeError(w, method, protocol.CodeInputError, msgBearerRefused, params)
		}
		return
	}
	reply, err := s.issueCredentials(u)
	if err != nil {
		s.log.Warn("oidc-credentials: issuing credentials failed", "identity", u.Identity(), "error", err.Error())
		if errors.Is(err, ErrUnavailable) {
			s.writeServiceUnavailable(w, method)
			return
		}
		s.writeError(w, method, protocol.CodeInternalServerError, "Could not generate credentials", params)
		return
	}
	s.log.Info("oidc-credentials issued", "provider", provider, "identity", u.Identity())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, reply)
}

// bearerEnabled reports whether the strategy is configured with a bearer section.
func (s *Service) bearerEnabled(name string) bool {
	for _, sc := range s.cfg.Strategies {
		if sc.Name == name {
			return sc.Bearer != nil
		}
	}
	return false
}

// bearerToken extracts the token of exactly one `Authorization: Bearer
// <token>` header (scheme case-insensitive, RFC 7235 §2.1; token in
// RFC 6750's b64token alphabet). Its errors are safe to show the caller:
// they never contain the header.
func bearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", errors.New("An Authorization header with a Bearer access token is required")
	case 1:
	default:
		return "", errors.New("Exactly one Authorization header is allowed")
	}
	scheme, token, _ := strings.Cut(strings.TrimLeft(values[0], " \t"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New("The Authorization header must use the Bearer scheme")
	}
	token = strings.Trim(token, " \t")
	if token == "" {
		return "", errors.New("The Bearer access token is empty")
	}
	if len(token) > maxBearerToken || !b64token(token) {
		return "", errors.New("The Bearer access token is malformed")
	}
	return token, nil
}

// b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func b64token(t string) bool {
	body := strings.TrimRight(t, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// BearerUser resolves a provider access token: a JWT is verified locally
// against the JWKS (when bearer.audience is set); an opaque token goes to
// the introspection endpoint (bearer.introspect) or else to userinfo.
func (s *oidcStrategy) BearerUser(ctx context.Context, accessToken string) (User, error) {
	if s.bearer == nil {
		return User{}, ErrNotSupported
	}
	p, err := s.discover(ctx)
	if err != nil {
		return User{}, err
	}
	switch {
	case p.atVerifier != nil && looksLikeJWT(accessToken):
		return s.bearerJWT(ctx, p, accessToken)
	case s.bearer.Introspect:
		return s.bearerIntrospect(ctx, p, accessToken)
	default:
		return s.bearerUserinfo(ctx, p, accessToken)
	}
}

// looksLikeJWT: three dot-separated segments whose first decodes to a JSON
// object naming an alg. Only a routing decision: verification follows.
func looksLikeJWT(t string) bool {
	parts := strings.Split(t, ".")
	if len(parts) != 3 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(b, &h) == nil && h.Alg != ""
}

func (s *oidcStrategy) bearerJWT(ctx context.Context, p *oidcProvider, token string) (User, error) {
	at, err := p.atVerifier.Verify(s.clientCtx(ctx), token)
	if err != nil {
		return User{}, fmt.Errorf("login: %s: access token refused: %v", s.name, err)
	}
	var claims map[string]any
	if err := at.Claims(&claims); err != nil {
		return User{}, err
	}
	if !hasScope(claims, s.bearer.RequiredScope) {
		return User{}, fmt.Errorf("login: %s: access token lacks the scope %q", s.name, s.bearer.RequiredScope)
	}
	if claims, err = s.completeClaims(ctx, p, token, claims); err != nil {
		return User{}, err
	}
	u, _, err := s.userFromClaims(claims, at.Expiry)
	return u, err
}

// hasScope looks for want in the space-separated "scope" claim (RFC 9068,
// RFC 8693) or in "scp" (a list, or a string, as some providers send it).
func hasScope(claims map[string]any, want string) bool {
	var got []string
	if s, ok := claims["scope"].(string); ok {
		got = append(got, strings.Fields(s)...)
	}
	switch v := claims["scp"].(type) {
	case string:
		got = append(got, strings.Fields(v)...)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				got = append(got, s)
			}
		}
	}
	return slices.Contains(got, want)
}

// completeClaims adds the userinfo claims when the token lacks the
// identity claim or the groups claim (access tokens often carry neither).
// Userinfo must name the same subject; the token's own claims win.
func (s *oidcStrategy) completeClaims(ctx context.Context, p *oidcProvider, token string, claims map[string]any) (map[string]any, error) {
	_, hasID := claims[s.identityClaim]
	_, hasGroups := claims[s.groupsClaim]
	if hasID && (s.groupsClaim == "" || hasGroups) {
		return claims, nil
	}
	info, err := s.userinfo(ctx, p, token)
	if err != nil {
		return nil, err
	}
	if sub, _ := claims["sub"].(string); sub == "" || info["sub"] != sub {
		return nil, fmt.Errorf("login: %s: userinfo names another subject than the token", s.name)
	}
	for k, v := range info {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return claims, nil
}

// bearerIntrospect asks the provider about an opaque token (RFC 7662),
// authenticated as this client.
func (s *oidcStrategy) bearerIntrospect(ctx context.Context, p *oidcProvider, token string) (User, error) {
	if p.introspectURL == "" {
		return User{}, fmt.Errorf("login: %s: bearer.introspect is set but discovery names no introspection_endpoint", s.name)
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.introspectURL, strings.NewReader(form.Encode()))
	if err != nil {
		return User{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client id and secret are form-encoded inside Basic.
	req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(s.clientSecret))
	var resp map[string]any
	if _, err := fetchJSON(s.client, req, "introspection", &resp); err != nil {
		return User{}, fmt.Errorf("login: %s: %w", s.name, err)
	}
	expires, err := checkIntrospection(resp, s.issuer, s.bearer.Audience, s.bearer.RequiredScope, s.now())
	if err != nil {
		return User{}, fmt.Errorf("login: %s: %w", s.name, err)
	}
	claims, err := s.completeClaims(ctx, p, token, resp)
	if err != nil {
		return User{}, err
	}
	u, _, err := s.userFromClaims(claims, expires)
	return u, err
}

// checkIntrospection judges an RFC 7662 answer: active must be true; exp,
// iss, aud and scope are checked when present (they are optional in the
// RFC); sub is required to name the user.
func checkIntrospection(resp map[string]any, issuer, audience, scope string, now time.Time) (time.Time, error) {
	if active, _ := resp["active"].(bool); !active {
		return time.Time{}, errors.New("introspection: token not active")
	}
	if sub, _ := resp["sub"].(string); sub == "" {
		return time.Time{}, errors.New("introspection: no sub")
	}
	var expires time.Time
	if exp, ok := resp["exp"].(float64); ok {
		if exp > 1e11 || exp < 0 {
			return time.Time{}, errors.New("introspection: exp out of range")
		}
		expires = time.Unix(int64(exp), 0)
		if !now.Before(expires) {
			return time.Time{}, errors.New("introspection: token expired")
		}
	}
	if iss, ok := resp["iss"]; ok && iss != issuer {
		return time.Time{}, errors.New("introspection: token of another issuer")
	}
	if aud, ok := resp["aud"]; ok && audience != "" && !audContains(aud, audience) {
		return time.Time{}, errors.New("introspection: token for another audience")
	}
	if _, ok := resp["scope"]; ok && !hasScope(map[string]any{"scope": resp["scope"]}, scope) {
		return time.Time{}, fmt.Errorf("introspection: token lacks the scope %q", scope)
	}
	return expires, nil
}

func audContains(aud any, want string) bool {
	switch v := aud.(type) {
	case string:
		return v == want
	case []any:
		return slices.Contains(v, any(want))
	}
	return false
}

// bearerUserinfo accepts an opaque token that the userinfo endpoint
// accepts. It proves only that the provider issued the token to someone
// for this user — to any client — so audience or introspection is preferred.
func (s *oidcStrategy) bearerUserinfo(ctx context.Context, p *oidcProvider, token string) (User, error) {
	claims, err := s.userinfo(ctx, p, token)
	if err != nil {
		return User{}, err
	}
	u, _, err := s.userFromClaims(claims, time.Time{})
	return u, err
}

// statusError is a provider's non-2xx answer. 5xx and 429 are
// ErrProviderUnavailable; others are the provider's verdict.
type statusError struct {
	what   string
	status int
}

func (e *statusError) Error() string { return fmt.Sprintf("%s answered %d", e.what, e.status) }

func (e *statusError) Unwrap() error {
	if e.status >= 500 || e.status == http.StatusTooManyRequests {
		return ErrProviderUnavailable
	}
	return nil
}

// fetchJSON does req with client and decodes a 200 answer of at most
// maxProviderBody bytes into v. Errors never carry the body (it may echo
// what was sent).
func fetchJSON(client *http.Client, req *http.Request, what string, v any) (http.Header, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrProviderUnavailable, what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading the answer: %v", ErrProviderUnavailable, what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Header, &statusError{what: what, status: resp.StatusCode}
	}
	if len(body) > maxProviderBody {
		return nil, fmt.Errorf("%s: answer larger than %d bytes", what, maxProviderBody)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/jwt") {
		return nil, fmt.Errorf("%s: signed (application/jwt) answers are not supported", what)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON answer: %v", what, err)
	}
	return resp.Header, nil
}
