package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/examples/notes"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/sidecar"
)

// The dev command's static clients. The sidecar's holds exactly what local
// verification needs; the reader is there so that the tour can show a
// denied call.
const (
	devSidecarClientID = "static/tcauth/dev-sidecar"
	devReaderClientID  = "static/tcauth/dev-notes-reader"
	// devWebServerClientID issues users' credentials when --login-config is given.
	devWebServerClientID = "static/taskcluster/web-server"
)

var devSidecarScopes = []string{
	"auth:tcauth:verify-clients", "auth:tcauth:watch-changes", "auth:list-roles", "auth:get-role:*",
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a single-node control plane, the notes example behind a sidecar, and print credentials and example calls",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: ".tcauth-dev", Usage: "where state is kept between runs", EnvVars: []string{"TCAUTH_DEV_DIR"}},
			&cli.StringFlag{Name: "http-addr", Value: defaultDevHTTP, Usage: "control-plane API address"},
			&cli.StringFlag{Name: "raft-addr", Value: defaultDevRaft, Usage: "Raft listen address of the single node (:0 = any free port)"},
			&cli.StringFlag{Name: "sidecar-addr", Value: defaultDevSidecar, Usage: "address of the sidecar in front of the notes example (\"\" = no sidecar)"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
			loginConfigFlag(),
			cloudConfigFlag(),
			eventsConfigFlag(),
			adminAddrFlag(),
			pprofFlag(),
		},
		Action: func(c *cli.Context) error {
			log := newLogger(c.String("log-level"))
			if err := checkAdminOptions(c.String("admin-addr"), c.Bool("pprof")); err != nil {
				return &exitError{code: 2, err: err}
			}
			loginCfg, err := loadLoginConfig(c.String("login-config"))
			if err != nil {
				return err
			}
			cloudCfg, err := loadCloudConfig(c.String("cloud-config"))
			if err != nil {
				return err
			}
			eventsCfg, err := loadEventsConfig(c.String("events-config"))
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(c.String("data-dir"))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			sidecarTok, _, err := controlplane.EnsureTokenFile(filepath.Join(dir, "dev-sidecar-access-token"))
			if err != nil {
				return err
			}
			readerTok, _, err := controlplane.EnsureTokenFile(filepath.Join(dir, "dev-notes-reader-access-token"))
			if err != nil {
				return err
			}
			static := []controlplane.StaticClient{
				{ClientID: devSidecarClientID, AccessToken: sidecarTok, Scopes: devSidecarScopes,
					Description: "the sidecar `tcauth dev` runs in front of the notes example"},
				{ClientID: devReaderClientID, AccessToken: readerTok, Scopes: []string{"notes:list", "notes:read:*"},
					Description: "may read notes but not write them: the tour's denied call"},
			}
			// With a login service, its default issuer exists too (the
			// built-in web-server client), so sign-in works out of the box.
			if loginCfg != nil && (loginCfg.Issuer == "" || loginCfg.Issuer == devWebServerClientID) {
				tok, _, err := controlplane.EnsureTokenFile(filepath.Join(dir, "dev-web-server-access-token"))
				if err != nil {
					return err
				}
				static = append(static, controlplane.StaticClient{ClientID: devWebServerClientID, AccessToken: tok})
			}
			n, err := startNode(c.Context, nodeOptions{
				NodeID: "dev", DataDir: dir, HTTPAddr: c.String("http-addr"), RaftAddr: c.String("raft-addr"),
				Bootstrap: true, InsecureRaft: true, Logger: log, Login: loginCfg, Cloud: cloudCfg, Events: eventsCfg, StaticClients: static,
				AdminAddr: c.String("admin-addr"), EnablePprof: c.Bool("pprof"),
			})
			if err != nil {
				return err
			}
			// From here on an interrupt is a clean stop, also while the
			// start is still waiting for the node or the sidecar.
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			root := "http://" + n.listener.Addr().String()
			// The banner promises working root credentials: print it only
			// once a request signed with them authenticates.
			rootCreds := &protocol.Credentials{ClientID: "static/taskcluster/root", AccessToken: n.rootTok}
			if err := waitReady(ctx, root, rootCreds, 30*time.Second); err != nil {
				n.stop()
				return interruptedIsClean(ctx, err)
			}
			b := devBanner{Root: root, RootToken: n.rootTok, ReaderToken: readerTok, Dir: dir}
			var sidecarDone chan error
			if addr := c.String("sidecar-addr"); addr != "" {
				sidecarDone = make(chan error, 1)
				b.Sidecar, err = startDevSidecar(ctx, root, addr, sidecarTok, log, sidecarDone)
				if err != nil {
					n.stop()
					return interruptedIsClean(ctx, err)
				}
			}
			b.write(c.App.Writer)
			select {
			case <-ctx.Done():
			case err = <-n.done:
			case err = <-sidecarDone:
			}
			stop()
			n.stop()
			return err
		},
	}
}

// startDevSidecar runs the notes example on a private loopback port and a
// sidecar in front of it, and waits until the sidecar has synced.
func startDevSidecar(ctx context.Context, root, addr, token string, log *slog.Logger, done chan error) (string, error) {
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	notesSrv := &http.Server{Handler: notes.New(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = notesSrv.Serve(upstream) }()
	go func() { <-ctx.Done(); _ = notesSrv.Close() }()

	// Static clients reach the store through the leader's first sync job;
	// wait for ours so that the sidecar does not start with a 401.
	cp := &tcclient.Client{RootURL: root, Credentials: &protocol.Credentials{ClientID: devSidecarClientID, AccessToken: token}}
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := cp.Do(ctx, http.MethodGet, "/roles/", nil, nil, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the dev sidecar's static client was not usable within 30s: %w", err)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return "", ctx.Err()
		}
	}
	policy, err := sidecar.ParsePolicy("examples/notes/routes.yaml", notes.Routes)
	if err != nil {
		return "", err
	}
	cfg := sidecar.DefaultConfig()
	cfg.Upstream = "http://" + upstream.Addr().String()
	cfg.ControlPlane = root
	cfg.Credentials = &protocol.Credentials{ClientID: devSidecarClientID, AccessToken: token}
	cfg.Routes = policy
	cfg.Logger = log
	sc, err := sidecar.New(cfg)
	if err != nil {
		return "", err
	}
	ready := make(chan string, 1)
	go func() { done <- runSidecar(ctx, sc, addr, "", log, ready) }()
	var bound string
	select {
	case bound = <-ready:
	case err := <-done:
		return "", fmt.Errorf("sidecar: %w", err)
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("the dev sidecar did not start listening within 10s")
	case <-ctx.Done():
		return "", ctx.Err()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := sc.Ready()
		if ok {
			return "http://" + bound, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the dev sidecar did not sync with the control plane within 30s: %s", why)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return "", ctx.Err()
		}
	}
}

// sleepCtx waits for d, or less if ctx ends first; it reports whether
// the whole wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// interruptedIsClean turns the error of a start cut short by an interrupt
// into a clean exit: the user asked for the stop, and nothing failed.
func interruptedIsClean(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

type devBanner struct {
	Root, RootToken, ReaderToken, Dir, Sidecar string
}

func (b devBanner) write(w io.Writer) {
	self, _ := os.Executable()
	if strings.Contains(self, "go-build") {
		self = "go run ./cmd/tcauth"
	}
	fmt.Fprintf(w, `tcauth dev is running.

  control plane  %[1]s/api/auth/v1/
  data           %[3]s (delete it to start afresh)
`, b.Root, b.RootToken, b.Dir)
	if b.Sidecar != "" {
		fmt.Fprintf(w, "  notes example  %s  (behind a sidecar; routes: examples/notes/routes.yaml)\n", b.Sidecar)
	}
	fmt.Fprintf(w, `
Root credentials (scope *), for this shell:

  export TASKCLUSTER_ROOT_URL=%[1]s
  export TASKCLUSTER_CLIENT_ID=static/taskcluster/root
  export TASKCLUSTER_ACCESS_TOKEN=%[2]s

Try, in another shell with those variables set:

  %[3]s client create my/first-client --description "first client" --scope 'notes:read:*' --expires '30 days'
  %[3]s role create 'project-admin:*' --description "project admins" --scope 'notes:write:<..>/*'
  %[3]s scopes expand --remote 'assume:project-admin:ops'
`, b.Root, b.RootToken, self)
	if b.Sidecar != "" {
		fmt.Fprintf(w, `
The notes service has no auth code; the sidecar checks each call:

  curl -s %[1]s/healthz                                  # public route
  %[2]s http PUT %[1]s/notes/hello -d 'hello, world'      # allowed: root holds notes:write:hello
  %[2]s http GET %[1]s/whoami                             # the identity the service sees
  curl -si %[1]s/notes/hello                             # 401: no credentials

  TASKCLUSTER_CLIENT_ID=%[3]s TASKCLUSTER_ACCESS_TOKEN=%[4]s \
    %[2]s http DELETE %[1]s/notes/hello                   # 403 InsufficientScopes: a reader may not delete
`, b.Sidecar, self, devReaderClientID, b.ReaderToken)
	}
	fmt.Fprintln(w, "\nCtrl-C stops it.")
}
