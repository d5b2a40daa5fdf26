package protocol

import (
	"encoding/json"
	"time"
)

// The auth v1 API's JSON objects (docs/api.md §2–§3). Members are declared in
// the order the reference emits them; times are time.Time in Go and are
// rendered like JavaScript's Date.toJSON (FormatTime) by the MarshalJSON
// methods; nil scope lists render as [].

// ClientJSON is a client as the API returns it. AccessToken is only set by
// createClient and resetAccessToken.
type ClientJSON struct {
	ClientID           string    `json:"clientId"`
	Description        string    `json:"description"`
	Expires            time.Time `json:"expires"`
	Created            time.Time `json:"created"`
	LastModified       time.Time `json:"lastModified"`
	LastDateUsed       time.Time `json:"lastDateUsed"`
	LastRotated        time.Time `json:"lastRotated"`
	DeleteOnExpiration bool      `json:"deleteOnExpiration"`
	Scopes             []string  `json:"scopes"`
	ExpandedScopes     []string  `json:"expandedScopes"`
	Disabled           bool      `json:"disabled"`
	AccessToken        string    `json:"accessToken,omitempty"`
}

func (c ClientJSON) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
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
	}{
		c.ClientID, c.Description, FormatTime(c.Expires), FormatTime(c.Created), FormatTime(c.LastModified),
		FormatTime(c.LastDateUsed), FormatTime(c.LastRotated), c.DeleteOnExpiration,
		nonNil(c.Scopes), nonNil(c.ExpandedScopes), c.Disabled, c.AccessToken,
	})
}

// RoleJSON is a role as the API returns it.
type RoleJSON struct {
	RoleID         string    `json:"roleId"`
	Scopes         []string  `json:"scopes"`
	ExpandedScopes []string  `json:"expandedScopes"`
	Description    string    `json:"description"`
	LastModified   time.Time `json:"lastModified"`
	Created        time.Time `json:"created"`
}

func (r RoleJSON) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		RoleID         string   `json:"roleId"`
		Scopes         []string `json:"scopes"`
		ExpandedScopes []string `json:"expandedScopes"`
		Description    string   `json:"description"`
		LastModified   string   `json:"lastModified"`
		Created        string   `json:"created"`
	}{r.RoleID, nonNil(r.Scopes), nonNil(r.ExpandedScopes), r.Description, FormatTime(r.LastModified), FormatTime(r.Created)})
}

// CreateClientRequest is the body of createClient and updateClient.
// Scopes nil means the member was absent (createClient: [], updateClient:
// unchanged).
type CreateClientRequest struct {
	Expires            time.Time `json:"expires"`
	Description        string    `json:"description"`
	Scopes             []string  `json:"scopes,omitempty"`
	DeleteOnExpiration bool      `json:"deleteOnExpiration,omitempty"`
}

func (c CreateClientRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Expires            string   `json:"expires"`
		Description        string   `json:"description"`
		Scopes             []string `json:"scopes,omitempty"`
		DeleteOnExpiration bool     `json:"deleteOnExpiration,omitempty"`
	}{FormatTime(c.Expires), c.Description, c.Scopes, c.DeleteOnExpiration})
}

// CreateRoleRequest is the body of createRole and updateRole.
type CreateRoleRequest struct {
	Scopes      []string `json:"scopes"`
	Description string   `json:"description"`
}

func (c CreateRoleRequest) MarshalJSON() ([]byte, error) {
	type plain CreateRoleRequest
	c.Scopes = nonNil(c.Scopes)
	return json.Marshal(plain(c))
}

// ScopesetJSON is {"scopes": [...]} (expandScopes in and out, currentScopes).
type ScopesetJSON struct {
	Scopes []string `json:"scopes"`
}

func (s ScopesetJSON) MarshalJSON() ([]byte, error) {
	type plain ScopesetJSON
	s.Scopes = nonNil(s.Scopes)
	return json.Marshal(plain(s))
}

// AuthenticateHawkRequest is the body of authenticateHawk (docs/protocol.md
// §11). Authorization "" means absent (the reference treats an empty
// header as absent too).
type AuthenticateHawkRequest struct {
	Method        string `json:"method"`
	Resource      string `json:"resource"`
	Host          string `json:"host"`
	Port          int    `json:"port"`
	Authorization string `json:"authorization,omitempty"`
	SourceIP      string `json:"sourceIp,omitempty"`
}

// Request converts the body to the verifier's input.
func (r AuthenticateHawkRequest) Request() Request {
	return Request{Method: r.Method, Resource: r.Resource, Host: r.Host, Port: r.Port, Authorization: r.Authorization, SourceIP: r.SourceIP}
}

// AuthenticateHawkResponse is Result (its MarshalJSON/UnmarshalJSON give
// the three response shapes).
type AuthenticateHawkResponse = Result

// TestAuthenticateRequest is the body of testAuthenticate.
type TestAuthenticateRequest struct {
	ClientScopes   []string `json:"clientScopes"`
	RequiredScopes []string `json:"requiredScopes"`
}

// TestAuthenticateResponse is the reply of testAuthenticate(Get).
type TestAuthenticateResponse struct {
	ClientID string   `json:"clientId"`
	Scopes   []string `json:"scopes"`
}

func (t TestAuthenticateResponse) MarshalJSON() ([]byte, error) {
	type plain TestAuthenticateResponse
	t.Scopes = nonNil(t.Scopes)
	return json.Marshal(plain(t))
}

// AuditEntryJSON is one audit-history row.
type AuditEntryJSON struct {
	ClientID   string    `json:"clientId"`
	ActionType string    `json:"actionType"`
	Created    time.Time `json:"created"`
	EntityID   string    `json:"entityId"`
	EntityType string    `json:"entityType"`
}

func (a AuditEntryJSON) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ClientID   string `json:"clientId"`
		ActionType string `json:"actionType"`
		Created    string `json:"created"`
		EntityID   string `json:"entityId"`
		EntityType string `json:"entityType"`
	}{a.ClientID, a.ActionType, FormatTime(a.Created), a.EntityID, a.EntityType})
}

// AuditHistoryResponse is the reply of getEntityHistory and
// listAuditHistory.
type AuditHistoryResponse struct {
	AuditHistory      []AuditEntryJSON `json:"auditHistory"`
	ContinuationToken string           `json:"continuationToken,omitempty"`
}

func (r AuditHistoryResponse) MarshalJSON() ([]byte, error) {
	return listJSON("auditHistory", r.AuditHistory, r.ContinuationToken)
}

// ListClientsResponse is the reply of listClients.
type ListClientsResponse struct {
	Clients           []ClientJSON `json:"clients"`
	ContinuationToken string       `json:"continuationToken,omitempty"`
}

func (r ListClientsResponse) MarshalJSON() ([]byte, error) {
	return listJSON("clients", r.Clients, r.ContinuationToken)
}

// ListRoles2Response is the reply of listRoles2 (listRoles answers a bare
// []RoleJSON).
type ListRoles2Response struct {
	Roles             []RoleJSON `json:"roles"`
	ContinuationToken string     `json:"continuationToken,omitempty"`
}

func (r ListRoles2Response) MarshalJSON() ([]byte, error) {
	return listJSON("roles", r.Roles, r.ContinuationToken)
}

// ListRoleIdsResponse is the reply of listRoleIds.
type ListRoleIdsResponse struct {
	RoleIDs           []string `json:"roleIds"`
	ContinuationToken string   `json:"continuationToken,omitempty"`
}

func (r ListRoleIdsResponse) MarshalJSON() ([]byte, error) {
	return listJSON("roleIds", r.RoleIDs, r.ContinuationToken)
}

// PingResponse is the reply of ping.
type PingResponse struct {
	Alive  bool    `json:"alive"`
	Uptime float64 `json:"uptime"`
}

// listJSON renders a paginated reply {"<key>": [...], "continuationToken"?}
// with the list first and a nil list as [].
func listJSON[T any](key string, items []T, token string) ([]byte, error) {
	if items == nil {
		items = []T{}
	}
	list, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	out := append([]byte(`{"`+key+`":`), list...)
	if token != "" {
		tok, _ := json.Marshal(token)
		out = append(append(out, `,"continuationToken":`...), tok...)
	}
	return append(out, '}'), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
