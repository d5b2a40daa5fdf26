package main

// The configuration checks of `tcauth controlplane` and `tcauth sidecar`.
// Start-up runs them too, before it opens or listens on anything, so
// --check-config and a real start refuse exactly the same configurations;
// the rules themselves stay where they are used (controlplane,
// sidecar, login, cloud, events, raftstore) and are only called here.
// Every problem is reported at once (errors.Join), so that an operator
// fixes a configuration in one round.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
	"github.com/tcauth/tcauth/sidecar"
)

func checkConfigFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "check-config", Usage: "check the whole configuration (files included) without starting; " +
		"every problem is reported, exit status 2 if there is any"}
}

// configResult ends the configuration step: exit 2 with every problem,
// or, with --check-config, "configuration OK".
func configResult(c *cli.Context, err error) error {
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	fmt.Fprintln(c.App.Writer, "configuration OK")
	return nil
}

// configErrors collects the problems of one configuration.
type configErrors []error

func (e *configErrors) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

func (e configErrors) err() error { return errors.Join(e...) }

// loadNodeConfig completes o (read from the controlplane command's flags)
// with the files the flags name and checks all of it. It writes nothing:
// no data directory, no keyring, no listener.
func loadNodeConfig(c *cli.Context, o *nodeOptions) error {
	var errs configErrors
	for _, name := range []string{"node-id", "data-dir"} {
		if !c.IsSet(name) {
			errs.add(fmt.Errorf("flag --%s is required", name))
		}
	}
	if o.Bootstrap && o.JoinURL != "" {
		errs.add(errors.New("--bootstrap and --join exclude each other"))
	}
	var err error
	o.Login, err = loadLoginConfig(c.String("login-config"))
	errs.add(err)
	errs.add(checkLoginConfig(o))
	o.Cloud, err = loadCloudConfig(c.String("cloud-config"))
	errs.add(err)
	o.Events, err = loadEventsConfig(c.String("events-config"))
	errs.add(err)
	errs.add(loadRaftTLS(c, o))
	errs.add(loadStaticClients(c.String("static-clients"), o))
	errs.add(checkNodeAddresses(o))
	errs.add(checkAdminOptions(o.AdminAddr, o.EnablePprof))
	o.Autopilot, err = autopilotConfig(c) // recover.go
	errs.add(err)
	if _, err := controlplane.ParseTrustedProxies(o.TrustedProxies); err != nil {
		errs.add(fmt.Errorf("--trusted-proxy: %w", err))
	}
	if o.DataDir != "" {
		if _, _, err := existingKeyring(*o); err != nil {
			errs.add(fmt.Errorf("keyring: %w", err))
		}
	}
	return errs.err()
}

// checkLoginConfig runs the login service's own checks (login.New's) on
// the --login-config file, with the public URL start-up would give it.
func checkLoginConfig(o *nodeOptions) error {
	if o.Login == nil {
		return nil
	}
	lc := *o.Login
	if lc.PublicURL == "" {
		lc.PublicURL = o.RootURL
	}
	if lc.PublicURL == "" {
		lc.PublicURL = o.AdvertiseURL
	}
	if lc.PublicURL == "" {
		lc.PublicURL = "http://" + o.HTTPAddr
	}
	if err := login.CheckConfig(lc); err != nil {
		return fmt.Errorf("--login-config: %w", err)
	}
	return nil
}

func loadRaftTLS(c *cli.Context, o *nodeOptions) error {
	ca, cert, key := c.String("tls-ca"), c.String("tls-cert"), c.String("tls-key")
	if ca == "" && cert == "" && key == "" {
		if !o.InsecureRaft {
			return errors.New("Raft traffic needs --tls-ca, --tls-cert and --tls-key (or --insecure-raft for a single node on loopback)")
		}
		return nil
	}
	tlsCfg, err := raftstore.LoadTLSConfig(ca, cert, key)
	if err != nil {
		return fmt.Errorf("Raft TLS: %w", err)
	}
	o.TLS = tlsCfg
	return nil
}

// loadStaticClients reads --static-clients and checks every client with
// the control plane's own rules.
func loadStaticClients(path string, o *nodeOptions) error {
	if path == "" {
		_, err := controlplane.ResolveStaticClients(o.StaticClients)
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--static-clients: %w", err)
	}
	if err := json.Unmarshal(data, &o.StaticClients); err != nil {
		return fmt.Errorf("--static-clients %s: %w", path, err)
	}
	if _, err := controlplane.ResolveStaticClients(o.StaticClients); err != nil {
		return fmt.Errorf("--static-clients %s: %w", path, err)
	}
	return nil
}

// checkNodeAddresses: listen and advertised addresses parse, and the
// URLs (root, advertise, join) are http(s) URLs.
func checkNodeAddresses(o *nodeOptions) error {
	var errs configErrors
	errs.add(checkListenAddr("--http-addr", o.HTTPAddr, false))
	errs.add(checkListenAddr("--raft-addr", o.RaftAddr, false))
	errs.add(checkListenAddr("--raft-advertise", o.RaftAdvertise, true))
	for _, u := range []struct{ flag, value string }{{"--advertise-url", o.AdvertiseURL}, {"--root-url", o.RootURL}, {"--join", o.JoinURL}} {
		errs.add(checkOptionalURL(u.flag, u.value))
	}
	return errs.err()
}

// checkListenAddr wants host:port with a numeric port (a host may be
// empty: all interfaces); optional = "" is allowed.
func checkListenAddr(flag, addr string, optional bool) error {
	if addr == "" && optional {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port (%v)", flag, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s %q: the port must be a number from 0 to 65535", flag, addr)
	}
	return nil
}

func checkOptionalURL(flag, s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http(s) URL", flag, s)
	}
	return nil
}

// checkSidecarConfig checks what the sidecar command read from its flags
// (tpErr: --trusted-proxy's parse error): the listen addresses and
// everything sidecar.New checks, routes file included.
func checkSidecarConfig(c *cli.Context, cfg sidecar.Config, tpErr error) error {
	var errs configErrors
	if tpErr != nil {
		errs.add(fmt.Errorf("--trusted-proxy: %w", tpErr))
	}
	errs.add(checkListenAddr("--listen", c.String("listen"), false))
	errs.add(checkListenAddr("--admin-listen", c.String("admin-listen"), true))
	errs.add(sidecar.CheckConfig(cfg))
	return errs.err()
}

// problemLines flattens err into one line per problem: the leaves of its
// errors.Join trees, each with the context of the errors that wrap it
// ("--static-clients f.json: static client …").
func problemLines(err error) []string {
	switch x := err.(type) {
	case interface{ Unwrap() []error }:
		var out []string
		for _, e := range x.Unwrap() {
			out = append(out, problemLines(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := x.Unwrap(); inner != nil {
			sub := problemLines(inner)
			if msg, im := err.Error(), inner.Error(); len(sub) > 1 && strings.HasSuffix(msg, im) {
				for i := range sub {
					sub[i] = msg[:len(msg)-len(im)] + sub[i]
				}
				return sub
			}
		}
	}
	return []string{oneLine(err.Error())}
}
