package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// Temporary credentials of a signed-in user (web-server's values).
const (
	// CredentialsLifetime is how long a user's temporary credentials last:
	// short, because they cannot be revoked.
	CredentialsLifetime = 15 * time.Minute
	// userCredsEarly: the reported expires is this much before the real
	// expiry, so callers refresh in time.
	userCredsEarly = 30 * time.Second
)

// Messages of the credentials endpoints (web-server's, deliberately vague).
const (
	msgAuthRequired = "Authentication is required to generate credentials"
	msgNoCredsUser  = "Could not generate credentials for this user"
	// msgTooManyRoles is not vague: it is about the deployment, not a secret.
	msgTooManyRoles = "Could not generate credentials for this user: the user's roles (teams, groups) that the deployment defines are too many for the 4096 characters of a Hawk header"
)

// errIssuer: the issuer client cannot sign these credentials (missing,
// disabled, no token, or its scopes do not cover the user's).
var errIssuer = errors.New("login: the issuer cannot sign credentials for this user")

// errTooManyRoles: the user's scopes do not fit in a Hawk header even
// without the roles that grant nothing (signWithoutInertRoles).
var errTooManyRoles = errors.New("login: the user's roles do not fit in a Hawk header")

// CredentialsReply is {expires, credentials} as getCredentials and
// oidcCredentials answer it.
type CredentialsReply struct {
	Expires     string           `json:"expires"`
	Credentials ReplyCredentials `json:"credentials"`
}

// ReplyCredentials are Taskcluster credentials (certificate omitted for
// permanent clients).
type ReplyCredentials struct {
	ClientID    string `json:"clientId"`
	AccessToken string `json:"accessToken"`
	Certificate string `json:"certificate,omitempty"`
}

// issueCredentials signs named temporary credentials for u: clientId = the
// identity, scopes = u.Scopes() (unexpanded), backdated by StartOffset,
// valid CredentialsLifetime, reported expires 30 s early. It first checks
// what the auth service would check when the credentials are used — the
// issuer holds auth:create-client:<identity> and every user scope — so a
// misconfigured issuer is a precise log line, not credentials that fail.
func (s *Service) issueCredentials(u User) (CredentialsReply, error) {
	identity, scopes := u.Identity(), u.Scopes()
	token, err := s.issuerToken(identity, scopes)
	if err != nil {
		return CredentialsReply{}, err
	}
	now := s.cfg.Now()
	expiry := now.Add(CredentialsLifetime)
	var seed string
	if s.seed != nil {
		seed = s.seed()
	}
	sign := func(scopes []string) (protocol.Credentials, error) {
		return protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{
			Issuer:   protocol.Credentials{ClientID: s.cfg.Issuer, AccessToken: token},
			ClientID: identity, Scopes: scopes, Start: now.Add(-time.Duration(s.cfg.StartOffset)), Expiry: expiry, Seed: seed,
		})
	}
	c, err := sign(scopes)
	if errors.Is(err, protocol.ErrSignHeaderTooLong) {
		c, err = s.signWithoutInertRoles(identity, scopes, sign)
	}
	if errors.Is(err, errTooManyRoles) {
		return CredentialsReply{}, err
	}
	if err != nil {
		s.log.Error("signing temporary credentials failed", "identity", identity, "error", err.Error())
		return CredentialsReply{}, fmt.Errorf("%w: %v", errIssuer, err)
	}
	return CredentialsReply{
		Expires:     protocol.FormatTime(expiry.Add(-userCredsEarly)),
		Credentials: ReplyCredentials{ClientID: c.ClientID, AccessToken: c.AccessToken, Certificate: c.Certificate},
	}, nil
}

// issuerToken is the issuer's access token once the issuer is known to be
// able to sign for identity with scopes.
func (s *Service) issuerToken(identity string, scopes []string) (string, error) {
	iss := s.cfg.Issuer
	c, ok := s.backend.Client(iss)
	switch {
	case !ok:
		s.log.Error("the credentials issuer client does not exist", "issuer", iss)
		return "", errIssuer
	case c.Disabled:
		s.log.Error("the credentials issuer client is disabled", "issuer", iss)
		return "", errIssuer
	case !c.Expires.IsZero() && !c.Expires.After(s.cfg.Now()):
		s.log.Error("the credentials issuer client has expired", "issuer", iss)
		return "", errIssuer
	}
	have := s.backend.Resolver().Expand(c.Scopes)
	var missing []string
	for _, need := range append([]string{"auth:create-client:" + identity}, scopes...) {
		if !have.Satisfies(need) {
			missing = append(missing, need)
		}
	}
	if len(missing) > 0 {
		s.log.Error("the credentials issuer lacks scopes for this user; grant them to the issuer (e.g. through a role)",
			"issuer", iss, "identity", identity, "missing", missing)
		return "", errIssuer
	}
	token, ok, err := s.backend.AccessToken(iss)
	if err != nil || !ok || token == "" {
		s.log.Error("the credentials issuer's access token is not available", "issuer", iss, "found", ok)
		return "", errIssuer
	}
	return token, nil
}

// credentialsFor is the credentials of the request's signed-in user, or
// the error to answer: errSignedOut, ErrUserGone (sessions ended),
// errIssuer, or a transient error.
func (s *Service) credentialsFor(ctx context.Context, sess session) (CredentialsReply, error) {
	u, err := s.currentUser(ctx, sess.Identity)
	if err != nil {
		return CredentialsReply{}, err
	}
	return s.issueCredentials(u)
}

// signWithoutInertRoles signs again without the assume:<role> scopes that
// no role of the deployment matches. The certificate travels in every Hawk
// header, which verifiers cap at 4096 characters (the hawk
// library's limit), so a user in some hundred GitHub teams cannot carry
// them all; a role nobody defined expands to nothing but itself, so
// leaving it out changes no expanded scope set except for that literal
// assume: scope. Only done when the full list does not fit, and logged.
// Still too long → errTooManyRoles.
func (s *Service) signWithoutInertRoles(identity string, scopes []string, sign func([]string) (protocol.Credentials, error)) (protocol.Credentials, error) {
	res := s.backend.Resolver()
	kept := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if exp := res.Expand([]string{sc}); len(exp) == 1 && exp[0] == sc && !isLoginIdentity(sc) {
			continue
		}
		kept = append(kept, sc)
	}
	c, err := sign(kept)
	if errors.Is(err, protocol.ErrSignHeaderTooLong) {
		s.log.Warn("a user's scopes do not fit in a Hawk header, even without roles that grant nothing",
			"identity", identity, "scopes", len(scopes), "granting", len(kept))
		return protocol.Credentials{}, fmt.Errorf("%w: %d scopes, %d of them granting something", errTooManyRoles, len(scopes), len(kept))
	}
	if err == nil {
		s.log.Info("left roles that grant nothing out of a user's credentials: all of them do not fit in a Hawk header",
			"identity", identity, "scopes", len(scopes), "kept", len(kept))
	}
	return c, err
}

func isLoginIdentity(scope string) bool { return strings.HasPrefix(scope, "assume:login-identity:") }

// userRefused reports whether err means "no credentials for this user"
// (as opposed to transient): the provider or the configuration says no.
func userRefused(err error) bool {
	return errors.Is(err, ErrUserGone) || errors.Is(err, errNoGrant) || errors.Is(err, errNoStrategy)
}

// serveCredentials is GET /login/credentials: the signed-in user's
// temporary credentials (session cookie; CORS with credentials only for
// the configured origins).
//
// Unlike web-server, the session id is not regenerated on every call: that
// would be a replicated write per credentials fetch, and two tabs
// refreshing at once would race and sign one of them out. The id is
// fresh at every sign-in (no fixation), never leaves the HttpOnly,
// SameSite=Strict cookie, and is stored only as its hash.
func (s *Service) serveCredentials(w http.ResponseWriter, r *http.Request) {
	s.setCORS(w, r)
	const method = "credentials"
	sess, ok, err := s.sessionFrom(r)
	if err != nil {
		s.log.Warn("session lookup failed", "error", err.Error())
		s.writeServiceUnavailable(w, method)
		return
	}
	if !ok {
		s.writeError(w, method, protocol.CodeAuthenticationFailed, msgAuthRequired, nil)
		return
	}
	reply, err := s.credentialsFor(r.Context(), sess)
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, reply)
	case userRefused(err):
		s.log.Info("no credentials for a signed-in user", "identity", sess.Identity, "reason", err.Error())
		if errors.Is(err, ErrUserGone) {
			s.clearSessionCookie(w)
		}
		s.writeError(w, method, protocol.CodeAuthenticationFailed, msgNoCredsUser, nil)
	case errors.Is(err, errTooManyRoles):
		s.writeError(w, method, protocol.CodeInputError, msgTooManyRoles, nil)
	case errors.Is(err, errIssuer):
		s.writeError(w, method, protocol.CodeInternalServerError, msgNoCredsUser, nil)
	default:
		s.log.Warn("credentials request failed (transient)", "identity", sess.Identity, "error", err.Error())
		s.writeServiceUnavailable(w, method)
	}
}

func (s *Service) writeServiceUnavailable(w http.ResponseWriter, method string) {
	w.Header().Set("Retry-After", "1")
	s.writeAPIError(w, method, &protocol.APIError{Code: protocol.CodeInternalServerError,
		Status: http.StatusServiceUnavailable, Message: "The login service cannot answer right now; retry later."}, nil)
}

// allowedOrigin reports whether origin may call with the session cookie.
func (s *Service) allowedOrigin(origin string) bool {
	return origin != "" && slices.Contains(s.cfg.AllowedOrigins, origin)
}

// setCORS allows a configured origin to read the answer with credentials;
// every other origin gets no CORS header at all. Vary: Origin always, so
// no cache hands one origin's answer to another.
func (s *Service) setCORS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); s.allowedOrigin(o) {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// servePreflight answers CORS preflights of /login/credentials and
// /graphql: only configured origins, GET and POST, Content-Type (GraphQL
// sends application/json).
func (s *Service) servePreflight(w http.ResponseWriter, r *http.Request) {
	s.setCORS(w, r)
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	m := r.Header.Get("Access-Control-Request-Method")
	if s.allowedOrigin(r.Header.Get("Origin")) && (m == http.MethodGet || m == http.MethodPost) {
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
}
