package webui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// HandlerFunc is a page. It either writes the answer through q (Render,
// Redirect) and returns nil, or returns an error that the framework
// renders in Taskcluster's words with the right status (an API
// *tcclient.Error, a *Problem, or anything else as a 500).
type HandlerFunc func(q *Request) error

// Request is one page request.
type Request struct {
	W http.ResponseWriter
	R *http.Request
	// User is the signed-in user (zero on public pages such as sign-in).
	User login.SessionCredentials
	// API calls the auth API as User, in process (nil on public pages).
	API *tcclient.Client

	s           *Server
	params      map[string]string
	formActions []string
}

// Param is the decoded value of a {name} segment of the route pattern.
func (q *Request) Param(name string) string { return q.params[name] }

// SignedIn reports whether the request has a user.
func (q *Request) SignedIn() bool { return q.User.Identity != "" }

// route is one entry of the route table. Patterns are matched on the
// escaped path, one segment each: a {name} segment is one escaped segment
// decoded with url.PathUnescape, so a clientId "a/b" travels as "a%2Fb"
// (tcclient.PathSegment, i.e. encodeURIComponent, as Taskcluster's UI and
// clients encode it) and "..", "//" inside ids are never cleaned away as
// http.ServeMux would.
type route struct {
	method string
	segs   []string
	public bool
	h      HandlerFunc
}

// page registers a page that needs a signed-in user: a signed-out browser
// is sent to sign in and brought back; a POST must pass CSRF checks.
func (s *Server) page(method, pattern string, h HandlerFunc) {
	s.routes = append(s.routes, &route{method: method, segs: splitPattern(pattern), h: h})
}

// get registers a public GET page (no user needed).
func (s *Server) get(pattern string, h HandlerFunc) {
	s.routes = append(s.routes, &route{method: http.MethodGet, segs: splitPattern(pattern), public: true, h: h})
}

func splitPattern(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
}

// match finds the route of method and escaped path. Literal routes win
// over parameter routes (so /auth/clients/create is the create page).
// allowed reports that the path exists for another method.
func (s *Server) match(method, escaped string) (rt *route, params map[string]string, allowed bool) {
	var segs []string
	if escaped != "/" {
		segs = strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	}
	best := -1
	for _, cand := range s.routes {
		p, ok := cand.match(segs)
		if !ok {
			continue
		}
		if cand.method != method {
			allowed = true
			continue
		}
		if lit := cand.literals(); lit > best {
			rt, params, best = cand, p, lit
		}
	}
	return rt, params, allowed
}

func (r *route) literals() int {
	n := 0
	for _, s := range r.segs {
		if !isParam(s) {
			n++
		}
	}
	return n
}

func isParam(s string) bool { return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' }

func (r *route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(r.segs) {
		return nil, false
	}
	var params map[string]string
	for i, pat := range r.segs {
		if !isParam(pat) {
			if pat != segs[i] {
				return nil, false
			}
			continue
		}
		v, err := url.PathUnescape(segs[i])
		if err != nil || v == "" {
			return nil, false
		}
		if params == nil {
			params = map[string]string{}
		}
		params[pat[1:len(pat)-1]] = v
	}
	return params, true
}

// serve is the UI's handler: static files, then security headers, route,
// cross-origin check, session, CSRF token, the page, its error.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, staticPrefix) {
		s.static.ServeHTTP(w, r)
		return
	}
	setPageHeaders(w.Header(), nil)
	q := &Request{W: w, R: r, s: s}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	rt, params, allowed := s.match(method, r.URL.EscapedPath())
	if rt == nil {
		if allowed {
			q.renderError(&Problem{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "This page does not accept " + r.Method + " requests."})
			return
		}
		q.renderError(&Problem{Status: http.StatusNotFound, Code: "ResourceNotFound", Message: "No such page: " + r.URL.Path})
		return
	}
	q.params = params
	if method != http.MethodGet {
		if err := s.cross.Check(r); err != nil {
			s.serveCrossOrigin(w, r)
			return
		}
	}
	if !rt.public && !s.signIn(q) {
		return
	}
	if method != http.MethodGet && !rt.public && !s.checkForm(q) {
		return
	}
	if err := rt.h(q); err != nil {
		q.renderError(err)
	}
}

// signIn fills q.User and q.API, or answers (sign-in redirect, error page)
// and returns false.
func (s *Server) signIn(q *Request) bool {
	u, err := s.cfg.Login.SessionCredentials(q.R)
	switch {
	case err == nil:
	case errors.Is(err, login.ErrSignedOut):
		q.Redirect(s.signInURL(q.R))
		return false
	default:
		q.renderError(err)
		return false
	}
	q.User = u
	q.API = s.apiClient(u.Credentials)
	q.R = q.R.WithContext(withRemoteAddr(q.R.Context(), q.R.RemoteAddr))
	return true
}

// signInURL is the sign-in page that returns to the page r asked for. A
// form post is not replayed after a sign-in: it returns to the GET page of
// the same path (the query kept: the tools flow's parameters), or home
// when the path has none.
func (s *Server) signInURL(r *http.Request) string {
	back := r.URL.EscapedPath()
	rt, _, _ := s.match(http.MethodGet, back)
	switch {
	case rt == nil:
		back = "/"
	case r.URL.RawQuery != "":
		back += "?" + r.URL.RawQuery
	}
	return "/auth/sign-in?" + url.Values{"returnTo": {back}}.Encode()
}

// Redirect answers 303 See Other to a path of this origin.
func (q *Request) Redirect(path string) {
	http.Redirect(q.W, q.R, path, http.StatusSeeOther)
}
