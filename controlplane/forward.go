package controlplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// forwardedHeader marks a request a follower forwarded, with the
// follower's forward ticket (peer.go) as its value: a node that gets a
// valid one while not leading answers 503 instead of forwarding again (no
// loops), and stamps its applied index on the answer. An invalid or
// missing ticket is ignored; the header grants nothing else, and in
// particular nothing about the caller, whom the leader authenticates from
// the caller's own Hawk signature.
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
	ticket string // this node's forward ticket (peer.go)
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
			pr.Out.Header.Set(forwardedHeader, info.ticket)
			pr.Out.Header.Del(peerHeader)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			c := r.Context().Value(callKey{}).(*call)
			s.log.Warn("forwarding to leader failed", "endpoint", c.route.name, "error", err.Error())
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				c.fail(errNoLeader) // never reached the leader
				return
			}
			// The leader may have got the request and applied it.
			c.fail(errOutcomeUnknown)
		},
		ModifyResponse: func(resp *http.Response) error {
			c := resp.Request.Context().Value(callKey{}).(*call)
			c.status = resp.StatusCode
			// A refusal handed off while catching up (handOff) is not
			// held: read-your-writes is about this node's own forwards,
			// and holding would add the whole catch-up to the answer.
			if !c.handedOff {
				f.awaitIndex(resp.Request.Context(), resp.Header.Get(appliedIndexHeader))
			}
			return nil
		},
	}
	return f
}

type callKey struct{}

// appliedIndexHeader carries the leader's applied index on answers to
// forwarded requests.
const appliedIndexHeader = "X-Tcauth-Applied-Index"

// indexStampingWriter adds the node's applied index, read when the status
// is written, to the answer of a forwarded request. A write's answer is
// sent after its entry is applied, so the index covers the write.
type indexStampingWriter struct {
	http.ResponseWriter
	index   func() uint64
	stamped bool
}

func (w *indexStampingWriter) WriteHeader(code int) {
	if !w.stamped {
		w.stamped = true
		if w.Header().Get(appliedIndexHeader) == "" {
			w.Header().Set(appliedIndexHeader, strconv.FormatUint(w.index(), 10))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *indexStampingWriter) Write(b []byte) (int, error) {
	if !w.stamped {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *indexStampingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *indexStampingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxReadYourWritesWait bounds how long a follower holds a forwarded answer
// while it catches up with the leader.
const maxReadYourWritesWait = 2 * time.Second

// awaitIndex holds a forwarded answer until this node has applied what the
// leader had applied when it answered. Without it a client that creates a
// client through a follower and then uses it on the same follower (one
// load-balanced connection, say) could be refused for a few milliseconds:
// authentication is served from local state. Read-your-writes per node.
func (f *forwarder) awaitIndex(ctx context.Context, header string) {
	want, err := strconv.ParseUint(header, 10, 64)
	if err != nil {
		return
	}
	deadline := time.Now().Add(maxReadYourWritesWait)
	for f.s.store.AppliedIndex() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
}

func (f *forwarder) serve(c *call) {
	s := f.s
	if c.byPeer {
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
	ticket, err := s.peers.forward()
	if err != nil {
		c.fail(err)
		return
	}
	info := forwardInfo{target: target, port: req.Port, source: req.SourceIP, proto: proto, ticket: ticket}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.ForwardTimeout)
	defer cancel()
	ctx = context.WithValue(context.WithValue(ctx, forwardKey{}, info), callKey{}, c)
	start := time.Now()
	f.proxy.ServeHTTP(c.w, c.r.WithContext(ctx))
	s.metrics.forwarded.WithLabelValues(c.route.name).Observe(time.Since(start).Seconds())
}
