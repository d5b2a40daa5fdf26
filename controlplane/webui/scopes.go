package webui

import (
	"net/http"
	"net/url"

	"github.com/tcauth/tcauth/scopeengine"
)

// The scope inspector. Every tool is a GET form (read-only, so a result
// can be linked and works without JavaScript); expansions and the
// role/client lists come from the API with the user's credentials, and
// the algebra (satisfaction, comparison) runs locally in scopeengine.

// Bounds of the holders search: API page sizes and how many roles and
// clients one request reads at most (the page says when it stopped and
// links the continuation).
const (
	holdersAPIPage = 100
	holdersMaxScan = 1000
)

func (s *Server) scopeRoutes() {
	s.page("GET", "/auth/scopes", s.serveInspector(""))
	for _, section := range []string{"expand", "check", "compare", "holders", "explain"} {
		s.page("GET", "/auth/scopes/"+section, s.serveInspector(section))
	}
}

// inspectorData is the inspector page: the forms as entered, the result
// of the section asked for, or its error.
type inspectorData struct {
	Section string // "" = the index with every form
	// expand
	Scopes string
	// check
	CheckScopes, Expr string
	CheckExpand, Mine bool
	// compare
	A, B          string
	CompareExpand bool
	// holders
	Scope, Mode, Kind string
	// explain (explain.go)
	ExplainMethod, ExplainURL, ExplainBody, ExplainClient string
	ExplainMethods                                        []string

	Expanded *expandResult
	Check    *checkResult
	Compare  *compareResult
	Holders  *holdersResult
	Explain  *explainResult
	Error    *errorView
}

type expandResult struct {
	Input, Expanded []string
	// FromRoles: expanded scopes that the input did not already satisfy.
	FromRoles []string
}

type checkResult struct {
	exprCheck
	Expr string   // the expression as parsed (indented JSON or a scope)
	Have []string // the set it was checked against
}

type compareResult struct {
	setComparison
	ExpandedA, ExpandedB []string // nil unless expanded first
}

var sectionTitles = map[string]string{
	"": "Scope inspector", "expand": "Expand scopes", "check": "Check a scope expression",
	"compare": "Compare scope sets", "holders": "Who has a scope",
	"explain": "Which scopes would a call need?",
}

func (s *Server) serveInspector(section string) HandlerFunc {
	return func(q *Request) error {
		qs := q.R.URL.Query()
		d := &inspectorData{Section: section,
			Scopes: qs.Get("scopes"), CheckScopes: qs.Get("have"), Expr: qs.Get("expr"),
			CheckExpand: qs.Get("expand") == "1", Mine: qs.Get("mine") == "1",
			A: qs.Get("a"), B: qs.Get("b"), CompareExpand: qs.Get("expand") == "1",
			Scope: qs.Get("scope"), Mode: qs.Get("mode"), Kind: qs.Get("kind"),
			ExplainMethod: qs.Get("method"), ExplainURL: qs.Get("url"), ExplainBody: qs.Get("body"), ExplainClient: qs.Get("client")}
		d.ExplainMethods = explainMethods
		if d.ExplainMethod == "" {
			d.ExplainMethod = "GET"
		}
		if d.Mode != modeHolds {
			d.Mode = modeSatisfies
		}
		if d.Kind != "roles" && d.Kind != "clients" {
			d.Kind = "all"
		}
		// A section opened without input shows its empty form.
		var err error
		switch {
		case section == "expand" && qs.Has("scopes"):
			d.Expanded, err = q.inspectExpand(d.Scopes)
		case section == "check" && qs.Has("expr"):
			d.Check, err = q.inspectCheck(d)
		case section == "compare" && (qs.Has("a") || qs.Has("b")):
			d.Compare, err = q.inspectCompare(d)
		case section == "holders" && qs.Has("scope"):
			d.Holders, err = q.inspectHolders(d, qs.Get("rolesFrom"), qs.Get("clientsFrom"))
		case section == "explain" && qs.Has("url"):
			d.Explain, err = q.inspectExplain(d)
		}
		status := http.StatusOK
		if err != nil {
			if d.Error = ErrorView(err); d.Error == nil {
				return err
			}
			status = d.Error.Status
		}
		return q.Render(status, "scopes.html", sectionTitles[section], d)
	}
}

// inspectorScopes parses one scope textarea of the inspector; label names
// the field in the error.
func inspectorScopes(label, text string) ([]string, error) {
	scopes, err := parseScopeLines(text, inspectorLimits)
	if err != nil {
		return nil, inputProblem(label + ": " + err.Error())
	}
	return scopes, nil
}

func (q *Request) inspectExpand(text string) (*expandResult, error) {
	in, err := inspectorScopes("Scopes", text)
	if err != nil {
		return nil, err
	}
	ex, err := q.expandScopes(in)
	if err != nil {
		return nil, err
	}
	return &expandResult{Input: in, Expanded: ex, FromRoles: notSatisfiedBy(ex, scopeengine.NewScopeSet(in))}, nil
}

// maybeExpand is the set of scopes as given, or as the API expands it.
func (q *Request) maybeExpand(scopes []string, expand bool) (scopeengine.ScopeSet, error) {
	if !expand {
		return scopeengine.NewScopeSet(scopes), nil
	}
	return q.expandScopes(scopes)
}

func (q *Request) inspectCheck(d *inspectorData) (*checkResult, error) {
	e, err := parseExprInput(d.Expr)
	if err != nil {
		return nil, inputProblem("Expression: " + err.Error())
	}
	var have scopeengine.ScopeSet
	if d.Mine {
		// The user's own scopes, as the API sees them (already expanded).
		have, err = q.currentScopes()
	} else {
		var in []string
		if in, err = inspectorScopes("Scopes", d.CheckScopes); err == nil {
			have, err = q.maybeExpand(in, d.CheckExpand)
		}
	}
	if err != nil {
		return nil, err
	}
	return &checkResult{exprCheck: checkExpr(e, have), Expr: e.String(), Have: have}, nil
}

func (q *Request) inspectCompare(d *inspectorData) (*compareResult, error) {
	a, err := inspectorScopes("Set A", d.A)
	if err != nil {
		return nil, err
	}
	b, err := inspectorScopes("Set B", d.B)
	if err != nil {
		return nil, err
	}
	sa, err := q.maybeExpand(a, d.CompareExpand)
	if err != nil {
		return nil, err
	}
	sb, err := q.maybeExpand(b, d.CompareExpand)
	if err != nil {
		return nil, err
	}
	r := &compareResult{setComparison: compareSets(sa, sb)}
	if d.CompareExpand {
		r.ExpandedA, r.ExpandedB = sa, sb
	}
	return r, nil
}

// holder is one role or client that matched.
type holder struct {
	ID, URL string
	Client  bool
	// Direct: its own (unexpanded) scopes match; else only through roles.
	Direct bool
	Via    []string
}

type holdersResult struct {
	Roles, Clients                 []holder
	ScannedRoles, ScannedClients   int
	SearchedRoles, SearchedClients bool
	// Next continues the scan where this request stopped ("" = done).
	Next string
}

// inspectHolders lists the roles and clients (listRoles2, listClients,
// paged, as the user) whose expanded scopes match the scope, reading at
// most holdersMaxScan of each per request.
func (q *Request) inspectHolders(d *inspectorData, rolesFrom, clientsFrom string) (*holdersResult, error) {
	if d.Scope == "" {
		return nil, inputProblem("Enter a scope.")
	}
	if len(d.Scope) > MaxScopeLength || !scopeengine.ValidScope(d.Scope) {
		return nil, inputProblem("A scope is printable ASCII of at most " + itoa(MaxScopeLength) + " characters.")
	}
	res := &holdersResult{}
	next := url.Values{}
	if d.Kind != "clients" && rolesFrom != "-" {
		res.SearchedRoles = true
		tok, err := q.scanHolders("/roles2/", rolesFrom, d, res)
		if err != nil {
			return nil, err
		}
		next.Set("rolesFrom", tok)
	}
	if d.Kind != "roles" && clientsFrom != "-" {
		res.SearchedClients = true
		tok, err := q.scanHolders("/clients/", clientsFrom, d, res)
		if err != nil {
			return nil, err
		}
		next.Set("clientsFrom", tok)
	}
	if next.Get("rolesFrom") != "" || next.Get("clientsFrom") != "" {
		// "-" marks a kind already finished, so the continuation reads
		// only what is left.
		for _, k := range []string{"rolesFrom", "clientsFrom"} {
			if next.Get(k) == "" {
				next.Set(k, "-")
			}
		}
		next.Set("scope", d.Scope)
		next.Set("mode", d.Mode)
		next.Set("kind", d.Kind)
		res.Next = "/auth/scopes/holders?" + next.Encode()
	}
	return res, nil
}

// scanHolders reads pages of route from token until the end or the scan
// bound, adding the matches to res; it returns the token to continue from.
func (q *Request) scanHolders(route, token string, d *inspectorData, res *holdersResult) (string, error) {
	scanned := 0
	for {
		query := url.Values{"limit": {itoa(holdersAPIPage)}}
		if token != "" {
			query.Set("continuationToken", token)
		}
		var page struct {
			Roles             []Role   `json:"roles"`
			Clients           []Client `json:"clients"`
			ContinuationToken string   `json:"continuationToken"`
		}
		if err := q.API.Do(q.R.Context(), "GET", route, query, nil, &page); err != nil {
			return "", err
		}
		for _, r := range page.Roles {
			if h, ok := matchHolder(d, r.Scopes, r.ExpandedScopes); ok {
				h.ID, h.URL = r.RoleID, roleURL(r.RoleID, "")
				res.Roles = append(res.Roles, h)
			}
		}
		for _, c := range page.Clients {
			if h, ok := matchHolder(d, c.Scopes, c.ExpandedScopes); ok {
				h.ID, h.Client = c.ClientID, true
				res.Clients = append(res.Clients, h)
			}
		}
		n := len(page.Roles) + len(page.Clients)
		scanned += n
		if route == "/roles2/" {
			res.ScannedRoles += n
		} else {
			res.ScannedClients += n
		}
		token = page.ContinuationToken
		if token == "" || scanned >= holdersMaxScan {
			return token, nil
		}
	}
}

func matchHolder(d *inspectorData, own, expanded []string) (holder, bool) {
	ok, via := holderMatch(d.Scope, d.Mode, scopeengine.NewScopeSet(expanded))
	if !ok {
		return holder{}, false
	}
	direct, _ := holderMatch(d.Scope, d.Mode, scopeengine.NewScopeSet(own))
	return holder{Direct: direct, Via: via}, true
}
