package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tcauth/tcauth/protocol"
)

// Sidecar is the verifying reverse proxy (ModeProxy) or the forward-auth
// responder (ModeForwardAuth). Make it with New, serve it as an
// http.Handler, and run its background work (change feed, nonce expiry)
// with Run.
type Sidecar struct {
	cfg      Config
	policy   atomic.Pointer[Policy]
	m        *metrics
	cp       *controlPlane
	local    *localVerifier // nil in remote mode
	nonces   *nonceStore    // nil when replay checking is off
	proxy    *httputil.ReverseProxy
	upstream *url.URL
	hosts    []publicHost // Config.PublicHosts; nil = any host
	log      *slog.Logger
	auth     *prometheus.CounterVec // requestlog.go
	// The children of auth every allowed request touches, resolved once.
	authSuccess, authAnonymous prometheus.Counter
}

// New validates cfg, fills its defaults, loads the route policy
// (cfg.Routes, else cfg.RoutesFile) and builds the sidecar. Nothing runs
// until Run; until Run has synchronised with the control plane, local
// verification answers 503 (fail closed).
func New(cfg Config) (*Sidecar, error) {
	cfg.fillDefaults()
	pol, err := cfg.check() // the checks of CheckConfig
	if err != nil {
		return nil, err
	}
	s := &Sidecar{cfg: cfg, log: cfg.Logger}
	s.hosts, _ = parsePublicHosts(cfg.PublicHosts) // validated
	s.policy.Store(pol)
	s.m = newMetrics(cfg.Registry)
	s.auth = newAuthCounter(s.m.reg)
	s.authSuccess, s.authAnonymous = s.auth.WithLabelValues("success", ""), s.auth.WithLabelValues("anonymous", "")
	s.cp = newControlPlane(cfg.ControlPlane, cfg.Credentials, cfg.ControlPlaneTransport, cfg.FetchTimeout, cfg.FeedWait)
	if cfg.Verify == VerifyLocal {
		s.local = newLocalVerifier(&s.cfg, s.cp, s.m)
	}
	if !cfg.DisableReplayCheck {
		s.nonces = newNonceStore(cfg.Skew, cfg.MaxNonces)
	}
	s.m.registerGauges(s.cacheEntries, s.feedLag, s.nonceCount)
	if cfg.Mode == ModeProxy {
		s.upstream, _ = url.Parse(cfg.Upstream) // validated
		s.proxy = s.newReverseProxy()
	}
	return s, nil
}

func checkPolicyForMode(p *Policy, mode string) error {
	if mode != ModeForwardAuth {
		return nil
	}
	for _, r := range p.Routes {
		if len(r.Body) > 0 {
			return fmt.Errorf("%w: route %q (line %d)", ErrBodyParamsInFwd, r.Name, r.Line)
		}
	}
	return nil
}

// Policy returns the route policy in force.
func (s *Sidecar) Policy() *Policy { return s.policy.Load() }

// Reload re-reads Config.RoutesFile and swaps the policy in atomically:
// requests in flight finish under the policy they started with. On any
// error the old policy stays and the error wraps a *RouteError naming the
// file (and, for a bad file, the line and route).
func (s *Sidecar) Reload() error {
	if s.cfg.RoutesFile == "" {
		return &RouteError{File: "(none)", Msg: "the sidecar was configured without a routes file; nothing to reload"}
	}
	pol, err := LoadPolicy(s.cfg.RoutesFile)
	if err == nil {
		err = checkPolicyForMode(pol, s.cfg.Mode)
	}
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		var re *RouteError
		if !errors.As(err, &re) {
			err = &RouteError{File: s.cfg.RoutesFile, Msg: err.Error()}
		}
		s.log.Error("route policy reload failed; keeping the old policy", "file", s.cfg.RoutesFile, "err", err.Error())
		return fmt.Errorf("sidecar: reload: %w", err)
	}
	s.policy.Store(pol)
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("route policy reloaded", "file", s.cfg.RoutesFile, "routes", len(pol.Routes))
	return nil
}

// Run does the background work until ctx ends: in local mode it follows
// the control plane's change feed (roles, evictions, freshness); in every
// mode it expires remembered nonces. It returns nil when ctx ends.
func (s *Sidecar) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	if s.local != nil {
		go func() {
			defer close(done)
			s.local.follow(ctx, s.log)
		}()
	} else {
		close(done)
	}
	tick := time.NewTicker(nonceBucketSeconds * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case <-tick.C:
			if s.nonces != nil {
				s.nonces.expire(s.cfg.now())
			}
		}
	}
}

// Ready reports whether the sidecar can verify requests: in local mode,
// roles are loaded and the change feed is healthy or lost for less than
// MaxStale; remote mode is always ready (each request asks the control
// plane).
func (s *Sidecar) Ready() (bool, string) {
	if s.local == nil {
		return true, ""
	}
	return s.local.ready()
}

// AdminHandler serves /metrics (Prometheus), /healthz (the process is
// alive) and /readyz (200 when Ready, else 503 with the reason). Serve it
// on a separate, non-public address.
func (s *Sidecar) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	if s.cfg.EnablePprof {
		pprofMux(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ok, why := s.Ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + why + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

func (s *Sidecar) cacheEntries(name string) float64 {
	if s.local == nil {
		return 0
	}
	switch name {
	case "client":
		return float64(s.local.clients.Len())
	case "negative":
		return float64(s.local.negatives.Len())
	}
	return float64(s.local.expanded.Len())
}

func (s *Sidecar) feedLag() float64 {
	if s.local == nil {
		return 0
	}
	st := s.local.staleness(s.cfg.now())
	if s.local.lastSync.Load() == 0 {
		return -1 // never synchronised
	}
	return st.Seconds()
}

func (s *Sidecar) nonceCount() float64 {
	if s.nonces == nil {
		return 0
	}
	return float64(s.nonces.len())
}

// peerTrusted reports whether the direct peer is one of TrustedProxies.
func (s *Sidecar) peerTrusted(r *http.Request) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkHost finds the PublicHosts entry for a request's Host: nil when
// no hosts are configured; 421 (403 in forward-auth mode, since nginx's
// auth_request passes on only 401 and 403) when none matches.
func (s *Sidecar) checkHost(hostHeader string) (*publicHost, *denial) {
	if len(s.hosts) == 0 {
		return nil, nil
	}
	h, port := hostHeader, 0
	if hh, p, err := net.SplitHostPort(hostHeader); err == nil {
		h = hh
		if port, err = strconv.Atoi(p); err != nil {
			port = -1
		}
	}
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	for i := range s.hosts {
		ph := &s.hosts[i]
		if ph.host == h && (ph.port == 0 || port == 0 || ph.port == port) {
			return ph, nil
		}
	}
	dn := deny(http.StatusMisdirectedRequest, CodeMisdirectedRequest, outcomeBadRequest,
		fmt.Sprintf("This sidecar serves only %s; the request is for %q.", s.hostList(), hostHeader))
	if s.cfg.Mode == ModeForwardAuth {
		dn.err.Status = http.StatusForbidden
	}
	return nil, dn
}

func (s *Sidecar) hostList() string {
	names := make([]string, len(s.hosts))
	for i, h := range s.hosts {
		names[i] = h.host
		if h.port != 0 {
			names[i] = net.JoinHostPort(h.host, strconv.Itoa(h.port))
		}
	}
	return strings.Join(names, ", ")
}

// apply makes the pinned host (and port, if the entry has one) what the
// Hawk MAC is checked against. A nil entry changes nothing.
func (ph *publicHost) apply(req *protocol.Request) {
	if ph == nil {
		return
	}
	req.Host = ph.host
	if ph.port != 0 {
		req.Port = ph.port
	}
}

// isWebSocketUpgrade reports whether the request asks to upgrade to
// websocket (Connection: upgrade and Upgrade: websocket, RFC 6455 §4.1).
func isWebSocketUpgrade(h http.Header) bool {
	return headerHasToken(h["Connection"], "upgrade") &&
		strings.EqualFold(strings.TrimSpace(h.Get("Upgrade")), "websocket")
}

// headerHasToken reports whether a comma-separated header lists token
// (case-insensitively).
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// ServeHTTP handles one request: identity headers are stripped before
// anything else, then the request is matched, verified and authorised,
// and either proxied (ModeProxy) or answered (ModeForwardAuth).
func (s *Sidecar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stripIdentity(r.Header)
	if s.cfg.Mode == ModeForwardAuth {
		s.serveLogged(w, r, s.serveForwardAuth)
		return
	}
	s.serveLogged(w, r, s.serveProxy)
}
