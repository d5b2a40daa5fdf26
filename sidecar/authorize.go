package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
)

// denial is a refused request: the error to answer and the metric outcome.
type denial struct {
	err     *protocol.APIError
	outcome string
	// challenge adds WWW-Authenticate: hawk (401s).
	challenge bool
	// stale is forwarded as X-Taskcluster-Auth-Stale even on errors.
	stale time.Duration
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
}

// target is the request being authorised: the proxied request itself, or
// in forward-auth mode the original request described by the headers of
// the sub-request.
type target struct {
	r       *http.Request
	trusted bool   // the direct peer is a trusted proxy
	uri     string // request-target as sent (what the MAC covers)
	// body returns the request body, buffered up to limit bytes, and
	// replaces r.Body so the upstream still receives it; ok=false when
	// it is longer than limit.
	canReadBody bool
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
	return data, false, nil
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
	path, rawQuery, err := splitURI(t.uri)
	if err != nil {
		return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, err.Error())
	}
	segs, err := splitPath(path)
	if err != nil {
		return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Bad request path: "+err.Error())
	}
	route, params, ok := pol.Match(r.Method, segs)
	if !ok {
		route = nil
	}
	if !ok {
		return nil, deny(http.StatusNotFound, protocol.CodeResourceNotFound, outcomeNoRoute,
			fmt.Sprintf("No route of this service matches %s %s.", r.Method, path))
	}
	d := &decision{route: route, params: params, id: identity{scheme: "none", route: route.Name}}
	if route.Public {
		// Public routes skip verification entirely (cheap, and a broken
		// signature cannot make a public page fail); the caller is
		// anonymous to the upstream.
		d.outcome = outcomePublic
		return d, nil
	}

	req := protocol.RequestFromHTTP(r, t.trusted)
	req.Resource = t.uri
	bewit := req.Authorization == "" && protocol.HasBewit(req.Resource)
	if req.Authorization != "" && protocol.HasBewit(req.Resource) {
		return nil, authFailed(protocol.TwoSchemesMessage)
	}

	// Body parameters are read before verification so a body that is too
	// big or not JSON is refused without a control-plane round trip.
	var body []byte
	bodyRead := false
	tmplParams := make(map[string]any, len(params)+len(route.Query)+len(route.Body))
	for k, v := range params {
		tmplParams[k] = v
	}
	if len(route.Query) > 0 {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Bad query string: "+err.Error())
		}
		for _, n := range route.Query {
			if vs, ok := q[n]; ok && len(vs) > 0 {
				tmplParams[n] = vs[0]
			}
		}
	}
	if len(route.Body) > 0 && t.canReadBody {
		b, tooBig, err := readBody(r, pol.MaxBodyBytes)
		if err != nil {
			return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Could not read the request body: "+err.Error())
		}
		if tooBig {
			return nil, deny(http.StatusRequestEntityTooLarge, protocol.CodeInputTooLarge, outcomeBadRequest,
				fmt.Sprintf("This route reads its scopes from the JSON body, which may be at most %d bytes.", pol.MaxBodyBytes))
		}
		body, bodyRead = b, true
		if err := bodyParams(b, route.Body, tmplParams); err != nil {
			return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, err.Error())
		}
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
		res = s.local.verify(ctx, req, id, ext)
		s.m.verifyLocal.Observe(time.Since(start).Seconds())
	} else {
		res = s.verifyRemote(ctx, req)
		s.m.verifyRemote.Observe(time.Since(start).Seconds())
	}
	res.Bewit = bewit && res.Status == protocol.StatusSuccess

	switch {
	case res.Err != nil:
		// Fail closed: the verifier could not decide (FIELD-NOTES).
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
				b, tooBig, err := readBody(r, s.cfg.MaxHashedBody)
				if err != nil {
					return nil, deny(http.StatusBadRequest, protocol.CodeInputError, outcomeBadRequest, "Could not read the request body: "+err.Error())
				}
				if tooBig {
					return nil, deny(http.StatusRequestEntityTooLarge, protocol.CodeInputTooLarge, outcomeBadRequest,
						fmt.Sprintf("A request with a Hawk payload hash may have a body of at most %d bytes.", s.cfg.MaxHashedBody))
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
		// After the MAC (FIELD-NOTES): unverified headers cannot fill or
		// burn the store. Bewits are reusable by design and not tracked.
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
	if dn.err.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
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
	data, _ := json.MarshalIndent(body, "", "  ")
	_, _ = w.Write(append(data, '\n'))
}

// maxErrorHeader keeps X-Taskcluster-Error well inside nginx's default
// proxy_buffer_size (4 KiB for all of a sub-request's headers).
const maxErrorHeader = 2048

// errorHeaderValue is the error body as one line of JSON for
// HeaderError (json.Marshal escapes newlines and control characters, so
// the value is a valid header). A long message is shortened; the body
// proper still carries all of it.
func errorHeaderValue(body protocol.ErrorBody) string {
	data, _ := json.Marshal(body)
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
		data, _ = json.Marshal(short)
		if cut == 0 {
			break
		}
	}
	return string(data)
}

func (s *Sidecar) record(route, outcome string) {
	s.m.requests.WithLabelValues(route, outcome).Inc()
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
