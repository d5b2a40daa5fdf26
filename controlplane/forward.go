package controlplane

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// forwardedHeader marks a request a follower forwarded; a node that gets
// one while not leading answers 503 instead of forwarding again (no loops).
const forwardedHeader = "X-Tcauth-Forwarded"

// forwarder reverse-proxies a request, unchanged, to the leader's published
// HTTP address. The Hawk MAC covers method, raw request-target, host and
// port: the raw target is kept byte for byte (URL.Opaque), the Host header
// is kept, and the port the caller signed is passed as X-Forwarded-Port,
// which the leader believes because the follower is in its TrustedProxies.
type forwarder struct {
	s     *Server
	proxy *httputil.ReverseProxy
}

type forwardKey struct{}

type forwardInfo struct {
	target *url.URL
	port   int
	source string
	proto  string
}

func newForwarder(s *Server) *forwarder {
	f := &forwarder{s: s}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			info := pr.In.Context().Value(forwardKey{}).(forwardInfo)
			pr.Out.URL.Scheme = info.target.Scheme
			pr.Out.URL.Host = info.target.Host
			path, _, _ := strings.Cut(pr.In.RequestURI, "?")
			pr.Out.URL.Opaque = strings.TrimSuffix(info.target.Path, "/") + path
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("X-Forwarded-Port", strconv.Itoa(info.port))
			pr.Out.Header.Set("X-Forwarded-Proto", info.proto)
			pr.Out.Header.Set("X-Forwarded-For", info.source)
			pr.Out.Header.Set(forwardedHeader, "1")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			c := r.Context().Value(callKey{}).(*call)
			s.log.Warn("forwarding to leader failed", "endpoint", c.route.name, "error", err.Error())
			c.fail(errNoLeader)
		},
		ModifyResponse: func(resp *http.Response) error {
			c := resp.Request.Context().Value(callKey{}).(*call)
			c.status = resp.StatusCode
			return nil
		},
	}
	return f
}

type callKey struct{}

func (f *forwarder) serve(c *call) {
	s := f.s
	if c.r.Header.Get(forwardedHeader) != "" && s.trusted(c.r) {
		c.fail(errNoLeader) // leadership moved while the request was in flight
		return
	}
	leader := s.store.LeaderAPIAddress()
	target, err := url.Parse(leader)
	if leader == "" || err != nil || target.Host == "" {
		c.fail(errNoLeader)
		return
	}
	req := protocol.RequestFromHTTP(c.r, s.trusted(c.r))
	proto := "http"
	if req.Port == 443 {
		proto = "https"
	}
	info := forwardInfo{target: target, port: req.Port, source: req.SourceIP, proto: proto}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.ForwardTimeout)
	defer cancel()
	ctx = context.WithValue(context.WithValue(ctx, forwardKey{}, info), callKey{}, c)
	start := time.Now()
	f.proxy.ServeHTTP(c.w, c.r.WithContext(ctx))
	s.metrics.forwarded.WithLabelValues(c.route.name).Observe(time.Since(start).Seconds())
}
