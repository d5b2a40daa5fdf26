package webui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/scopeengine"
)

// Role is a role as the auth API answers it.
type Role struct {
	RoleID         string   `json:"roleId"`
	Scopes         []string `json:"scopes"`
	ExpandedScopes []string `json:"expandedScopes"`
	Description    string   `json:"description"`
	LastModified   string   `json:"lastModified"`
	Created        string   `json:"created"`
}

// Paging of the roles list: listRoles2 pages of rolesAPIPage; a search
// (substring of the roleId, which listRoles2 cannot filter) scans pages
// until rolesPageSize matches or rolesMaxScan roles were read, and links
// the next page from where it stopped.
const (
	rolesAPIPage  = 100
	rolesPageSize = 50
	rolesMaxScan  = 2000
)

func (s *Server) roleRoutes() {
	s.page("GET", "/auth/roles", s.serveRoles)
	s.page("GET", "/auth/roles/create", s.serveRoleForm(true))
	s.page("POST", "/auth/roles/create", s.serveRoleForm(true))
	// Role ids that a browser would resolve as dot segments ("." and "..",
	// also when percent-encoded) are addressed by query instead.
	for _, base := range []string{"/auth/roles/{roleId}", "/auth/roles/" + roleByIDSeg} {
		s.page("GET", base, s.serveRole)
		s.page("GET", base+"/edit", s.serveRoleForm(false))
		s.page("POST", base+"/edit", s.serveRoleForm(false))
		s.page("GET", base+"/delete", s.serveDeleteRole)
		s.page("POST", base+"/delete", s.serveDeleteRole)
	}
}

// roleByIDSeg is the literal segment of the query-addressed role pages.
const roleByIDSeg = "by-id"

// roleURL is the page of roleID (action "", "/edit" or "/delete"). The id
// is one path segment escaped as encodeURIComponent (tcclient.PathSegment,
// as for clients), so "/" travels as %2F and "<", quotes or "%" are
// escaped. Two kinds of id need more: "." and ".." are dot segments that
// browsers remove from a URL (even as %2E), so they go in the query of
// /auth/roles/by-id; an id equal to a literal route segment ("create",
// "by-id") gets its first byte percent-encoded, which the router decodes
// but does not match as the literal.
func roleURL(roleID, action string) string {
	switch roleID {
	case ".", "..":
		return "/auth/roles/" + roleByIDSeg + action + "?" + url.Values{"roleId": {roleID}}.Encode()
	case "create", roleByIDSeg:
		return fmt.Sprintf("/auth/roles/%%%02X%s%s", roleID[0], tcclient.PathSegment(roleID[1:]), action)
	}
	return "/auth/roles/" + tcclient.PathSegment(roleID) + action
}

func roleRoute(id string) string { return "/roles/" + tcclient.PathSegment(id) }

// roleIDOf is the role a page is about: the path segment, or the query of
// the by-id pages.
func roleIDOf(q *Request) (string, error) {
	id := q.Param("roleId")
	if id == "" {
		id = q.R.URL.Query().Get("roleId")
	}
	if err := checkRoleID(id); err != nil {
		return "", err
	}
	return id, nil
}

// checkRoleID applies the API's roleId pattern (printable ASCII, 1+
// characters) with a length bound, so a bad id gets a form error rather
// than an API error about URL patterns.
func checkRoleID(id string) error {
	if id == "" || len(id) > MaxScopeLength || !scopeengine.ValidScope(id) {
		return &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError,
			Message: fmt.Sprintf("A role id is 1 to %d printable ASCII characters.", MaxScopeLength)}
	}
	return nil
}

type rolesData struct {
	Search, Deleted string
	Roles           []roleView
	Next            string
	Scanned         int  // roles read for this page (search only)
	Stopped         bool // the scan bound ended the page before rolesPageSize matches
}

// serveRoles is /auth/roles?search=<substring>&continuationToken=…
func (s *Server) serveRoles(q *Request) error {
	qs := q.R.URL.Query()
	d := rolesData{Search: qs.Get("search"), Deleted: qs.Get("deleted")}
	if len(d.Search) > MaxScopeLength {
		return &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: "The search text is too long."}
	}
	token := qs.Get("continuationToken")
	for {
		query := url.Values{"limit": {itoa(rolesAPIPage)}}
		if token != "" {
			query.Set("continuationToken", token)
		}
		var page struct {
			Roles             []Role `json:"roles"`
			ContinuationToken string `json:"continuationToken"`
		}
		if err := q.API.Do(q.R.Context(), "GET", "/roles2/", query, nil, &page); err != nil {
			return err
		}
		d.Scanned += len(page.Roles)
		for _, r := range page.Roles {
			if strings.Contains(r.RoleID, d.Search) {
				d.Roles = append(d.Roles, viewOf(r))
			}
		}
		token = page.ContinuationToken
		// Whole API pages only: stopping inside one would lose the rest of
		// it, since the next token points past it.
		if token == "" || d.Search == "" || len(d.Roles) >= rolesPageSize {
			break
		}
		if d.Scanned >= rolesMaxScan {
			d.Stopped = true
			break
		}
	}
	if token != "" {
		next := url.Values{"continuationToken": {token}}
		if d.Search != "" {
			next.Set("search", d.Search)
		}
		d.Next = "/auth/roles?" + next.Encode()
	}
	return q.Render(http.StatusOK, "roles_list.html", "Roles", d)
}

func (q *Request) getRole(id string) (Role, error) {
	var r Role
	err := q.API.Do(q.R.Context(), "GET", roleRoute(id), nil, nil, &r)
	return r, err
}

// roleView is a role with the URLs of its pages.
type roleView struct {
	Role
	URL, EditURL, DeleteURL string
}

func viewOf(r Role) roleView {
	return roleView{r, roleURL(r.RoleID, ""), roleURL(r.RoleID, "/edit"), roleURL(r.RoleID, "/delete")}
}

func (s *Server) serveRole(q *Request) error {
	id, err := roleIDOf(q)
	if err != nil {
		return err
	}
	r, err := q.getRole(id)
	if err != nil {
		return err
	}
	return q.Render(http.StatusOK, "roles_view.html", "Role "+r.RoleID, viewOf(r))
}

// serveDeleteRole is the confirmation (GET) and the deletion (POST).
func (s *Server) serveDeleteRole(q *Request) error {
	id, err := roleIDOf(q)
	if err != nil {
		return err
	}
	if q.R.Method != http.MethodPost {
		r, err := q.getRole(id)
		if err != nil {
			return err
		}
		return q.Render(http.StatusOK, "roles_delete.html", "Delete role "+r.RoleID, viewOf(r))
	}
	if err := q.API.Do(q.R.Context(), "DELETE", roleRoute(id), nil, nil, nil); err != nil {
		return err
	}
	q.Redirect("/auth/roles?" + url.Values{"deleted": {id}}.Encode())
	return nil
}

// roleForm is the create/edit form as entered.
type roleForm struct {
	Create       bool
	RoleID       string
	Description  string
	Scopes       string // the textarea, one scope per line
	LastModified string // edit: the role's lastModified when the form was opened
	Error        *errorView
}

// Action is the URL the form posts to; Cancel where "Cancel" goes.
func (f roleForm) Action() string {
	if f.Create {
		return "/auth/roles/create"
	}
	return roleURL(f.RoleID, "/edit")
}

func (f roleForm) Cancel() string {
	if f.Create {
		return "/auth/roles"
	}
	return roleURL(f.RoleID, "")
}

// rolePreview is the confirmation step: what will be saved and what it
// changes in the role's expanded scopes.
type rolePreview struct {
	roleForm
	Parsed         []string // exactly what "save" sends
	Canonical      string   // Parsed one per line: the hidden field of the save form
	Added, Removed []string
	ViaOthers      bool       // star roles matching the id grant some of its scopes
	NoScopes       bool       // warn: saving a role without scopes
	Changed        bool       // edit: the role changed since the form was opened
	ExpandError    *errorView // the change could not be computed (e.g. no auth:expand-scopes)
}

// roleFormFrom reads the posted form. Line breaks of the description are
// kept as "\n" (browsers post textarea and hidden fields with CRLF), so
// what the preview showed is what is saved.
func roleFormFrom(r *http.Request, create bool, pathID string) roleForm {
	f := roleForm{Create: create, RoleID: pathID,
		Description:  strings.ReplaceAll(r.PostForm.Get("description"), "\r\n", "\n"),
		Scopes:       r.PostForm.Get("scopes"),
		LastModified: r.PostForm.Get("lastModified")}
	if create {
		f.RoleID = strings.TrimSpace(r.PostForm.Get("roleId"))
	}
	return f
}

// serveRoleForm is the create (create=true) or edit page. GET shows the
// form; POST step=preview shows what the change does, step=save saves it
// (after the preview's confirmation), step=edit returns to the form.
func (s *Server) serveRoleForm(create bool) HandlerFunc {
	return func(q *Request) error {
		pathID := ""
		if !create {
			id, err := roleIDOf(q)
			if err != nil {
				return err
			}
			pathID = id
		}
		if q.R.Method != http.MethodPost {
			if create {
				return q.renderRoleForm(roleForm{Create: true}, nil)
			}
			r, err := q.getRole(pathID)
			if err != nil {
				return err
			}
			return q.renderRoleForm(roleForm{RoleID: r.RoleID, Description: r.Description,
				Scopes: formatScopeLines(r.Scopes), LastModified: r.LastModified}, nil)
		}
		f := roleFormFrom(q.R, create, pathID)
		scopes, err := f.check()
		if err != nil {
			return q.renderRoleForm(f, err)
		}
		switch q.R.PostForm.Get("step") {
		case "save":
			return q.saveRole(f, scopes)
		case "preview":
			return q.previewRole(f, scopes)
		}
		return q.renderRoleForm(f, nil)
	}
}

// check validates the form before anything is sent to the API.
func (f roleForm) check() ([]string, error) {
	if err := checkRoleID(f.RoleID); err != nil {
		return nil, err
	}
	if len(f.Description) > MaxDescription {
		return nil, inputProblem(fmt.Sprintf("The description may be at most %d characters.", MaxDescription))
	}
	scopes, err := parseScopeLines(f.Scopes, roleLimits)
	if err == nil {
		err = checkRoleScopes(scopes)
	}
	if err != nil {
		return nil, inputProblem("Scopes: " + err.Error())
	}
	return scopes, nil
}

func inputProblem(msg string) *Problem {
	return &Problem{Status: http.StatusBadRequest, Code: protocol.CodeInputError, Message: msg}
}

// renderRoleForm shows the form (again) with err and its status.
func (q *Request) renderRoleForm(f roleForm, err error) error {
	title := "Edit role " + f.RoleID
	if f.Create {
		title = "Create a role"
	}
	status := http.StatusOK
	if err != nil {
		if f.Error = ErrorView(err); f.Error == nil {
			return err
		}
		status = f.Error.Status
	}
	return q.Render(status, "roles_form.html", title, f)
}

// previewRole computes the change with the user's own API calls: the
// role's expanded scopes now (getRole, or expandScopes of assume:<id> for
// a new role) and expandScopes of its own scopes before and after.
func (q *Request) previewRole(f roleForm, scopes []string) error {
	p := rolePreview{roleForm: f, Parsed: scopes, Canonical: formatScopeLines(scopes), NoScopes: len(scopes) == 0}
	assume := "assume:" + f.RoleID
	var full, before []string
	if f.Create {
		before = []string{}
		expanded, err := q.expandScopes([]string{assume})
		if err != nil {
			return q.previewWithoutDiff(p, err)
		}
		full = expanded
	} else {
		r, err := q.getRole(f.RoleID)
		if err != nil {
			return q.renderRoleForm(f, err)
		}
		p.Changed = f.LastModified != "" && f.LastModified != r.LastModified
		p.LastModified = r.LastModified
		full, before = r.ExpandedScopes, r.Scopes
	}
	ownBefore, err := q.expandScopes(starParamScopes(f.RoleID, before))
	if err != nil {
		return q.previewWithoutDiff(p, err)
	}
	ownAfter, err := q.expandScopes(starParamScopes(f.RoleID, scopes))
	if err != nil {
		return q.previewWithoutDiff(p, err)
	}
	p.Added, p.Removed, p.ViaOthers = roleChange(scopeengine.NewScopeSet(full), ownBefore, ownAfter, assume)
	return q.Render(http.StatusOK, "roles_preview.html", "Review the change", p)
}

// previewWithoutDiff shows the confirmation step although the change could
// not be computed (typically: the user lacks auth:expand-scopes); saving
// is still up to the API's own checks. Other errors are page errors.
func (q *Request) previewWithoutDiff(p rolePreview, err error) error {
	if p.ExpandError = ErrorView(err); p.ExpandError == nil {
		return err
	}
	return q.Render(http.StatusOK, "roles_preview.html", "Review the change", p)
}

// expandScopes is auth.expandScopes as the user.
func (q *Request) expandScopes(scopes []string) (scopeengine.ScopeSet, error) {
	var out struct {
		Scopes []string `json:"scopes"`
	}
	if len(scopes) == 0 {
		return scopeengine.ScopeSet{}, nil
	}
	if err := q.API.Do(q.R.Context(), "POST", "/scopes/expand", nil, map[string]any{"scopes": scopes}, &out); err != nil {
		return nil, err
	}
	return scopeengine.NewScopeSet(out.Scopes), nil
}

// saveRole is the confirmed save. A role without scopes needs the
// preview's explicit confirmation (confirmEmpty), and an edit whose role
// changed since the preview is previewed again instead of overwriting a
// change the user has not seen.
func (q *Request) saveRole(f roleForm, scopes []string) error {
	if len(scopes) == 0 && q.R.PostForm.Get("confirmEmpty") != "1" {
		return q.previewRole(f, scopes)
	}
	method := "POST"
	if f.Create {
		method = "PUT"
	} else {
		r, err := q.getRole(f.RoleID)
		if err != nil {
			return q.renderRoleForm(f, err)
		}
		if r.LastModified != f.LastModified {
			return q.previewRole(f, scopes)
		}
	}
	body := map[string]any{"scopes": scopes, "description": f.Description}
	var saved Role
	if err := q.API.Do(q.R.Context(), method, roleRoute(f.RoleID), nil, body, &saved); err != nil {
		return q.renderRoleForm(f, err)
	}
	q.Redirect(roleURL(f.RoleID, ""))
	return nil
}
