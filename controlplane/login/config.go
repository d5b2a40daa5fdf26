package login

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// Config configures the login service. The YAML keys are those of the
// control plane's --login-config file. Zero values mean the documented
// defaults. Durations are protocol.Duration: a file may say "168h" or
// "7 days".
type Config struct {
	// PublicURL is where browsers reach the deployment (callback URLs,
	// cookie scope, the postMessage target origin). Required.
	PublicURL string `yaml:"publicUrl"`
	// Issuer is the static client that signs users' temporary credentials
	// (web-server's static/taskcluster/web-server). It must hold
	// auth:create-client:<identity> and every scope it hands out.
	// Default "static/taskcluster/web-server".
	Issuer string `yaml:"issuer"`
	// AllowedOrigins may call /login/credentials and /graphql from a
	// browser with the session cookie (CORS with credentials). Default
	// none: only same-origin pages.
	AllowedOrigins []string `yaml:"allowedOrigins"`
	// SessionLifetime is how long a browser session lasts. Default one
	// week (as web-server).
	SessionLifetime protocol.Duration `yaml:"sessionLifetime"`
	// MaxSessionsPerIdentity bounds one user's live sessions; signing in
	// again beyond it ends the oldest. Default 20.
	MaxSessionsPerIdentity int `yaml:"maxSessionsPerIdentity"`
	// StartOffset backdates temporary credentials for clock skew. Default
	// 15 minutes (web-server's "- 15 min").
	StartOffset protocol.Duration `yaml:"startOffset"`
	// Strategies are the sign-in providers, in the order sign-in pages list them.
	Strategies []StrategyConfig `yaml:"strategies"`
	// Apps are the third-party apps that may ask users for credentials.
	Apps []App `yaml:"registeredApps"`
	// ScanInterval is how often the leader scans users' clients. Default 1h.
	ScanInterval protocol.Duration `yaml:"scanInterval"`
	// PurgeInterval is how often the leader deletes expired login records.
	// Default 1 minute.
	PurgeInterval protocol.Duration `yaml:"purgeInterval"`

	// Abuse limits (limits.go). SourceRate and SourceBurst are the token
	// bucket of one source (client address; an IPv6 /64) for the requests
	// of callers who have proven nothing that cost a provider call or a
	// replicated write: sign-in callbacks, oidc-credentials exchanges, the
	// third-party token endpoint. Over it: 429 TooManyRequests with
	// Retry-After. Defaults 1 per second, burst 30.
	SourceRate  float64 `yaml:"sourceRate"`
	SourceBurst int     `yaml:"sourceBurst"`
	// SourceTableSize bounds the sources whose buckets are remembered
	// (least recently seen forgotten first). Default 10000.
	SourceTableSize int `yaml:"sourceTableSize"`
	// MaxProviderCalls bounds the provider calls in flight for such
	// callers, across sources; a request that waited ProviderCallWait for
	// a slot gets 503. Signed-in users' refreshes are not counted. Defaults
	// 32 and 2s.
	MaxProviderCalls int               `yaml:"maxProviderCalls"`
	ProviderCallWait protocol.Duration `yaml:"providerCallWait"`
	// RefusedTokenTTL is how long a bearer token the provider refused is
	// answered from memory (the same refusal, no provider call); at most
	// RefusedTokenCache of them are kept. Defaults 1 minute and 10000.
	RefusedTokenTTL   protocol.Duration `yaml:"refusedTokenTtl"`
	RefusedTokenCache int               `yaml:"refusedTokenCache"`
	// JWKSMinRefresh is the least time between two fetches of an OIDC
	// provider's JWKS caused by tokens naming an unknown key id. Default 30s.
	JWKSMinRefresh protocol.Duration `yaml:"jwksMinRefresh"`
	// ClientAddr names the caller of a request for the source budgets.
	// The control plane sets it to the peer address, or the address its
	// trusted proxies report in X-Forwarded-For. Default the peer address.
	ClientAddr func(*http.Request) string `yaml:"-"`

	// Sealer seals the sign-in flow cookie: the cluster keyring. Required.
	Sealer Sealer `yaml:"-"`
	// HTTPClient talks to the providers. Default a client with a 10 s timeout.
	HTTPClient *http.Client `yaml:"-"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Logger. Default slog's default logger.
	Logger *slog.Logger `yaml:"-"`
}

// StrategyConfig is one provider.
type StrategyConfig struct {
	// Name is the URL segment (/login/<name>) and the identityProviderId
	// that prefixes identities: [a-z0-9-]+. Default the Type.
	Name string `yaml:"name"`
	// Type is "oidc" or "github".
	Type string `yaml:"type"`
	// ClientID and the client secret of the OAuth2/OIDC client registered
	// at the provider. The secret comes from ClientSecret or, better, from
	// the file ClientSecretFile.
	ClientID         string `yaml:"clientId"`
	ClientSecret     string `yaml:"clientSecret"`
	ClientSecretFile string `yaml:"clientSecretFile"`
	// Scopes requested at sign-in. Defaults: oidc "openid profile email
	// offline_access"; github "read:org" (the least scope that reads team
	// and organization memberships).
	Scopes []string `yaml:"scopes"`

	// OIDC: Issuer URL (discovery at <issuer>/.well-known/openid-configuration).
	Issuer string `yaml:"issuer"`
	// IdentityClaim names the claim that identifies the user. Default "sub".
	IdentityClaim string `yaml:"identityClaim"`
	// GroupsClaim names a claim holding group names (a list of strings, or
	// one string); each gives the role <GroupRolePrefix><group>. "" = none.
	GroupsClaim string `yaml:"groupsClaim"`
	// GroupRolePrefix defaults to "<name>-group:".
	GroupRolePrefix string `yaml:"groupRolePrefix"`
	// Preset fills defaults for a known provider: "mozilla-auth0" (groups
	// claim https://sso.mozilla.com/claim/groups, roles mozilla-group:<g>).
	Preset string `yaml:"preset"`
	// Bearer enables GET /api/login/v1/oidc-credentials/<name>.
	Bearer *BearerConfig `yaml:"bearer"`

	// GitHub: the OAuth endpoints and the REST API base. Defaults
	// https://github.com/login/oauth/authorize,
	// https://github.com/login/oauth/access_token and https://api.github.com
	// (set all three for GitHub Enterprise Server).
	AuthorizeURL string `yaml:"authorizeUrl"`
	TokenURL     string `yaml:"tokenUrl"`
	APIURL       string `yaml:"apiUrl"`
}

// BearerConfig configures the exchange of a provider access token for
// credentials. JWT access tokens are verified against the provider's JWKS
// (issuer, Audience, expiry, RequiredScope in the scope claim); opaque ones
// go to the provider's introspection endpoint when Introspect is set
// (authenticated as this client), else to its userinfo endpoint.
type BearerConfig struct {
	Audience      string `yaml:"audience"`
	RequiredScope string `yaml:"requiredScope"` // default "taskcluster-credentials"
	Introspect    bool   `yaml:"introspect"`
}

// App is a registered third-party app (web-server's REGISTERED_CLIENTS).
type App struct {
	// ClientID is the app's OAuth2 client id (not a Taskcluster clientId):
	// [A-Za-z0-9_-]+, part of the Taskcluster clientId it gets.
	ClientID string `yaml:"clientId"`
	// ResponseType is "code" (default) or "token".
	ResponseType string `yaml:"responseType"`
	// Scopes the app may ask for (and must ask for exactly).
	Scopes []string `yaml:"scope"`
	// RedirectURIs are matched exactly.
	RedirectURIs []string `yaml:"redirectUri"`
	// Whitelisted apps asking exactly their scopes skip the consent page.
	Whitelisted bool `yaml:"whitelisted"`
	// MaxExpires bounds the client's lifetime, a fromNow string like
	// "30 days". Default "1 year".
	MaxExpires string `yaml:"maxExpires"`
}

var strategyName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// reservedNames are path segments under /login/ that are not strategies.
var reservedNames = map[string]bool{"logout": true, "credentials": true, "oauth": true, "callback": true}

func (c *Config) fill() error {
	if c.PublicURL == "" {
		return errors.New("login: publicUrl is required")
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("login: publicUrl %q: want an absolute http(s) URL without query", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.Sealer == nil {
		return errors.New("login: a Sealer (the cluster keyring) is required")
	}
	setDefault(&c.Issuer, "static/taskcluster/web-server")
	setDefault(&c.SessionLifetime, protocol.Duration(7*24*time.Hour))
	setDefault(&c.MaxSessionsPerIdentity, 20)
	setDefault(&c.StartOffset, protocol.Duration(15*time.Minute))
	setDefault(&c.ScanInterval, protocol.Duration(time.Hour))
	setDefault(&c.PurgeInterval, protocol.Duration(time.Minute))
	if err := c.fillLimits(); err != nil {
		return err
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	seen := map[string]bool{}
	for i := range c.Strategies {
		sc := &c.Strategies[i]
		setDefault(&sc.Name, sc.Type)
		if !strategyName.MatchString(sc.Name) || reservedNames[sc.Name] {
			return fmt.Errorf("login: strategy name %q: want [a-z0-9-]+ and not one of logout, credentials, oauth", sc.Name)
		}
		if seen[sc.Name] {
			return fmt.Errorf("login: two strategies named %q", sc.Name)
		}
		seen[sc.Name] = true
		if sc.ClientSecretFile != "" {
			b, err := os.ReadFile(sc.ClientSecretFile)
			if err != nil {
				return fmt.Errorf("login: strategy %s: %w", sc.Name, err)
			}
			sc.ClientSecret = strings.TrimSpace(string(b))
		}
	}
	return c.fillApps()
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// buildStrategy makes the strategy of one configuration entry.
func (s *Service) buildStrategy(sc StrategyConfig) (Strategy, error) {
	switch sc.Type {
	case "oidc":
		return newOIDCStrategy(s.cfg, sc)
	case "github":
		return newGitHubStrategy(s.cfg, sc)
	default:
		return nil, fmt.Errorf("login: strategy %s: unknown type %q (want oidc or github)", sc.Name, sc.Type)
	}
}

// CheckConfig makes New's checks of cfg — the defaults filled in, secret
// files read, every strategy built — without a backend and without
// serving anything, and reports each strategy's problem (errors.Join):
// `tcauth controlplane --check-config`. A nil Sealer is allowed: the
// control plane supplies the cluster keyring when it starts.
func CheckConfig(cfg Config) error {
	if cfg.Sealer == nil {
		cfg.Sealer = checkOnlySealer{}
	}
	if err := cfg.fill(); err != nil {
		return err
	}
	s := &Service{cfg: cfg}
	var errs []error
	for _, sc := range cfg.Strategies {
		if _, err := s.buildStrategy(sc); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkOnlySealer stands in for the keyring while CheckConfig runs; it is
// never used to seal anything.
type checkOnlySealer struct{}

func (checkOnlySealer) Seal(string, []byte) ([]byte, error) {
	return nil, errors.New("login: configuration check only")
}
func (checkOnlySealer) Open(string, []byte) ([]byte, error) {
	return nil, errors.New("login: configuration check only")
}
