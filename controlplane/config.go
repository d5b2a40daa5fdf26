package controlplane

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/tcauth/tcauth/controlplane/cloud"
	"github.com/tcauth/tcauth/controlplane/events"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/buildinfo"
	"github.com/tcauth/tcauth/scopeengine"
)

// Config configures a Server. Zero durations and sizes mean the defaults of
// DefaultConfig.
type Config struct {
	// RootURL is the deployment's root URL (used in schema ids of error
	// messages). Default "https://tc.example.com".
	RootURL string
	// AdvertiseURL is this node's HTTP base URL as its peers reach it
	// (published through the store so followers can forward to the leader).
	// "" = not published (a single node, or tests).
	AdvertiseURL string
	// TrustedProxies lists the peers (load balancers and the other
	// control-plane nodes) whose X-Forwarded-Port/Proto/For headers are
	// believed: the Hawk MAC covers host and port, so an untrusted caller
	// must not be able to choose them. Empty = trust nobody.
	TrustedProxies []netip.Prefix
	// PeerKeyring authenticates the nodes of one cluster to each other
	// (peer tickets, peer.go): the cluster's token keyring, which every
	// node holds. nil = a random key of the process: the node is its own
	// only peer (enough for a single node; other nodes' reportLastUsed
	// calls are refused and their forward markers ignored). Being in
	// TrustedProxies never makes a caller a peer.
	PeerKeyring Sealer
	// StaleReads serves client/role reads from local state on followers
	// instead of forwarding them to the leader. Default false (linearizable).
	StaleReads bool
	// StaticClients are the statically configured clients (docs/api.md §5).
	StaticClients []StaticClient
	// WebsocktunnelSecret signs websocktunnelToken JWTs; "" = not configured
	// (the endpoint answers 404 ResourceNotFound). A shorthand for
	// Cloud.Websocktunnel.Secret (setting both is refused).
	WebsocktunnelSecret string
	// Cloud configures the third-party credential backends (websocktunnel,
	// GCP, Sentry, Azure; package cloud). nil or a nil section = that
	// backend is not configured and its endpoints answer 404. Its Now and
	// Logger default to these.
	Cloud *cloud.Config
	// Events publishes client and role changes to an AMQP broker
	// (Taskcluster's auth exchanges) from the replicated outbox; nil = no
	// events (and no outbox). Needs the raftstore Store (NewRaftStore).
	// Its Logger defaults to this one.
	Events *events.Config
	// Version is served by /__version__ (Dockerflow version.json members).
	Version map[string]string
	// MaxBodyBytes bounds request bodies (default 10 MB).
	MaxBodyBytes int64
	// MaxSnapshotBytes bounds a backup uploaded for restore (default 1 GiB).
	MaxSnapshotBytes int64
	// Cluster serves the /tcauth/cluster endpoints (membership, backups);
	// nil = they answer 404. *raftstore.Store satisfies it.
	Cluster Cluster
	// ForwardTimeout bounds a request forwarded to the leader (default 30s).
	ForwardTimeout time.Duration
	// ExpiryInterval is how often the leader deletes expired clients
	// (default 1h; the reference does it daily).
	ExpiryInterval time.Duration
	// AuditRetention is how long audit rows are kept (default 30 days);
	// AuditPurgeInterval how often they are purged (default 24h).
	AuditRetention     time.Duration
	AuditPurgeInterval time.Duration
	// LastUsedInterval is how often collected lastDateUsed updates are
	// committed (default 1 min); LastUsedResolution is how old a stored
	// lastDateUsed must be before it is bumped (default 6h, as reference).
	LastUsedInterval   time.Duration
	LastUsedResolution time.Duration
	// ChangesMaxWait bounds the long poll of the change feed (default 60s).
	ChangesMaxWait time.Duration
	// EnablePprof adds Go's profiles under /debug/pprof/ to AdminHandler
	// (default off: they reveal internals and cost CPU; for diagnosis on a
	// private network, as rqlite and Consul offer). Handler, the public
	// API, never serves them.
	EnablePprof bool
	// ClientCacheSize bounds the cache of expanded client scopes (default 10000).
	ClientCacheSize int
	// MaxLargeExpansions bounds the expandScopes calls that run at once
	// with a broad input (an assume target ending in '*') or a large
	// answer (≥ scopeengine.DefaultSharedExpansionMin scopes); default
	// DefaultMaxLargeExpansions. LargeExpansionWait is how long a call
	// waits for a slot before it is answered 503 with Retry-After (default
	// 2s). See expandscopes.go.
	MaxLargeExpansions int
	LargeExpansionWait time.Duration
	// Login configures the login service (browser sign-in, credentials
	// for users, third-party sign-in; package login), served at /login/…,
	// /graphql and /api/login/v1/…. nil = none. Its Sealer defaults to
	// PeerKeyring (the cluster keyring), its Now and Logger to these.
	// The Store must implement LoginStore.
	Login *login.Config
	// UICallbackHosts are host names, besides localhost and 127.0.0.1, to
	// which the web UI's tools flow may send a new client's credentials
	// (https only). Default none.
	UICallbackHosts []string
	// Now is the clock (default time.Now); tests freeze it.
	Now func() time.Time
	// Logger receives JSON logs; default slog JSON on stderr. Secrets are
	// never logged.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		RootURL:            "https://tc.example.com",
		MaxBodyBytes:       10 << 20,
		MaxSnapshotBytes:   1 << 30,
		ForwardTimeout:     30 * time.Second,
		ExpiryInterval:     time.Hour,
		AuditRetention:     30 * 24 * time.Hour,
		AuditPurgeInterval: 24 * time.Hour,
		LastUsedInterval:   time.Minute,
		LastUsedResolution: 6 * time.Hour,
		ChangesMaxWait:     60 * time.Second,
		ClientCacheSize:    10000,
		MaxLargeExpansions: DefaultMaxLargeExpansions(),
		LargeExpansionWait: 2 * time.Second,
		Now:                time.Now,
		Version:            buildinfo.Get().Dockerflow(),
	}
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.RootURL == "" {
		c.RootURL = d.RootURL
	}
	c.RootURL = strings.TrimRight(c.RootURL, "/")
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxSnapshotBytes <= 0 {
		c.MaxSnapshotBytes = d.MaxSnapshotBytes
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&c.ForwardTimeout, &d.ForwardTimeout}, {&c.ExpiryInterval, &d.ExpiryInterval},
		{&c.AuditRetention, &d.AuditRetention}, {&c.AuditPurgeInterval, &d.AuditPurgeInterval},
		{&c.LastUsedInterval, &d.LastUsedInterval}, {&c.LastUsedResolution, &d.LastUsedResolution},
		{&c.ChangesMaxWait, &d.ChangesMaxWait}, {&c.LargeExpansionWait, &d.LargeExpansionWait},
	} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	if c.ClientCacheSize <= 0 {
		c.ClientCacheSize = d.ClientCacheSize
	}
	if c.MaxLargeExpansions <= 0 {
		c.MaxLargeExpansions = d.MaxLargeExpansions
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Version == nil {
		c.Version = d.Version
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
}

// StaticClient is one statically configured client (docs/api.md §5).
type StaticClient struct {
	ClientID    string   `json:"clientId"`
	AccessToken string   `json:"accessToken"`
	Description string   `json:"description,omitempty"`
	Scopes      []string `json:"scopes,omitempty"`
}

// StaticDescriptionNote is appended to every static client's description.
const StaticDescriptionNote = "\n---\n\nThis is a static client, managed by the deployment administrator: " +
	"it is defined in the deployment's configuration and cannot be modified through the API."

// builtinStaticScopes are the fixed scopes of the static/taskcluster/*
// clients (docs/api.md §5).
var builtinStaticScopes = map[string][]string{
	"root":             {"*"},
	"queue":            {"*"},
	"built-in-workers": {"queue:claim-work:built-in/*", "queue:worker-id:built-in/*"},
	"github": {"assume:repo:github.com/*", "assume:scheduler-id:taskcluster-github/*", "auth:expand-scopes",
		"hooks:trigger-hook:*", "queue:cancel-task-group:taskcluster-github/*",
		"queue:get-artifact:public/github/customCheckRunAnnotations.json",
		"queue:get-artifact:public/github/customCheckRunText.md", "queue:get-artifact:public/logs/live_backing.log",
		"queue:list-artifacts:*", "queue:list-task-group:*", "queue:route:checks", "queue:route:statuses",
		"queue:scheduler-id:taskcluster-github", "queue:seal-task-group:taskcluster-github/*"},
	"hooks":       {"assume:hook-id:*", "notify:email:*", "queue:create-task:*"},
	"index":       {"queue:get-artifact:*", "queue:get-task:*"},
	"notify":      {"queue:get-task:*"},
	"object":      {},
	"purge-cache": {},
	"secrets":     {},
	"web-server": {"assume:github-org-admin:*", "assume:github-team:*", "assume:login-identity:*",
		"assume:mozilla-group:*", "assume:mozillians-group:*",
		"auth:create-client:github/*", "auth:create-client:mozilla-auth0/*",
		"auth:delete-client:github/*", "auth:delete-client:mozilla-auth0/*",
		"auth:disable-client:github/*", "auth:disable-client:mozilla-auth0/*",
		"auth:enable-client:github/*", "auth:enable-client:mozilla-auth0/*",
		"auth:reset-access-token:github/*", "auth:reset-access-token:mozilla-auth0/*",
		"auth:update-client:github/*", "auth:update-client:mozilla-auth0/*"},
	"worker-manager": {"assume:worker-id:*", "assume:worker-pool:*", "assume:worker-type:*",
		"auth:create-client:worker/*", "notify:email:*", "queue:claim-work:*", "queue:claimed-count:*",
		"queue:pending-count:*", "queue:worker-id:*", "secrets:get:worker-pool:*", "secrets:get:worker-type:*",
		"worker-manager:remove-worker:*", "worker-manager:reregister-worker:*",
		"worker-manager:should-worker-terminate:*"},
}

var accessTokenRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{22,66}$`)

// ResolveStaticClients validates configured static clients and returns
// them as stored: built-in static/taskcluster/* clients get their fixed
// scopes and the description "Internal client"; every description gets
// StaticDescriptionNote.
//
// tcauth choice: the reference refuses to start unless *every* built-in
// static/taskcluster/* client is configured; tcauth requires only that the
// configured ones are built-in (unknown ones are still refused), because a
// tcauth deployment need not run every Taskcluster service.
func ResolveStaticClients(in []StaticClient) ([]StaticClient, error) {
	seen := map[string]bool{}
	out := make([]StaticClient, 0, len(in))
	var errs []error // every bad client, not only the first (--check-config)
	for _, c := range in {
		c, err := resolveStaticClient(c, seen)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// resolveStaticClient checks one static client (seen holds the ids
// before it) and returns it as stored.
func resolveStaticClient(c StaticClient, seen map[string]bool) (StaticClient, error) {
	if !strings.HasPrefix(c.ClientID, "static/") {
		return c, fmt.Errorf("static client %q: clientId must start with static/", c.ClientID)
	}
	if !clientIDRe.MatchString(c.ClientID) {
		return c, fmt.Errorf("static client %q: invalid clientId", c.ClientID)
	}
	if seen[c.ClientID] {
		return c, fmt.Errorf("static client %q configured twice", c.ClientID)
	}
	seen[c.ClientID] = true
	if !accessTokenRe.MatchString(c.AccessToken) {
		return c, fmt.Errorf("static client %q: accessToken must match %s", c.ClientID, accessTokenRe)
	}
	if svc, ok := strings.CutPrefix(c.ClientID, "static/taskcluster/"); ok {
		scopes, known := builtinStaticScopes[svc]
		if !known {
			return c, fmt.Errorf("static client %q is not a built-in static/taskcluster/ client", c.ClientID)
		}
		if c.Scopes != nil {
			return c, fmt.Errorf("static client %q: built-in clients must not configure scopes", c.ClientID)
		}
		c.Scopes = append([]string{}, scopes...)
		c.Description = "Internal client"
	} else if c.Description == "" || c.Scopes == nil {
		return c, fmt.Errorf("static client %q needs a description and scopes", c.ClientID)
	}
	for _, s := range c.Scopes {
		if !scopeengine.ValidScope(s) || strings.HasSuffix(s, "**") {
			return c, fmt.Errorf("static client %q: invalid scope %q", c.ClientID, s)
		}
	}
	c.Description += StaticDescriptionNote
	return c, nil
}

// RootTokenFile is the file, inside the data directory, that holds the
// generated static/taskcluster/root access token.
const RootTokenFile = "root-access-token"

// EnsureRootToken returns the static/taskcluster/root access token kept in
// dataDir/root-access-token, generating it (44 characters, two slugids'
// worth of randomness) and writing it with mode 0600 on first start.
// created reports whether it was generated now. The token is never logged.
func EnsureRootToken(dataDir string) (token string, created bool, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, err
	}
	return EnsureTokenFile(filepath.Join(dataDir, RootTokenFile))
}

// EnsureTokenFile returns the access token kept in path, generating it and
// writing it with mode 0600 (O_EXCL) when the file does not exist yet.
func EnsureTokenFile(path string) (token string, created bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		token = strings.TrimSpace(string(b))
		if !accessTokenRe.MatchString(token) {
			return "", false, fmt.Errorf("%s does not hold a valid access token", path)
		}
		return token, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	token = newAccessToken()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, err
	}
	if _, err := io.WriteString(f, token+"\n"); err != nil {
		f.Close()
		return "", false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, err
	}
	return token, true, f.Close()
}

// newAccessToken returns a 44-character token: two concatenated v4
// slugids, the reference's format.
func newAccessToken() string { return protocol.Slugid() + protocol.Slugid() }

// ParseTrustedProxies parses addresses ("10.0.0.5", "::1") and prefixes
// ("10.0.0.0/24") for Config.TrustedProxies.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an IP address nor a prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
