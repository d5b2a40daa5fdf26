package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tcauth/tcauth/scopeengine"
)

// ErrInvalidRoutes wraps every problem found in a route policy file, so
// callers can tell a bad file (fix it, keep the old policy) from an I/O
// failure with errors.Is.
var ErrInvalidRoutes = errors.New("invalid route policy")

// DefaultMaxParamBody is the default limit on a request body read for JSON
// body parameters (Policy.MaxBodyBytes).
const DefaultMaxParamBody = 64 << 10

// Policy is a parsed route policy file: an ordered list of routes, the
// first match wins, and what to do with requests no route matches.
//
// The file format (YAML) is:
//
//	default: deny              # deny (the default) | public | {scopes: <template>, query: [...]}
//	maxBodyBytes: 65536        # limit for routes that read JSON body fields
//	routes:
//	  - method: GET            # a method, a list of methods, or "*"; GET also matches HEAD
//	    path: /notes/<id>      # <name> captures one path segment, a final <name*> the rest
//	    scopes: notes:read:<id>   # a scope-expression template (docs/scopes.md §6)
//	  - method: PUT
//	    path: /notes/<id>
//	    scopes: {AllOf: ["notes:write:<id>"]}
//	  - method: POST
//	    path: /share/<id>
//	    query: [to]            # query parameters the template may use (first value, a string)
//	    body: [team, tags]     # top-level JSON body members the template may use
//	    scopes: {AllOf: ["notes:share:<id>:<to>", {for: t, in: tags, each: "notes:tag:<t>"}]}
//	  - method: GET
//	    path: /healthz
//	    public: true           # no verification at all; the upstream sees an anonymous caller
//	  - method: "*"
//	    path: /me
//	    authenticated: true    # any valid credentials (not anonymous)
//	  - method: GET
//	    path: /clients/<clientId>
//	    allowEncodedSlash: true  # %2F may appear inside a segment (default: 400)
//	    scopes: clients:get:<clientId>
//	  - method: GET
//	    path: /events
//	    upgrade: websocket     # the only upgrade passed on (default: none)
//	    authenticated: true
type Policy struct {
	Routes []*Route
	// Default applies when no route matches; nil denies (404).
	Default *Route
	// MaxBodyBytes bounds the body read for routes with body parameters.
	MaxBodyBytes int64
}

// Route is one entry of a Policy.
type Route struct {
	// Name labels the route in metrics and logs: "GET /notes/<id>" unless
	// the file gives one.
	Name    string
	Methods []string // upper case; nil = any method
	Pattern string
	// Public routes need no scopes.
	Public bool
	// Authenticated routes refuse anonymous callers even when the
	// template would be satisfied by the anonymous scopes.
	Authenticated bool
	Template      scopeengine.Template
	Query         []string // query parameters passed to the template
	Body          []string // JSON body members passed to the template
	// AllowEncodedSlash lets %2F inside a path segment through (for ids
	// that contain slashes, such as Taskcluster clientIds). Off by
	// default: an upstream that decodes %2F before routing or opening a
	// file would read more segments than the policy matched. Dot
	// segments inside such a capture are refused either way.
	AllowEncodedSlash bool
	// Upgrade is the one protocol upgrade the route accepts
	// ("websocket"), "" for none: Upgrade and HTTP2-Settings are then
	// removed, since after a 101 the sidecar only copies bytes.
	Upgrade string
	Line    int // position in the file, for messages

	segs []segment
	rest string // name of a trailing <name*> capture, "" if none
}

type segment struct {
	literal string
	param   string // non-empty: captures this segment
}

// LoadPolicy reads and validates a route policy file.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePolicy(path, data)
}

// RouteError is one problem in a route policy file, with its position.
type RouteError struct {
	File         string
	Line, Column int
	Route        string // "route 3 (GET /notes/<id>)" or "" for file-level problems
	Msg          string
}

func (e *RouteError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Route != "" {
		b.WriteString(e.Route + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *RouteError) Unwrap() error { return ErrInvalidRoutes }

var (
	paramNameRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
	methodRe    = regexp.MustCompile(`^[A-Z][A-Z-]*$`)
)

// policyParser collects every problem of a file instead of stopping at the
// first, so an operator fixes them all in one go.
type policyParser struct {
	file string
	errs []error
}

func (p *policyParser) errorf(n *yaml.Node, route, format string, args ...any) {
	e := &RouteError{File: p.file, Route: route, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// ParsePolicy parses a route policy; name is used in error messages. All
// problems are reported, each as a *RouteError joined with errors.Join.
func ParsePolicy(name string, data []byte) (*Policy, error) {
	p := &policyParser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 syntax errors already carry "line N:".
		return nil, &RouteError{File: name, Msg: err.Error()}
	}
	pol := &Policy{MaxBodyBytes: DefaultMaxParamBody}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &RouteError{File: name, Msg: "the file is empty; it needs at least a routes list or a default"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "the top level must be a mapping with routes, default and maxBodyBytes")
		return nil, errors.Join(p.errs...)
	}
	var routesNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "routes":
			routesNode = v
		case "default":
			pol.Default = p.parseDefault(v)
		case "maxBodyBytes":
			n, err := strconv.ParseInt(v.Value, 10, 64)
			if v.Kind != yaml.ScalarNode || err != nil || n <= 0 {
				p.errorf(v, "", "maxBodyBytes must be a positive integer, not %q", v.Value)
			} else {
				pol.MaxBodyBytes = n
			}
		default:
			p.errorf(k, "", "unknown key %q (expected routes, default, maxBodyBytes)", k.Value)
		}
	}
	if routesNode != nil {
		if routesNode.Kind != yaml.SequenceNode {
			p.errorf(routesNode, "", "routes must be a list")
		} else {
			for i, rn := range routesNode.Content {
				if r := p.parseRoute(rn, i+1); r != nil {
					pol.Routes = append(pol.Routes, r)
				}
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return pol, nil
}

func (p *policyParser) parseDefault(v *yaml.Node) *Route {
	if v.Kind == yaml.ScalarNode {
		switch v.Value {
		case "deny":
			return nil
		case "public":
			return &Route{Name: "default", Public: true, Line: v.Line}
		}
		p.errorf(v, "default", "must be deny, public or a mapping with scopes, not %q", v.Value)
		return nil
	}
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "default", "must be deny, public or a mapping with scopes")
		return nil
	}
	r := p.parseRouteBody(v, "default", false)
	if r != nil {
		r.Name = "default"
	}
	return r
}

func (p *policyParser) parseRoute(n *yaml.Node, index int) *Route {
	label := fmt.Sprintf("route %d", index)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, label, "each route must be a mapping with method, path and scopes or public")
		return nil
	}
	// Find method and path first so every later message names the route.
	var method, path string
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "method":
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode {
				method = v.Value
			} else {
				method = "[…]"
			}
		case "path":
			path = n.Content[i+1].Value
		}
	}
	if method != "" || path != "" {
		label = fmt.Sprintf("route %d (%s %s)", index, method, path)
	}
	return p.parseRouteBody(n, label, true)
}

// parseRouteBody reads the keys of a route mapping; withPath is false for
// the default route, which has neither method nor path.
func (p *policyParser) parseRouteBody(n *yaml.Node, label string, withPath bool) *Route {
	r := &Route{Line: n.Line}
	before := len(p.errs)
	var scopesNode, pathNode, methodNode *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(k, label, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.errorf(v, label, "name must be a non-empty string")
			}
			r.Name = v.Value
		case "method":
			if !withPath {
				p.errorf(k, label, "the default route has no method")
				continue
			}
			methodNode = v
		case "path":
			if !withPath {
				p.errorf(k, label, "the default route has no path")
				continue
			}
			pathNode = v
		case "scopes":
			scopesNode = v
		case "public":
			r.Public = p.boolValue(v, label, "public")
		case "authenticated":
			r.Authenticated = p.boolValue(v, label, "authenticated")
		case "query":
			r.Query = p.nameList(v, label, "query")
		case "body":
			r.Body = p.nameList(v, label, "body")
		case "allowEncodedSlash":
			r.AllowEncodedSlash = p.boolValue(v, label, "allowEncodedSlash")
		case "upgrade":
			// Only websocket: h2c and other upgrades would turn the
			// connection into a tunnel the sidecar cannot verify.
			if v.Kind != yaml.ScalarNode || !strings.EqualFold(v.Value, "websocket") {
				p.errorf(v, label, "upgrade must be websocket (the only protocol upgrade the sidecar passes on), not %q", v.Value)
			}
			r.Upgrade = "websocket"
		default:
			p.errorf(k, label, "unknown key %q (expected name, method, path, scopes, public, authenticated, query, body, allowEncodedSlash, upgrade)", k.Value)
		}
	}
	if withPath {
		if methodNode == nil {
			p.errorf(n, label, "method is missing (use \"*\" for any method)")
		} else {
			r.Methods = p.methods(methodNode, label)
		}
		if pathNode == nil {
			p.errorf(n, label, "path is missing")
		} else {
			p.compilePath(r, pathNode, label)
		}
	}
	switch {
	case r.Public && scopesNode != nil:
		p.errorf(scopesNode, label, "a public route cannot also require scopes")
	case r.Public && r.Authenticated:
		p.errorf(n, label, "a route cannot be both public and authenticated")
	case !r.Public && scopesNode == nil && !r.Authenticated:
		p.errorf(n, label, "scopes is missing (or mark the route public: true or authenticated: true)")
	case scopesNode != nil:
		r.Template = p.template(scopesNode, label)
	default:
		// authenticated without scopes: an empty AllOf, satisfied by any
		// verified caller.
		r.Template = scopeengine.MustParseTemplate(`{"AllOf": []}`)
	}
	if scopesNode != nil && len(p.errs) == before {
		p.checkParams(r, scopesNode, label)
	}
	if r.Name == "" && withPath && pathNode != nil {
		m := "*"
		if r.Methods != nil {
			m = strings.Join(r.Methods, ",")
		}
		r.Name = m + " " + r.Pattern
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

func (p *policyParser) boolValue(v *yaml.Node, label, key string) bool {
	var b bool
	if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
		p.errorf(v, label, "%s must be true or false, not %q", key, v.Value)
	}
	return b
}

func (p *policyParser) nameList(v *yaml.Node, label, key string) []string {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, label, "%s must be a list of parameter names", key)
		return nil
	}
	var out []string
	for _, item := range v.Content {
		if item.Kind != yaml.ScalarNode || !paramNameRe.MatchString(item.Value) {
			p.errorf(item, label, "%s: %q is not a parameter name (letters, digits and _, starting with a letter)", key, item.Value)
			continue
		}
		out = append(out, item.Value)
	}
	return out
}

func (p *policyParser) methods(v *yaml.Node, label string) []string {
	var items []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{v}
	case yaml.SequenceNode:
		items = v.Content
		if len(items) == 0 {
			p.errorf(v, label, "method list is empty")
		}
	default:
		p.errorf(v, label, "method must be a method name or a list of them")
		return nil
	}
	var out []string
	for _, it := range items {
		if it.Kind != yaml.ScalarNode {
			p.errorf(it, label, "method must be a string")
			continue
		}
		m := strings.ToUpper(strings.TrimSpace(it.Value))
		if m == "*" {
			if len(items) > 1 {
				p.errorf(it, label, "\"*\" cannot be combined with other methods")
			}
			return nil
		}
		if !methodRe.MatchString(m) {
			p.errorf(it, label, "%q is not an HTTP method", it.Value)
			continue
		}
		out = append(out, m)
	}
	return out
}

// compilePath parses a pattern such as /notes/<id> or /files/<path*>.
// Captures are whole segments: partial captures (/a/x<id>) would make the
// boundary between literal and parameter ambiguous in scopes.
func (p *policyParser) compilePath(r *Route, v *yaml.Node, label string) {
	if v.Kind != yaml.ScalarNode {
		p.errorf(v, label, "path must be a string")
		return
	}
	pat := v.Value
	r.Pattern = pat
	if !strings.HasPrefix(pat, "/") {
		p.errorf(v, label, "path must start with /")
		return
	}
	if strings.ContainsAny(pat, "?#") {
		p.errorf(v, label, "path must not contain a query or fragment; list query parameters under query:")
		return
	}
	names := map[string]bool{}
	parts := strings.Split(pat[1:], "/")
	for i, s := range parts {
		if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
			name := s[1 : len(s)-1]
			rest := strings.HasSuffix(name, "*")
			if rest {
				name = name[:len(name)-1]
				if i != len(parts)-1 {
					p.errorf(v, label, "<%s*> must be the last path segment", name)
					return
				}
			}
			if !paramNameRe.MatchString(name) {
				p.errorf(v, label, "%q is not a valid capture (use <name> with letters, digits and _)", s)
				return
			}
			if names[name] {
				p.errorf(v, label, "capture <%s> appears twice", name)
				return
			}
			names[name] = true
			if rest {
				r.rest = name
			} else {
				r.segs = append(r.segs, segment{param: name})
			}
			continue
		}
		if strings.ContainsAny(s, "<>") {
			p.errorf(v, label, "segment %q: a capture must be a whole segment like <name>", s)
			return
		}
		lit, err := url.PathUnescape(s)
		if err != nil {
			p.errorf(v, label, "segment %q: %v", s, err)
			return
		}
		if lit == "." || lit == ".." {
			p.errorf(v, label, "dot segments cannot be matched (requests containing them are refused)")
			return
		}
		r.segs = append(r.segs, segment{literal: lit})
	}
}

// template converts the YAML value to JSON and parses it as a
// scope-expression template.
func (p *policyParser) template(v *yaml.Node, label string) scopeengine.Template {
	var val any
	if err := v.Decode(&val); err != nil {
		p.errorf(v, label, "scopes: %v", err)
		return scopeengine.Template{}
	}
	val, err := jsonCompatible(val)
	if err != nil {
		p.errorf(v, label, "scopes: %v", err)
		return scopeengine.Template{}
	}
	data, err := json.Marshal(val)
	if err != nil {
		p.errorf(v, label, "scopes: %v", err)
		return scopeengine.Template{}
	}
	t, err := scopeengine.ParseTemplate(data)
	if err != nil {
		p.errorf(v, label, "scopes: %v", err)
	}
	return t
}

// jsonCompatible turns yaml.v3's decoded values into ones encoding/json
// can marshal (mapping keys must be strings).
func jsonCompatible(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping key %v is not a string", k)
			}
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		for i, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	}
	return v, nil
}

// checkParams makes sure every template parameter has a source and that
// no name has two.
func (p *policyParser) checkParams(r *Route, scopesNode *yaml.Node, label string) {
	source := map[string]string{}
	for _, s := range r.segs {
		if s.param != "" {
			source[s.param] = "path"
		}
	}
	if r.rest != "" {
		source[r.rest] = "path"
	}
	for _, group := range []struct {
		kind  string
		names []string
	}{{"query", r.Query}, {"body", r.Body}} {
		for _, n := range group.names {
			if prev, ok := source[n]; ok {
				p.errorf(scopesNode, label, "parameter %q is declared both as %s and %s", n, prev, group.kind)
				continue
			}
			source[n] = group.kind
		}
	}
	for _, n := range r.Template.Params() {
		if _, ok := source[n]; !ok {
			p.errorf(scopesNode, label, "scopes use <%s>, which is not a path capture nor listed under query or body", n)
		}
	}
}

// match reports whether the route matches method and the decoded path
// segments, and returns the captures.
func (r *Route) match(method string, segs []string) (map[string]string, bool) {
	if r.Methods != nil && !methodMatches(r.Methods, method) {
		return nil, false
	}
	if r.rest == "" && len(segs) != len(r.segs) || len(segs) < len(r.segs) {
		return nil, false
	}
	for i, s := range r.segs {
		if s.param == "" && s.literal != segs[i] {
			return nil, false
		}
		// A capture needs a non-empty segment: /notes/ is not /notes/<id>.
		if s.param != "" && segs[i] == "" {
			return nil, false
		}
	}
	if r.rest != "" && (len(segs) == len(r.segs) || len(segs) == len(r.segs)+1 && segs[len(r.segs)] == "") {
		return nil, false
	}
	var params map[string]string
	for i, s := range r.segs {
		if s.param != "" {
			if params == nil {
				params = make(map[string]string, 2)
			}
			params[s.param] = segs[i]
		}
	}
	if r.rest != "" {
		if params == nil {
			params = make(map[string]string, 1)
		}
		params[r.rest] = strings.Join(segs[len(r.segs):], "/")
	}
	return params, true
}

func methodMatches(methods []string, m string) bool {
	for _, x := range methods {
		// HEAD is GET without a body: a route for GET also covers it.
		if x == m || x == "GET" && m == "HEAD" {
			return true
		}
	}
	return false
}

// Match finds the route for a request; ok=false means no route and no
// default matched (deny).
func (p *Policy) Match(method string, segs []string) (*Route, map[string]string, bool) {
	for _, r := range p.Routes {
		if params, ok := r.match(method, segs); ok {
			return r, params, true
		}
	}
	if p.Default != nil {
		return p.Default, nil, true
	}
	return nil, nil, false
}

// Why a request path is refused (400 InputError). Each is a way for the
// upstream to read a different path than the one the policy matched.
var (
	errDotSegment = errors.New("the path contains a . or .. segment")
	// errEmptySegment: many routers and file servers merge "//" (nginx
	// merge_slashes, path.Clean), so /a//b may be served as /a/b.
	errEmptySegment = errors.New("the path contains an empty segment (//)")
	errBackslash    = errors.New(`the path contains a backslash (\ or %5C), which some servers treat as /`)
	errControlChar  = errors.New("the path contains a NUL or another control character")
	// errDoubleEncoded: an upstream (or a proxy before it) that decodes
	// twice turns %252F into /.
	errDoubleEncoded    = errors.New("the path contains a double-encoded separator or dot (%252F, %255C, %252E, %2500)")
	errEncodedSlash     = errors.New("the path contains an encoded / (%2F) inside a segment, which this route does not accept")
	errNonCanonicalPath = errors.New("the path has characters that must be percent-encoded (RFC 3986 section 3.3)")
)

// splitPath decodes an escaped request path into segments. Each segment is
// unescaped on its own, so %2F stays inside a segment instead of creating
// a new one; whether a route accepts that is checkPath's business. What no
// route may see is refused here: dot segments (also "..;", which Java
// servers read as ".."), empty segments other than a trailing slash,
// backslashes, control characters and double-encoded separators.
func splitPath(escaped string) ([]string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return nil, errors.New("the path must start with /")
	}
	parts := strings.Split(escaped[1:], "/")
	for i, s := range parts {
		if s == "" && i != len(parts)-1 {
			return nil, errEmptySegment
		}
		if strings.IndexByte(s, '%') >= 0 {
			u, err := url.PathUnescape(s)
			if err != nil {
				return nil, err
			}
			s = u
			parts[i] = u
		}
		if err := checkSegment(s); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// checkSegment applies the route-independent rules to one decoded segment
// (or one part of a capture).
func checkSegment(s string) error {
	if dot, _, _ := strings.Cut(s, ";"); dot == "." || dot == ".." {
		return errDotSegment
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			return errBackslash
		case c < 0x20 || c == 0x7f:
			return errControlChar
		case c == '%' && i+2 < len(s):
			switch strings.ToUpper(s[i+1 : i+3]) {
			case "2F", "5C", "2E", "00":
				return errDoubleEncoded
			}
		}
	}
	return nil
}

// checkPath applies the route's rules to a matched request: a segment with
// a decoded / is refused unless the route allows encoded slashes, and
// every capture is checked as a whole, split at its slashes, so that
// a%2F..%2Fb cannot smuggle a dot segment into a scope.
func (r *Route) checkPath(segs []string, params map[string]string) error {
	if !r.AllowEncodedSlash {
		for _, s := range segs {
			if strings.IndexByte(s, '/') >= 0 {
				return errEncodedSlash
			}
		}
	}
	for _, v := range params {
		parts := strings.Split(v, "/")
		for i, part := range parts {
			if part == "" && i != len(parts)-1 {
				return errEmptySegment
			}
			if err := checkSegment(part); err != nil {
				return err
			}
		}
	}
	return nil
}

// Why a body is refused for body parameters (400 InputError): each is a
// body that the sidecar and the upstream's JSON decoder could read
// differently.
var (
	errBodyNotObject = errors.New("the request body must be a JSON object")
	errBodyNotUTF8   = errors.New("the request body is not valid UTF-8 (RFC 8259 section 8.1); decoders replace bad bytes differently")
	errBodyDuplicate = errors.New("the request body has a member name twice")
	errBodyTooDeep   = errors.New("the request body nests too deeply")
	errBodyTrailing  = errors.New("the request body has data after the JSON object")
	errBodyNameCase  = errors.New("the request body spells a parameter's name differently")
)

// maxBodyDepth bounds nesting in checkJSONNames (encoding/json's own limit
// is 10 000; parameters are top-level members, so less is plenty).
const maxBodyDepth = 512

// bodyParams extracts the named top-level members of a JSON object body.
// The body must be one JSON object (I-JSON, RFC 7493): valid UTF-8 and no
// member name twice in any object, where names are compared the way Go's
// encoding/json matches them to struct fields (case-insensitively, with
// Unicode simple folding: "Team", "TEAM" and "team" are one name, and so are
// "K" and the Kelvin sign U+212A). Otherwise {"team":"red","Team":"blue"}
// is authorised as red and decoded by the upstream as blue.
func bodyParams(body []byte, names []string, into map[string]any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if !utf8.Valid(body) {
		return errBodyNotUTF8
	}
	if err := checkJSONNames(body); err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return errBodyNotObject
	}
	for k := range obj {
		for _, n := range names {
			// Go would decode "TEAM" into a field tagged "team", a
			// JavaScript service would not: only the exact name counts.
			if k != n && foldJSONName(k) == foldJSONName(n) {
				return fmt.Errorf("%w: the body has %q; this route reads %q and accepts only that spelling", errBodyNameCase, k, n)
			}
		}
	}
	for _, n := range names {
		raw, ok := obj[n]
		if !ok {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if v != nil {
			into[n] = v
		}
	}
	return nil
}

// checkJSONNames walks the body's tokens: one top-level object, nothing
// after it, no folded member name twice in any object.
func checkJSONNames(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", errBodyNotObject, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errBodyNotObject
	}
	if err := walkJSONObject(dec, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBodyTrailing
	}
	return nil
}

func walkJSONObject(dec *json.Decoder, depth int) error {
	seen := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", errBodyNotObject, err)
		}
		name, _ := tok.(string)
		f := foldJSONName(name)
		if prev, ok := seen[f]; ok {
			return fmt.Errorf("%w: %q and %q (names are compared ignoring case, as Go's encoding/json matches them)", errBodyDuplicate, prev, name)
		}
		seen[f] = name
		if err := walkJSONValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	if err != nil {
		return fmt.Errorf("%w: %v", errBodyNotObject, err)
	}
	return nil
}

func walkJSONValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", errBodyNotObject, err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxBodyDepth {
		return errBodyTooDeep
	}
	if d == '{' {
		return walkJSONObject(dec, depth+1)
	}
	for dec.More() { // '['
		if err := walkJSONValue(dec, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return fmt.Errorf("%w: %v", errBodyNotObject, err)
	}
	return nil
}

// foldJSONName folds a member name the way encoding/json (fold.go) does
// before matching it to a struct field: ASCII letters to upper case, any
// other rune to the smallest rune of its Unicode simple-fold orbit.
func foldJSONName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}

// errBodyContentType: a body-parameter route reads JSON; an upstream that
// parses the same bytes as a form would see other values.
var errBodyContentType = errors.New("this route reads its scopes from a JSON body: the Content-Type must be application/json (or absent)")

// checkJSONContentType accepts "", application/json and application/*+json.
func checkJSONContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return errBodyContentType
	}
	return nil
}
