package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/cloud"
	"github.com/tcauth/tcauth/controlplane/events"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// nodeOptions is everything needed to start one control-plane node; the
// controlplane and dev commands fill it from flags.
type nodeOptions struct {
	NodeID, DataDir         string
	HTTPAddr, AdvertiseURL  string
	RaftAddr, RaftAdvertise string
	Bootstrap               bool
	JoinURL                 string
	TLS                     *tls.Config
	InsecureRaft            bool
	KeyringPath             string
	RootURL                 string
	StaticClients           []controlplane.StaticClient
	TrustedProxies          []string
	WebsocktunnelSecret     string
	UICallbackHosts         []string
	LastUsedInterval        time.Duration // 0 = controlplane's default
	// Login configures the login service (--login-config); nil = none.
	// An empty publicUrl becomes the root URL.
	Login *login.Config
	// Cloud configures the third-party credential backends (--cloud-config); nil = none.
	Cloud *cloud.Config
	// Events configures the publication of change events (--events-config); nil = none.
	Events *events.Config
	// AdminAddr is the private admin listener (--admin-addr; "" = none):
	// /metrics and, with EnablePprof, /debug/pprof/.
	AdminAddr string
	// EnablePprof serves /debug/pprof/ on the admin listener (--pprof;
	// needs AdminAddr). The API listener never serves it.
	EnablePprof bool
	// Autopilot configures the dead-server clean-up (--autopilot-*; recover.go).
	Autopilot raftstore.AutopilotConfig
	Logger    *slog.Logger
}

// runningNode is a started node: its store, API server and HTTP listener.
type runningNode struct {
	store    *raftstore.Store
	server   *controlplane.Server
	http     *http.Server
	listener net.Listener
	admin    *http.Server // nil without nodeOptions.AdminAddr
	rootTok  string
	rootNew  bool
	cancel   context.CancelFunc
	done     chan error
	lock     *raftstore.DirLock
}

// startNode locks the data directory for this process (a second process
// is told at once, with the holder's pid), then starts the node.
func startNode(ctx context.Context, o nodeOptions) (*runningNode, error) {
	lock, err := raftstore.LockDataDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	n, err := startLockedNode(ctx, o)
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	n.lock = lock
	return n, nil
}

// startLockedNode opens the store, starts the HTTP API and the background
// jobs. The root access token is generated into the data directory on
// first start; it is never logged.
func startLockedNode(ctx context.Context, o nodeOptions) (*runningNode, error) {
	keyring, err := nodeKeyring(o)
	if err != nil {
		return nil, err
	}
	rootTok, rootNew, err := controlplane.EnsureRootToken(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("root token: %w", err)
	}
	static := append([]controlplane.StaticClient{{ClientID: "static/taskcluster/root", AccessToken: rootTok}}, o.StaticClients...)

	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return nil, err
	}
	if o.AdvertiseURL == "" {
		o.AdvertiseURL = "http://" + ln.Addr().String()
	}
	rcfg := raftstore.DefaultConfig()
	rcfg.NodeID, rcfg.DataDir = o.NodeID, filepath.Join(o.DataDir, "raft")
	rcfg.RaftBind, rcfg.RaftAdvertise = o.RaftAddr, o.RaftAdvertise
	rcfg.TLS, rcfg.AllowInsecure = o.TLS, o.InsecureRaft
	rcfg.Keyring, rcfg.Bootstrap, rcfg.Logger = keyring, o.Bootstrap, o.Logger
	store, err := raftstore.Open(rcfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	proxies, err := controlplane.ParseTrustedProxies(o.TrustedProxies)
	if err != nil {
		store.Close()
		ln.Close()
		return nil, err
	}
	cfg := controlplane.DefaultConfig()
	cfg.RootURL, cfg.AdvertiseURL = o.RootURL, o.AdvertiseURL
	if cfg.RootURL == "" {
		cfg.RootURL = o.AdvertiseURL
	}
	cfg.TrustedProxies, cfg.StaticClients, cfg.WebsocktunnelSecret, cfg.Logger = proxies, static, o.WebsocktunnelSecret, o.Logger
	cfg.UICallbackHosts = o.UICallbackHosts
	cfg.Cloud = o.Cloud
	cfg.Events = o.Events
	cfg.EnablePprof = o.EnablePprof
	cfg.Cluster = store
	// The nodes prove to each other that they belong to the cluster with
	// the keyring they all hold (controlplane peer tickets).
	cfg.PeerKeyring = keyring
	if o.LastUsedInterval > 0 {
		cfg.LastUsedInterval = o.LastUsedInterval
	}
	if o.Login != nil {
		lc := *o.Login
		if lc.PublicURL == "" {
			lc.PublicURL = cfg.RootURL
		}
		cfg.Login = &lc
	}
	server, err := controlplane.New(cfg, controlplane.NewRaftStore(store))
	if err != nil {
		store.Close()
		ln.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	n := &runningNode{store: store, server: server, listener: ln, rootTok: rootTok, rootNew: rootNew, cancel: cancel, done: make(chan error, 4)}
	// Slow clients: headers within 10 s, the whole request (bodies are at
	// most MaxBodyBytes) within a minute; headers at most 64 KiB (a Hawk
	// header with a certificate is a few KiB).
	n.http = &http.Server{Handler: server.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		MaxHeaderBytes: 64 << 10, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.done <- err
		}
	}()
	if err := n.serveAdmin(o); err != nil {
		n.http.Close()
		cancel()
		store.Close()
		return nil, err
	}
	go func() { n.done <- server.Run(runCtx) }()
	go func() {
		if err := store.RunAutopilot(runCtx, o.Autopilot); err != nil {
			o.Logger.Error("autopilot not running", "error", err.Error())
		}
	}()
	// A node that meets a log entry of a newer format stops applying
	// (raftstore.ErrUnsupportedFormat): it exits, saying to upgrade it,
	// rather than serve a state that no longer advances.
	go func() {
		if err := store.WaitHalted(runCtx); err != nil {
			n.done <- err
		}
	}()
	if o.JoinURL != "" {
		if err := joinCluster(ctx, o.JoinURL, o.NodeID, store.RaftAddr(), store.Keyring().Fingerprint(), o.AdvertiseURL); err != nil {
			n.stop()
			return nil, fmt.Errorf("join %s: %w", o.JoinURL, err)
		}
	}
	return n, nil
}

// joinCluster asks a running node (forwarded to its leader) to add this
// node as a voter. It uses the TASKCLUSTER_* credentials of the operator
// (scope auth:tcauth:cluster:join); Raft traffic itself still needs a
// certificate from the cluster CA.
// apiURL is this node's API base URL, recorded by the leader so that
// `tcauth cluster status` can ask this node for its own figures.
func joinCluster(ctx context.Context, joinURL, id, raftAddr, keyring, apiURL string) error {
	c := &tcclient.Client{RootURL: joinURL}
	if env, err := tcclient.FromEnv(); err == nil {
		c.Credentials = env.Credentials
	} else if id := os.Getenv("TASKCLUSTER_CLIENT_ID"); id != "" {
		c.Credentials = &protocol.Credentials{ClientID: id, AccessToken: os.Getenv("TASKCLUSTER_ACCESS_TOKEN")}
	}
	var lastErr error
	for attempt := 0; attempt < 30; attempt++ {
		lastErr = c.Do(ctx, http.MethodPost, "/tcauth/cluster/members", nil, map[string]string{"id": id, "raftAddr": raftAddr, "keyring": keyring, "apiUrl": apiURL}, nil)
		var apiErr *tcclient.Error
		// 401 is retried too: a cluster that was just bootstrapped has not
		// synced its static clients yet. Bad input and missing scopes are final.
		if lastErr == nil || errors.As(lastErr, &apiErr) && (apiErr.StatusCode == 400 || apiErr.StatusCode == 403 || apiErr.StatusCode == 404 || apiErr.StatusCode == 409) {
			return lastErr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return lastErr
}

func (n *runningNode) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.http.Shutdown(ctx)
	if n.admin != nil {
		n.admin.Shutdown(ctx)
	}
	n.cancel()
	n.store.Close()
	n.lock.Unlock()
}

// waitForSignal runs until SIGINT/SIGTERM or a fatal error, then stops the
// node gracefully (a leader hands over leadership first).
func (n *runningNode) waitForSignal(log *slog.Logger) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	var err error
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err = <-n.done:
	}
	n.stop()
	return err
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func controlplaneCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with any of these flags as keys", EnvVars: []string{"TCAUTH_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "node-id", Usage: "this node's stable Raft id", EnvVars: []string{"TCAUTH_NODE_ID"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Usage: "where the Raft log (raft/wal), snapshots, the keyring and the root token live", EnvVars: []string{"TCAUTH_DATA_DIR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "http-addr", Value: defaultControlPlaneHTTP, Usage: "API listen address", EnvVars: []string{"TCAUTH_HTTP_ADDR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "advertise-url", Usage: "this node's API base URL as peers reach it (default http://<http-addr>)", EnvVars: []string{"TCAUTH_ADVERTISE_URL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "root-url", Usage: "the deployment's root URL clients use (default the advertise URL)", EnvVars: []string{"TCAUTH_ROOT_URL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "raft-addr", Value: defaultControlPlaneRaft, Usage: "Raft listen address", EnvVars: []string{"TCAUTH_RAFT_ADDR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "raft-advertise", Usage: "Raft address peers dial (default the listen address)", EnvVars: []string{"TCAUTH_RAFT_ADVERTISE"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "bootstrap", Usage: "form a new cluster with this node if it has no state", EnvVars: []string{"TCAUTH_BOOTSTRAP"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "join", Usage: "API URL of a running node to join (uses TASKCLUSTER_CLIENT_ID/ACCESS_TOKEN)", EnvVars: []string{"TCAUTH_JOIN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "tls-ca", Usage: "cluster CA (PEM) for Raft mutual TLS", EnvVars: []string{"TCAUTH_TLS_CA"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "tls-cert", Usage: "this node's certificate (PEM)", EnvVars: []string{"TCAUTH_TLS_CERT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "tls-key", Usage: "this node's key (PEM)", EnvVars: []string{"TCAUTH_TLS_KEY"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "insecure-raft", Usage: "plain TCP for Raft (single node on loopback only)", EnvVars: []string{"TCAUTH_INSECURE_RAFT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "keyring", Usage: "token keyring file, the same on every node (default <data-dir>/keyring.json, generated when bootstrapping)", EnvVars: []string{"TCAUTH_KEYRING"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "static-clients", Usage: "JSON file: a list of {clientId, accessToken, description, scopes}", EnvVars: []string{"TCAUTH_STATIC_CLIENTS"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR whose X-Forwarded-* headers are believed (load balancers, peer nodes)", EnvVars: []string{"TCAUTH_TRUSTED_PROXIES"}}),
		configDuration("last-used-interval", controlplane.DefaultConfig().LastUsedInterval, "how often batched lastDateUsed updates are committed", "TCAUTH_LAST_USED_INTERVAL"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "ui-callback-host", Usage: "host name besides localhost/127.0.0.1 to which the web UI's tools flow may send new credentials (https only; repeatable)", EnvVars: []string{"TCAUTH_UI_CALLBACK_HOSTS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "websocktunnel-secret", Usage: "secret for websocktunnelToken", EnvVars: []string{"TCAUTH_WEBSOCKTUNNEL_SECRET"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"TCAUTH_LOG_LEVEL"}}),
		altsrc.NewStringFlag(loginConfigFlag()),
		altsrc.NewStringFlag(cloudConfigFlag()),
		altsrc.NewStringFlag(eventsConfigFlag()),
		altsrc.NewStringFlag(adminAddrFlag()),
		altsrc.NewBoolFlag(pprofFlag()),
		checkConfigFlag(),
	}
	flags = append(flags, autopilotFlags()...) // recover.go
	return &cli.Command{
		Name:        "controlplane",
		Usage:       "run one control-plane node (the Taskcluster auth v1 API on Raft)",
		Subcommands: []*cli.Command{controlplaneRecoverCommand()},
		Flags:       flags,
		Before:      altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config")),
		Action: func(c *cli.Context) error {
			log := newLogger(c.String("log-level"))
			o := nodeOptions{
				NodeID: c.String("node-id"), DataDir: c.String("data-dir"), HTTPAddr: c.String("http-addr"),
				AdvertiseURL: c.String("advertise-url"), RootURL: c.String("root-url"), RaftAddr: c.String("raft-addr"),
				RaftAdvertise: c.String("raft-advertise"), Bootstrap: c.Bool("bootstrap"), JoinURL: c.String("join"),
				InsecureRaft: c.Bool("insecure-raft"), KeyringPath: c.String("keyring"),
				TrustedProxies: c.StringSlice("trusted-proxy"), WebsocktunnelSecret: c.String("websocktunnel-secret"), Logger: log,
				UICallbackHosts:  c.StringSlice("ui-callback-host"),
				LastUsedInterval: flagDuration(c, "last-used-interval"),
				AdminAddr:        c.String("admin-addr"),
				EnablePprof:      c.Bool("pprof"),
			}
			// Every problem at once, the same checks with or without
			// --check-config (checkconfig.go).
			err := loadNodeConfig(c, &o)
			if err != nil && !c.Bool("check-config") {
				// A refused start is in the log too, as startNode's are.
				log.Error("control plane not started", "error", err.Error())
			}
			if err != nil || c.Bool("check-config") {
				return configResult(c, err)
			}
			n, err := startNode(c.Context, o)
			if err != nil {
				// One line in the log as well as on stderr: a refused data
				// directory says which file, what is wrong and what to do.
				log.Error("control plane not started", "error", err.Error())
				return err
			}
			// The token itself never reaches the log: only where it is.
			log.Info("control plane started", "node", o.NodeID, "api", n.listener.Addr().String(), "raft", n.store.RaftAddr(),
				"rootClientId", "static/taskcluster/root", "rootTokenFile", filepath.Join(o.DataDir, controlplane.RootTokenFile),
				"rootTokenGenerated", n.rootNew)
			// Readiness is the node's /readyz; the log line is for operators
			// watching a (re)start: after it the node authenticates from
			// current state, with this start's static clients applied.
			go func() {
				if err := waitReady(c.Context, "http://"+n.listener.Addr().String(), nil, 2*time.Minute); err != nil {
					log.Warn("control plane not ready yet", "error", err.Error())
					return
				}
				log.Info("control plane ready", "node", o.NodeID)
			}()
			return n.waitForSignal(log)
		},
	}
}

// waitReady waits until the node at root reports ready (/readyz: caught
// up with the leader, a leader known, its configured static clients
// applied) and, with creds, until a request signed with them really
// authenticates there: what a caller of the printed credentials will do
// next must work. It gives up after timeout.
func waitReady(ctx context.Context, root string, creds *protocol.Credentials, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	cl := &tcclient.Client{RootURL: root, Credentials: creds}
	why := "not answering"
	for time.Now().Before(deadline) {
		resp, err := http.Get(root + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			why = fmt.Sprintf("/readyz %d %s", resp.StatusCode, bytes.TrimSpace(b))
			if resp.StatusCode == http.StatusOK {
				if creds == nil {
					return nil
				}
				if err = cl.Do(ctx, http.MethodGet, "/scopes/current", nil, nil, nil); err == nil {
					return nil
				}
				why = "ready, but a request signed with " + creds.ClientID + " failed: " + err.Error()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the control plane did not become ready within %s (%s)", timeout, why)
}

func loginConfigFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "login-config", Usage: "YAML file configuring the login service (sign-in providers, apps; " +
		"publicUrl defaults to the root URL); unset = no login service", EnvVars: []string{"TCAUTH_LOGIN_CONFIG"}}
}

// loadLoginConfig reads a --login-config file ("" = none). Unknown keys
// are refused, so a misspelt option stops the start-up naming the file
// and the line instead of being silently ignored.
func loadLoginConfig(path string) (*login.Config, error) {
	return decodeConfigFile[login.Config]("--login-config", path)
}

// decodeConfigFile decodes the YAML file of a --…-config flag into a T,
// refusing unknown keys; "" = no file (nil). Errors name the flag and
// the file.
func decodeConfigFile[T any](flag, path string) (*T, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, badInput("%s: %v", flag, err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var v T
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the file is empty")
		}
		return nil, badInput("%s %s: %v", flag, path, err)
	}
	return &v, nil
}
