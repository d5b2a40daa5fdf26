// Package webui is the control plane's web UI: server-rendered pages to
// manage clients and roles and to inspect scopes, and the tools sign-in
// flow (/auth/clients/create?callback_url=…) of `taskcluster signin`.
//
// Every action is an auth API call made with the signed-in user's own
// temporary credentials (from the login service's session), signed by
// protocol/tcclient and handed in process to the control plane's API
// handler: the same pipeline as a network caller (Hawk verification, scope
// checks, forwarding to the leader). The UI holds no credential of its
// own and never reads the store, so it can do nothing the user could not
// do with the CLI. See DESIGN.md.
package webui

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tcauth/tcauth/controlplane/login"
)

// Config configures the web UI. Login, API and RootURL are required.
type Config struct {
	// Login is the login service: sessions, users' credentials, strategies.
	Login *login.Service
	// API is the control plane's API handler (/api/auth/v1/…); the UI's
	// calls are served by it in process.
	API http.Handler
	// RootURL is the public URL of the deployment (the login service's
	// PublicURL): API calls are signed for its host and port, and its
	// origin is the one trusted for form posts.
	RootURL string
	// AllowedCallbackHosts are the hosts the tools flow may redirect to
	// besides loopback (localhost, 127.0.0.1), https only. Default none.
	AllowedCallbackHosts []string
	// Logger. Default slog's default logger.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Errors of New.
var (
	ErrNoLogin    = errors.New("webui: Config.Login is required")
	ErrNoAPI      = errors.New("webui: Config.API is required")
	ErrBadRootURL = errors.New("webui: Config.RootURL must be an absolute http(s) URL without path, query or fragment")
)

// Server is the web UI. Build it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	root    *url.URL
	origin  string // scheme://host of RootURL
	routes  []*route
	pages   *pages
	cross   *http.CrossOriginProtection
	static  http.Handler
	handler http.Handler
}

// ErrBadCallbackHost: an entry of Config.AllowedCallbackHosts is not a
// plain host name.
var ErrBadCallbackHost = errors.New("webui: not a callback host name")

// callbackHostName is a DNS host name (letters, digits, hyphens, dots):
// what a CSP form-action source and the callback check can both name.
var callbackHostName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// New checks cfg and builds the UI.
func New(cfg Config) (*Server, error) {
	if cfg.Login == nil {
		return nil, ErrNoLogin
	}
	if cfg.API == nil {
		return nil, ErrNoAPI
	}
	root, err := url.Parse(strings.TrimRight(cfg.RootURL, "/"))
	if err != nil || (root.Scheme != "http" && root.Scheme != "https") || root.Host == "" ||
		root.Path != "" || root.RawQuery != "" || root.Fragment != "" || root.User != nil {
		return nil, ErrBadRootURL
	}
	for _, h := range cfg.AllowedCallbackHosts {
		if !callbackHostName.MatchString(h) {
			return nil, fmt.Errorf("%w: %q (want a host name such as tools.example.com: no scheme, port or path)", ErrBadCallbackHost, h)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.RootURL = root.String()
	s := &Server{cfg: cfg, log: cfg.Logger, root: root, origin: root.Scheme + "://" + root.Host}
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	s.cross = http.NewCrossOriginProtection()
	if err := s.cross.AddTrustedOrigin(s.origin); err != nil {
		return nil, err
	}
	// A refused cross-origin post gets a page in Taskcluster's words, not
	// the default plain-text answer.
	s.cross.SetDenyHandler(http.HandlerFunc(s.serveCrossOrigin))
	s.static = staticHandler()
	s.registerRoutes()
	s.handler = http.HandlerFunc(s.serve)
	return s, nil
}

// Handler serves every path Owns names.
func (s *Server) Handler() http.Handler { return s.handler }

// staticPrefix is where the embedded CSS and JS are served.
const staticPrefix = "/ui/static/"

// Owns reports whether path belongs to the web UI (the control plane
// routes by it): "/", "/profile", everything under "/auth/" and the static
// files. Never the API (/api/), the login service (/login/, /graphql),
// /metrics or the Dockerflow and readiness endpoints.
func Owns(path string) bool {
	return path == "/" || path == "/profile" || path == "/auth" ||
		strings.HasPrefix(path, "/auth/") || strings.HasPrefix(path, staticPrefix)
}

// registerRoutes is the route table. Other pages (roles.go, scopes.go,
// toolsflow.go) add theirs here.
func (s *Server) registerRoutes() {
	s.page("GET", "/", s.serveHome)
	s.page("GET", "/auth", s.serveHome)
	s.get("/auth/sign-in", s.serveSignIn)
	s.page("GET", "/profile", s.serveProfile)
	s.clientRoutes()
	// Built by other files; each has a stub_*.go placeholder until then.
	s.roleRoutes()
	s.scopeRoutes()
}
