package sidecar

import (
	"net/http"
	"net/url"

	"github.com/tcauth/tcauth/protocol"
)

// serveForwardAuth answers an auth sub-request of nginx (auth_request) or
// Traefik (ForwardAuth). The original request is described by headers:
// method from X-Original-Method or X-Forwarded-Method, request-target from
// X-Original-URI or X-Forwarded-Uri, host from X-Forwarded-Host (else the
// sub-request's Host), port from X-Forwarded-Port / X-Forwarded-Proto. The
// original Authorization header travels on the sub-request itself.
//
// Those headers decide what is authorised, so they are believed only from
// TrustedProxies (oauth2-proxy GHSA-7x63-xv5r-3p2x): any other peer gets
// 403 UntrustedProxy without looking further. A trusted peer that omits
// the method or URI gets 400 (a proxy misconfiguration). nginx maps any
// answer other than 2xx/401/403 to 500, so "no route" and a request
// refused as ambiguous (400 in proxy mode) are 403s here.
func (s *Sidecar) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	if !s.peerTrusted(r) {
		dn := deny(http.StatusForbidden, CodeUntrustedProxy, outcomeUntrusted,
			"Forward-auth requests are accepted only from the configured trusted proxies; "+r.RemoteAddr+" is not one.")
		s.record(r.Context(), "none", dn.outcome)
		s.writeError(w, r, "none", nil, dn)
		return
	}
	h := r.Header
	method := firstNonEmpty(h.Get("X-Original-Method"), h.Get("X-Forwarded-Method"))
	uri := firstNonEmpty(h.Get("X-Original-URI"), h.Get("X-Original-Uri"), h.Get("X-Forwarded-Uri"))
	if method == "" || uri == "" {
		dn := deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest,
			"A forward-auth sub-request must carry the original method and URI (X-Original-Method and X-Original-URI, or X-Forwarded-Method and X-Forwarded-Uri).")
		s.record(r.Context(), "none", dn.outcome)
		s.writeError(w, r, "none", nil, dn)
		return
	}
	if rl := reqLogFrom(r.Context()); rl != nil {
		rl.method, rl.uri = method, uri // the request the sub-request asks about
	}
	host := firstNonEmpty(h.Get("X-Forwarded-Host"), r.Host)
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		u = &url.URL{Path: "/"}
	}
	orig := &http.Request{
		Method:     method,
		URL:        u,
		RequestURI: uri,
		Host:       host,
		Header:     r.Header,
		RemoteAddr: r.RemoteAddr,
		TLS:        r.TLS,
		Body:       http.NoBody,
	}
	orig = orig.WithContext(r.Context())
	t := &target{r: orig, trusted: true, uri: uri, canReadBody: false}
	d, dn := s.authorize(r.Context(), t)
	if dn != nil {
		switch dn.err.Status {
		case http.StatusNotFound:
			dn.err.Status, dn.err.Code = http.StatusForbidden, protocol.CodeInsufficientScopes
		case http.StatusBadRequest:
			// A request refused as ambiguous (a `..` or encoded separator
			// in the path, say) keeps its InputError body in
			// X-Taskcluster-Error; the status must be one nginx passes on.
			dn.err.Status = http.StatusForbidden
		}
		s.record(r.Context(), dn.route, dn.outcome)
		s.writeError(w, r, dn.route, dn.params, dn)
		return
	}
	d.id.set(w.Header(), s.cfg.MaxScopesHeader)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	s.record(r.Context(), d.route.Name, d.outcome)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
