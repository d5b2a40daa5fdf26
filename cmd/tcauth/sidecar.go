package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/sidecar"
)

func sidecarCommand() *cli.Command {
	d := sidecar.DefaultConfig()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with any of these flags as keys", EnvVars: []string{"TCAUTH_SIDECAR_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Value: defaultSidecarListen, Usage: "address callers reach the sidecar at", EnvVars: []string{"TCAUTH_SIDECAR_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "admin-listen", Value: defaultSidecarAdmin, Usage: "address of /metrics, /healthz and /readyz (\"\" = off)", EnvVars: []string{"TCAUTH_SIDECAR_ADMIN_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "upstream", Usage: "the protected service's base URL (proxy mode)", EnvVars: []string{"TCAUTH_SIDECAR_UPSTREAM"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "control-plane", Usage: "the control plane's root URL (default $TASKCLUSTER_ROOT_URL)", EnvVars: []string{"TCAUTH_SIDECAR_CONTROL_PLANE"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "allow-insecure-control-plane", Usage: "allow plain http to a non-loopback control plane in local mode (access tokens travel in its answers: only inside a network you trust)", EnvVars: []string{"TCAUTH_SIDECAR_ALLOW_INSECURE_CONTROL_PLANE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "routes", Usage: "route policy file (YAML); SIGHUP reloads it", EnvVars: []string{"TCAUTH_SIDECAR_ROUTES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "mode", Value: sidecar.ModeProxy, Usage: "proxy or forward-auth", EnvVars: []string{"TCAUTH_SIDECAR_MODE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "verify", Value: sidecar.VerifyLocal, Usage: "local (cached credentials) or remote (authenticateHawk per request)", EnvVars: []string{"TCAUTH_SIDECAR_VERIFY"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "IP or CIDR whose X-Forwarded-*/X-Original-* headers are believed", EnvVars: []string{"TCAUTH_SIDECAR_TRUSTED_PROXIES"}}),
		configDuration("max-stale", d.MaxStale, "how long cached clients keep working while the control plane is unreachable", "TCAUTH_SIDECAR_MAX_STALE"),
		configDuration("feed-wait", d.FeedWait, "change-feed long-poll wait; a silent partition is noticed after this + 3s", "TCAUTH_SIDECAR_FEED_WAIT"),
		configDuration("client-ttl", d.ClientTTL, "how long a cached client is used before it is fetched again", "TCAUTH_SIDECAR_CLIENT_TTL"),
		configDuration("negative-ttl", d.NegativeTTL, "how long an unknown clientId is remembered as unknown", "TCAUTH_SIDECAR_NEGATIVE_TTL"),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "client-cache-size", Value: d.ClientCacheSize, Usage: "cached clients", EnvVars: []string{"TCAUTH_SIDECAR_CLIENT_CACHE_SIZE"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "expanded-cache-size", Value: d.ExpandedCacheSize, Usage: "cached scope expansions", EnvVars: []string{"TCAUTH_SIDECAR_EXPANDED_CACHE_SIZE"}}),
		configDuration("upstream-timeout", d.UpstreamTimeout, "wait for the upstream's response headers (504 after)", "TCAUTH_SIDECAR_UPSTREAM_TIMEOUT"),
		configDuration("body-read-timeout", d.BodyReadTimeout, "time to receive a body the sidecar must read before deciding (body parameters, payload hash); 408 after", "TCAUTH_SIDECAR_BODY_READ_TIMEOUT"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "public-host", Usage: "host or host:port callers sign for (repeatable or comma list); other Hosts are refused and the Hawk MAC is checked against this one", EnvVars: []string{"TCAUTH_SIDECAR_PUBLIC_HOST"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "forward-authorization", Usage: "keep the Authorization header on forwarded requests", EnvVars: []string{"TCAUTH_SIDECAR_FORWARD_AUTHORIZATION"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-nonces", Value: d.MaxNonces, Usage: "Hawk nonces remembered for replay checks (when full, the clients holding the most lose their oldest first)", EnvVars: []string{"TCAUTH_SIDECAR_MAX_NONCES"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "negative-cache-size", Value: d.NegativeCacheSize, Usage: "unknown clientIds remembered (an LRU apart from the client cache)", EnvVars: []string{"TCAUTH_SIDECAR_NEGATIVE_CACHE_SIZE"}}),
		altsrc.NewFloat64Flag(&cli.Float64Flag{Name: "unknown-client-rate", Value: d.UnknownClientRate, Usage: "per source: control-plane lookups per second of clientIds not cached (429 over budget)", EnvVars: []string{"TCAUTH_SIDECAR_UNKNOWN_CLIENT_RATE"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "unknown-client-burst", Value: d.UnknownClientBurst, Usage: "per source: burst of lookups of clientIds not cached", EnvVars: []string{"TCAUTH_SIDECAR_UNKNOWN_CLIENT_BURST"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-unknown-fetches", Value: d.MaxUnknownFetches, Usage: "lookups of clientIds not cached in flight at once, all sources together", EnvVars: []string{"TCAUTH_SIDECAR_MAX_UNKNOWN_FETCHES"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "disable-replay-check", Usage: "do not reject a repeated Hawk nonce (the reference has no such check)", EnvVars: []string{"TCAUTH_SIDECAR_DISABLE_REPLAY_CHECK"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"TCAUTH_LOG_LEVEL"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "pprof", Usage: "serve Go profiles at /debug/pprof/ on the admin listener (off by default)", EnvVars: []string{"TCAUTH_SIDECAR_PPROF"}}),
		checkConfigFlag(),
	}
	return &cli.Command{
		Name:   "sidecar",
		Usage:  "run the verifying reverse proxy (or forward-auth service) in front of a service",
		Flags:  flags,
		Before: altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config")),
		Action: func(c *cli.Context) error {
			cfg := sidecar.DefaultConfig()
			cfg.Mode, cfg.Verify = c.String("mode"), c.String("verify")
			cfg.Upstream, cfg.RoutesFile = c.String("upstream"), c.String("routes")
			cfg.ControlPlane = c.String("control-plane")
			cfg.AllowInsecureControlPlane = c.Bool("allow-insecure-control-plane")
			if cfg.ControlPlane == "" {
				cfg.ControlPlane = os.Getenv("TASKCLUSTER_ROOT_URL")
			}
			if id := os.Getenv("TASKCLUSTER_CLIENT_ID"); id != "" {
				cfg.Credentials = &protocol.Credentials{ClientID: id, AccessToken: os.Getenv("TASKCLUSTER_ACCESS_TOKEN"),
					Certificate: os.Getenv("TASKCLUSTER_CERTIFICATE")}
			}
			tp, tpErr := sidecar.ParseTrustedProxies(strings.Join(c.StringSlice("trusted-proxy"), ","))
			cfg.TrustedProxies = tp
			cfg.MaxStale, cfg.ClientTTL, cfg.NegativeTTL = flagDuration(c, "max-stale"), flagDuration(c, "client-ttl"), flagDuration(c, "negative-ttl")
			cfg.FeedWait = flagDuration(c, "feed-wait")
			cfg.ClientCacheSize, cfg.ExpandedCacheSize = c.Int("client-cache-size"), c.Int("expanded-cache-size")
			cfg.UpstreamTimeout = flagDuration(c, "upstream-timeout")
			cfg.BodyReadTimeout, cfg.PublicHosts = flagDuration(c, "body-read-timeout"), c.StringSlice("public-host")
			cfg.ForwardAuthorization, cfg.DisableReplayCheck = c.Bool("forward-authorization"), c.Bool("disable-replay-check")
			cfg.MaxNonces, cfg.NegativeCacheSize = c.Int("max-nonces"), c.Int("negative-cache-size")
			cfg.UnknownClientRate, cfg.UnknownClientBurst = c.Float64("unknown-client-rate"), c.Int("unknown-client-burst")
			cfg.MaxUnknownFetches = c.Int("max-unknown-fetches")
			cfg.EnablePprof = c.Bool("pprof")
			cfg.Logger = newLogger(c.String("log-level"))
			// Every problem at once, the same checks with or without
			// --check-config (checkconfig.go).
			if err := checkSidecarConfig(c, cfg, tpErr); err != nil || c.Bool("check-config") {
				return configResult(c, err)
			}
			sc, err := sidecar.New(cfg)
			if err != nil {
				return badInput("%v", err)
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runSidecar(ctx, sc, c.String("listen"), c.String("admin-listen"), cfg.Logger, nil)
		},
	}
}

// runSidecar serves sc until ctx ends; SIGHUP reloads the route policy
// (a bad file is logged and the old policy stays). ready, if non-nil,
// receives the bound address.
func runSidecar(ctx context.Context, sc *sidecar.Sidecar, listen, adminListen string, log *slog.Logger, ready chan<- string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	// No ReadTimeout: uploads through the sidecar may legitimately be long.
	srv := &http.Server{Handler: sc, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	var admin *http.Server
	if adminListen != "" {
		aln, err := net.Listen("tcp", adminListen)
		if err != nil {
			ln.Close()
			return err
		}
		admin = &http.Server{Handler: sc.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- admin.Serve(aln) }()
		log.Info("sidecar admin endpoints", "addr", aln.Addr().String())
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errc <- sc.Run(runCtx) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("sidecar listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	for {
		select {
		case <-hup:
			if err := sc.Reload(); err != nil {
				log.Error("route policy not reloaded; the previous one stays in force", "error", err.Error())
			} else {
				log.Info("route policy reloaded")
			}
			continue
		case err = <-errc:
			if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
				err = nil
			}
		case <-ctx.Done():
		}
		break
	}
	shutCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = srv.Shutdown(shutCtx)
	if admin != nil {
		_ = admin.Shutdown(shutCtx)
	}
	return err
}
