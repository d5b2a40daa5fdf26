package main

// The control plane's admin listener (--admin-addr): /metrics and, with
// --pprof, Go's profiles, on an address apart from the API so that
// profiles are never reachable by the API's (unauthenticated) callers.
// The sidecar has the same split (--admin-listen).

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"
)

// errPprofWithoutAdmin: --pprof is served on the admin listener only, so
// without --admin-addr it would silently do nothing; it is refused
// instead (exit 2, and by --check-config).
var errPprofWithoutAdmin = errors.New("--pprof needs --admin-addr: profiles are served on the admin listener only, never on the API " +
	"(for example --admin-addr " + suggestedControlPlaneAdmin + ")")

func adminAddrFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "admin-addr", Usage: "private admin listener with /metrics and, with --pprof, /debug/pprof/; " +
		"no authentication, so keep it on loopback or a private network (e.g. " + suggestedControlPlaneAdmin + "; default \"\" = none)",
		EnvVars: []string{"TCAUTH_ADMIN_ADDR"}}
}

func pprofFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "pprof", Usage: "serve Go profiles at /debug/pprof/ on the admin listener (needs --admin-addr; off by default)",
		EnvVars: []string{"TCAUTH_PPROF"}}
}

// checkAdminOptions: the admin address parses, and --pprof has one.
func checkAdminOptions(addr string, pprof bool) error {
	if pprof && addr == "" {
		return errPprofWithoutAdmin
	}
	return checkListenAddr("--admin-addr", addr, true)
}

// serveAdmin opens the admin listener of nodeOptions.AdminAddr, if any,
// and serves the server's AdminHandler on it.
func (n *runningNode) serveAdmin(o nodeOptions) error {
	if o.AdminAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", o.AdminAddr)
	if err != nil {
		return err
	}
	n.admin = &http.Server{Handler: n.server.AdminHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := n.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.done <- err
		}
	}()
	o.Logger.Info("control plane admin endpoints", "addr", ln.Addr().String(), "pprof", o.EnablePprof)
	return nil
}
