package login

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// Third-party sign-in (OAuth 2.0, RFC 6749): a registered app sends the
// user to /login/oauth/authorize; the user consents; the app exchanges the
// code at /login/oauth/token for a short access token and that token at
// /login/oauth/credentials for a permanent, revocable client
// <identity>/<app>-<suffix> with deleteOnExpiration.

// Lifetimes of the third-party records (RFC 6749 §4.1.2 recommends at
// most ten minutes for a code).
const (
	ConsentLifetime    = 10 * time.Minute
	OAuthCodeLifetime  = 10 * time.Minute
	OAuthTokenLifetime = 10 * time.Minute
	// credentialsEarly: the reported expiry is this much before the
	// client's, as web-server reports it.
	credentialsEarly = 30 * time.Second
)

// Bounds of request parameters (they end up in stored records).
const (
	maxStateLen       = 1024
	maxScopeParamLen  = 16 * 1024
	maxExpiresLen     = 128
	maxDescriptionLen = 10240 // the auth service's description limit
	maxOAuthForm      = 64 * 1024
)

// msgNoOAuthCredentials is all a caller learns when the credentials
// endpoint refuses; the reason goes to the log.
const msgNoOAuthCredentials = "Could not generate credentials for this access token"

// Errors of the third-party flow (the log's words; the caller gets the
// RFC 6749 error code only).
var (
	errUnknownApp      = errors.New("login: client_id is not a registered app")
	errRedirectURI     = errors.New("login: redirect_uri is not registered for this app")
	errResponseType    = errors.New("login: response_type is not the app's")
	errScopeMismatch   = errors.New("login: scope is not exactly the app's registered set")
	errBadParam        = errors.New("login: malformed parameter")
	errNotYours        = errors.New("login: the record belongs to another identity or session")
	errClientIDTaken   = errors.New("login: the clientId exists and is not this grant's")
	errMayNotCreate    = errors.New("login: the user may not create this client")
	errGrantExpired    = errors.New("login: the grant's client would be expired")
	errGrantMismatched = errors.New("login: the code was issued to another app or redirect URI")
)

// oauthRequest is a checked authorization request.
type oauthRequest struct {
	App         *App
	RedirectURI string
	State       string
	Expires     time.Time // as asked, capped at the app's maxExpires
}

// clientDetails is the client a grant will create: the Data of code and
// token records. Created is set on the token record once the client exists.
type clientDetails struct {
	App         string    `json:"app"`
	RedirectURI string    `json:"redirectUri"`
	ClientID    string    `json:"clientId"`
	Description string    `json:"description"`
	Scopes      []string  `json:"scopes"`
	Expires     time.Time `json:"expires"`
	Created     bool      `json:"created,omitempty"`
}

// oauthError is an RFC 6749 error: Code is the "error" value.
type oauthError struct {
	Code string
	Err  error
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *oauthError) Unwrap() error { return e.Err }

// parseAuthorize checks an authorization request. A bad client_id or
// redirect_uri gives (nil, err): the user is told, nothing redirects (RFC
// 6749 §4.1.2.1: no open redirector). Other errors come with the request
// so the app can be told at its redirect URI.
func (s *Service) parseAuthorize(q url.Values, now time.Time) (*oauthRequest, error) {
	app, ok := s.app(q.Get("client_id"))
	if !ok {
		return nil, errUnknownApp
	}
	uri := q.Get("redirect_uri")
	if !slices.Contains(app.RedirectURIs, uri) {
		return nil, errRedirectURI
	}
	req := &oauthRequest{App: app, RedirectURI: uri, State: q.Get("state")}
	if len(req.State) > maxStateLen {
		req.State = ""
		return req, &oauthError{"invalid_request", fmt.Errorf("%w: state longer than %d", errBadParam, maxStateLen)}
	}
	if q.Get("response_type") != app.ResponseType {
		return req, &oauthError{"unsupported_response_type", errResponseType}
	}
	scopes, ok := splitScopeParam(q.Get("scope"))
	if !ok || !sameScopeSet(scopes, app.Scopes) {
		return req, &oauthError{"invalid_scope", errScopeMismatch}
	}
	max, _ := protocol.FromNow(app.MaxExpires, now) // checked at start
	req.Expires = max
	if e := q.Get("expires"); e != "" && len(e) <= maxExpiresLen {
		if t, err := protocol.FromNow(e, now); err == nil && t.Before(max) {
			req.Expires = t
		}
	}
	if !req.Expires.After(now) {
		return req, &oauthError{"invalid_request", fmt.Errorf("%w: expires is not in the future", errBadParam)}
	}
	return req, nil
}

// splitScopeParam splits RFC 6749 §3.3's scope (tokens separated by one
// space each).
func splitScopeParam(p string) ([]string, bool) {
	if p == "" || len(p) > maxScopeParamLen {
		return nil, false
	}
	out := strings.Split(p, " ")
	for _, sc := range out {
		if sc == "" || !scopeengine.ValidScope(sc) {
			return nil, false
		}
	}
	return out, true
}

// sameScopeSet is the reference's equality of sorted scope lists (a
// repeated scope is tolerated: it asks nothing more).
func sameScopeSet(a, b []string) bool {
	return slices.Equal(slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b))))
}

// serveAuthorize is GET /login/oauth/authorize.
func (s *Service) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	req, err := s.parseAuthorize(r.URL.Query(), now)
	if req == nil {
		s.log.Info("authorization request refused", "app", truncate(r.URL.Query().Get("client_id"), 64), "reason", err.Error())
		s.renderOAuthMessage(w, http.StatusBadRequest, "This application is not registered here, or it asked to return to an address it has not registered.")
		return
	}
	if oe := (*oauthError)(nil); errors.As(err, &oe) {
		s.log.Info("authorization request refused", "app", req.App.ClientID, "reason", err.Error())
		s.redirectError(w, r, req, oe.Code)
		return
	}
	sess, ok, err := s.sessionFrom(r)
	if err != nil {
		s.log.Warn("session lookup failed", "error", err.Error())
		s.renderOAuthMessage(w, http.StatusServiceUnavailable, "The sign-in service cannot answer right now; reload this page in a moment.")
		return
	}
	if !ok {
		s.serveSignInFirst(w, r)
		return
	}
	if req.App.Whitelisted {
		// The app asked exactly its registered scopes (checked above):
		// trusted apps skip the consent page.
		d := s.defaultDetails(req, sess.Identity)
		s.approve(w, r, sess.Identity, req.App, d, req.State)
		return
	}
	s.askConsent(w, r, sess, req)
}

// defaultDetails is the client of an unchanged consent.
func (s *Service) defaultDetails(req *oauthRequest, identity string) clientDetails {
	return clientDetails{
		App: req.App.ClientID, RedirectURI: req.RedirectURI,
		ClientID:    identity + "/" + req.App.ClientID + "-" + rand.Text()[:6],
		Description: "Client generated by " + identity + " for OAuth2 Client " + req.App.ClientID,
		Scopes:      slices.Clone(req.App.Scopes), Expires: req.Expires,
	}
}

// approve finishes a consent: the user is re-derived from the provider,
// the client's scopes are cut to what the user holds, and the app gets a
// code (or, implicit flow, an access token) at its redirect URI.
func (s *Service) approve(w http.ResponseWriter, r *http.Request, identity string, app *App, d clientDetails, state string) {
	ctx := r.Context()
	user, err := s.currentUser(ctx, identity)
	if err != nil {
		s.log.Info("third-party grant refused: no current user", "app", app.ClientID, "identity", identity, "reason", err.Error())
		if userRefused(err) {
			s.renderOAuthMessage(w, http.StatusForbidden, "Your sign-in is no longer valid. Sign in again, then retry from the application.")
		} else {
			s.renderOAuthMessage(w, http.StatusServiceUnavailable, "The sign-in service cannot answer right now; retry in a moment.")
		}
		return
	}
	have := s.backend.Resolver().Expand(user.Scopes())
	d.Scopes = scopeengine.Intersection(scopeengine.Intersection(d.Scopes, app.Scopes), have)
	secret, kind, lifetime := randomToken(32), KindCode, OAuthCodeLifetime
	if app.ResponseType == "token" {
		kind, lifetime = KindToken, OAuthTokenLifetime
	}
	if err := s.storeDetails(ctx, kind, secret, identity, d, lifetime); err != nil {
		s.log.Warn("storing a third-party grant failed", "app", app.ClientID, "identity", identity, "error", err.Error())
		s.renderOAuthMessage(w, http.StatusServiceUnavailable, "The sign-in service cannot answer right now; retry in a moment.")
		return
	}
	s.log.Info("third-party grant approved", "app", app.ClientID, "identity", identity, "clientId", d.ClientID, "scopes", len(d.Scopes))
	params := url.Values{}
	if kind == KindCode {
		params.Set("code", secret)
	} else {
		params.Set("access_token", secret)
		params.Set("token_type", "Bearer")
		params.Set("expires_in", fmt.Sprint(int(lifetime/time.Second)))
	}
	if state != "" {
		params.Set("state", state)
	}
	s.redirectTo(w, r, withParams(d.RedirectURI, kind == KindToken, params))
}

// storeDetails stores a code or token record (a fresh random key:
// Create, so a collision can never overwrite another grant).
func (s *Service) storeDetails(ctx context.Context, kind, secret, identity string, d clientDetails, lifetime time.Duration) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	_, err = s.backend.Apply(ctx, Command{Op: OpPut, Time: now, Create: true, Record: Record{
		Kind: kind, Key: KeyOf(secret), Identity: identity, Created: now, Expires: now.Add(lifetime), Data: data,
	}})
	return err
}

// redirectError tells the app of a refusal at its (registered, exactly
// matched) redirect URI: RFC 6749 §4.1.2.1, in the fragment for the
// implicit flow (§4.2.2.1).
func (s *Service) redirectError(w http.ResponseWriter, r *http.Request, req *oauthRequest, code string) {
	params := url.Values{"error": {code}}
	if req.State != "" {
		params.Set("state", req.State)
	}
	s.redirectTo(w, r, withParams(req.RedirectURI, req.App.ResponseType == "token", params))
}

func (s *Service) redirectTo(w http.ResponseWriter, r *http.Request, to string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, to, http.StatusFound)
}

// withParams adds params to a redirect URI's query (keeping its own query,
// RFC 6749 §3.1.2) or, for the implicit flow, as its fragment.
func withParams(uri string, fragment bool, params url.Values) string {
	if fragment {
		return uri + "#" + params.Encode()
	}
	switch {
	case !strings.Contains(uri, "?"):
		return uri + "?" + params.Encode()
	case strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&"):
		return uri + params.Encode()
	}
	return uri + "&" + params.Encode()
}

// serveToken is POST /login/oauth/token (RFC 6749 §4.1.3): the code is
// taken once, whatever happens next (a code presented with the wrong app
// or redirect URI is burnt, RFC 6749 §10.5), and must be unexpired.
func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	s.setOAuthCORS(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, maxOAuthForm)
	if err := r.ParseForm(); err != nil {
		s.tokenError(w, "invalid_request", "the request body is not a form")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "authorization_code" {
		s.tokenError(w, "unsupported_grant_type", "only authorization_code is supported")
		return
	}
	code, uri, clientID := f.Get("code"), f.Get("redirect_uri"), f.Get("client_id")
	if code == "" || uri == "" || clientID == "" || len(code) > 64 {
		s.tokenError(w, "invalid_request", "code, redirect_uri and client_id are required")
		return
	}
	if _, ok := s.app(clientID); !ok {
		s.log.Info("token request refused", "reason", errUnknownApp.Error())
		s.tokenError(w, "invalid_client", "unknown client")
		return
	}
	// Every junk code would otherwise cost a replicated write (the take):
	// bounded per source, and a code this node does not hold after a Sync
	// is refused with a read only (limits.go).
	if _, ok := s.costly(w, r, "oauthToken", false, false); !ok {
		return
	}
	if known, err := s.codeKnown(r.Context(), code); err != nil {
		s.log.Warn("looking up an authorization code failed", "error", err.Error())
		s.oauthUnavailable(w, "oauthToken")
		return
	} else if !known {
		s.log.Info("token request refused: unknown, used or expired code", "app", clientID)
		s.tokenError(w, "invalid_grant", "the code is invalid, used or expired")
		return
	}
	now := s.cfg.Now()
	res, err := s.backend.Apply(r.Context(), Command{Op: OpTake, Time: now, Kind: KindCode, Key: KeyOf(code)})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Warn("taking an authorization code failed", "error", err.Error())
			s.oauthUnavailable(w, "oauthToken")
			return
		}
		s.log.Info("token request refused: unknown, used or expired code", "app", clientID)
		s.tokenError(w, "invalid_grant", "the code is invalid, used or expired")
		return
	}
	var d clientDetails
	if err := json.Unmarshal(res.Record.Data, &d); err != nil || !res.Record.Expires.After(now) ||
		d.App != clientID || d.RedirectURI != uri {
		s.log.Info("token request refused", "app", clientID, "reason", errors.Join(errGrantMismatched, err).Error())
		s.tokenError(w, "invalid_grant", "the code is invalid, used or expired")
		return
	}
	token := randomToken(32)
	if err := s.storeDetails(r.Context(), KindToken, token, res.Record.Identity, d, OAuthTokenLifetime); err != nil {
		s.log.Warn("storing a third-party access token failed", "app", clientID, "error", err.Error())
		s.oauthUnavailable(w, "oauthToken")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token, "token_type": "Bearer", "expires_in": int(OAuthTokenLifetime / time.Second),
	})
}

// codeKnown reports whether this node holds an unexpired code record
// after a Sync (so "unknown" is never said from state that is behind).
func (s *Service) codeKnown(ctx context.Context, code string) (bool, error) {
	if err := s.backend.Sync(ctx); err != nil {
		return false, err
	}
	rec, found, err := s.backend.Record(KindCode, KeyOf(code))
	if err != nil {
		return false, err
	}
	return found && rec.Expires.After(s.cfg.Now()), nil
}

// tokenError is RFC 6749 §5.2's error answer.
func (s *Service) tokenError(w http.ResponseWriter, code, description string) {
	status := http.StatusBadRequest
	if code == "invalid_client" {
		status = http.StatusUnauthorized
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// setOAuthCORS lets the origins of registered redirect URIs (the apps'
// pages) read the token and credentials answers; no cookies are involved,
// so no Allow-Credentials.
func (s *Service) setOAuthCORS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); s.redirectOrigin(o) {
		h.Set("Access-Control-Allow-Origin", o)
	}
}

// serveOAuthPreflight answers CORS preflights of the token (POST) and
// credentials (GET) endpoints.
func (s *Service) serveOAuthPreflight(w http.ResponseWriter, r *http.Request) {
	s.setOAuthCORS(w, r)
	if !s.redirectOrigin(r.Header.Get("Origin")) {
		s.writeError(w, "oauthPreflight", protocol.CodeInsufficientScopes, "This origin may not call this endpoint", nil)
		return
	}
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/credentials") {
		method = http.MethodGet
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", method)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// oauthBearer is the token of "Authorization: Bearer <token>". The scheme
// is case-insensitive (RFC 7235 §2.1); [quirk rejected] web-server matches
// only "Bearer" although its docs show "bearer".
func oauthBearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 64 {
		return "", false
	}
	return tok, true
}

// serveOAuthCredentials is GET /login/oauth/credentials: the permanent
// client of a third-party access token. The user is re-derived from the
// provider and must hold auth:create-client:<clientId> and every scope of
// the client (web-server restricts its createClient call to the user's
// scopes the same way). Repeats with the same token answer the same client.
func (s *Service) serveOAuthCredentials(w http.ResponseWriter, r *http.Request) {
	s.setOAuthCORS(w, r)
	const method = "oauthCredentials"
	c, tok, err := s.oauthCredentials(r)
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, CredentialsReply{
			Expires:     protocol.FormatTime(c.Expires.Add(-credentialsEarly)),
			Credentials: ReplyCredentials{ClientID: c.ClientID, AccessToken: tok},
		})
	case userRefused(err) || errors.Is(err, ErrNotFound) || errors.Is(err, errMayNotCreate) ||
		errors.Is(err, errClientIDTaken) || errors.Is(err, errGrantExpired):
		s.log.Info("third-party credentials refused", "reason", err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		s.writeError(w, method, protocol.CodeInputError, msgNoOAuthCredentials, nil)
	default:
		s.log.Warn("third-party credentials failed (transient)", "error", err.Error())
		s.oauthUnavailable(w, method)
	}
}

// oauthCredentials finds (or creates) the client of the request's token.
func (s *Service) oauthCredentials(r *http.Request) (Client, string, error) {
	ctx := r.Context()
	token, ok := oauthBearer(r)
	if !ok {
		return Client{}, "", fmt.Errorf("%w: no bearer token", ErrNotFound)
	}
	if err := s.backend.Sync(ctx); err != nil {
		return Client{}, "", err
	}
	rec, found, err := s.backend.Record(KindToken, KeyOf(token))
	now := s.cfg.Now()
	if err != nil {
		return Client{}, "", err
	}
	var d clientDetails
	if !found || !rec.Expires.After(now) || json.Unmarshal(rec.Data, &d) != nil {
		return Client{}, "", fmt.Errorf("%w: unknown or expired access token", ErrNotFound)
	}
	if !d.Expires.After(now) {
		return Client{}, "", errGrantExpired
	}
	user, err := s.currentUser(ctx, rec.Identity)
	if err != nil {
		return Client{}, "", err
	}
	have := s.backend.Resolver().Expand(append(user.Scopes(), "assume:anonymous"))
	if !have.Satisfies("auth:create-client:"+d.ClientID) || !have.SatisfiesAll(d.Scopes) {
		return Client{}, "", fmt.Errorf("%w: %s for %s", errMayNotCreate, rec.Identity, d.ClientID)
	}
	if d.Created {
		return s.existingClient(d)
	}
	c, tok, err := s.backend.CreateClient(ctx, ClientSpec{ClientID: d.ClientID, Description: d.Description,
		Scopes: d.Scopes, Expires: d.Expires, DeleteOnExpiration: true, Actor: s.cfg.Issuer})
	if errors.Is(err, ErrConflict) {
		// A concurrent first call with the same token, or a stored
		// "created" lost: the client is this grant's only if it is exactly
		// what the grant describes and younger than the token.
		if !sameClient(c, d, rec.Created) {
			return Client{}, "", fmt.Errorf("%w: %s", errClientIDTaken, d.ClientID)
		}
		return s.existingClient(d)
	}
	if err != nil {
		return Client{}, "", err
	}
	s.log.Info("third-party client created", "app", d.App, "identity", rec.Identity, "clientId", d.ClientID)
	s.markCreated(ctx, rec, d)
	return c, tok, nil
}

// existingClient is the grant's client as it is now with its current
// access token (a reset since is honoured; a disabled client is refused).
func (s *Service) existingClient(d clientDetails) (Client, string, error) {
	c, ok := s.backend.Client(d.ClientID)
	if !ok || c.Disabled {
		return Client{}, "", fmt.Errorf("%w: client %s is gone or disabled", ErrNotFound, d.ClientID)
	}
	tok, ok, err := s.backend.AccessToken(d.ClientID)
	if err != nil {
		return Client{}, "", err
	}
	if !ok {
		return Client{}, "", fmt.Errorf("%w: no access token for %s", ErrNotFound, d.ClientID)
	}
	return c, tok, nil
}

func sameClient(c Client, d clientDetails, tokenCreated time.Time) bool {
	return c.Description == d.Description && c.DeleteOnExpiration &&
		c.Expires.UnixMilli() == d.Expires.UnixMilli() && sameScopeSet(c.Scopes, d.Scopes) &&
		!c.Created.Before(tokenCreated.Add(-time.Minute))
}

// markCreated records on the token that its client exists, so repeats
// answer it. A failure is only logged: the next call recognises the client
// (sameClient) and answers it too.
func (s *Service) markCreated(ctx context.Context, rec Record, d clientDetails) {
	d.Created = true
	data, err := json.Marshal(d)
	if err == nil {
		rec.Data = data
		_, err = s.backend.Apply(ctx, Command{Op: OpPut, Time: s.cfg.Now(), Record: rec})
	}
	if err != nil {
		s.log.Warn("marking a third-party token used failed", "clientId", d.ClientID, "error", err.Error())
	}
}

// oauthUnavailable is 503 with Retry-After: the replicated state or the
// provider could not answer; nothing was decided.
func (s *Service) oauthUnavailable(w http.ResponseWriter, method string) {
	w.Header().Set("Retry-After", "1")
	s.writeAPIError(w, method, &protocol.APIError{Code: protocol.CodeInternalServerError,
		Status: http.StatusServiceUnavailable, Message: "The login service cannot answer right now; retry later."}, nil)
}
