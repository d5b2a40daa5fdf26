// Package cloud issues the third-party credentials of the auth v1 API:
// AWS S3 (STS), Azure Storage SAS, GCP access tokens, Sentry DSNs,
// websocktunnel tokens and GitHub repository tokens. The control plane
// routes and authorizes the endpoints (scopes, parameters) and calls a
// Service; this package talks to the providers and knows nothing of Hawk.
// Every backend is optional: unconfigured, its methods return
// ErrNotConfigured and the endpoint answers 404 saying what is missing.
package cloud

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Config configures every backend; the YAML keys are those of the
// control plane's --cloud-config file. A nil section is an unconfigured
// backend.
type Config struct {
	Websocktunnel *WebsocktunnelConfig `yaml:"websocktunnel"`
	Azure         *AzureConfig         `yaml:"azure"`
	GCP           *GCPConfig           `yaml:"gcp"`
	Sentry        *SentryConfig        `yaml:"sentry"`
	AWS           *AWSConfig           `yaml:"aws"`
	GitHub        *GitHubConfig        `yaml:"github"`

	// HTTPClient talks to the providers. Default a client with a 30 s timeout.
	HTTPClient *http.Client `yaml:"-"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Logger. Default slog's default logger. Secrets are never logged.
	Logger *slog.Logger `yaml:"-"`
}

// Errors of every backend (wrapped with detail). The control plane maps
// ErrNotConfigured and ErrNotFound to 404 ResourceNotFound, ErrInput to
// 400 InputError, ErrRateLimited to 429 TooManyRequests, ErrUpstream to
// 500/503.
var (
	ErrNotConfigured = errors.New("cloud: not configured in this deployment")
	ErrNotFound      = errors.New("cloud: not found")
	ErrInput         = errors.New("cloud: invalid input")
	ErrUpstream      = errors.New("cloud: the provider failed")
	ErrRateLimited   = errors.New("cloud: the provider's rate limit is exhausted")
)

// Service is the configured backends. Build it with New.
type Service struct {
	cfg Config
	log *slog.Logger
	// State of the websocktunnel, GCP and Sentry backends (nil =
	// unconfigured), set by their check functions.
	wst    *wstBackend
	gcp    *gcpBackend
	sentry *sentryBackend
	aws    *awsBackend
	github *githubBackend
}

// New checks cfg. Backends that need a network connection connect lazily.
func New(cfg Config) (*Service, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	for _, check := range []func() error{s.checkWebsocktunnel, s.checkAzure, s.checkGCP, s.checkSentry, s.checkAWS, s.checkGitHub} {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return s, nil
}
