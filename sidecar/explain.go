package sidecar

import (
	"errors"
	"fmt"
	"net/url"
)

// Explaining a route of a policy (`tcauth scopes explain --routes FILE`):
// the same matching and parameter extraction as a request gets, without
// credentials, so the answer is what the sidecar would demand.

// Sentinel errors of Policy.Explain.
var (
	// ErrNoRoute: no route matches and the policy has no default (the
	// sidecar answers 404).
	ErrNoRoute = errors.New("no route of the policy matches")
	// ErrRefusedRequest: the sidecar refuses the request before any scope
	// check (400), for its path, query or body.
	ErrRefusedRequest = errors.New("the sidecar refuses this request")
)

// RouteExplanation is what a policy asks of one request.
type RouteExplanation struct {
	Route *Route
	// Default: no route matched and the policy's default applies.
	Default bool
	// Params are the template's inputs found in the request, and Sources
	// where each parameter of the route comes from ("path", "query",
	// "body"), whether or not the request supplied it.
	Params  map[string]any
	Sources map[string]string
}

// Explain matches method and target (a path with an optional query, or an
// absolute URL) and collects the template parameters from the path, the
// query and body (JSON; nil when not known, and then body parameters are
// simply absent).
func (p *Policy) Explain(method, target string, body []byte) (*RouteExplanation, error) {
	path, rawQuery, err := splitURI(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefusedRequest, err)
	}
	segs, err := splitPath(path)
	if err != nil {
		return nil, fmt.Errorf("%w: bad request path: %v", ErrRefusedRequest, err)
	}
	route, captures, ok := p.Match(method, segs)
	if !ok {
		return nil, fmt.Errorf("%w: %s %s", ErrNoRoute, method, path)
	}
	if err := route.checkPath(segs, captures); err != nil {
		return nil, fmt.Errorf("%w: bad request path: %v", ErrRefusedRequest, err)
	}
	ex := &RouteExplanation{Route: route, Default: route == p.Default, Params: map[string]any{}, Sources: map[string]string{}}
	for k, v := range captures {
		ex.Params[k], ex.Sources[k] = v, "path"
	}
	if len(route.Query) > 0 {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, fmt.Errorf("%w: bad query string: %v", ErrRefusedRequest, err)
		}
		for _, n := range route.Query {
			ex.Sources[n] = "query"
			switch vs := q[n]; {
			case len(vs) > 1:
				return nil, fmt.Errorf("%w: the query parameter %q is given %d times; this route's scopes depend on it", ErrRefusedRequest, n, len(vs))
			case len(vs) == 1:
				ex.Params[n] = vs[0]
			}
		}
	}
	for _, n := range route.Body {
		ex.Sources[n] = "body"
	}
	if len(route.Body) > 0 && body != nil {
		if int64(len(body)) > p.MaxBodyBytes {
			return nil, fmt.Errorf("%w: this route reads its scopes from the JSON body, which may be at most %d bytes", ErrRefusedRequest, p.MaxBodyBytes)
		}
		if err := bodyParams(body, route.Body, ex.Params); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRefusedRequest, err)
		}
	}
	return ex, nil
}
