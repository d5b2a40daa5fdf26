package controlplane

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tcauth/tcauth/controlplane/events"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/controlplane/webui"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// Server serves the auth v1 API over a Store.
type Server struct {
	cfg      Config
	store    Store
	log      *slog.Logger
	routes   []*route
	static   []StaticClient
	clients  *clientSource
	authn    *protocol.Authenticator
	metrics  *metrics
	started  time.Time
	lastUsed *lastUsedBatcher
	forward  *forwarder
	// caughtUp and waitCaughtUp are the store's CatchUpReporter (always
	// caught up without one).
	caughtUp func() bool
	// readIndexClient fetches the leader's read index for the store's
	// catch-up check (readindex.go); nil when the store needs none.
	readIndexClient *http.Client
	waitCaughtUp    func(context.Context) error
	peers           *peerTickets

	staticMu     sync.Mutex
	staticSynced bool // static clients synced during the current leadership

	// The login service (Config.Login; nil without) and its backend.
	login         *login.Service
	loginBackend  *loginBackend
	webui         *webui.Server // the web UI, with the login service
	issuerChecked bool          // the issuer client's existence was checked (Run)

	cloud *cloudBackends // third-party credentials (handlers_cloud.go)

	events *events.Publisher // change events (Config.Events; nil without), events.go

	largeExpansions chan struct{} // semaphore of large expandScopes calls (expandscopes.go)
}

// New validates cfg and returns a Server over store.
func New(cfg Config, store Store) (*Server, error) {
	if store == nil {
		return nil, errors.New("controlplane: nil store")
	}
	cfg.fillDefaults()
	static, err := ResolveStaticClients(cfg.StaticClients)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: store, log: cfg.Logger, static: static, started: cfg.Now()}
	s.largeExpansions = make(chan struct{}, cfg.MaxLargeExpansions)
	s.metrics = newMetrics(store)
	s.lastUsed = newLastUsedBatcher()
	s.clients = newClientSource(store, cfg.ClientCacheSize, s.noteUsed)
	memo, err := lru.New[string, memoExpansion](cfg.ClientCacheSize)
	if err != nil {
		return nil, err
	}
	s.authn = &protocol.Authenticator{Clients: s.clients, Scopes: resolverOps{store, memo}, Now: cfg.Now,
		Certificates: protocol.NewCertificateCache(protocol.DefaultCertificateCacheSize)}
	s.forward = newForwarder(s)
	s.caughtUp, s.waitCaughtUp = func() bool { return true }, func(context.Context) error { return nil }
	if cr, ok := store.(CatchUpReporter); ok {
		s.caughtUp, s.waitCaughtUp = cr.CaughtUp, cr.WaitCaughtUp
	}
	if rs, ok := store.(ReadIndexSetter); ok {
		s.readIndexClient = &http.Client{Timeout: 2 * time.Second}
		rs.SetReadIndexSource(s.fetchReadIndex)
	}
	s.peers = &peerTickets{keyring: cfg.PeerKeyring, now: cfg.Now}
	if err := s.startCloud(); err != nil {
		return nil, err
	}
	if err := s.startEvents(); err != nil {
		return nil, err
	}
	s.routes = s.buildRoutes()
	if cfg.Login != nil {
		if err := s.startLogin(*cfg.Login); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startLogin builds the login service over a loginBackend.
func (s *Server) startLogin(lc login.Config) error {
	ls, ok := s.store.(LoginStore)
	if !ok {
		return errors.New("controlplane: the login service needs a store that keeps login records (LoginStore)")
	}
	if s.readIndexClient == nil {
		s.readIndexClient = &http.Client{Timeout: 2 * time.Second}
	}
	if lc.Sealer == nil {
		lc.Sealer = s.peers.sealer()
	}
	if lc.Now == nil {
		lc.Now = s.cfg.Now
	}
	if lc.Logger == nil {
		lc.Logger = s.log
	}
	if lc.ClientAddr == nil {
		lc.ClientAddr = s.clientAddr
	}
	s.loginBackend = newLoginBackend(s, ls)
	svc, err := login.New(lc, s.loginBackend)
	if err != nil {
		return err
	}
	s.login = svc
	// The web UI calls the API in process with the signed-in user's own
	// credentials, signed for the public URL (webui/transport.go).
	ui, err := webui.New(webui.Config{Login: svc, API: http.HandlerFunc(s.serveAPI), RootURL: lc.PublicURL,
		AllowedCallbackHosts: s.cfg.UICallbackHosts, Logger: s.log, Now: s.cfg.Now})
	if err != nil {
		return err
	}
	s.webui = ui
	return nil
}

// Login is the login service (nil without Config.Login).
func (s *Server) Login() *login.Service { return s.login }

// LoginBackend is the login service's backend over this server's store
// (nil without Config.Login).
func (s *Server) LoginBackend() login.Backend {
	if s.loginBackend == nil {
		return nil
	}
	return s.loginBackend
}

// Handler returns the HTTP handler: the API under /api/auth/v1, the
// Dockerflow endpoints also at the root, and Prometheus metrics at /metrics.
// It never serves Go's profiles, even with Config.EnablePprof: anyone who
// reaches the API could otherwise take CPU profiles (a cost to every
// caller) and read the command line; they are on AdminHandler only.
func (s *Server) Handler() http.Handler {
	// Not an http.ServeMux: it would clean paths like /aws/s3/l/b//p with a
	// redirect, and the Hawk MAC covers the path exactly as sent.
	metricsHandler := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			metricsHandler.ServeHTTP(w, r)
			return
		}
		if s.login != nil {
			if r.URL.Path == apiPrefix+loginApplyPath {
				s.loginBackend.serveLoginApply(w, r)
				return
			}
			if login.Owns(r.URL.Path) {
				s.login.Handler().ServeHTTP(w, r)
				return
			}
			if webui.Owns(r.URL.Path) {
				s.webui.Handler().ServeHTTP(w, r)
				return
			}
		}
		s.serveAPI(w, r)
	})
}

// resolverOps is protocol.ScopeOps over the store's current resolver. The
// validator expands (client's expanded scopes ∪ assume:anonymous) on every
// request; the result is the same for every request of a client until the
// resolver changes, so it is memoised, keyed by the input and validated by
// the resolver's identity.
type resolverOps struct {
	store Store
	memo  *lru.Cache[string, memoExpansion]
}

type memoExpansion struct {
	resolver *scopeengine.Resolver
	out      []string
}

// maxMemoKey bounds the inputs worth memoising (the key is the input).
const maxMemoKey = 64 << 10

func (o resolverOps) Expand(scopes []string) []string {
	res := o.store.Resolver()
	key := scopesKey(scopes)
	if len(key) > maxMemoKey {
		return res.Expand(scopes)
	}
	if m, ok := o.memo.Get(key); ok && m.resolver == res {
		return m.out // shared, never modified (Resolver.Expand's contract)
	}
	out := res.Expand(scopes)
	o.memo.Add(key, memoExpansion{res, out})
	return out
}

// ExpandWith is protocol.ClosedExpander: the client's expanded scopes plus
// assume:anonymous without re-expanding the client's set (which is what
// made every request of a client holding assume:* cost a full expansion).
// closed comes from clientSource.expand, normally under the same resolver;
// across a role change it is at most one request behind, as before.
func (o resolverOps) ExpandWith(closed, extra []string) []string {
	return o.store.Resolver().ExpandWith(closed, extra)
}

func (o resolverOps) Satisfies(have []string, need string) bool {
	return scopeengine.ScopeSet(have).Satisfies(need)
}

// call is one API request on its way through the pipeline.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	route   *route
	params  map[string]string
	query   map[string]string
	body    []byte
	payload any // parsed body as received, echoed in error bodies; {} when absent
	input   any // the validated body with schema defaults applied
	now     time.Time
	auth    *protocol.Result
	status  int
	// handedOff: a refusal of this call was passed to the leader (or
	// answered 503) because this node is not caught up; at most once.
	handedOff bool
	// byPeer: another node of the cluster forwarded this request (a valid
	// forward ticket, not merely a trusted source address).
	byPeer bool
}

// apiErr builds an APIError with the status of code.
func apiErr(code, format string, args ...any) *protocol.APIError {
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	return protocol.NewAPIError(code, format)
}

var errNoLeader = &protocol.APIError{Code: protocol.CodeInternalServerError, Status: http.StatusServiceUnavailable,
	Message: "No Raft leader is available at the moment; retry later."}

// errNotCurrent answers a refusal this node cannot confirm: its state is
// not known to be current and no leader can decide instead.
var errNotCurrent = &protocol.APIError{Code: protocol.CodeInternalServerError, Status: http.StatusServiceUnavailable,
	Message: "This node is catching up with the cluster and cannot yet tell whether these credentials are valid; retry shortly."}

// retryAfterSeconds is the Retry-After of 503 answers that a retry soon is
// expected to fix (no leader, catching up): about one election timeout.
const retryAfterSeconds = "1"

var errOutcomeUnknown = &protocol.APIError{Code: protocol.CodeInternalServerError, Status: http.StatusServiceUnavailable,
	Message: "The leader changed before this write was known to commit: it may or may not take effect. Read the resource before retrying."}

// NotAppliedHeader ("true") marks a 5xx answer to a write that is known
// not to have been proposed (no leader known, or the node was not the
// leader): safe to retry as is. Without it a failed write's outcome is
// unknown. The official clients retry 5xx regardless; tcauth's own tools
// and the reliability suite use the distinction.
const NotAppliedHeader = "X-Tcauth-Not-Applied"

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Max-Age", "900")
	h.Set("Access-Control-Allow-Methods", "OPTIONS,GET,HEAD,POST,PUT,DELETE,TRACE,CONNECT")
	h.Set("Access-Control-Request-Method", "*")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With,Content-Type,Authorization,Accept,Origin,Cache-Control")
	h.Set("Cache-Control", "no-store no-cache must-revalidate")

	byPeer := s.forwardedByPeer(r)
	if byPeer {
		w = &indexStampingWriter{ResponseWriter: w, index: s.store.AppliedIndex}
	}
	c := &call{s: s, w: w, r: r, now: s.cfg.Now(), byPeer: byPeer}
	reqID := protocol.RequestID(r.Header)
	h.Set(RequestIDHeader, reqID)
	name := "unknown"
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { // the reverse proxy aborting a response
				panic(v)
			}
			s.log.Error("panic in handler", "endpoint", name, "panic", fmt.Sprint(v))
			if c.status == 0 {
				c.fail(fmt.Errorf("panic: %v", v))
			}
		}
		s.metrics.observe(name, c.status, time.Since(start))
		s.logRequest(c, name, reqID, start)
	}()

	rt, params, found := s.matchRoute(r)
	if rt == nil {
		if found && r.Method == http.MethodOptions {
			c.status = http.StatusOK
			w.WriteHeader(http.StatusOK)
			return
		}
		c.route = &route{name: "unknown"}
		c.fail(apiErr(protocol.CodeResourceNotFound, "No such API endpoint: %s %s", r.Method, r.URL.EscapedPath()))
		return
	}
	name = rt.name
	c.route, c.params = rt, params
	c.serve()
}

// matchRoute finds the route for r; found reports whether the path exists
// for some method.
func (s *Server) matchRoute(r *http.Request) (*route, map[string]string, bool) {
	escaped := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(escaped, apiPrefix)
	if !ok || (rest != "" && rest[0] != '/') {
		// Dockerflow endpoints (and /readyz) are also served at the root.
		switch escaped {
		case "/__heartbeat__", "/__lbheartbeat__", "/__version__", "/readyz":
			rest = escaped
		default:
			return nil, nil, false
		}
	}
	segs, trailing, ok := splitPath(rest)
	if !ok {
		return nil, nil, false
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	found := false
	for _, rt := range s.routes {
		params, ok := rt.match(segs, trailing)
		if !ok {
			continue
		}
		found = true
		if rt.method == method {
			return rt, params, true
		}
	}
	return nil, nil, found
}

// serve runs the pipeline of docs/api.md §1 "Pipeline order".
func (c *call) serve() {
	s, r := c.s, c.r
	// 0. Consistency: writes (and linearizable reads) run on the leader.
	switch c.route.kind {
	case kindWrite:
		if !s.store.IsLeader() {
			c.forwardChecked()
			return
		}
	case kindRead:
		if s.cfg.StaleReads && !s.caughtUp() && !s.store.IsLeader() {
			// Stale reads are served from local state only once it is
			// current: right after a restart it may lack anything.
			c.forwardChecked()
			return
		}
		if !s.cfg.StaleReads {
			if err := s.store.LinearizableRead(r.Context()); err != nil {
				if errors.Is(err, ErrNotLeader) {
					c.forwardChecked()
					return
				}
				c.fail(err)
				return
			}
		}
	}
	// 1. Body.
	if err := c.readBody(); err != nil {
		c.fail(err)
		return
	}
	// 2. Auto-authorization from path parameters alone.
	if c.route.auto {
		if err := c.authorize(stringParams(c.params)); err != nil {
			c.fail(err)
			return
		}
	}
	// 3. Path-parameter patterns.
	var bad []string
	for _, seg := range c.route.path {
		if seg[0] != ':' {
			continue
		}
		name := seg[1:]
		if v := c.params[name]; !paramValid(name, v) {
			bad = append(bad, fmt.Sprintf("URL parameter '%s' given as '%s' must match regular expression: '/%s/'", name, v, paramPatterns[name]))
		}
	}
	if len(bad) > 0 {
		c.fail(apiErr(protocol.CodeInvalidRequestArguments, "Invalid URL patterns:\n"+strings.Join(bad, "\n")))
		return
	}
	// 4. Query parameters.
	if err := c.parseQuery(); err != nil {
		c.fail(err)
		return
	}
	// 5. Body schema.
	if c.route.input != nil {
		var errs []string
		c.input = c.route.input.validate(c.parseCopy(), "", &errs)
		if len(errs) > 0 {
			c.fail(apiErr(protocol.CodeInputValidationError, "\nSchema Validation Failed!\nRejecting Schema: %s/schemas/auth/v1/%s.json#\nErrors:\n  * %s",
				s.cfg.RootURL, schemaIDs[c.route.input], strings.Join(errs, "\n  * ")))
			return
		}
	}
	// 6. Handler.
	if err := c.route.handler(c); err != nil {
		c.fail(err)
	}
}

// parseCopy decodes the body again so that schema defaults do not show in
// the echoed payload (the reference's requestInfo shows the body as sent).
func (c *call) parseCopy() any {
	var v any
	if err := json.Unmarshal(c.body, &v); err != nil || v == nil {
		return map[string]any{}
	}
	return v
}

func stringParams(p map[string]string) map[string]any {
	out := make(map[string]any, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

func (c *call) readBody() error {
	limit := c.s.cfg.MaxBodyBytes
	if c.route.rawBody {
		limit = c.s.cfg.MaxSnapshotBytes
	}
	body, err := io.ReadAll(io.LimitReader(c.r.Body, limit+1))
	if err != nil {
		return apiErr(protocol.CodeMalformedPayload, "Failed to read request body")
	}
	if int64(len(body)) > limit {
		return apiErr(protocol.CodeInputTooLarge, "Request body exceeds %d bytes", limit)
	}
	c.body = body
	c.payload = map[string]any{}
	if c.route.input == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	ct := c.r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != "application/json" {
		return apiErr(protocol.CodeMalformedPayload, "Payload must be JSON with content-type: application/json got content-type: %s", ct)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&v); err != nil {
		return apiErr(protocol.CodeMalformedPayload, "Failed to parse JSON: %s", err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiErr(protocol.CodeMalformedPayload, "Failed to parse JSON: unexpected data after the JSON value")
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		return apiErr(protocol.CodeMalformedPayload, "Failed to parse JSON: body must be an object or an array")
	}
	c.payload = v
	return nil
}

// parseQuery checks the query string in its order of appearance (the
// reference's message order); bewit is always allowed.
func (c *call) parseQuery() error {
	c.query = map[string]string{}
	var bad []string
	for _, kv := range strings.Split(c.r.URL.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			bad = append(bad, "Query-string parameter: "+kv+" is not valid URL encoding")
			continue
		}
		if k == "bewit" {
			continue
		}
		if _, dup := c.query[k]; dup {
			c.query[k] += "," + v // Express gives an array; its regexp test sees "a,b"
		} else {
			c.query[k] = v
		}
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(c.r.URL.RawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err != nil || k == "" || k == "bewit" || seen[k] {
			continue
		}
		seen[k] = true
		var q *queryParam
		for i := range c.route.query {
			if c.route.query[i].name == k {
				q = &c.route.query[i]
			}
		}
		switch {
		case q == nil:
			bad = append(bad, "Query-string parameter: "+k+" is not supported!")
		case q.re != nil && !q.re.MatchString(c.query[k]):
			bad = append(bad, fmt.Sprintf("Query-string parameter: %s=%s does not match expression: %s", k, jsonString(c.query[k]), q.text))
		}
	}
	if len(bad) > 0 {
		return apiErr(protocol.CodeInvalidRequestArguments, strings.Join(bad, "\n"))
	}
	return nil
}

// trusted reports whether r comes from a configured trusted proxy or peer.
func (s *Server) trusted(r *http.Request) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// clientAddr is the caller's address for the login service's per-source
// budgets: the peer, or, when the peer is a trusted proxy, the last
// X-Forwarded-For entry — the address that proxy itself saw (entries
// before it were written by the caller and prove nothing).
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(r) {
		return host
	}
	vs := r.Header.Values("X-Forwarded-For")
	if len(vs) == 0 {
		return host
	}
	last := vs[len(vs)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if last = strings.TrimSpace(last); last != "" {
		return last
	}
	return host
}

// authenticate verifies the request's own credentials (once per request)
// with the in-process validator.
func (c *call) authenticate() (*protocol.Result, error) {
	if c.auth != nil {
		return c.auth, nil
	}
	res, err := c.s.authenticateWith(c, c.s.authn)
	c.s.metrics.ops.observeAPIAuth(res, err)
	if err != nil {
		return nil, err
	}
	c.auth = res
	return res, nil
}

// authenticateWith runs authn on the request: two schemes → 401, lookup
// failure → 500 (fail closed), auth-failed → 401, payload hash mismatch →
// 401. The result comes back with the error too (nil only for two
// schemes), for the metrics.
func (s *Server) authenticateWith(c *call, authn *protocol.Authenticator) (*protocol.Result, error) {
	req := protocol.RequestFromHTTP(c.r, s.trusted(c.r))
	if req.Authorization != "" && protocol.HasBewit(req.Resource) {
		return nil, apiErr(protocol.CodeAuthenticationFailed, protocol.TwoSchemesMessage)
	}
	res := authn.Authenticate(c.r.Context(), req)
	if res.Err != nil {
		return &res, fmt.Errorf("client lookup: %w", res.Err)
	}
	if res.Status == protocol.StatusFailed {
		return &res, apiErr(protocol.CodeAuthenticationFailed, res.Message)
	}
	if res.Hash != "" && res.Scheme == "hawk" {
		want := protocol.PayloadHash(c.r.Header.Get("Content-Type"), c.body)
		if subtle.ConstantTimeCompare([]byte(want), []byte(res.Hash)) != 1 {
			// The reference's message keeps a literal {{hash}} (docs/api.md §1).
			return &res, apiErr(protocol.CodeAuthenticationFailed, "Invalid payload hash: {{hash}}")
		}
	}
	return &res, nil
}

// clientID is req.clientId() of the reference.
func (c *call) clientID() string {
	if c.auth == nil || c.auth.Status != protocol.StatusSuccess {
		return "auth-failed:no-auth"
	}
	return c.auth.ClientID
}

// authorize renders the route's template with params and checks it against
// the caller's scopes (401/403).
func (c *call) authorize(params map[string]any) error {
	expr, public, err := c.route.tmpl.Render(params)
	if err != nil {
		return fmt.Errorf("rendering scope template of %s: %w", c.route.name, err)
	}
	if public {
		return nil
	}
	res, err := c.authenticate()
	if err != nil {
		return err
	}
	return checkScopes(res, expr)
}

// checkScopes is the 403 check of an authenticated (or anonymous) result.
func checkScopes(res *protocol.Result, expr scopeengine.Expr) error {
	have := scopeengine.NewScopeSet(res.Scopes)
	unsat, missing := expr.Unsatisfied(have)
	if !missing {
		return nil
	}
	noAuth := res.Status == protocol.StatusNoAuth
	return apiErr(protocol.CodeInsufficientScopes, protocol.InsufficientScopesMessage(res.ClientID, unsat, expr, noAuth))
}

// reply writes v as 2-space-indented JSON (200).
func (c *call) reply(v any) error {
	b, err := marshalPretty(v)
	if err != nil {
		return err
	}
	c.writeJSON(http.StatusOK, b)
	return nil
}

func (c *call) writeJSON(status int, b []byte) {
	c.status = status
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
}

func (c *call) noContent() error {
	c.status = http.StatusNoContent
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// fail answers err in Taskcluster's error shape. Store errors map to their
// API errors; anything else is a 500 with an incident id (logged, not
// shown).
func (c *call) fail(err error) {
	if c.route == nil {
		c.route = &route{name: "unknown"}
	}
	var ae *protocol.APIError
	if errors.As(err, &ae) && isRefusal(ae, c.route) && c.handOff() {
		return
	}
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, ErrNotLeader):
		ae = errNoLeader
	case errors.Is(err, ErrOutcomeUnknown):
		ae = errOutcomeUnknown
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ae = &protocol.APIError{Code: protocol.CodeInternalServerError, Status: http.StatusServiceUnavailable, Message: "Request timed out; retry later."}
	default:
		id := protocol.Slugid()
		c.s.log.Error("internal error", "endpoint", c.route.name, "incidentId", id, "error", err.Error())
		ae = apiErr(protocol.CodeInternalServerError, "Internal Server Error, incidentId %s.", id)
	}
	if ae.Status == http.StatusUnauthorized {
		c.w.Header().Set("WWW-Authenticate", "hawk")
	}
	// Both are answered before anything was proposed (errNotCurrent
	// replaces a refusal, which changes nothing), so a retry is safe.
	if (ae == errNoLeader || ae == errNotCurrent) && c.route.kind == kindWrite {
		c.w.Header().Set(NotAppliedHeader, "true")
	}
	if ae == errNoLeader || ae == errNotCurrent {
		c.w.Header().Set("Retry-After", retryAfterSeconds)
	}
	payload := c.payload
	if ae.Code == protocol.CodeAuthenticationFailed {
		// The reference echoes no payload for an unauthenticated caller
		// (vector api.authfailed_createClient).
		payload = nil
	}
	body := ae.Body(c.route.name, c.params, payload, c.now)
	b, merr := marshalPretty(body)
	if merr != nil {
		b = []byte(`{"code":"InternalServerError"}`)
	}
	c.writeJSON(ae.Status, b)
}

// isRefusal reports whether ae denies something that local state could be
// too old to know: 401 (unknown client, bad MAC after a token reset), 403
// (scopes granted by a role change not applied yet) and 404 (a client or
// role not there yet). A path that matches no route is not one.
func isRefusal(ae *protocol.APIError, rt *route) bool {
	switch ae.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return rt != nil && rt.name != "unknown"
	}
	return false
}

// maxCatchUpWait bounds how long a refusal that cannot be handed to the
// leader waits for this node to catch up before it becomes a 503.
var maxCatchUpWait = 2 * time.Second // a variable only so that tests can shorten it

// handOff takes over a refusal while this node's state is not known to be
// current (after a restart, a rejoin or a leadership change, until
// CaughtUp): hashicorp/raft applies the log after a restart only once it
// hears the leader's commit index, and official clients do not retry a
// 401, so answering from such state would fail valid callers. A follower
// that knows the leader's address forwards the request, and the leader
// decides from current state. Otherwise (the leader itself before its
// barrier, a request a peer already forwarded, a restarted node whose
// state does not yet name the leader's address) the request waits up to
// maxCatchUpWait for this node to catch up and is then served again from
// current state; failing that it gets 503 with Retry-After (official
// clients retry 5xx). It reports whether it answered; once caught up it
// costs one atomic load.
func (c *call) handOff() bool {
	s := c.s
	if c.handedOff || s.caughtUp() {
		return false
	}
	c.handedOff = true
	c.rewindBody()
	if !s.store.IsLeader() && !c.byPeer && s.store.LeaderAPIAddress() != "" {
		s.forward.serve(c)
		return true
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), maxCatchUpWait)
	defer cancel()
	if err := s.waitCaughtUp(ctx); err != nil {
		c.fail(errNotCurrent)
		return true
	}
	c.auth, c.input, c.query = nil, nil, nil
	c.serve()
	return true
}

// rewindBody makes the request's body the bytes already read (c.body), as
// sent: the leader, or a second pass, needs them (the Hawk payload hash
// covers them).
func (c *call) rewindBody() {
	c.r.Body = io.NopCloser(bytes.NewReader(c.body))
	c.r.ContentLength = int64(len(c.body))
	c.r.TransferEncoding = nil
}

// marshalPretty is JSON.stringify(v, null, 2): two-space indent and no
// HTML escaping (scopes often contain <..>).
func marshalPretty(v any) ([]byte, error) { return protocol.MarshalIndent(v) }
