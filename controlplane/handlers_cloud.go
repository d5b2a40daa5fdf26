package controlplane

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcauth/tcauth/controlplane/cloud"
	"github.com/tcauth/tcauth/protocol"
)

// cloudBackends is the cloud service and the state of its leader-only job
// (purging expired Sentry keys).
type cloudBackends struct {
	svc       *cloud.Service
	purging   atomic.Bool
	lastPurge atomic.Int64 // UnixNano of the last purge start (0 = never)
	wg        sync.WaitGroup
}

// startCloud builds the cloud service from Config.Cloud and the
// WebsocktunnelSecret shorthand.
func (s *Server) startCloud() error {
	var cc cloud.Config
	if s.cfg.Cloud != nil {
		cc = *s.cfg.Cloud
	}
	if s.cfg.WebsocktunnelSecret != "" {
		if cc.Websocktunnel != nil {
			return errors.New("controlplane: the websocktunnel secret is configured twice (WebsocktunnelSecret and the cloud configuration's websocktunnel section)")
		}
		cc.Websocktunnel = &cloud.WebsocktunnelConfig{Secret: s.cfg.WebsocktunnelSecret}
	}
	if cc.Now == nil {
		cc.Now = s.cfg.Now
	}
	if cc.Logger == nil {
		cc.Logger = s.cfg.Logger
	}
	svc, err := cloud.New(cc)
	if err != nil {
		return err
	}
	s.cloud = &cloudBackends{svc: svc}
	return nil
}

// cloudErr maps a cloud error to the reference's answer: not configured
// or not found → 404 ResourceNotFound with the backend's message (which
// names what is missing), bad input → 400 with inputCode, the provider's
// rate limit → 429 TooManyRequests (githubRepoToken). Anything else
// (the provider failed) stays an internal error: 500 with an incident id,
// its text logged, never shown (cloud errors carry no secret).
func cloudErr(err error, inputCode string) error {
	switch {
	case errors.Is(err, cloud.ErrNotConfigured), errors.Is(err, cloud.ErrNotFound):
		return apiErr(protocol.CodeResourceNotFound, "%s", cloud.Message(err))
	case errors.Is(err, cloud.ErrInput):
		return apiErr(inputCode, "%s", cloud.Message(err))
	case errors.Is(err, cloud.ErrRateLimited):
		return apiErr(protocol.CodeTooManyRequests, "%s", cloud.Message(err))
	}
	return err
}

// websocktunnelToken: an HS256 JWT for websocktunnel (docs/api.md §4).
func (s *Server) websocktunnelToken(c *call) error {
	tok, err := s.cloud.svc.WebsocktunnelToken(c.clientID(), c.params["wstAudience"], c.params["wstClient"])
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	return c.reply(struct {
		WstClient   string `json:"wstClient"`
		WstAudience string `json:"wstAudience"`
		Token       string `json:"token"`
		Expires     string `json:"expires"`
	}{tok.WstClient, tok.WstAudience, tok.Token, protocol.FormatTime(tok.Expires)})
}

// gcpCredentials: a GCP access token from IAM Credentials. A service
// account that is not allowed is 400 InvalidRequestArguments, as the
// reference's.
func (s *Server) gcpCredentials(c *call) error {
	tok, err := s.cloud.svc.GCPCredentials(c.r.Context(), c.params["projectId"], c.params["serviceAccount"])
	if err != nil {
		return cloudErr(err, protocol.CodeInvalidRequestArguments)
	}
	return c.reply(tok)
}

// sentryDSN: a DSN of a managed Sentry key valid for at least 25 h.
func (s *Server) sentryDSN(c *call) error {
	d, err := s.cloud.svc.SentryDSN(c.r.Context(), c.params["project"])
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	type dsn struct {
		Secret string `json:"secret"`
		Public string `json:"public"`
	}
	return c.reply(struct {
		Project string `json:"project"`
		DSN     dsn    `json:"dsn"`
		Expires string `json:"expires"`
	}{d.Project, dsn{d.Secret, d.Public}, protocol.FormatTime(d.Expires)})
}

// maybePurgeSentry starts the purge of expired Sentry keys (leader only,
// from Run) when its interval has passed, in the background: it calls
// Sentry once per project and must not hold up the other jobs. A failed
// purge is retried after a minute.
func (s *Server) maybePurgeSentry(ctx context.Context, now time.Time) {
	b := s.cloud
	every := b.svc.SentryPurgeInterval()
	if every == 0 || now.Sub(time.Unix(0, b.lastPurge.Load())) < every || !b.purging.CompareAndSwap(false, true) {
		return
	}
	b.lastPurge.Store(now.UnixNano())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.purging.Store(false)
		n, err := b.svc.PurgeSentryKeys(ctx)
		if err != nil {
			s.log.Warn("purging expired Sentry keys failed; will retry", "deleted", n, "error", err.Error())
			b.lastPurge.Store(now.Add(time.Minute - every).UnixNano())
			return
		}
		if n > 0 {
			s.log.Info("expired Sentry keys purged", "deleted", n)
		}
	}()
}
