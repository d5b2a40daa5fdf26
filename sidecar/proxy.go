package sidecar

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// newReverseProxy builds the proxy to the upstream: Rewrite (not the
// deprecated Director, whose hop-by-hop removal runs after it and would
// let a caller name our headers in Connection, golang/go#50580), a keep-alive
// transport whose ResponseHeaderTimeout is UpstreamTimeout, and errors in
// Taskcluster's shape.
func (s *Sidecar) newReverseProxy() *httputil.ReverseProxy {
	rt := s.cfg.UpstreamTransport
	if rt == nil {
		rt = &http.Transport{
			Proxy: nil, // the upstream is local to the sidecar, never via HTTP_PROXY
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: s.cfg.UpstreamTimeout,
			ExpectContinueTimeout: time.Second,
		}
	}
	return &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      timedTransport{rt: rt, m: s.m},
		ErrorHandler:   s.proxyError,
		ModifyResponse: s.modifyResponse,
		// Without a pool ReverseProxy allocates a 32 KiB copy buffer per
		// request: most of the proxy's garbage.
		BufferPool: copyBuffers{},
		// Streaming responses (unknown length, event streams) are flushed
		// at once by ReverseProxy; others are copied in large chunks.
	}
}

type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// timedTransport observes the upstream latency (to response headers).
type timedTransport struct {
	rt http.RoundTripper
	m  *metrics
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	class := 0
	if err == nil && resp.StatusCode >= 100 && resp.StatusCode < 600 {
		class = resp.StatusCode / 100
	}
	t.m.upstreamByClass[class].Observe(time.Since(start).Seconds())
	return resp, err
}

func (s *Sidecar) rewrite(pr *httputil.ProxyRequest) {
	d := decisionFrom(pr.In.Context())
	if d == nil {
		// Unreachable: serveProxy always sets it. Fail closed anyway.
		d = &decision{id: identity{scheme: "none"}}
	}
	out := pr.Out
	// Request trailers are never forwarded, buffered body or streamed:
	// the upstream may read them as headers (X-Taskcluster-Client-Id as a
	// trailer after the body), and nothing the sidecar checked covers them.
	out.Trailer = nil
	if !d.upgrade {
		// ReverseProxy re-adds Connection: Upgrade and Upgrade for any
		// upgrade a caller asks for; after a 101 it copies raw bytes, so
		// everything after an upgrade the route did not declare (h2c,
		// or websocket elsewhere) would bypass verification. Without
		// them, a 101 from the upstream is a 502.
		out.Header.Del("Connection")
		out.Header.Del("Upgrade")
	}
	out.Header.Del("Http2-Settings")
	if !s.cfg.ForwardAuthorization {
		out.URL.RawQuery = removeBewit(out.URL.RawQuery)
		out.Header.Del("Authorization")
	}
	pr.SetURL(s.upstream)
	if s.cfg.PreserveHost {
		out.Host = pr.In.Host
	}
	trusted := s.peerTrusted(pr.In)
	if trusted {
		// Behind a trusted proxy, keep its view of the original request.
		out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
	} else {
		// An untrusted caller's claim about the port is not passed on.
		out.Header.Del("X-Forwarded-Port")
	}
	// Identity headers last: nothing after this point can remove them.
	stripIdentity(out.Header)
	d.id.set(out.Header, s.cfg.MaxScopesHeader)
}

func (s *Sidecar) modifyResponse(resp *http.Response) error {
	d := decisionFrom(resp.Request.Context())
	if d != nil && d.id.stale != "" {
		resp.Header.Set(HeaderAuthStale, d.id.stale)
	}
	return nil
}

// proxyError answers upstream failures: 504 when the upstream did not
// send its response headers within UpstreamTimeout, 502 otherwise.
func (s *Sidecar) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	d := decisionFrom(r.Context())
	if d != nil {
		d.upstreamFailed = true
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The caller went away; nobody reads an answer.
		w.WriteHeader(499)
		return
	}
	dn := deny(http.StatusBadGateway, CodeBadGateway, outcomeUpstreamErr, "The service behind the sidecar could not be reached.")
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		dn = deny(http.StatusGatewayTimeout, CodeGatewayTimeout, outcomeUpstreamErr, "The service behind the sidecar did not answer in time.")
	}
	s.log.Warn("upstream request failed", "route", routeLabel(d), "err", err.Error())
	var params map[string]string
	if d != nil {
		params = d.params
	}
	s.writeError(w, r, routeLabel(d), params, dn)
}

func (s *Sidecar) serveProxy(w http.ResponseWriter, r *http.Request) {
	t := &target{r: r, trusted: s.peerTrusted(r), uri: r.RequestURI, canReadBody: true, rc: http.NewResponseController(w)}
	if t.uri == "" {
		t.uri = r.URL.RequestURI()
	}
	d, dn := s.authorize(r.Context(), t)
	if dn != nil {
		s.record(r.Context(), dn.route, dn.outcome)
		s.writeError(w, r, dn.route, dn.params, dn)
		return
	}
	rl := reqLogFrom(r.Context())
	if rl == nil {
		// Not through ServeHTTP (serveLogged): give Rewrite its decision.
		rl = &reqLog{}
		r = r.WithContext(context.WithValue(r.Context(), reqLogKey{}, rl))
	}
	rl.decision = d
	s.proxy.ServeHTTP(w, r)
	outcome := d.outcome
	if d.upstreamFailed {
		outcome = outcomeUpstreamErr
	} else if f, ok := w.(http.Flusher); ok && !d.upgrade {
		// The answer goes out now, not when the handler returns: the
		// request line and the metrics below are then off the caller's
		// latency. The framing is unchanged (ReverseProxy has copied the
		// upstream's Content-Length, or streamed an unknown length with
		// flushes already), and finishRequest has nothing left to write.
		f.Flush()
	}
	s.record(r.Context(), d.route.Name, outcome)
}

// decisionFrom is the proxy decision of the request in ctx (nil: none,
// which Rewrite treats as anonymous: fail closed).
func decisionFrom(ctx context.Context) *decision {
	if rl := reqLogFrom(ctx); rl != nil {
		return rl.decision
	}
	return nil
}
