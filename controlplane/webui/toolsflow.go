package webui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/scopeengine"
)

// The tools flow: `taskcluster signin` (and `tcauth signin`) opens
//
//	/auth/clients/create?scope=S1&scope=S2&name=N&expires=E&callback_url=U&description=D
//
// The page (after a sign-in if needed: the framework returns here with the
// whole query) shows the client it would create — clientId
// <identity>/<name> (a client_id parameter is ignored), scopes =
// scopeIntersection(requested, the user's current scopes) and the
// requested ones the user lacks, expires = fromNow(E) (absent: now + 1000
// years), the description, and the host the credentials go to. Only a
// POST of its form (cross-origin protection + CSRF token, checked by the
// framework) creates the client, with the user's own credentials
// (auth.createClient, deleteOnExpiration true), and answers 303 to
//
//	<callback_url>?clientId=<clientId>&accessToken=<accessToken>
//
// with the values not URL-encoded, byte for byte what Taskcluster's UI
// sends (ui/src/views/Clients/ViewClient in github.com/taskcluster/taskcluster),
// except that "&" is used when the callback URL already has a query
// (tcauth signin's state), where Taskcluster's UI would add a second "?".
//
// Same-named client (a tool that reuses its name; the official CLI never
// does, it adds a random suffix): createClient answers 409, so the client
// is updated to exactly what the page showed and its access token is
// reset — the old token stops working, and the page says so beforehand.
// A disabled one is left alone (an administrator or the client scanner
// disabled it) and the user is told to pick another name.

// ErrCallbackNotAllowed: the callback_url is not a loopback (or
// configured) http(s) URL.
var ErrCallbackNotAllowed = errors.New("webui: callback URL not allowed")

// thousandYears is the expiry when the query has none (the reference's
// addYears(new Date(), 1000)).
const thousandYears = 1000

// toolsRequest is what the tool asked for, read from the query (GET) or
// the confirmation form (POST).
type toolsRequest struct {
	Name, Description, Expires, CallbackURL string
	Scopes                                  []string
}

// toolsPage is the confirmation page's data.
type toolsPage struct {
	toolsRequest
	ClientID       string
	ExpiresAt      time.Time
	Granted        []string // scopeIntersection(requested, current)
	Lacking        []string // requested scopes the user does not hold in full
	CallbackOrigin string
	Existing       *Client // a client of that name exists: it will be updated and reset
	Error          *errorView
}

func readToolsRequest(v url.Values) toolsRequest {
	return toolsRequest{Name: v.Get("name"), Description: v.Get("description"), Expires: v.Get("expires"),
		CallbackURL: v.Get("callback_url"), Scopes: v["scope"]}
}

// serveToolsFlow is /auth/clients/create with a callback_url (clients.go
// routes here): GET shows the confirmation, POST creates and redirects.
func (s *Server) serveToolsFlow(q *Request) error {
	src := q.R.URL.Query()
	if q.R.Method == http.MethodPost {
		src = q.R.PostForm
	}
	tr := readToolsRequest(src)
	origin, err := s.callbackOrigin(tr.CallbackURL)
	if err != nil {
		return &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: "Callback URL " + tr.CallbackURL + " is not allowed."}
	}
	p, err := s.toolsPlan(q, tr, origin)
	if err != nil {
		return err
	}
	if q.R.Method != http.MethodPost {
		return s.renderToolsPage(q, p)
	}
	c, err := s.createForTool(q, p)
	if err != nil {
		return err
	}
	// The token goes once, in the redirect (the protocol); it is neither
	// logged nor kept. Location is written as is: http.Redirect would
	// leave it alone too, but this keeps the bytes obvious.
	q.W.Header().Set("Location", callbackRedirect(tr.CallbackURL, c.ClientID, c.AccessToken))
	q.W.WriteHeader(http.StatusSeeOther)
	s.log.Info("tools flow: client issued", "identity", q.User.Identity, "clientId", c.ClientID, "callbackOrigin", origin)
	return nil
}

// toolsPlan works out the client from the request and the user's current
// scopes (auth.currentScopes, as the reference page fetches them).
func (s *Server) toolsPlan(q *Request, tr toolsRequest, origin string) (toolsPage, error) {
	var cur struct {
		Scopes []string `json:"scopes"`
	}
	if err := q.API.Do(q.R.Context(), http.MethodGet, "/scopes/current", nil, nil, &cur); err != nil {
		return toolsPage{}, err
	}
	p, err := planClient(q.User.Identity, tr, s.cfg.Now(), cur.Scopes)
	p.CallbackOrigin = origin
	return p, err
}

// planClient is the page's content: clientId <identity>/<name>, expiry
// fromNow(expires) (absent: now + 1000 years), granted =
// scopeIntersection(requested, current), the requested scopes current
// does not satisfy, and an InsufficientScopes error (shown, nothing
// offered) when current does not satisfy auth:create-client:<clientId>.
func planClient(identity string, tr toolsRequest, now time.Time, current []string) (toolsPage, error) {
	p := toolsPage{toolsRequest: tr, ClientID: identity + "/" + tr.Name}
	if tr.Name == "" || !protocol.ValidClientID(p.ClientID) {
		return p, &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError,
			Message: "The tool asked for a client named \"" + tr.Name + "\", which does not make a valid clientId (A-Z a-z 0-9 and !@/:.+|_- only)."}
	}
	for _, sc := range tr.Scopes {
		if !scopeengine.ValidScope(sc) {
			return p, &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: "The tool asked for an invalid scope (printable ASCII only)."}
		}
	}
	p.ExpiresAt = now.AddDate(thousandYears, 0, 0)
	if tr.Expires != "" {
		t, err := protocol.FromNow(tr.Expires, now)
		if err != nil {
			return p, &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: err.Error()}
		}
		p.ExpiresAt = t
	}
	p.Granted = scopeengine.Intersection(tr.Scopes, current)
	have := scopeengine.NewScopeSet(current)
	for _, sc := range tr.Scopes {
		if !have.Satisfies(sc) {
			p.Lacking = append(p.Lacking, sc)
		}
	}
	if need := "auth:create-client:" + p.ClientID; !have.Satisfies(need) {
		p.Error = &errorView{Status: http.StatusForbidden, Code: protocol.CodeInsufficientScopes,
			Message: "You cannot create this client: your scopes do not satisfy " + need + ".", Missing: need}
	}
	return p, nil
}

func (s *Server) renderToolsPage(q *Request, p toolsPage) error {
	status := http.StatusOK
	if p.Error != nil {
		status = p.Error.Status
	} else {
		// The form's answer redirects there; browsers apply form-action
		// to that redirect.
		q.AllowFormAction(p.CallbackOrigin)
		if c, err := q.getClient(q.R.Context(), p.ClientID); err == nil {
			p.Existing = &c
		}
	}
	return q.Render(status, "toolsflow.html", "Sign in a command-line tool", p)
}

// createForTool creates the client, or updates and resets a same-named
// enabled one (see the package comment of this file).
//
// The page's own InsufficientScopes check (p.Error) is not repeated: the
// API decides, and its refusal is what the user sees.
func (s *Server) createForTool(q *Request, p toolsPage) (Client, error) {
	ctx, route := q.R.Context(), clientRoute(p.ClientID)
	body := map[string]any{"description": p.Description, "expires": apiTime(p.ExpiresAt),
		"scopes": nonNilScopes(p.Granted), "deleteOnExpiration": true}
	var c Client
	err := q.API.Do(ctx, http.MethodPut, route, nil, body, &c)
	var te *tcclient.Error
	if err == nil || !errors.As(err, &te) || te.StatusCode != http.StatusConflict {
		return c, err
	}
	old, err := q.getClient(ctx, p.ClientID)
	if err != nil {
		return Client{}, err
	}
	if old.Disabled {
		return Client{}, &Problem{Status: http.StatusConflict, Code: "RequestConflict",
			Message: "A client " + p.ClientID + " exists and is disabled (by an administrator, or because your rights changed). Run the tool again with another name."}
	}
	if err := q.API.Do(ctx, http.MethodPost, route, nil, body, nil); err != nil {
		return Client{}, err
	}
	err = q.API.Do(ctx, http.MethodPost, route+"/reset", nil, nil, &c)
	return c, err
}

func nonNilScopes(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// callbackOrigin checks a callback URL and returns its origin for the
// CSP. Allowed: http or https to localhost or 127.0.0.1 with any port,
// and https to a host of Config.AllowedCallbackHosts; no user info, no
// fragment (the credentials are appended to the query), printable ASCII
// only (it becomes a Location header). Hosts compare exactly (case aside):
// localhost.evil.com, 127.1 or 0x7f000001 are not loopback here. [::1] is
// not offered: a CSP source cannot name an IPv6 literal, so the browser
// would block the redirect anyway. 127.0.0.1 is a tcauth choice (the
// reference accepts only localhost); tcauth signin uses localhost.
func (s *Server) callbackOrigin(raw string) (string, error) {
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return "", ErrCallbackNotAllowed
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") || u.Opaque != "" {
		return "", ErrCallbackNotAllowed
	}
	if u.Scheme != "http" && u.Scheme != "https" || !strings.HasPrefix(raw[len(u.Scheme):], "://") {
		return "", ErrCallbackNotAllowed
	}
	if port := u.Port(); port != "" && !validPort(port) || strings.HasSuffix(u.Host, ":") {
		return "", ErrCallbackNotAllowed
	}
	host := strings.ToLower(u.Hostname())
	ok := host == "localhost" || host == "127.0.0.1"
	for _, h := range s.cfg.AllowedCallbackHosts {
		ok = ok || (u.Scheme == "https" && strings.EqualFold(h, host))
	}
	if !ok {
		return "", ErrCallbackNotAllowed
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

func validPort(p string) bool {
	if len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// callbackRedirect is <callback>?clientId=…&accessToken=… with the values
// as they are (the reference does not encode them: a clientId's "|" and
// "/" travel raw, a "+" would reach a form decoder as a space), joined
// with "&" when the callback already has a query.
func callbackRedirect(callback, clientID, accessToken string) string {
	sep := "?"
	if strings.Contains(callback, "?") {
		sep = "&"
	}
	return callback + sep + "clientId=" + clientID + "&accessToken=" + accessToken
}
