package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// "Which scopes would this call need?" (Taskcluster #5300): the route
// table already holds every endpoint's scope template, and the handlers
// know where each parameter comes from; the explainer fills the template
// the way the server would and says which parts it could not fill.
// `tcauth scopes explain`, POST /api/auth/v1/tcauth/explain and the web
// UI's scope inspector all use Explain.

// Sentinel errors of Explain.
var (
	// ErrNoEndpoint: no endpoint serves that method and URL.
	ErrNoEndpoint = errors.New("no such API endpoint")
	// ErrBadExplainInput: the method, URL or body cannot be read.
	ErrBadExplainInput = errors.New("bad explain input")
)

// What an explanation says the call needs (Explanation.Needs).
const (
	NeedsScopes = "scopes" // Expression must be satisfied
	NeedsNone   = "none"   // no scopes at all (no template, or an if without else that is false)
	NeedsBody   = "body"   // the template needs request parts not given: see Unknown
)

// MaxMissingAlternatives bounds Explanation.MissingAlternatives: past it
// only the Missing expression is given.
const MaxMissingAlternatives = 64

// Explanation answers which scopes a call needs.
type Explanation struct {
	// Endpoint is the API method name ("createClient") or, for a sidecar
	// route, the route's name.
	Endpoint string `json:"endpoint"`
	Method   string `json:"method"`
	// Route is the path pattern ("/clients/<clientId>").
	Route string `json:"route"`
	// Template is the scope expression template; null when the endpoint
	// has none.
	Template *scopeengine.Template `json:"template"`
	// Parameters says where each template parameter comes from and its
	// value in this call (null when the call does not supply it).
	Parameters []ExplainParam `json:"parameters"`
	Needs      string         `json:"needs"`
	// Expression is the template filled in (with Needs "scopes"). With
	// Partial non-empty it holds only what does not depend on those
	// parameters: the call needs at least this.
	Expression *scopeengine.Expr `json:"expression"`
	// Partial lists array parameters taken as empty because the call did
	// not supply them (typically the body's); Unknown the parameters
	// without which nothing can be rendered.
	Partial []string `json:"partial,omitempty"`
	Unknown []string `json:"unknown,omitempty"`
	// Notes are what else the server would do with the call (a 400 for a
	// bad parameter, peers only, ...).
	Notes []string `json:"notes,omitempty"`

	// With a client or scope set to check against (Check):
	ClientID string `json:"clientId,omitempty"`
	// Satisfied is null when it cannot be told (Needs "body", or a
	// partial expression that is satisfied so far).
	Satisfied *bool `json:"satisfied,omitempty"`
	// Missing is the unsatisfied part of Expression (scopeengine's
	// Unsatisfied, as in a 403); MissingAlternatives the minimal scope
	// sets any one of which would satisfy it.
	Missing             *scopeengine.Expr `json:"missing,omitempty"`
	MissingAlternatives [][]string        `json:"missingAlternatives,omitempty"`
}

// ExplainParam is one template parameter of an explanation.
type ExplainParam struct {
	Name string `json:"name"`
	// From is "path", "query" or "body".
	From string `json:"from"`
	// How says how the value is derived when it is not the part as is.
	How   string `json:"how,omitempty"`
	Value any    `json:"value"`
}

// ExplainOptions are the optional inputs of Explain.
type ExplainOptions struct {
	// Body is the request body (JSON), nil when not known.
	Body json.RawMessage
	// Stored, when set, returns the stored (unexpanded) scopes of a client
	// ("client") or the expanded scopes of a role ("role"), so that
	// updateClient's and updateRole's scopesAdded are exact; without it,
	// or when it fails, they are the body's scopes (an upper bound).
	// found=false: no such client or role.
	Stored func(kind, id string) (scopes []string, found bool, err error)
}

// Explain names the auth API endpoint that would serve method and rawURL
// (absolute, a path from the root URL such as /api/auth/v1/clients/x, or
// a path below the API such as /clients/x) and fills its scope template.
func Explain(method, rawURL string, opts ExplainOptions) (*Explanation, error) {
	return routeTable().explain(method, rawURL, opts)
}

// explain is Explain on s's route table (the server's handler uses its
// own, which also keeps routeTable's initialisation free of a cycle).
func (s *Server) explain(method, rawURL string, opts ExplainOptions) (*Explanation, error) {
	method = strings.ToUpper(strings.TrimSpace(method))
	if !httpMethodRe.MatchString(method) {
		return nil, fmt.Errorf("%w: %q is not an HTTP method", ErrBadExplainInput, method)
	}
	u, err := apiURL(rawURL)
	if err != nil {
		return nil, err
	}
	rt, path, found := s.matchRoute(&http.Request{Method: method, URL: u})
	if rt == nil {
		return nil, noEndpoint(s, method, u, found)
	}
	var body map[string]any
	if opts.Body != nil {
		if err := json.Unmarshal(opts.Body, &body); err != nil || body == nil {
			return nil, fmt.Errorf("%w: the body must be a JSON object", ErrBadExplainInput)
		}
	}
	e := &Explanation{Endpoint: rt.name, Method: rt.method, Route: routePattern(rt), Template: rt.tmpl, Parameters: []ExplainParam{}}
	e.Notes = routeNotes(rt, path, body)
	if rt.tmpl == nil {
		e.Needs = NeedsNone
		return e, nil
	}
	params := map[string]any{}
	for _, name := range rt.tmpl.Params() {
		p := explainParam(rt, name, path, body, opts.Stored)
		if p.Value != nil {
			params[name] = p.Value
		}
		e.Parameters = append(e.Parameters, p)
	}
	if err := e.Fill(*rt.tmpl, params); err != nil {
		return nil, err
	}
	return e, nil
}

var httpMethodRe = regexp.MustCompile(`^[A-Z]{1,16}$`)

// apiURL turns the accepted URL forms into a path below the root URL.
func apiURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return nil, fmt.Errorf("%w: cannot read the URL %q", ErrBadExplainInput, raw)
	}
	escaped := u.EscapedPath()
	if !strings.HasPrefix(escaped, "/") {
		escaped = "/" + escaped
	}
	if !strings.HasPrefix(escaped, "/api/") && !strings.HasPrefix(escaped, "/__") && escaped != "/readyz" {
		escaped = apiPrefix + escaped
	}
	if !strings.HasPrefix(escaped, apiPrefix+"/") && strings.HasPrefix(escaped, "/api/") {
		return nil, fmt.Errorf("%w: %s is not an auth API URL (those start with %s/); for a service behind a sidecar, explain a route of its routes file", ErrNoEndpoint, escaped, apiPrefix)
	}
	out, err := url.Parse(escaped)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the URL %q", ErrBadExplainInput, raw)
	}
	return out, nil
}

func noEndpoint(s *Server, method string, u *url.URL, found bool) error {
	if !found {
		return fmt.Errorf("%w: %s %s", ErrNoEndpoint, method, u.EscapedPath())
	}
	// The path exists: name the methods it has.
	segs, trailing, _ := splitPath(strings.TrimPrefix(u.EscapedPath(), apiPrefix))
	var methods []string
	for _, rt := range s.routes {
		if _, ok := rt.match(segs, trailing); ok && !slices.Contains(methods, rt.method) {
			methods = append(methods, rt.method)
		}
	}
	return fmt.Errorf("%w: %s %s (that path takes %s)", ErrNoEndpoint, method, u.EscapedPath(), strings.Join(methods, ", "))
}

func routePattern(rt *route) string {
	segs := make([]string, len(rt.path))
	for i, seg := range rt.path {
		if seg[0] == ':' || seg[0] == '*' {
			seg = "<" + seg[1:] + ">"
		}
		segs[i] = seg
	}
	return "/" + strings.Join(segs, "/")
}

// Fill renders t with params into e: Needs, Expression, Partial, Unknown.
// Sidecar explanations use it too.
func (e *Explanation) Fill(t scopeengine.Template, params map[string]any) error {
	expr, public, emptied, unknown, err := t.RenderPartial(params)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadExplainInput, err)
	}
	e.Partial, e.Unknown = emptied, unknown
	switch {
	case len(unknown) > 0:
		e.Needs = NeedsBody
	case public:
		e.Needs = NeedsNone
	default:
		e.Needs, e.Expression = NeedsScopes, &expr
	}
	return nil
}

// Check records whether have (expanded scopes, of clientID if named)
// satisfies the explanation, and what is missing.
func (e *Explanation) Check(clientID string, have scopeengine.ScopeSet) {
	e.ClientID = clientID
	yes, no := true, false
	switch e.Needs {
	case NeedsNone:
		e.Satisfied = &yes
		return
	case NeedsBody:
		return // cannot tell
	}
	missing, unsatisfied := e.Expression.Unsatisfied(have)
	if !unsatisfied {
		if len(e.Partial) == 0 {
			e.Satisfied = &yes
		}
		return
	}
	e.Satisfied, e.Missing = &no, &missing
	if alts, ok := missing.Alternatives(MaxMissingAlternatives); ok {
		e.MissingAlternatives = alts
	}
}

type storedFunc = func(kind, id string) ([]string, bool, error)

// explainParam finds where a template parameter of an auth API route comes
// from, as its handler fills it (handlers_*.go; TestExplainMatchesServer
// compares the two).
func explainParam(rt *route, name string, path map[string]string, body map[string]any, stored storedFunc) ExplainParam {
	p := ExplainParam{Name: name, From: "body"}
	bodyList := func(member string) any {
		if l, ok := body[member].([]any); ok {
			return l
		}
		if _, has := body[member]; body != nil && !has {
			return []any{} // the handlers read a missing list as empty
		}
		return nil
	}
	switch {
	case name == "levelIsReadOnly":
		p.From, p.How, p.Value = "path", `<level> is "read-only"`, path["level"] == "read-only"
	case rt.name == "githubRepoToken" && name == "owner":
		p.From, p.How, p.Value = "path", "lower-cased", strings.ToLower(path["owner"])
	case rt.name == "githubRepoToken" && name == "repoPerms":
		p.How = "<repository>:<permission>:<level> for each of the body's permissions (by name) and repositories (lower-cased)"
		if perms, repos, ok := githubBody(body); ok {
			p.Value = githubRepoPerms(perms, repos)
		}
	case rt.hasPathParam(name):
		p.From, p.Value = "path", path[name]
	case name == "scopes":
		p.How, p.Value = "the body's scopes", bodyList("scopes")
	case name == "scopesAdded":
		p.How, p.Value = scopesAdded(rt, path, bodyList("scopes"), stored)
	case rt.name == "explainScopes" && name == "checkClient":
		if body != nil {
			_, has := body["clientId"]
			p.How, p.Value = "the body has a clientId", has
		}
	case rt.name == "explainScopes" && name == "clientId":
		p.How = "the body's clientId"
		if id, ok := body["clientId"].(string); ok {
			p.Value = id
		}
	}
	return p
}

// scopesAdded is updateClient's and updateRole's parameter: the body's
// scopes the stored entity does not already have.
func scopesAdded(rt *route, path map[string]string, scopes any, stored storedFunc) (string, any) {
	kind, id, how := "client", path["clientId"], "the body's scopes that are not among the client's stored scopes (string comparison)"
	if rt.name == "updateRole" {
		kind, id, how = "role", path["roleId"], "the body's scopes that the role's current expanded scopes do not satisfy"
	}
	list, _ := scopes.([]any)
	if scopes == nil {
		return how, nil
	}
	if stored == nil {
		return how + "; the stored " + kind + " was not read, so all of the body's scopes are counted", list
	}
	have, ok, err := stored(kind, id)
	if err != nil {
		return how + "; the stored " + kind + " was not read (" + err.Error() + "), so all of the body's scopes are counted", list
	}
	if !ok {
		return how + "; the " + kind + " does not exist (the server answers 404)", list
	}
	set := scopeengine.NewScopeSet(have)
	added := []any{}
	for _, s := range list {
		sc, _ := s.(string)
		if kind == "client" && !slices.Contains(have, sc) || kind == "role" && !set.Satisfies(sc) {
			added = append(added, s)
		}
	}
	return how, added
}

// githubBody reads githubRepoToken's body as the handler does.
func githubBody(body map[string]any) (map[string]string, []string, bool) {
	pm, ok1 := body["permissions"].(map[string]any)
	rl, ok2 := body["repositories"].([]any)
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	perms := map[string]string{}
	for k, v := range pm {
		if s, ok := v.(string); ok {
			perms[k] = s
		}
	}
	var repos []string
	for _, r := range rl {
		if s, ok := r.(string); ok {
			repos = append(repos, strings.ToLower(s))
		}
	}
	return perms, repos, true
}

// routeNotes says what else the server would answer: bad path parameters
// (400 after the scope check for auto routes), a body its schema refuses,
// peer-only endpoints.
func routeNotes(rt *route, path map[string]string, body map[string]any) []string {
	var notes []string
	for _, name := range slices.Sorted(maps.Keys(path)) {
		if v := path[name]; !paramValid(name, v) {
			notes = append(notes, fmt.Sprintf("URL parameter '%s' given as '%s' must match /%s/: the server answers 400 InvalidRequestArguments", name, v, paramPatterns[name]))
		}
	}
	if rt.input != nil && body != nil {
		var errs []string
		var v any
		raw, _ := json.Marshal(body)
		_ = json.Unmarshal(raw, &v) // a copy: validate fills in defaults
		rt.input.validate(v, "", &errs)
		for _, e := range errs {
			notes = append(notes, "the body fails the endpoint's schema ("+e+"): the server answers 400 InputValidationError")
		}
	}
	if rt.input != nil && body == nil && rt.tmpl != nil && !rt.auto {
		notes = append(notes, "this endpoint's scopes depend on its JSON body: give it to fill them in")
	}
	if len(rt.path) > 1 && rt.path[0] == "tcauth" && rt.path[1] == "internal" {
		notes = append(notes, "between control-plane nodes only: refused from clients")
	}
	return notes
}

// explainErr maps Explain's errors to API errors.
func explainErr(err error) error {
	switch {
	case errors.Is(err, ErrNoEndpoint):
		return apiErr(protocol.CodeResourceNotFound, "%s", err.Error())
	case errors.Is(err, ErrBadExplainInput):
		return apiErr(protocol.CodeInputError, "%s", err.Error())
	}
	return err
}

// Bounds of POST /tcauth/explain beyond the server's body limit: a URL
// longer than any real request line, the body to explain, and the scope
// list to check against.
const (
	maxExplainURL    = 8 << 10
	maxExplainBody   = 64 << 10
	maxExplainScopes = 10000
)

// explainSchema is the request of POST /tcauth/explain: {method, url,
// body?, clientId? | scopes?}.
var explainSchema = func() *schema {
	s := object([]string{"method", "url"},
		"method", &schema{typ: "string", pattern: regexp.MustCompile(`^[A-Za-z]{1,16}$`)},
		"url", &schema{typ: "string", maxLength: maxExplainURL},
		"body", &schema{typ: "object", addl: &schema{}},
		"clientId", &schema{typ: "string", pattern: clientIDRe},
		"scopes", &schema{typ: "array", maxItems: maxExplainScopes, items: &schema{typ: "string", pattern: scopePattern}},
	)
	schemaIDs[s] = "tcauth-explain-request"
	return s
}()

// explainScopes serves POST /tcauth/explain. Explaining needs no scope
// (the route table is public: it is the API reference); checking a
// client needs auth:get-client:<clientId> (the template's if), as reading
// its expanded scopes does; scopes given directly are checked as given.
// updateClient's and updateRole's scopesAdded are read against the
// stored entity only when the caller may read it.
func (s *Server) explainScopes(c *call) error {
	m := c.input.(map[string]any)
	id, checkClient := m["clientId"].(string)
	if err := c.authorize(map[string]any{"checkClient": checkClient, "clientId": id}); err != nil {
		return err
	}
	if _, hasScopes := m["scopes"]; hasScopes && checkClient {
		return apiErr(protocol.CodeInputError, "Give clientId or scopes, not both.")
	}
	opts := ExplainOptions{Stored: s.explainStored(c)}
	if b, ok := m["body"]; ok {
		raw, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if len(raw) > maxExplainBody {
			return apiErr(protocol.CodeInputTooLarge, "The body to explain exceeds %d bytes.", maxExplainBody)
		}
		opts.Body = raw
	}
	e, err := s.explain(m["method"].(string), m["url"].(string), opts)
	if err != nil {
		return explainErr(err)
	}
	switch {
	case checkClient:
		rec, ok := s.store.Client(id)
		if !ok {
			return errClientNotFound()
		}
		e.Check(id, scopeengine.NewScopeSet(s.clients.expand(rec)))
	case m["scopes"] != nil:
		e.Check("", scopeengine.NewScopeSet(stringList(m["scopes"])))
	}
	return c.reply(e)
}

// explainStored reads a client's or role's scopes for scopesAdded when
// the caller holds auth:get-client:<id> or auth:get-role:<id>: the
// answer shows which of the body's scopes the entity already has.
func (s *Server) explainStored(c *call) storedFunc {
	return func(kind, id string) ([]string, bool, error) {
		res, err := c.authenticate()
		if err != nil {
			return nil, false, err
		}
		need := "auth:get-" + kind + ":" + id
		if !scopeengine.NewScopeSet(res.Scopes).Satisfies(need) {
			return nil, false, fmt.Errorf("that needs %s", need)
		}
		if kind == "client" {
			rec, ok := s.store.Client(id)
			return rec.Scopes, ok, nil
		}
		r, ok := s.store.Role(id)
		if !ok {
			return nil, false, nil
		}
		return s.store.Resolver().Expand(r.Scopes), true, nil
	}
}
