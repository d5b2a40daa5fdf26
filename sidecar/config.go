package sidecar

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcauth/tcauth/protocol"
)

// Verification modes (Config.Verify).
const (
	// VerifyLocal verifies Hawk itself with clients fetched from the
	// control plane, cached, and evicted by the change feed.
	VerifyLocal = "local"
	// VerifyRemote calls the control plane's authenticateHawk for every
	// request, as Taskcluster services do.
	VerifyRemote = "remote"
)

// Operating modes (Config.Mode).
const (
	// ModeProxy verifies and forwards requests to Config.Upstream.
	ModeProxy = "proxy"
	// ModeForwardAuth answers auth sub-requests of a reverse proxy (nginx
	// auth_request, Traefik ForwardAuth) with 200 + identity headers or
	// 401/403; the reverse proxy forwards the request itself.
	ModeForwardAuth = "forward-auth"
)

// Config configures a Sidecar. Start from DefaultConfig; the zero values of
// the durations and sizes are replaced by the defaults in New.
type Config struct {
	// Mode is ModeProxy (default) or ModeForwardAuth.
	Mode string
	// Verify is VerifyLocal (default) or VerifyRemote.
	Verify string
	// Upstream is the protected service's base URL (proxy mode), e.g.
	// http://127.0.0.1:9000.
	Upstream string
	// ControlPlane is the deployment's root URL; the API is at
	// ControlPlane + /api/auth/v1. In local mode it must be https unless
	// its host is a loopback address (access tokens travel in the
	// answers), or AllowInsecureControlPlane is set.
	ControlPlane string
	// AllowInsecureControlPlane permits plain http to a non-loopback
	// control plane in local mode (e.g. inside a private network with its
	// own encryption). Off by default.
	AllowInsecureControlPlane bool
	// Credentials are the sidecar's own, for local mode. They need
	// auth:tcauth:verify-clients (GET /tcauth/clients/<id>/credentials,
	// which hands out access tokens: grant it to sidecars only),
	// auth:tcauth:watch-changes (the change feed), auth:list-roles and
	// auth:get-role:* (role expansion). Remote mode needs none. Outside
	// loopback the control plane must be reached over https, since
	// credentials travel in the answers.
	Credentials *protocol.Credentials
	// RoutesFile is the route policy file (YAML, see Policy); Reload
	// re-reads it. Routes, if set, is used instead (tests, embedding).
	RoutesFile string
	Routes     *Policy

	// TrustedProxies are the peers whose X-Forwarded-* (and, in
	// forward-auth mode, X-Original-* / X-Forwarded-Uri/-Method) headers
	// are believed. Empty: nobody's.
	TrustedProxies []netip.Prefix

	// ClientCacheSize bounds the cached clients (default 100 000);
	// ExpandedCacheSize the cached scope expansions (default 100 000).
	ClientCacheSize   int
	ExpandedCacheSize int
	// CacheShards is the number of independently locked LRU shards
	// (default 64).
	CacheShards int
	// ClientTTL is how long a cached client is used without refetching
	// while the feed is healthy (default 10 min; the feed evicts changed
	// clients long before that).
	ClientTTL time.Duration
	// NegativeTTL is how long an unknown clientId is remembered as unknown
	// (default 5 s).
	NegativeTTL time.Duration
	// NegativeCacheSize bounds the remembered unknown clientIds (default
	// 100 000). They live in an LRU of their own, so random ids can never
	// push a real client out of the client cache.
	NegativeCacheSize int
	// UnknownClientRate and UnknownClientBurst are each source's budget of
	// control-plane lookups for clientIds the sidecar has not cached
	// (default 20/s, burst 100; a source is the peer address, or the last
	// X-Forwarded-For entry from a trusted proxy, IPv6 per /64). Over it,
	// that source gets 429 with Retry-After; cached clients are never
	// counted. MaxUnknownFetches bounds such lookups in flight across all
	// sources (default 32; a lookup waits up to FetchTimeout for a slot).
	UnknownClientRate  float64
	UnknownClientBurst int
	MaxUnknownFetches  int
	// MaxStale is how long cached clients keep working after the sidecar
	// lost the control plane (default 5 min). Past it, requests get 503.
	MaxStale time.Duration
	// Skew is the accepted Hawk timestamp skew (default 15 min, the
	// reference's); it is also how long nonces are remembered.
	Skew time.Duration
	// DisableReplayCheck turns off nonce tracking (the reference has none).
	DisableReplayCheck bool
	// MaxNonces bounds the nonces remembered (default 1 000 000, about
	// 100 MB). When full, the clients holding the most nonces lose their
	// oldest ones first and only they see "stale timestamp" refusals for
	// headers signed that long ago (see DESIGN.md, Replay).
	MaxNonces int
	// MaxHashedBody bounds the body buffered to check a payload hash
	// (default 10 MiB); larger bodies with a hash get 413.
	MaxHashedBody int64
	// MaxScopesHeader is the largest X-Taskcluster-Scopes value (default
	// 8 KiB); beyond it only the route's relevant scopes are sent, with
	// X-Taskcluster-Scopes-Truncated: true.
	MaxScopesHeader int
	// ForwardAuthorization keeps the Authorization header (and bewit) on
	// the forwarded request. Default false: the upstream gets the verified
	// identity, not credentials it could replay against other services.
	ForwardAuthorization bool
	// PreserveHost forwards the client's Host header instead of the
	// upstream's host (X-Forwarded-Host carries it either way).
	PreserveHost bool
	// FeedWait is the change feed's long-poll wait (default 10 s, the
	// server caps it at 60 s). It also bounds how long a silent network
	// partition (packets dropped, no reset) goes unnoticed: a poll open
	// longer than FeedWait + 3 s counts as lost, and from then on answers
	// carry the staleness marker and max-stale runs.
	FeedWait time.Duration
	// FetchTimeout bounds verify-client, role and authenticateHawk calls
	// (default 5 s).
	FetchTimeout time.Duration
	// UpstreamTimeout bounds the wait for the upstream's response headers
	// (default 60 s; 504 after). Bodies and upgrades are not limited.
	UpstreamTimeout time.Duration
	// BodyReadTimeout bounds the time to read a body the sidecar needs
	// before it can decide (body parameters, a Hawk payload hash): past
	// it the request gets 408 and the connection is closed. Default 5 s,
	// i.e. 13 KiB/s for a 64 KiB body-parameter body; streamed bodies
	// (no hash, no body parameters) are not limited.
	BodyReadTimeout time.Duration
	// PublicHosts pins the host (and optionally the port) callers sign
	// their requests for: "svc.example.com" or "svc.example.com:443".
	// When set, a request whose Host (X-Forwarded-Host in forward-auth
	// mode) is not one of them is refused (421, 403 in forward-auth), and
	// the Hawk MAC is checked against the matching entry instead of what
	// the request says, so a header signed for another service cannot be
	// replayed here by sending it with this sidecar's Host, nor the
	// reverse. An entry without a port keeps the port derived from the
	// request. Empty (default): any host, as before.
	PublicHosts []string

	// UpstreamTransport and ControlPlaneTransport replace the default
	// transports (keep-alive pools). Optional.
	UpstreamTransport     http.RoundTripper
	ControlPlaneTransport http.RoundTripper
	// Logger receives JSON logs; default slog.Default(). Secrets are never
	// logged.
	Logger *slog.Logger
	// EnablePprof adds Go's profiles (/debug/pprof/) to AdminHandler.
	// Default off: they reveal internals and cost CPU while running.
	EnablePprof bool
	// Registry receives the metrics; nil = a new registry, served by
	// AdminHandler.
	Registry *prometheus.Registry
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// DefaultConfig returns a Config with every default filled in: proxy mode,
// local verification.
func DefaultConfig() Config {
	return Config{
		Mode:               ModeProxy,
		Verify:             VerifyLocal,
		ClientCacheSize:    100_000,
		ExpandedCacheSize:  100_000,
		CacheShards:        64,
		ClientTTL:          10 * time.Minute,
		NegativeTTL:        5 * time.Second,
		NegativeCacheSize:  100_000,
		UnknownClientRate:  20,
		UnknownClientBurst: 100,
		MaxUnknownFetches:  32,
		MaxStale:           5 * time.Minute,
		Skew:               protocol.DefaultSkew,
		MaxNonces:          1_000_000,
		MaxHashedBody:      10 << 20,
		MaxScopesHeader:    8 << 10,
		FeedWait:           10 * time.Second,
		FetchTimeout:       5 * time.Second,
		UpstreamTimeout:    60 * time.Second,
		BodyReadTimeout:    DefaultBodyReadTimeout,
	}
}

// Configuration errors.
var (
	ErrNoUpstream      = errors.New("sidecar: proxy mode needs an upstream URL")
	ErrNoControlPlane  = errors.New("sidecar: a control-plane URL is required")
	ErrNoCredentials   = errors.New("sidecar: local verification needs the sidecar's own credentials")
	ErrNoRoutes        = errors.New("sidecar: a route policy (routes file) is required")
	ErrBadMode         = errors.New("sidecar: mode must be proxy or forward-auth")
	ErrBadVerifyMode   = errors.New("sidecar: verify must be local or remote")
	ErrBodyParamsInFwd = errors.New("sidecar: forward-auth mode cannot use body parameters (the sub-request has no body)")
	// ErrInsecureControlPlane: local mode fetches access tokens, which
	// must not cross a network in clear text.
	ErrInsecureControlPlane = errors.New("sidecar: local verification needs an https control-plane URL unless it is on loopback")
	// ErrBadPublicHost: a PublicHosts entry is not host or host:port.
	ErrBadPublicHost = errors.New("sidecar: a public host must be host or host:port")
)

// DefaultBodyReadTimeout is Config.BodyReadTimeout's default.
const DefaultBodyReadTimeout = 5 * time.Second

func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Verify == "" {
		c.Verify = d.Verify
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&c.ClientCacheSize, d.ClientCacheSize)
	setInt(&c.ExpandedCacheSize, d.ExpandedCacheSize)
	setInt(&c.CacheShards, d.CacheShards)
	setInt(&c.MaxNonces, d.MaxNonces)
	setInt(&c.NegativeCacheSize, d.NegativeCacheSize)
	setInt(&c.UnknownClientBurst, d.UnknownClientBurst)
	setInt(&c.MaxUnknownFetches, d.MaxUnknownFetches)
	if c.UnknownClientRate <= 0 {
		c.UnknownClientRate = d.UnknownClientRate
	}
	setInt(&c.MaxScopesHeader, d.MaxScopesHeader)
	if c.MaxHashedBody <= 0 {
		c.MaxHashedBody = d.MaxHashedBody
	}
	setDur(&c.ClientTTL, d.ClientTTL)
	setDur(&c.NegativeTTL, d.NegativeTTL)
	setDur(&c.MaxStale, d.MaxStale)
	setDur(&c.Skew, d.Skew)
	setDur(&c.FeedWait, d.FeedWait)
	setDur(&c.FetchTimeout, d.FetchTimeout)
	setDur(&c.UpstreamTimeout, d.UpstreamTimeout)
	setDur(&c.BodyReadTimeout, d.BodyReadTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// validate checks c (defaults filled) and reports every problem at once
// (errors.Join of the sentinels above, wrapped with what was given).
func (c *Config) validate() error {
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	switch c.Mode {
	case ModeProxy, ModeForwardAuth:
	default:
		bad(fmt.Errorf("%w (got %q)", ErrBadMode, c.Mode))
	}
	switch c.Verify {
	case VerifyLocal, VerifyRemote:
	default:
		bad(fmt.Errorf("%w (got %q)", ErrBadVerifyMode, c.Verify))
	}
	if c.Mode == ModeProxy {
		if c.Upstream == "" {
			bad(ErrNoUpstream)
		} else if u, err := url.Parse(c.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(fmt.Errorf("sidecar: upstream %q must be an http(s) URL", c.Upstream))
		}
	}
	if err := c.validateControlPlane(); err != nil {
		bad(err)
	}
	if c.RoutesFile == "" && c.Routes == nil {
		bad(ErrNoRoutes)
	}
	if _, err := parsePublicHosts(c.PublicHosts); err != nil {
		bad(err)
	}
	if c.FeedWait > 60*time.Second {
		bad(errors.New("sidecar: the feed wait cannot exceed 60 s (the control plane's maximum)"))
	}
	return errors.Join(errs...)
}

// validateControlPlane checks the control-plane URL and, for local
// verification, the credentials and the transport.
func (c *Config) validateControlPlane() error {
	var errs []error
	if c.Verify == VerifyLocal && (c.Credentials == nil || c.Credentials.ClientID == "") {
		errs = append(errs, ErrNoCredentials)
	}
	if c.ControlPlane == "" {
		return errors.Join(append(errs, ErrNoControlPlane)...)
	}
	u, err := url.Parse(c.ControlPlane)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.Join(append(errs, fmt.Errorf("sidecar: control plane %q must be an http(s) URL", c.ControlPlane))...)
	}
	if c.Verify == VerifyLocal && !c.AllowInsecureControlPlane && u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
		errs = append(errs, fmt.Errorf("%w (%s)", ErrInsecureControlPlane, c.ControlPlane))
	}
	return errors.Join(errs...)
}

// CheckConfig runs every check New makes — the configuration, the route
// policy file, the policy against the mode — without building anything,
// and reports every problem at once: `tcauth sidecar --check-config`.
func CheckConfig(cfg Config) error {
	cfg.fillDefaults()
	_, err := cfg.check()
	return err
}

// check validates c (defaults filled) and loads its route policy.
func (c *Config) check() (*Policy, error) {
	err := c.validate()
	pol := c.Routes
	if pol == nil && c.RoutesFile != "" {
		var perr error
		if pol, perr = LoadPolicy(c.RoutesFile); perr != nil {
			return nil, errors.Join(err, perr)
		}
	}
	if pol != nil {
		err = errors.Join(err, checkPolicyForMode(pol, c.Mode))
	}
	return pol, err
}

// ParseTrustedProxies parses a comma-separated list of IP addresses and
// CIDR prefixes (e.g. "127.0.0.1,10.0.0.0/8,::1") for
// Config.TrustedProxies.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("sidecar: trusted proxy %q: %w", part, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("sidecar: trusted proxy %q: %w", part, err)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// publicHost is one parsed Config.PublicHosts entry; port 0 = any.
type publicHost struct {
	host string // lower case
	port int
}

// parsePublicHosts parses the entries, each of which may itself be a
// comma-separated list.
func parsePublicHosts(entries []string) ([]publicHost, error) {
	var out []publicHost
	for _, e := range entries {
		for _, part := range strings.Split(e, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			h, port := part, 0
			if hh, p, err := net.SplitHostPort(part); err == nil {
				n, err := strconv.Atoi(p)
				if err != nil || n <= 0 || n > 65535 {
					return nil, fmt.Errorf("%w (%q: bad port)", ErrBadPublicHost, part)
				}
				h, port = hh, n
			}
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			if _, err := netip.ParseAddr(h); err == nil {
				h = strings.Trim(h, "[]")
			} else if h == "" || strings.ContainsAny(h, "/:@ ?#[]") {
				return nil, fmt.Errorf("%w (got %q)", ErrBadPublicHost, part)
			}
			out = append(out, publicHost{host: h, port: port})
		}
	}
	return out, nil
}
