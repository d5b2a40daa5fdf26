package controlplane

import (
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// routeKind says where a request may be served.
type routeKind uint8

const (
	// kindLocal is served by any node from its local state.
	kindLocal routeKind = iota
	// kindRead reads clients/roles/audit linearizably: on the leader after
	// a read-index check, on a follower by forwarding (unless StaleReads).
	kindRead
	// kindWrite changes state: leader only, forwarded from followers.
	kindWrite
)

type queryParam struct {
	name string
	re   *regexp.Regexp // nil = anything
	text string         // the expression as the error message shows it
}

type route struct {
	name   string
	method string
	path   []string // literal segments, ":param", or "*param" (rest of path, last)
	tmpl   *scopeengine.Template
	auto   bool // every template parameter is a path parameter
	query  []queryParam
	input  *schema
	kind   routeKind
	// rawBody: the body is not JSON and may be up to MaxSnapshotBytes.
	rawBody bool
	handler func(*call) error
}

// paramPatterns are the builder-level path-parameter patterns (docs/api.md §1).
var paramPatterns = map[string]string{
	"clientId":    protocol.ClientIDPattern, // shared with the sidecar, which refuses other ids locally
	"roleId":      `^[\x20-\x7e]+$`,
	"account":     `^[a-z0-9]{3,24}$`,
	"table":       `^[A-Za-z][A-Za-z0-9]{2,62}$`,
	"container":   `^(?!.*[-]{2})[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`,
	"level":       `^(read-write|read-only)$`,
	"bucket":      `^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$`,
	"project":     `^[a-zA-Z0-9_-]{1,64}$`,
	"wstAudience": `^[a-zA-Z0-9_-]{1,38}$`,
	"wstClient":   `^[a-zA-Z0-9_~.%-]+$`,
	"nodeId":      `^[A-Za-z0-9._-]{1,64}$`,
}

// compiledParam holds a Go matcher for a pattern; Go's RE2 has no
// lookahead, so the container rule "no two consecutive dashes" is checked
// separately.
type compiledParam struct {
	re        *regexp.Regexp
	noDDashes bool
}

var paramMatchers = func() map[string]compiledParam {
	m := map[string]compiledParam{}
	for name, p := range paramPatterns {
		cp := compiledParam{}
		if strings.HasPrefix(p, "^(?!.*[-]{2})") {
			cp.noDDashes = true
			p = "^" + strings.TrimPrefix(p, "^(?!.*[-]{2})")
		}
		cp.re = regexp.MustCompile(p)
		m[name] = cp
	}
	return m
}()

func paramValid(name, value string) bool {
	cp, ok := paramMatchers[name]
	if !ok {
		return true
	}
	if cp.noDDashes && strings.Contains(value, "--") {
		return false
	}
	return cp.re.MatchString(value)
}

var clientIDRe = paramMatchers["clientId"].re

var (
	qContinuation = queryParam{"continuationToken", regexp.MustCompile(`.`), "/./"}
	qLimit        = queryParam{"limit", regexp.MustCompile(`^[0-9]+$`), "/^[0-9]+$/"}
	qPrefix       = queryParam{"prefix", clientIDRe, "/" + paramPatterns["clientId"] + "/"}
)

// apiPrefix is where the API is mounted.
const apiPrefix = "/api/auth/v1"

// templateSources keeps each route template's JSON (for the cross-check
// against the official client's API reference).
var templateSources sync.Map // *scopeengine.Template → string

func tmpl(json string) *scopeengine.Template {
	t := scopeengine.MustParseTemplate(json)
	templateSources.Store(&t, json)
	return &t
}

// routes builds the route table; s's handlers are bound here.
func (s *Server) buildRoutes() []*route {
	rs := []*route{
		{name: "ping", method: "GET", path: p("ping"), handler: s.ping},
		{name: "lbheartbeat", method: "GET", path: p("__lbheartbeat__"), handler: s.lbheartbeat},
		{name: "version", method: "GET", path: p("__version__"), handler: s.version},
		// tcauth extension: readiness (not Dockerflow, which has none), named
		// like Kubernetes' own /readyz and the sidecar's.
		{name: "readiness", method: "GET", path: p("readyz"), handler: s.readiness},
		{name: "heartbeat", method: "GET", path: p("__heartbeat__"), query: []queryParam{{"standbyok", regexp.MustCompile(`^(true|false)$`), "/^(true|false)$/"}}, handler: s.heartbeat},

		{name: "listClients", method: "GET", path: p("clients"), tmpl: tmpl(`"auth:list-clients"`), query: []queryParam{qPrefix, qContinuation, qLimit}, kind: kindRead, handler: s.listClients},
		{name: "client", method: "GET", path: p("clients", ":clientId"), tmpl: tmpl(`"auth:get-client:<clientId>"`), kind: kindRead, handler: s.getClient},
		{name: "createClient", method: "PUT", path: p("clients", ":clientId"), tmpl: tmpl(`{"AllOf":["auth:create-client:<clientId>",{"for":"scope","in":"scopes","each":"<scope>"}]}`), input: createClientSchema, kind: kindWrite, handler: s.createClient},
		{name: "resetAccessToken", method: "POST", path: p("clients", ":clientId", "reset"), tmpl: tmpl(`"auth:reset-access-token:<clientId>"`), kind: kindWrite, handler: s.resetAccessToken},
		{name: "updateClient", method: "POST", path: p("clients", ":clientId"), tmpl: tmpl(`{"AllOf":["auth:update-client:<clientId>",{"for":"scope","in":"scopesAdded","each":"<scope>"}]}`), input: createClientSchema, kind: kindWrite, handler: s.updateClient},
		{name: "enableClient", method: "POST", path: p("clients", ":clientId", "enable"), tmpl: tmpl(`"auth:enable-client:<clientId>"`), kind: kindWrite, handler: s.setDisabled(false)},
		{name: "disableClient", method: "POST", path: p("clients", ":clientId", "disable"), tmpl: tmpl(`"auth:disable-client:<clientId>"`), kind: kindWrite, handler: s.setDisabled(true)},
		{name: "deleteClient", method: "DELETE", path: p("clients", ":clientId"), tmpl: tmpl(`"auth:delete-client:<clientId>"`), kind: kindWrite, handler: s.deleteClient},
		{name: "getEntityHistory", method: "GET", path: p("audit", ":entityType", ":entityId"), tmpl: tmpl(`"auth:audit-history:<entityType>"`), query: []queryParam{qContinuation, qLimit}, kind: kindRead, handler: s.getEntityHistory},
		{name: "listAuditHistory", method: "GET", path: p("clients", ":clientId", "audit"), tmpl: tmpl(`"auth:client-audit-history:<clientId>"`), query: []queryParam{qContinuation, qLimit}, kind: kindRead, handler: s.listAuditHistory},

		{name: "listRoles", method: "GET", path: p("roles"), tmpl: tmpl(`"auth:list-roles"`), kind: kindRead, handler: s.listRoles},
		{name: "listRoles2", method: "GET", path: p("roles2"), tmpl: tmpl(`"auth:list-roles"`), query: []queryParam{qContinuation, qLimit}, kind: kindRead, handler: s.listRoles2},
		{name: "listRoleIds", method: "GET", path: p("roleids"), tmpl: tmpl(`"auth:list-roles"`), query: []queryParam{qContinuation, qLimit}, kind: kindRead, handler: s.listRoleIds},
		{name: "role", method: "GET", path: p("roles", ":roleId"), tmpl: tmpl(`"auth:get-role:<roleId>"`), kind: kindRead, handler: s.getRole},
		{name: "createRole", method: "PUT", path: p("roles", ":roleId"), tmpl: tmpl(`{"AllOf":["auth:create-role:<roleId>",{"for":"scope","in":"scopes","each":"<scope>"}]}`), input: createRoleSchema, kind: kindWrite, handler: s.createRole},
		{name: "updateRole", method: "POST", path: p("roles", ":roleId"), tmpl: tmpl(`{"AllOf":["auth:update-role:<roleId>",{"for":"scope","in":"scopesAdded","each":"<scope>"}]}`), input: createRoleSchema, kind: kindWrite, handler: s.updateRole},
		{name: "deleteRole", method: "DELETE", path: p("roles", ":roleId"), tmpl: tmpl(`"auth:delete-role:<roleId>"`), kind: kindWrite, handler: s.deleteRole},
		{name: "expandScopes", method: "POST", path: p("scopes", "expand"), tmpl: tmpl(`"auth:expand-scopes"`), input: scopesetSchema, kind: kindRead, handler: s.expandScopes},
		{name: "currentScopes", method: "GET", path: p("scopes", "current"), tmpl: tmpl(`"auth:current-scopes"`), handler: s.currentScopes},

		{name: "awsS3Credentials", method: "GET", path: p("aws", "s3", ":level", ":bucket", "*prefix"),
			tmpl:  tmpl(`{"if":"levelIsReadOnly","then":{"AnyOf":["auth:aws-s3:read-only:<bucket>/<prefix>","auth:aws-s3:read-write:<bucket>/<prefix>"]},"else":"auth:aws-s3:read-write:<bucket>/<prefix>"}`),
			query: []queryParam{{"format", regexp.MustCompile(`iam-role-compat`), "/iam-role-compat/"}}, handler: s.awsS3Credentials},
		{name: "azureAccounts", method: "GET", path: p("azure", "accounts"), tmpl: tmpl(`"auth:azure-table:list-accounts"`), handler: s.azureAccounts},
		{name: "azureTables", method: "GET", path: p("azure", ":account", "tables"), tmpl: tmpl(`"auth:azure-table:list-tables:<account>"`), query: []queryParam{{"continuationToken", nil, ""}}, handler: s.azureTables},
		{name: "azureTableSAS", method: "GET", path: p("azure", ":account", "table", ":table", ":level"),
			tmpl: tmpl(`{"if":"levelIsReadOnly","then":{"AnyOf":["auth:azure-table:read-only:<account>/<table>","auth:azure-table:read-write:<account>/<table>"]},"else":"auth:azure-table:read-write:<account>/<table>"}`), handler: s.azureSAS},
		{name: "azureContainers", method: "GET", path: p("azure", ":account", "containers"), tmpl: tmpl(`"auth:azure-container:list-containers:<account>"`), query: []queryParam{{"continuationToken", nil, ""}}, handler: s.azureContainers},
		{name: "azureContainerSAS", method: "GET", path: p("azure", ":account", "containers", ":container", ":level"),
			tmpl: tmpl(`{"if":"levelIsReadOnly","then":{"AnyOf":["auth:azure-container:read-only:<account>/<container>","auth:azure-container:read-write:<account>/<container>"]},"else":"auth:azure-container:read-write:<account>/<container>"}`), handler: s.azureSAS},
		{name: "sentryDSN", method: "GET", path: p("sentry", ":project", "dsn"), tmpl: tmpl(`"auth:sentry:<project>"`), handler: s.sentryDSN},
		{name: "websocktunnelToken", method: "GET", path: p("websocktunnel", ":wstAudience", ":wstClient"), tmpl: tmpl(`"auth:websocktunnel-token:<wstAudience>/<wstClient>"`), handler: s.websocktunnelToken},
		{name: "gcpCredentials", method: "GET", path: p("gcp", "credentials", ":projectId", ":serviceAccount"), tmpl: tmpl(`"auth:gcp:access-token:<projectId>/<serviceAccount>"`), handler: s.gcpCredentials},
		{name: "githubRepoToken", method: "POST", path: p("github", ":appName", ":owner", "repo-token"),
			tmpl: tmpl(`{"AllOf":[{"for":"repoPerm","in":"repoPerms","each":"auth:github-repo-token:<appName>/<owner>/<repoPerm>"}]}`), input: githubRepoTokenSchema, handler: s.githubRepoToken},

		{name: "authenticateHawk", method: "POST", path: p("authenticate-hawk"), input: authenticateHawkSchema, handler: s.authenticateHawk},
		{name: "testAuthenticate", method: "POST", path: p("test-authenticate"), input: testAuthenticateSchema, handler: s.testAuthenticate},
		{name: "testAuthenticateGet", method: "GET", path: p("test-authenticate-get"), handler: s.testAuthenticateGet},

		// tcauth extensions for sidecars and peers (DESIGN.md).
		{name: "watchChanges", method: "GET", path: p("tcauth", "changes"), tmpl: tmpl(`"auth:tcauth:watch-changes"`),
			query: []queryParam{{"after", regexp.MustCompile(`^[0-9]+$`), "/^[0-9]+$/"}, {"wait", regexp.MustCompile(`^[0-9]+$`), "/^[0-9]+$/"}}, handler: s.watchChanges},
		{name: "clientCredentials", method: "GET", path: p("tcauth", "clients", ":clientId", "credentials"), tmpl: tmpl(`"auth:tcauth:verify-clients"`), handler: s.clientCredentials},
		// Which scopes a call needs (explain.go); checking a client needs
		// what reading it does.
		{name: "explainScopes", method: "POST", path: p("tcauth", "explain"), tmpl: tmpl(`{"if":"checkClient","then":"auth:get-client:<clientId>"}`), input: explainSchema, kind: kindRead, handler: s.explainScopes},
		// Peers only (peer.go); served where it arrives, never forwarded.
		{name: "reportLastUsed", method: "POST", path: p("tcauth", "internal", "last-used"), input: lastUsedSchema, handler: s.reportLastUsed},
		{name: "readIndex", method: "GET", path: p("tcauth", "internal", "read-index"), handler: s.readIndex},
	}
	rs = append(rs, s.clusterRoutes()...)
	rs = append(rs, s.keyringRoutes()...)
	for _, r := range rs {
		if r.tmpl == nil {
			continue
		}
		r.auto = true
		for _, name := range r.tmpl.Params() {
			if !r.hasPathParam(name) {
				r.auto = false
			}
		}
	}
	return rs
}

func p(segs ...string) []string { return segs }

func (r *route) hasPathParam(name string) bool {
	for _, seg := range r.path {
		if len(seg) > 1 && (seg[0] == ':' || seg[0] == '*') && seg[1:] == name {
			return true
		}
	}
	return false
}

// splitPath turns the escaped request path (below the API prefix) into
// decoded segments: routing on the escaped form keeps a %2F inside a
// clientId from splitting it. A trailing slash is ignored (Express's
// non-strict routing). ok=false for an undecodable segment.
func splitPath(escaped string) (segs []string, trailing, ok bool) {
	escaped = strings.TrimPrefix(escaped, "/")
	if escaped == "" {
		return nil, false, true
	}
	raw := strings.Split(escaped, "/")
	if len(raw) > 1 && raw[len(raw)-1] == "" {
		raw = raw[:len(raw)-1]
		trailing = true
	}
	segs = make([]string, len(raw))
	for i, r := range raw {
		d, err := url.PathUnescape(r)
		if err != nil {
			return nil, false, false
		}
		segs[i] = d
	}
	return segs, trailing, true
}

// match reports whether segs fit r's path and returns the parameters. A
// rest parameter keeps the trailing slash (an S3 prefix "a/b/").
func (r *route) match(segs []string, trailing bool) (map[string]string, bool) {
	var params map[string]string
	for i, pat := range r.path {
		if pat[0] == '*' {
			if params == nil {
				params = map[string]string{}
			}
			rest := strings.Join(segs[min(i, len(segs)):], "/")
			if trailing && len(segs) > i {
				rest += "/"
			}
			params[pat[1:]] = rest
			return params, len(segs) >= i
		}
		if i >= len(segs) {
			return nil, false
		}
		if pat[0] == ':' {
			if params == nil {
				params = map[string]string{}
			}
			params[pat[1:]] = segs[i]
			continue
		}
		if pat != segs[i] {
			return nil, false
		}
	}
	return params, len(segs) == len(r.path)
}
