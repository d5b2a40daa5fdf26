package controlplane

import (
	"errors"
	"reflect"
	"slices"
	"strconv"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

func (s *Server) roleJSON(res *scopeengine.Resolver, r RoleRecord) protocol.RoleJSON {
	return protocol.RoleJSON{
		RoleID: r.RoleID, Scopes: nonNilStrings(r.Scopes), ExpandedScopes: res.ExpandRole(r.RoleID),
		Description: r.Description, LastModified: r.LastModified, Created: r.Created,
	}
}

func (s *Server) listRoles(c *call) error {
	res := s.store.Resolver()
	roles := s.store.Roles()
	out := make([]protocol.RoleJSON, 0, len(roles))
	for _, r := range roles {
		out = append(out, s.roleJSON(res, r))
	}
	return c.reply(out)
}

// rolePage applies pagination (b) of docs/api.md §1 to n roles.
func rolePage(c *call, n int) (start, end int, token string, err error) {
	limit := 0
	if v := c.query["limit"]; v != "" {
		limit, _ = strconv.Atoi(v) // pattern-checked; 0 = no limit
	}
	tok, hasToken := c.query["continuationToken"]
	offset := 0
	if hasToken && limit > 0 {
		// [quirk] copied: a token without a limit is ignored and everything
		// is returned, as the reference does.
		nums, derr := rolesTokens.Decode(tok)
		if derr != nil || len(nums) == 0 || nums[0] > 1<<31 {
			return 0, 0, "", apiErr(protocol.CodeInputError, "Invalid continuationToken")
		}
		offset = int(nums[0])
	}
	if limit == 0 {
		return 0, n, "", nil
	}
	start = min(offset, n)
	end = min(offset+limit, n)
	if offset+limit < n {
		token = rolesTokens.Encode(uint64(offset+limit), 10)
	}
	return start, end, token, nil
}

func (s *Server) listRoles2(c *call) error {
	res := s.store.Resolver()
	roles := s.store.Roles()
	start, end, token, err := rolePage(c, len(roles))
	if err != nil {
		return err
	}
	out := protocol.ListRoles2Response{Roles: make([]protocol.RoleJSON, 0, end-start), ContinuationToken: token}
	for _, r := range roles[start:end] {
		out.Roles = append(out.Roles, s.roleJSON(res, r))
	}
	return c.reply(out)
}

func (s *Server) listRoleIds(c *call) error {
	roles := s.store.Roles()
	start, end, token, err := rolePage(c, len(roles))
	if err != nil {
		return err
	}
	out := protocol.ListRoleIdsResponse{RoleIDs: make([]string, 0, end-start), ContinuationToken: token}
	for _, r := range roles[start:end] {
		out.RoleIDs = append(out.RoleIDs, r.RoleID)
	}
	return c.reply(out)
}

func (s *Server) getRole(c *call) error {
	r, ok := s.store.Role(c.params["roleId"])
	if !ok {
		return apiErr(protocol.CodeResourceNotFound, "Role not found")
	}
	return c.reply(s.roleJSON(s.store.Resolver(), r))
}

func (c *call) roleInput() (scopes []string, description string) {
	m := c.input.(map[string]any)
	return stringList(m["scopes"]), m["description"].(string)
}

// validateRoleSet checks the role set with role put (docs/scopes.md §8).
func validateRoleSet(res *scopeengine.Resolver, roleID string, scopes []string) error {
	if _, err := res.Put(scopeengine.Role{RoleID: roleID, Scopes: scopes}); err != nil {
		return apiErr(protocol.CodeInputError, "%s", err.Error())
	}
	return nil
}

func (s *Server) createRole(c *call) error {
	id := c.params["roleId"]
	scopes, desc := c.roleInput()
	if err := noDoubleStar(scopes); err != nil {
		return err
	}
	if err := c.authorize(map[string]any{"roleId": id, "scopes": anyList(scopes)}); err != nil {
		return err
	}
	scopeengine.SortScopes(scopes) // createRole stores them sorted (docs/api.md §2)
	existing := func() error {
		r, ok := s.store.Role(id)
		if !ok {
			return nil
		}
		if r.Description == desc && reflect.DeepEqual(nonNilStrings(r.Scopes), scopes) {
			return c.reply(s.roleJSON(s.store.Resolver(), r))
		}
		return apiErr(protocol.CodeRequestConflict, "Role with roleId '%s' already exists", id)
	}
	if _, ok := s.store.Role(id); ok {
		return existing()
	}
	if err := validateRoleSet(s.store.Resolver(), id, scopes); err != nil {
		return err
	}
	rec := RoleRecord{RoleID: id, Description: desc, Scopes: scopes, Created: c.now, LastModified: c.now}
	err := s.apply(c.r.Context(), Command{Op: OpCreateRole, Time: c.now, Actor: c.clientID(), ID: id, Role: rec})
	if errors.Is(err, ErrConflict) { // created concurrently
		if e := existing(); e != nil || c.status != 0 {
			return e
		}
	}
	return s.roleWritten(c, id, err)
}

// roleWritten answers a createRole/updateRole write: the stored role, or
// the API error for the store's error.
func (s *Server) roleWritten(c *call, id string, err error) error {
	switch {
	case errors.Is(err, ErrConflict):
		return apiErr(protocol.CodeRequestConflict, "Role with roleId '%s' already exists", id)
	case errors.Is(err, ErrNotFound):
		return apiErr(protocol.CodeResourceNotFound, "Role with roleId '%s' not found", id)
	case errors.Is(err, ErrInvalidRoles):
		return apiErr(protocol.CodeInputError, "%s", roleSetMessage(err))
	case err != nil:
		return err
	}
	r, ok := s.store.Role(id)
	if !ok {
		return apiErr(protocol.CodeResourceNotFound, "Role not found")
	}
	return c.reply(s.roleJSON(s.store.Resolver(), r))
}

func (s *Server) updateRole(c *call) error {
	id := c.params["roleId"]
	scopes, desc := c.roleInput()
	if err := noDoubleStar(scopes); err != nil {
		return err
	}
	r, ok := s.store.Role(id)
	if !ok {
		// Checked before authorization, as the reference does (docs/api.md §4).
		return apiErr(protocol.CodeResourceNotFound, "Role with roleId '%s' not found", id)
	}
	res := s.store.Resolver()
	current := res.Expand(r.Scopes)
	added := []any{}
	for _, sc := range scopes {
		if !current.Satisfies(sc) {
			added = append(added, sc)
		}
	}
	if err := c.authorize(map[string]any{"roleId": id, "scopesAdded": added}); err != nil {
		return err
	}
	if err := validateRoleSet(res, id, scopes); err != nil {
		return err
	}
	rec := RoleRecord{RoleID: id, Description: desc, Scopes: slices.Clone(scopes), Created: r.Created, LastModified: c.now}
	err := s.apply(c.r.Context(), Command{Op: OpUpdateRole, Time: c.now, Actor: c.clientID(), ID: id, Role: rec})
	return s.roleWritten(c, id, err)
}

func (s *Server) deleteRole(c *call) error {
	err := s.apply(c.r.Context(), Command{Op: OpDeleteRole, Time: c.now, Actor: c.clientID(), ID: c.params["roleId"]})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return c.noContent()
}

func (s *Server) expandScopes(c *call) error {
	return s.serveExpansion(c, stringList(c.input.(map[string]any)["scopes"]))
}

func (s *Server) currentScopes(c *call) error {
	res, err := c.authenticate()
	if err != nil {
		return err
	}
	return c.reply(protocol.ScopesetJSON{Scopes: res.Scopes})
}

// roleSetMessage is the validation message inside a store's ErrInvalidRoles.
func roleSetMessage(err error) string {
	var cycle *scopeengine.DependencyCycleError
	if errors.As(err, &cycle) {
		return cycle.Error()
	}
	var inv *scopeengine.InvalidScopeError
	if errors.As(err, &inv) {
		return inv.Error()
	}
	return err.Error()
}
