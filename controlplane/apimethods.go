package controlplane

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// APIMethod describes one endpoint of the auth API as a client calls it:
// `tcauth api auth <Name> <Args...>` is built from these. The list is the
// server's own route table, so the CLI cannot offer an endpoint the server
// lacks or miss one it has; the route table itself is checked against the
// official client's API reference (TestRoutesMatchOfficialReference).
type APIMethod struct {
	// Name is the method name of the official clients ("listClients").
	Name string
	// Method is the HTTP method.
	Method string
	// Route is the path below /api/auth/v1 with <param> placeholders, as
	// the API reference writes it ("/clients/<clientId>").
	Route string
	// Args are the route's parameters in path order.
	Args []string
	// Query names the query-string parameters the endpoint accepts.
	Query []string
	// Input says the endpoint takes a JSON body.
	Input bool
	// RawBody says the body is opaque bytes (a snapshot), not JSON.
	RawBody bool
	// Internal marks endpoints only peers call (never forwarded, refused
	// from clients); CLIs should not offer them.
	Internal bool
}

// APIMethods lists every endpoint of the auth API this server routes, in
// route-table order: the reference's methods, then tcauth's extensions.
func APIMethods() []APIMethod {
	var out []APIMethod
	for _, r := range (&Server{}).buildRoutes() {
		m := APIMethod{Name: r.name, Method: r.method, Input: r.input != nil, RawBody: r.rawBody,
			Internal: len(r.path) > 1 && r.path[0] == "tcauth" && r.path[1] == "internal"}
		segs := make([]string, len(r.path))
		for i, seg := range r.path {
			if seg[0] == ':' || seg[0] == '*' {
				m.Args = append(m.Args, seg[1:])
				seg = "<" + seg[1:] + ">"
			}
			segs[i] = seg
		}
		m.Route = "/" + strings.Join(segs, "/")
		for _, q := range r.query {
			m.Query = append(m.Query, q.name)
		}
		out = append(out, m)
	}
	return out
}

// routeTable is a handler-less Server holding the route table, for
// matching requests outside a running server.
var routeTable = sync.OnceValue(func() *Server {
	s := &Server{}
	s.routes = s.buildRoutes()
	return s
})

// EndpointOf names the API method that would serve a request to u (a full
// URL or a path such as /api/auth/v1/clients/a%2Fb) and returns its path
// parameters decoded, exactly as the server routes it. ok is false when
// no endpoint has that path and method.
func EndpointOf(method string, u *url.URL) (name string, params map[string]string, ok bool) {
	rt, params, ok := routeTable().matchRoute(&http.Request{Method: method, URL: u})
	if !ok || rt == nil {
		return "", nil, false
	}
	return rt.name, params, true
}
