package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// Request outcomes, the "outcome" label of tcauth_sidecar_requests_total.
const (
	outcomeAllowed      = "allowed"
	outcomePublic       = "public"
	outcomeAuthFailed   = "auth_failed"
	outcomeInsufficient = "insufficient_scopes"
	outcomeReplayed     = "replayed"
	outcomeBadRequest   = "bad_request"
	outcomeNoRoute      = "no_route"
	outcomeUnavailable  = "unavailable"
	outcomeUpstreamErr  = "upstream_error"
	outcomeUntrusted    = "untrusted_peer"
)

// Error codes the sidecar adds to Taskcluster's set, for answers the
// reference API never gives.
const (
	CodeServiceUnavailable = "ServiceUnavailable" // 503: cannot verify now (control plane unreachable, not synchronised)
	CodeBadGateway         = "BadGateway"         // 502: upstream unreachable
	CodeGatewayTimeout     = "GatewayTimeout"     // 504: upstream did not answer in time
	CodeUntrustedProxy     = "UntrustedProxy"     // 403: forward-auth sub-request from a peer not in TrustedProxies
	CodeRequestTimeout     = "RequestTimeout"     // 408: the body authentication needs did not arrive within BodyReadTimeout
	CodeMisdirectedRequest = "MisdirectedRequest" // 421: Host is not one of PublicHosts
)

// denial is a refused request: the error to answer and the metric outcome.
type denial struct {
	err     *protocol.APIError
	outcome string
	// challenge adds WWW-Authenticate: hawk (401s).
	challenge bool
	// stale is forwarded as X-Taskcluster-Auth-Stale even on errors.
	stale time.Duration
	// closeConn answers with Connection: close (the body was not read).
	closeConn bool
	// route and params name the matched route in the error body and the
	// metrics ("none" when nothing matched).
	route  string
	params map[string]string
}

func deny(status int, code, outcome, msg string) *denial {
	return &denial{err: &protocol.APIError{Code: code, Status: status, Message: msg}, outcome: outcome}
}

func authFailed(msg string) *denial {
	d := deny(http.StatusUnauthorized, protocol.CodeAuthenticationFailed, outcomeAuthFailed, msg)
	d.challenge = true
	return d
}

// decision is an allowed request: what the upstream is told.
type decision struct {
	route   *Route
	params  map[string]string
	id      identity
	outcome string
	// upstreamFailed is set by the proxy's error handler.
	upstreamFailed bool
	// upgrade: the route declares the websocket upgrade and the request
	// asks for it; otherwise Upgrade is removed before forwarding.
	upgrade bool
}

// target is the request being authorised: the proxied request itself, or
// in forward-auth mode the original request described by the headers of
// the sub-request.
type target struct {
	r       *http.Request
	trusted bool   // the direct peer is a trusted proxy
	uri     string // request-target as sent (what the MAC covers)
	// canReadBody: the request's body is here (proxy mode) and may be
	// buffered for body parameters or a payload hash; the upstream then
	// receives exactly the buffered bytes.
	canReadBody bool
	// rc sets the body-read deadline (nil: none, forward-auth).
	rc *http.ResponseController
}

// readBody buffers at most limit bytes of the body and puts it back for
// the upstream. tooBig when the body is longer.
func readBody(r *http.Request, limit int64) (body []byte, tooBig bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false, nil
	}
	if r.ContentLength > limit {
		return nil, true, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > limit {
		return nil, true, nil
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	// What was read is what is forwarded: a fixed-length body, without the
	// chunked framing and without trailers (which Go's server has merged
	// into r.Trailer by now, and which the upstream could read as headers).
	r.TransferEncoding = nil
	r.Trailer = nil
	return data, false, nil
}

// readBodyFor buffers the body that authentication needs, within
// BodyReadTimeout: an unauthenticated caller must not hold a connection
// open by trickling its body (408). tooBigMsg is the 413's message.
func (s *Sidecar) readBodyFor(t *target, limit int64, tooBigMsg string) ([]byte, *denial) {
	deadline := t.rc != nil && s.cfg.BodyReadTimeout > 0 &&
		t.rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout)) == nil
	b, tooBig, err := readBody(t.r, limit)
	if err != nil {
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			// The deadline stays in place, so whatever the server does
			// with the rest of the body fails at once, and the
			// connection is closed after the answer.
			dn := deny(http.StatusRequestTimeout, CodeRequestTimeout, outcomeBadRequest,
				fmt.Sprintf("The request body did not arrive within %s; the sidecar needs it to authorise the request.", s.cfg.BodyReadTimeout))
			dn.closeConn = true
			return nil, dn
		}
		return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Could not read the request body: "+err.Error())
	}
	if deadline {
		// The server sets no whole-request deadline (uploads may be
		// long), so none is the state to go back to.
		_ = t.rc.SetReadDeadline(time.Time{})
	}
	if tooBig {
		return nil, deny(http.StatusRequestEntityTooLarge, protocol.CodeInputTooLarge, outcomeBadRequest, tooBigMsg)
	}
	return b, nil
}

// splitURI splits a request-target into its escaped path and raw query.
// Absolute-form targets (proxy requests) are reduced to their path.
func splitURI(uri string) (path, rawQuery string, err error) {
	if !strings.HasPrefix(uri, "/") {
		u, err := url.ParseRequestURI(uri)
		if err != nil || u.Host == "" {
			return "", "", errors.New("the request target must be a path")
		}
		return u.EscapedPath(), u.RawQuery, nil
	}
	path, rawQuery, _ = strings.Cut(uri, "?")
	return path, rawQuery, nil
}

// authorize runs steps 2–4 of the pipeline (ServeHTTP did step 1, the
// stripping): match a route, verify the credentials, check the payload
// hash and the nonce, and evaluate the route's scope expression.
func (s *Sidecar) authorize(ctx context.Context, t *target) (_ *decision, dn *denial) {
	var route *Route
	var params map[string]string
	defer func() {
		if dn != nil {
			dn.route, dn.params = "none", params
			if route != nil {
				dn.route = route.Name
			}
		}
	}()
	pol := s.policy.Load()
	r := t.r
	pin, dn := s.checkHost(r.Host)
	if dn != nil {
		return nil, dn
	}
	path, rawQuery, segs, dn := requestPath(t)
	if dn != nil {
		return nil, dn
	}
	route, params, ok := pol.Match(r.Method, segs)
	if !ok {
		return nil, deny(http.StatusNotFound, protocol.CodeResourceNotFound, outcomeNoRoute,
			fmt.Sprintf("No route of this service matches %s %s.", r.Method, path))
	}
	if err := route.checkPath(segs, params); err != nil {
		return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Bad request path: "+err.Error())
	}
	d := &decision{route: route, params: params, id: identity{scheme: "none", route: route.Name}}
	d.upgrade = route.Upgrade != "" && isWebSocketUpgrade(r.Header)
	if route.Public {
		// Public routes skip verification entirely (cheap, and a broken
		// signature cannot make a public page fail); the caller is
		// anonymous to the upstream.
		d.outcome = outcomePublic
		return d, nil
	}

	req := protocol.RequestFromHTTP(r, t.trusted)
	req.Resource = t.uri
	pin.apply(&req)
	bewit := req.Authorization == "" && protocol.HasBewit(req.Resource)
	if req.Authorization != "" && protocol.HasBewit(req.Resource) {
		return nil, authFailed(protocol.TwoSchemesMessage)
	}

	// Body parameters are read before verification so a body that is too
	// big or not JSON is refused without a control-plane round trip.
	tmplParams, body, bodyRead, dn := s.templateParams(t, route, params, rawQuery, pol.MaxBodyBytes)
	if dn != nil {
		return nil, dn
	}

	// The Hawk header (or bewit) is parsed here too: the local cache is
	// keyed by its id and ext, and the payload hash and nonce are checked
	// from it in both modes. The Authenticator repeats the parse and
	// reports any error.
	var hdr protocol.Header
	var bw protocol.Bewit
	if req.Authorization != "" {
		hdr, _ = protocol.ParseHeader(req.Authorization)
	} else if bewit {
		bw, _, _ = protocol.ParseBewit(req.Method, req.Resource)
	}

	start := time.Now()
	var res verifyResult
	if s.local != nil {
		id, ext := hdr.ID, hdr.Ext
		if bewit {
			id, ext = bw.ID, bw.Ext
		}
		res = s.local.verify(ctx, req, id, ext, func() string { return sourceKey(r, t.trusted) })
		s.m.verifyLocal.Observe(time.Since(start).Seconds())
	} else {
		res = s.verifyRemote(ctx, req)
		s.m.verifyRemote.Observe(time.Since(start).Seconds())
	}
	res.Bewit = bewit && res.Status == protocol.StatusSuccess
	claimed := hdr.ID
	if bewit {
		claimed = bw.ID
	}
	s.noteVerified(ctx, &res, claimed)

	switch {
	case errors.Is(res.Err, ErrUnknownClientBudget):
		// Only this source: see sourcelimit.go for why 429, not 401.
		return nil, deny(http.StatusTooManyRequests, protocol.CodeTooManyRequests, outcomeThrottled,
			"Too many requests with clientIds this sidecar does not know came from your address; retry later.")
	case res.Err != nil:
		// Fail closed: the verifier could not decide (allowing on error was
		// Envoy's GHSA-9g5w-hqr3-w2ph).
		s.log.Warn("cannot verify request", "route", route.Name, "err", res.Err.Error())
		dn := deny(http.StatusServiceUnavailable, CodeServiceUnavailable, outcomeUnavailable,
			"The sidecar cannot verify credentials right now: "+res.Err.Error())
		dn.stale = res.Stale
		return nil, dn
	case res.Status == protocol.StatusFailed:
		dn := authFailed(res.Message)
		dn.stale = res.Stale
		return nil, dn
	case res.Status == protocol.StatusNoAuth && route.Authenticated:
		return nil, authFailed("This request requires Taskcluster credentials (a Hawk Authorization header or a bewit).")
	}
	if res.Stale > 0 {
		s.m.staleServed.Inc()
	}

	if res.Status == protocol.StatusSuccess && !bewit && hdr.Hash != "" {
		if t.canReadBody {
			if !bodyRead {
				b, dn := s.readBodyFor(t, s.cfg.MaxHashedBody,
					fmt.Sprintf("A request with a Hawk payload hash may have a body of at most %d bytes.", s.cfg.MaxHashedBody))
				if dn != nil {
					return nil, dn
				}
				body = b
			}
			// The hash attribute is covered by the MAC the verifier just
			// checked, so comparing it with our own hash of the body is
			// enough, in both modes (authenticateHawk never sees bodies).
			check := res.Result
			check.Hash, check.Scheme = hdr.Hash, "hawk"
			if !check.PayloadHashValid(r.Header.Get("Content-Type"), body) {
				return nil, authFailed("Invalid payload hash: the hash in the Authorization header does not match the request body and Content-Type.")
			}
		}
	}

	if res.Status == protocol.StatusSuccess && !bewit && s.nonces != nil {
		// After the MAC, never before: a store that recorded nonces of
		// unverified headers could be filled, or a victim's next nonce
		// burnt, by anyone. Bewits are reusable by design and not tracked.
		switch s.nonces.check(hdr.ID, hdr.TS, hdr.Nonce) {
		case nonceReplayed:
			s.m.replays.Inc()
			dn := authFailed("Replay detected: this Hawk header (id, ts, nonce) was already used. Sign each request with a fresh nonce.")
			dn.outcome = outcomeReplayed
			return nil, dn
		case nonceTooOld:
			dn := authFailed("Unauthorized: Stale timestamp (the sidecar's nonce store no longer covers this ts; sign the request again)")
			dn.outcome = outcomeReplayed
			return nil, dn
		}
	}

	expr, public, err := route.Template.Render(tmplParams)
	if err != nil {
		return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest,
			"The request does not supply what this route's scope expression needs: "+err.Error())
	}
	scopes := scopeengine.ScopeSet(res.Scopes)
	if s.local == nil {
		scopes = scopeengine.NewScopeSet(res.Scopes) // remote answers: normalise before binary search
	}
	if !public && !expr.Satisfied(scopes) {
		if res.Status == protocol.StatusNoAuth {
			dn := authFailed(protocol.InsufficientScopesMessage("", nil, expr, true))
			return nil, dn
		}
		unsat, _ := expr.Unsatisfied(scopes)
		dn := deny(http.StatusForbidden, protocol.CodeInsufficientScopes, outcomeInsufficient,
			protocol.InsufficientScopesMessage(res.ClientID, unsat, expr, false))
		dn.stale = res.Stale
		return nil, dn
	}
	d.id = identityOf(&res, route.Name)
	d.id.scopes = []string(scopes)
	if !public {
		d.id.required = &expr
	}
	d.id.hash = ""
	if !t.canReadBody && res.Status == protocol.StatusSuccess && !bewit {
		// Forward-auth sees no body: the hash (covered by the MAC) goes to
		// the upstream, which has the body and may check it.
		d.id.hash = hdr.Hash
	}
	d.outcome = outcomeAllowed
	return d, nil
}

// requestPath splits and checks the request-target. In proxy mode the
// path must also be in the form Go forwards it in (url.URL.EscapedPath):
// otherwise the upstream would receive a re-encoded path (a %2F next to a
// character Go re-encodes would arrive as /), not the one authorised.
func requestPath(t *target) (path, rawQuery string, segs []string, dn *denial) {
	path, rawQuery, err := splitURI(t.uri)
	if err != nil {
		return "", "", nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, err.Error())
	}
	segs, err = splitPath(path)
	if err == nil && t.canReadBody && t.r.URL != nil && t.r.URL.EscapedPath() != path {
		err = errNonCanonicalPath
	}
	if err != nil {
		return "", "", nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Bad request path: "+err.Error())
	}
	return path, rawQuery, segs, nil
}

// templateParams collects the values the route's template may use: the
// path captures, the listed query parameters and the listed body members.
// A listed query parameter given twice is refused: frameworks disagree on
// whether the first or the last one counts.
func (s *Sidecar) templateParams(t *target, route *Route, params map[string]string, rawQuery string, maxBody int64) (_ map[string]any, body []byte, bodyRead bool, dn *denial) {
	bad := func(msg string) (map[string]any, []byte, bool, *denial) {
		return nil, nil, false, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, msg)
	}
	out := make(map[string]any, len(params)+len(route.Query)+len(route.Body))
	for k, v := range params {
		out[k] = v
	}
	if len(route.Query) > 0 {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return bad("Bad query string: " + err.Error())
		}
		for _, n := range route.Query {
			switch vs := q[n]; {
			case len(vs) > 1:
				return bad(fmt.Sprintf("The query parameter %q is given %d times; this route's scopes depend on it, so it may appear once.", n, len(vs)))
			case len(vs) == 1:
				out[n] = vs[0]
			}
		}
	}
	if len(route.Body) == 0 || !t.canReadBody {
		return out, nil, false, nil
	}
	if err := checkJSONContentType(t.r.Header.Get("Content-Type")); err != nil {
		return bad(err.Error())
	}
	b, dn := s.readBodyFor(t, maxBody,
		fmt.Sprintf("This route reads its scopes from the JSON body, which may be at most %d bytes.", maxBody))
	if dn != nil {
		return nil, nil, false, dn
	}
	if err := bodyParams(b, route.Body, out); err != nil {
		return bad(err.Error())
	}
	return out, b, true, nil
}

// verifyRemote asks the control plane's authenticateHawk.
func (s *Sidecar) verifyRemote(ctx context.Context, req protocol.Request) verifyResult {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.cp.authenticate(ctx, req)
	s.m.cpLatency.WithLabelValues("authenticate-hawk").Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.cpErrors.WithLabelValues("authenticate-hawk").Inc()
		return verifyResult{Result: protocol.Result{Status: protocol.StatusFailed, Err: err, Message: err.Error()}}
	}
	return verifyResult{Result: res}
}

// writeError answers in Taskcluster's error shape.
func (s *Sidecar) writeError(w http.ResponseWriter, r *http.Request, route string, params map[string]string, dn *denial) {
	body := dn.err.Body(route, params, nil, s.cfg.now())
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if dn.challenge {
		h.Set("WWW-Authenticate", "hawk")
	}
	if dn.err.Status == http.StatusServiceUnavailable || dn.err.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	if dn.closeConn {
		h.Set("Connection", "close")
	}
	if dn.stale > 0 {
		h.Set(HeaderAuthStale, staleSeconds(dn.stale))
	}
	if s.cfg.Mode == ModeForwardAuth {
		h.Set(HeaderError, errorHeaderValue(body))
	}
	w.WriteHeader(dn.err.Status)
	if r.Method == http.MethodHead {
		return
	}
	data, _ := protocol.MarshalIndent(body)
	_, _ = w.Write(append(data, '\n'))
}

// maxErrorHeader keeps X-Taskcluster-Error well inside nginx's default
// proxy_buffer_size (4 KiB for all of a sub-request's headers).
const maxErrorHeader = 2048

// errorHeaderValue is the error body as one line of JSON for
// HeaderError (protocol.Marshal escapes newlines and control characters, so
// the value is a valid header). A long message is shortened; the body
// proper still carries all of it.
func errorHeaderValue(body protocol.ErrorBody) string {
	data, _ := protocol.Marshal(body)
	if len(data) <= maxErrorHeader {
		return string(data)
	}
	short := protocol.ErrorBody{Code: body.Code, Message: body.Message, RequestInfo: protocol.RequestInfo{Method: body.RequestInfo.Method, Time: body.RequestInfo.Time}}
	for len(data) > maxErrorHeader && len(short.Message) > 0 {
		cut := max(0, len(short.Message)-(len(data)-maxErrorHeader)-len("…"))
		for cut > 0 && !utf8.RuneStart(short.Message[cut]) {
			cut--
		}
		short.Message = short.Message[:cut] + "…"
		data, _ = protocol.Marshal(short)
		if cut == 0 {
			break
		}
	}
	return string(data)
}

func (s *Sidecar) record(ctx context.Context, route, outcome string) {
	s.m.request(route, outcome).Inc()
	noteOutcome(ctx, route, outcome)
}

func routeLabel(d *decision) string {
	if d == nil || d.route == nil {
		return "none"
	}
	return d.route.Name
}

// removeBewit drops every bewit parameter from a raw query, keeping the
// others byte for byte.
func removeBewit(rawQuery string) string {
	if !strings.Contains(rawQuery, "bewit=") {
		return rawQuery
	}
	parts := strings.Split(rawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		if strings.HasPrefix(p, "bewit=") {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}
