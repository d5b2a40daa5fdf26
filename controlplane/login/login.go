// Package login is where people get Taskcluster credentials: browser
// sign-in through OIDC providers and GitHub, temporary credentials for a
// signed-in user (GET /login/credentials and the GraphQL getCredentials of
// Taskcluster's web-server), the exchange of a provider access token for
// credentials (GET /api/login/v1/oidc-credentials/<provider>), third-party
// sign-in for registered apps (OAuth2 authorization code), and the client
// scanner that disables clients of users who lost their rights.
//
// The control plane mounts Service.Handler and runs Service.Run. Every
// piece of state (sessions, provider grants, OAuth2 codes and tokens) lives
// in the replicated store through Backend, keyed by a SHA-256 of its
// secret and sealed with the cluster keyring, so a sign-in works on any
// node and a logout ends the session on every node.
package login

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// Record kinds of the replicated login state.
const (
	KindSession = "session"       // key = hash(session cookie value); Data = sessionData
	KindGrant   = "grant"         // key = hash(identity); Data = Grant JSON (the provider's tokens)
	KindConsent = "oauth-consent" // key = hash(transaction id); a pending third-party consent
	KindCode    = "oauth-code"    // key = hash(authorization code)
	KindToken   = "oauth-token"   // key = hash(third-party access token)
)

// Record is one entry of the replicated login state. Key is never a
// secret itself: it is KeyOf(secret), so a backup or a log reader learns
// nothing that signs anybody in. Data is sealed at rest by the backend
// (keyring, with kind and key as additional data).
type Record struct {
	Kind     string
	Key      string
	Identity string // whose record it is ("" for none); used for per-user limits and logout
	Created  time.Time
	Expires  time.Time
	Data     []byte // plaintext here; sealed in the log, snapshots and bolt
}

// Op names a login-state write.
type Op string

// The writes.
//
//	put     store Record; with Create, ErrConflict if the key exists; with
//	        MaxPerIdentity > 0, the oldest records of the same kind and
//	        identity beyond that many are deleted in the same entry
//	take    delete and return the record (Kind, Key) if it exists and has
//	        not expired at Time; ErrNotFound otherwise — single use
//	delete  delete the records (Kind, Keys), or, with Keys empty, every
//	        record of Kind held by Identity
//	purge   delete every record whose Expires is before Time
const (
	OpPut    Op = "put"
	OpTake   Op = "take"
	OpDelete Op = "delete"
	OpPurge  Op = "purge"
)

// Command is one login-state write; which fields matter depends on Op.
type Command struct {
	Op             Op
	Time           time.Time
	Record         Record   // put
	Create         bool     // put
	MaxPerIdentity int      // put
	Kind           string   // take, delete
	Key            string   // take
	Keys           []string // delete
	Identity       string   // delete
}

// Result is what a write did: the taken record, or how many were deleted.
type Result struct {
	Record Record
	Count  int
}

// Client is a stored client as the login service sees it.
type Client struct {
	ClientID           string
	Description        string
	Scopes             []string
	Expires            time.Time
	Created            time.Time
	DeleteOnExpiration bool
	Disabled           bool
}

// ClientSpec is a client to create for a user (third-party sign-in).
type ClientSpec struct {
	ClientID           string
	Description        string
	Scopes             []string
	Expires            time.Time
	DeleteOnExpiration bool
	Actor              string // audit actor
}

// Backend is what the service needs from the control plane. Writes may be
// called on any node (a follower hands them to the leader) and return once
// this node has applied them; reads are of this node's applied state.
type Backend interface {
	// Apply replicates a login-state write.
	Apply(ctx context.Context, cmd Command) (Result, error)
	// Record returns a stored login record with its Data opened.
	Record(kind, key string) (Record, bool, error)
	// Sync returns once Record reflects every write acknowledged anywhere
	// before the call (the read-index recipe, on any node).
	Sync(ctx context.Context) error

	// CreateClient creates a client with a new access token and returns
	// it; ErrConflict (with the existing client) if the id exists.
	CreateClient(ctx context.Context, spec ClientSpec) (Client, string, error)
	// DisableClient disables a client (audited as actor); ErrNotFound if absent.
	DisableClient(ctx context.Context, clientID, actor string) error
	Client(clientID string) (Client, bool)
	// ListClients returns every client whose id starts with prefix.
	ListClients(prefix string) []Client
	// AccessToken returns a client's access token (the issuer's, to sign
	// temporary credentials).
	AccessToken(clientID string) (string, bool, error)
	// Resolver is the current role resolver (expansion of user scopes).
	Resolver() *scopeengine.Resolver
	// IsLeader reports whether this node leads (Run's jobs run there only).
	IsLeader() bool
}

// Sealer is authenticated encryption under the cluster keyring (the flow
// cookie that carries state, nonce and PKCE verifier through the provider
// round trip is sealed with it, so any node can finish a sign-in another
// node started, and nothing is stored for an unauthenticated caller).
type Sealer interface {
	Seal(id string, plaintext []byte) ([]byte, error)
	Open(id string, sealed []byte) ([]byte, error)
}

// Errors of the Backend (the control plane passes raftstore's sentinels
// through these).
var (
	ErrNotFound = errors.New("login: not found")
	ErrConflict = errors.New("login: already exists")
	// ErrUnavailable: the write or sync could not reach a Raft leader (none
	// elected, or it is unreachable), or the leader changed before the
	// write was known to commit; nothing is known to have changed. Answer
	// 503 with Retry-After.
	ErrUnavailable = errors.New("login: the replicated state is unavailable; retry later")
)

// Errors of strategies.
var (
	// ErrUserGone: the provider says the user no longer exists or no
	// longer grants access (revoked token, refresh refused, GitHub login
	// now names another account). Sessions end; the scanner disables.
	ErrUserGone = errors.New("login: the provider no longer knows this user")
	// ErrNotSupported: the strategy cannot do this (e.g. a bearer exchange
	// on a strategy without one configured).
	ErrNotSupported = errors.New("login: not supported by this strategy")
)

// User is a signed-in person as a provider describes them now.
type User struct {
	ProviderID string   // the strategy name: "github", "corp", ...
	IdentityID string   // already encoded (Encode), e.g. "1234|octocat"
	Roles      []string // role ids without "assume:", discovery order, may repeat
	// ProviderExpires is when the provider's own sign-in ends
	// (providerExpires of the login message).
	ProviderExpires time.Time
	DisplayName     string
}

// Grant is what a strategy keeps to re-derive a user later (every
// credentials request, the scanner): the provider's tokens. Stored sealed.
type Grant struct {
	Strategy     string    `json:"strategy"`
	Subject      string    `json:"subject,omitempty"` // provider's stable id (OIDC sub, GitHub numeric id)
	AccessToken  string    `json:"accessToken,omitempty"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	Expiry       time.Time `json:"expiry,omitempty"` // of AccessToken
	// Login is GitHub's username at sign-in (it must still name Subject).
	Login string `json:"login,omitempty"`
}

// Strategy is one configured sign-in provider.
type Strategy interface {
	// Name is the URL segment and identityProviderId.
	Name() string
	// AuthCodeURL is where the browser goes to sign in; redirectURL is
	// <public URL>/login/<name>/callback. "" when the provider cannot be
	// reached (OIDC discovery failed): answer 503, do not redirect.
	AuthCodeURL(state, nonce, pkceVerifier, redirectURL string) string
	// Exchange finishes the callback: the authorization code for the user
	// and the grant to keep. nonce and verifier are the ones AuthCodeURL got.
	Exchange(ctx context.Context, code, nonce, pkceVerifier, redirectURL string) (User, Grant, error)
	// Refresh re-derives the user from a stored grant. changed reports a
	// grant to store again (rotated refresh token). ErrUserGone when the
	// user is no longer valid; other errors are transient (no decision).
	Refresh(ctx context.Context, g Grant) (u User, updated Grant, changed bool, err error)
	// BearerUser resolves a provider access token presented by a tool
	// (oidc-credentials). ErrNotSupported without a bearer configuration.
	BearerUser(ctx context.Context, accessToken string) (User, error)
}

// Service is the login service. Build it with New.
type Service struct {
	cfg        Config
	backend    Backend
	log        *slog.Logger
	strategies map[string]Strategy
	order      []string // strategy names in configuration order
	publicURL  *url.URL
	mux        *http.ServeMux
	handler    http.Handler // mux behind guard (limits.go)
	lim        *limits
	// seed, when set (tests only), fixes the seed of temporary credentials
	// so a certificate can be compared byte for byte; nil = random.
	seed func() string
	// web caches signed-in users' credentials for the web UI (webapi.go).
	web webCache
}

// New checks cfg and builds the strategies it names.
func New(cfg Config, backend Backend) (*Service, error) {
	if backend == nil {
		return nil, errors.New("login: nil backend")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, backend: backend, log: cfg.Logger, strategies: map[string]Strategy{}, publicURL: pub, lim: newLimits(cfg)}
	for _, sc := range cfg.Strategies {
		st, err := s.buildStrategy(sc)
		if err != nil {
			return nil, err
		}
		s.strategies[st.Name()] = st
		s.order = append(s.order, st.Name())
	}
	s.mux = s.routes()
	s.handler = s.guard(s.mux)
	return s, nil
}

// Handler serves /login/…, /graphql and /api/login/v1/….
func (s *Service) Handler() http.Handler { return s.handler }

// Issuer is the configured issuer client (defaults applied): the control
// plane warns at start-up when it does not exist.
func (s *Service) Issuer() string { return s.cfg.Issuer }

// Owns reports whether path belongs to the login service (the control
// plane routes by it).
func Owns(path string) bool {
	return path == "/graphql" || path == "/login" || strings.HasPrefix(path, "/login/") || strings.HasPrefix(path, "/api/login/v1/")
}

// routes is the route table. Go's ServeMux patterns are enough here: none
// of these paths carries a Hawk signature, so path cleaning cannot break a
// MAC, and every strategy name is a plain segment.
func (s *Service) routes() *http.ServeMux {
	m := http.NewServeMux()
	// browser sign-in (browser.go)
	m.HandleFunc("GET /login/{strategy}", s.serveStart)
	m.HandleFunc("GET /login/{strategy}/callback", s.serveCallback)
	m.HandleFunc("POST /login/logout", s.serveLogout)
	// credentials for a signed-in user (credentials.go, graphql.go)
	m.HandleFunc("GET /login/credentials", s.serveCredentials)
	m.HandleFunc("OPTIONS /login/credentials", s.servePreflight)
	m.HandleFunc("POST /graphql", s.serveGraphQL)
	m.HandleFunc("OPTIONS /graphql", s.servePreflight)
	// provider access token → credentials (bearer.go)
	m.HandleFunc("GET /api/login/v1/oidc-credentials/{provider}", s.serveOIDCCredentials)
	// third-party sign-in (oauth2.go)
	m.HandleFunc("GET /login/oauth/authorize", s.serveAuthorize)
	m.HandleFunc("POST /login/oauth/authorize/decision", s.serveDecision)
	m.HandleFunc("POST /login/oauth/token", s.serveToken)
	m.HandleFunc("OPTIONS /login/oauth/token", s.serveOAuthPreflight)
	m.HandleFunc("GET /login/oauth/credentials", s.serveOAuthCredentials)
	m.HandleFunc("OPTIONS /login/oauth/credentials", s.serveOAuthPreflight)
	m.HandleFunc("/", s.serveNotFound)
	return m
}

// Run runs the leader-only jobs until ctx ends: purging expired login
// records and the client scanner (scanner.go). On followers it idles.
func (s *Service) Run(ctx context.Context) error {
	purge := time.NewTicker(time.Duration(s.cfg.PurgeInterval))
	defer purge.Stop()
	scan := time.NewTicker(time.Duration(s.cfg.ScanInterval))
	defer scan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-purge.C:
			if s.backend.IsLeader() {
				s.purgeExpired(ctx)
			}
		case <-scan.C:
			if s.backend.IsLeader() {
				if _, err := s.ScanClients(ctx); err != nil {
					s.log.Warn("client scan failed", "error", err.Error())
				}
			}
		}
	}
}

func (s *Service) purgeExpired(ctx context.Context) {
	res, err := s.backend.Apply(ctx, Command{Op: OpPurge, Time: s.cfg.Now()})
	if err != nil {
		s.log.Warn("purging expired login records failed", "error", err.Error())
		return
	}
	if res.Count > 0 {
		s.log.Info("purged expired login records", "count", res.Count)
	}
}
