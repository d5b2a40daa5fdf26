package login

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tcauth/tcauth/protocol"
)

// What the web UI (controlplane/webui) needs from the login service: the
// signed-in user of a browser request with temporary credentials to call
// the API as that user, the strategies to offer on its sign-in page, and
// the sign-in URL that brings the browser back to the page it wanted.

// Web UI credential cache defaults.
const (
	// DefaultWebCacheSize bounds the sessions whose credentials are kept in
	// memory (least recently used forgotten first; a forgotten session
	// only costs a new derivation).
	DefaultWebCacheSize = 4096
	// WebRenewBefore: cached credentials are re-derived from the provider
	// this long before they expire, so a page never calls the API with
	// credentials that expire during the call, and a user is never thrown
	// out while the session lives (Taskcluster #1890: the UI signed users
	// out when their 15-minute credentials ran out).
	WebRenewBefore = 2 * time.Minute
	// formKeyPurpose separates the form key from any other value derived
	// from the session id.
	formKeyPurpose = "tcauth/webui/form-key/v1"
)

// Sentinel errors of SessionCredentials.
var (
	// ErrSignedOut: no session cookie, the session ended or expired, or the
	// provider says the user is gone (every session of the identity then
	// ended). Send the browser to sign in.
	ErrSignedOut = errors.New("login: not signed in")
	// ErrCannotIssue: the user is signed in but no credentials can be made
	// (the issuer client lacks scopes, or the user's roles do not fit a
	// Hawk header). Signing in again does not help; the operator must act.
	ErrCannotIssue = errors.New("login: credentials cannot be issued for this user")
)

// A transient failure (the provider or the replicated state unreachable)
// wraps ErrProviderUnavailable or ErrUnavailable: nothing was decided,
// answer 503 and keep the session.

// SessionCredentials is the signed-in user of a browser request.
type SessionCredentials struct {
	Identity string // e.g. "github/1234|octocat"
	Strategy string
	// Credentials are the user's temporary credentials (clientId = the
	// identity, with a certificate), as GET /login/credentials hands out.
	Credentials protocol.Credentials
	// Expires is when Credentials should no longer be used (the reported
	// expiry, 30 s before the certificate's).
	Expires        time.Time
	SessionExpires time.Time
	// FormKey is a per-session secret for CSRF form tokens: an HMAC of the
	// session id, so it is the same on every node and no one without the
	// HttpOnly session cookie can compute it. Never the session id itself.
	FormKey []byte
}

type webEntry struct {
	identity string
	creds    protocol.Credentials
	expires  time.Time
}

// webCache is the bounded per-session cache of users' credentials, keyed
// by KeyOf(session id). Built on first use (the zero value is ready).
type webCache struct {
	once  sync.Once
	cache *lru.Cache[string, webEntry]
}

func (c *webCache) get() *lru.Cache[string, webEntry] {
	c.once.Do(func() { c.cache, _ = lru.New[string, webEntry](DefaultWebCacheSize) }) // size > 0
	return c.cache
}

// SessionCredentials returns the request's signed-in user with temporary
// credentials. The session is looked up on every call (sessionFrom Syncs
// first), so a logout on any node takes effect at once; the credentials
// are cached per session until WebRenewBefore before their expiry and then
// re-derived through the provider (currentUser), so a user removed from a
// team loses the role within a credentials lifetime, as at
// /login/credentials. Errors: ErrSignedOut, ErrCannotIssue, or a
// transient error wrapping ErrProviderUnavailable / ErrUnavailable.
func (s *Service) SessionCredentials(r *http.Request) (SessionCredentials, error) {
	sess, ok, err := s.sessionFrom(r)
	if err != nil {
		return SessionCredentials{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	id, _ := sessionID(r)
	cache := s.web.get()
	if !ok {
		cache.Remove(KeyOf(id))
		return SessionCredentials{}, ErrSignedOut
	}
	out := SessionCredentials{Identity: sess.Identity, Strategy: sess.Strategy, SessionExpires: sess.Expires, FormKey: formKey(id)}
	now := s.cfg.Now()
	if e, ok := cache.Get(sess.Key); ok && e.identity == sess.Identity && now.Before(e.expires.Add(-WebRenewBefore)) {
		out.Credentials, out.Expires = e.creds, e.expires
		return out, nil
	}
	e, err := s.deriveWebCredentials(r.Context(), sess)
	if err != nil {
		cache.Remove(sess.Key)
		return SessionCredentials{}, err
	}
	cache.Add(sess.Key, e)
	out.Credentials, out.Expires = e.creds, e.expires
	return out, nil
}

// deriveWebCredentials is credentialsFor with its errors mapped to the
// sentinels of SessionCredentials.
func (s *Service) deriveWebCredentials(ctx context.Context, sess session) (webEntry, error) {
	reply, err := s.credentialsFor(ctx, sess)
	switch {
	case err == nil:
	case userRefused(err):
		s.log.Info("no credentials for a signed-in user", "identity", sess.Identity, "reason", err.Error())
		return webEntry{}, ErrSignedOut
	case errors.Is(err, errTooManyRoles), errors.Is(err, errIssuer):
		return webEntry{}, fmt.Errorf("%w: %v", ErrCannotIssue, err)
	case errors.Is(err, ErrProviderUnavailable), errors.Is(err, ErrUnavailable):
		return webEntry{}, err
	default:
		// currentUser's other errors are transient by its contract.
		return webEntry{}, fmt.Errorf("%w: %v", ErrProviderUnavailable, err)
	}
	exp, err := time.Parse(time.RFC3339, reply.Expires)
	if err != nil {
		return webEntry{}, fmt.Errorf("login: credentials expiry %q: %w", reply.Expires, err)
	}
	c := reply.Credentials
	return webEntry{identity: sess.Identity, expires: exp,
		creds: protocol.Credentials{ClientID: c.ClientID, AccessToken: c.AccessToken, Certificate: c.Certificate}}, nil
}

// formKey derives the CSRF form key of a session id.
func formKey(sessionID string) []byte {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte(formKeyPurpose))
	return m.Sum(nil)
}

// Strategies are the configured sign-in strategies in configuration order.
func (s *Service) Strategies() []string { return slices.Clone(s.order) }

// SignInPath is the path (on the public origin) that signs a browser in
// with strategy in redirect mode and then returns it to returnTo. A
// returnTo that validReturnTo refuses (another origin, "//host", …)
// becomes "/", so no caller can build an open redirect with it. "" for an
// unknown strategy.
func (s *Service) SignInPath(strategy, returnTo string) string {
	if _, ok := s.strategies[strategy]; !ok {
		return ""
	}
	if !validReturnTo(returnTo) {
		returnTo = "/"
	}
	q := url.Values{"mode": {modeRedirect}, "returnTo": {returnTo}}
	return "/login/" + url.PathEscape(strategy) + "?" + q.Encode()
}
