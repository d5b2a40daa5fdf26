package webui

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/scopeengine"
)

// Client is a client as the auth API answers it.
type Client struct {
	ClientID           string   `json:"clientId"`
	Description        string   `json:"description"`
	Expires            string   `json:"expires"`
	Created            string   `json:"created"`
	LastModified       string   `json:"lastModified"`
	LastDateUsed       string   `json:"lastDateUsed"`
	LastRotated        string   `json:"lastRotated"`
	DeleteOnExpiration bool     `json:"deleteOnExpiration"`
	Scopes             []string `json:"scopes"`
	ExpandedScopes     []string `json:"expandedScopes"`
	Disabled           bool     `json:"disabled"`
	AccessToken        string   `json:"accessToken,omitempty"`
}

// clientPageSize is the page size of the clients list.
const clientPageSize = 100

func (s *Server) clientRoutes() {
	s.page("GET", "/auth/clients", s.serveClients)
	s.page("GET", "/auth/clients/create", s.serveCreateClient)
	s.page("POST", "/auth/clients/create", s.serveCreateClient)
	s.page("GET", "/auth/clients/{clientId}", s.serveClient)
	s.page("GET", "/auth/clients/{clientId}/edit", s.serveEditClient)
	s.page("POST", "/auth/clients/{clientId}/edit", s.serveEditClient)
	s.page("POST", "/auth/clients/{clientId}/reset", s.serveResetClient)
	s.page("POST", "/auth/clients/{clientId}/disable", s.serveSetDisabled(true))
	s.page("POST", "/auth/clients/{clientId}/enable", s.serveSetDisabled(false))
	s.page("GET", "/auth/clients/{clientId}/delete", s.serveDeleteClient)
	s.page("POST", "/auth/clients/{clientId}/delete", s.serveDeleteClient)
	s.page("GET", "/auth/clients/{clientId}/history", s.serveClientHistory)
}

func clientRoute(id string) string { return "/clients/" + tcclient.PathSegment(id) }

type clientsData struct {
	Search, Deleted string
	Mine            bool
	Clients         []Client
	Next            string // the next page's URL, "" on the last
}

// serveClients is /auth/clients?search=<prefix>&mine=1&continuationToken=…
// "mine" keeps the clients the user can manage: under the user's identity,
// or whose id the user's current scopes satisfy auth:update-client:<id>
// (filtered per page, so a page may show fewer than the page size).
func (s *Server) serveClients(q *Request) error {
	qs := q.R.URL.Query()
	d := clientsData{Search: qs.Get("search"), Mine: qs.Get("mine") == "1", Deleted: qs.Get("deleted")}
	query := url.Values{"limit": {itoa(clientPageSize)}}
	if d.Search != "" {
		query.Set("prefix", d.Search)
	}
	if t := qs.Get("continuationToken"); t != "" {
		query.Set("continuationToken", t)
	}
	var page struct {
		Clients           []Client `json:"clients"`
		ContinuationToken string   `json:"continuationToken"`
	}
	if err := q.API.Do(q.R.Context(), "GET", "/clients/", query, nil, &page); err != nil {
		return err
	}
	d.Clients = page.Clients
	if d.Mine {
		have, err := q.currentScopes()
		if err != nil {
			return err
		}
		d.Clients = manageable(page.Clients, q.User.Identity, have)
	}
	if page.ContinuationToken != "" {
		next := url.Values{"continuationToken": {page.ContinuationToken}}
		if d.Search != "" {
			next.Set("search", d.Search)
		}
		if d.Mine {
			next.Set("mine", "1")
		}
		d.Next = "/auth/clients?" + next.Encode()
	}
	return q.Render(http.StatusOK, "clients.html", "Clients", d)
}

// manageable keeps the clients under identity or updatable with have.
func manageable(cs []Client, identity string, have scopeengine.ScopeSet) []Client {
	var out []Client
	for _, c := range cs {
		if strings.HasPrefix(c.ClientID, identity+"/") || have.Satisfies("auth:update-client:"+c.ClientID) {
			out = append(out, c)
		}
	}
	return out
}

// currentScopes are the user's scopes as the API sees them.
func (q *Request) currentScopes() (scopeengine.ScopeSet, error) {
	var cur struct {
		Scopes []string `json:"scopes"`
	}
	if err := q.API.Do(q.R.Context(), "GET", "/scopes/current", nil, nil, &cur); err != nil {
		return nil, err
	}
	return scopeengine.NewScopeSet(cur.Scopes), nil
}

func (q *Request) getClient(ctx context.Context, id string) (Client, error) {
	var c Client
	err := q.API.Do(ctx, "GET", clientRoute(id), nil, nil, &c)
	return c, err
}

// serveClient is the view of one client.
func (s *Server) serveClient(q *Request) error {
	c, err := q.getClient(q.R.Context(), q.Param("clientId"))
	if err != nil {
		return err
	}
	return q.Render(http.StatusOK, "client.html", c.ClientID, c)
}

// clientForm is the create/edit form as entered.
type clientForm struct {
	Create             bool
	ClientID           string
	Description        string
	Scopes             string // one per line
	Expires            string // ISO date-time or a fromNow expression ("1 year")
	DeleteOnExpiration bool
	Error              *errorView
}

func (f clientForm) body(now time.Time) (map[string]any, error) {
	exp, err := parseExpires(f.Expires, now)
	if err != nil {
		return nil, err
	}
	return map[string]any{"description": f.Description, "scopes": splitLines(f.Scopes),
		"expires": protocol.FormatTime(exp), "deleteOnExpiration": f.DeleteOnExpiration}, nil
}

// parseExpires reads an ISO 8601 date-time or a fromNow expression.
func parseExpires(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if v == "" {
		return time.Time{}, &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: "expires is required (a date such as 2030-01-01T00:00:00Z, or a duration such as \"1 year\")."}
	}
	t, err := protocol.FromNow(v, now)
	if err != nil {
		return time.Time{}, &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: "expires must be a date such as 2030-01-01T00:00:00Z or a duration such as \"1 year\" or \"30 days\": " + err.Error()}
	}
	return t, nil
}

// splitLines is the scopes of a textarea: one per line, blanks dropped.
func splitLines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func formFrom(r *http.Request) clientForm {
	return clientForm{ClientID: strings.TrimSpace(r.PostForm.Get("clientId")), Description: r.PostForm.Get("description"),
		Scopes: r.PostForm.Get("scopes"), Expires: r.PostForm.Get("expires"), DeleteOnExpiration: r.PostForm.Get("deleteOnExpiration") == "on"}
}

// renderForm shows the form again with err (its status), keeping what
// was entered.
func (q *Request) renderForm(f clientForm, err error) error {
	title := "Edit " + f.ClientID
	if f.Create {
		title = "Create a client"
	}
	status := http.StatusOK
	if err != nil {
		if f.Error = ErrorView(err); f.Error == nil {
			return err
		}
		status = f.Error.Status
	}
	return q.Render(status, "client_form.html", title, f)
}

// serveCreateClient is /auth/clients/create: the plain form (clientId
// defaulting under the user's identity), or the tools flow when the query
// or the form names a callback_url.
func (s *Server) serveCreateClient(q *Request) error {
	if q.R.URL.Query().Has("callback_url") || (q.R.Method == http.MethodPost && q.R.PostForm.Has("callback_url")) {
		return s.serveToolsFlow(q) // toolsflow.go
	}
	if q.R.Method != http.MethodPost {
		return q.renderForm(clientForm{Create: true, ClientID: q.User.Identity + "/", Expires: "1 year", DeleteOnExpiration: true}, nil)
	}
	f := formFrom(q.R)
	f.Create = true
	body, err := f.body(s.cfg.Now())
	if err != nil {
		return q.renderForm(f, err)
	}
	if f.ClientID == "" || strings.HasSuffix(f.ClientID, "/") {
		return q.renderForm(f, &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: "Give the client a name after the last \"/\"."})
	}
	var c Client
	if err := q.API.Do(q.R.Context(), "PUT", clientRoute(f.ClientID), nil, body, &c); err != nil {
		return q.renderForm(f, err)
	}
	return q.renderToken(c, "Client created")
}

// serveEditClient is the edit form of a client and its post (updateClient).
func (s *Server) serveEditClient(q *Request) error {
	id := q.Param("clientId")
	if q.R.Method != http.MethodPost {
		c, err := q.getClient(q.R.Context(), id)
		if err != nil {
			return err
		}
		return q.renderForm(clientForm{ClientID: c.ClientID, Description: c.Description, Scopes: strings.Join(c.Scopes, "\n"),
			Expires: c.Expires, DeleteOnExpiration: c.DeleteOnExpiration}, nil)
	}
	f := formFrom(q.R)
	f.ClientID = id
	body, err := f.body(s.cfg.Now())
	if err != nil {
		return q.renderForm(f, err)
	}
	if err := q.API.Do(q.R.Context(), "POST", clientRoute(id), nil, body, nil); err != nil {
		return q.renderForm(f, err)
	}
	q.Redirect("/auth/clients/" + tcclient.PathSegment(id))
	return nil
}

// renderToken is the one page that shows a new access token: the answer
// to the create or reset post itself (no-store, never stored, never in a
// URL), so reloading or coming back shows it nowhere.
func (q *Request) renderToken(c Client, title string) error {
	return q.Render(http.StatusOK, "client_token.html", title, c)
}

// serveResetClient resets the access token (resetAccessToken).
func (s *Server) serveResetClient(q *Request) error {
	var c Client
	if err := q.API.Do(q.R.Context(), "POST", clientRoute(q.Param("clientId"))+"/reset", nil, nil, &c); err != nil {
		return err
	}
	return q.renderToken(c, "Access token reset")
}

// serveSetDisabled disables or enables a client.
func (s *Server) serveSetDisabled(disable bool) HandlerFunc {
	action := "/enable"
	if disable {
		action = "/disable"
	}
	return func(q *Request) error {
		id := q.Param("clientId")
		if err := q.API.Do(q.R.Context(), "POST", clientRoute(id)+action, nil, nil, nil); err != nil {
			return err
		}
		q.Redirect("/auth/clients/" + tcclient.PathSegment(id))
		return nil
	}
}

// serveDeleteClient is the confirmation step (GET) and the deletion (POST).
func (s *Server) serveDeleteClient(q *Request) error {
	id := q.Param("clientId")
	if q.R.Method != http.MethodPost {
		c, err := q.getClient(q.R.Context(), id)
		if err != nil {
			return err
		}
		return q.Render(http.StatusOK, "client_delete.html", "Delete "+c.ClientID, c)
	}
	if err := q.API.Do(q.R.Context(), "DELETE", clientRoute(id), nil, nil, nil); err != nil {
		return err
	}
	q.Redirect("/auth/clients?" + url.Values{"deleted": {id}}.Encode())
	return nil
}

// AuditEntry is one entry of an entity's audit history.
type AuditEntry struct {
	ClientID   string `json:"clientId"`
	ActionType string `json:"actionType"`
	Created    string `json:"created"`
	EntityID   string `json:"entityId"`
	EntityType string `json:"entityType"`
}

type historyData struct {
	ClientID string
	Entries  []AuditEntry
	Next     string
}

// serveClientHistory is the audit history of a client
// (auth.getEntityHistory, GET /audit/client/<clientId>), paged.
func (s *Server) serveClientHistory(q *Request) error {
	id := q.Param("clientId")
	query := url.Values{"limit": {itoa(clientPageSize)}}
	if t := q.R.URL.Query().Get("continuationToken"); t != "" {
		query.Set("continuationToken", t)
	}
	var page struct {
		AuditHistory      []AuditEntry `json:"auditHistory"`
		ContinuationToken string       `json:"continuationToken"`
	}
	if err := q.API.Do(q.R.Context(), "GET", "/audit/client/"+tcclient.PathSegment(id), query, nil, &page); err != nil {
		return err
	}
	d := historyData{ClientID: id, Entries: page.AuditHistory}
	if page.ContinuationToken != "" {
		d.Next = "/auth/clients/" + tcclient.PathSegment(id) + "/history?" + url.Values{"continuationToken": {page.ContinuationToken}}.Encode()
	}
	return q.Render(http.StatusOK, "client_history.html", "History of "+id, d)
}

func itoa(n int) string { return strconv.Itoa(n) }
