package controlplane

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol"
)

type roleReply = protocol.RoleJSON

func TestCreateUpdateDeleteRole(t *testing.T) {
	e := newEnv(t)
	e.addClient("rc", "rc-token-0123456789abcdef", "auth:create-role:project:*", "auth:update-role:project:*", "secrets:get:project/*", "assume:project:x")
	rc := as("rc", "rc-token-0123456789abcdef")

	r := e.api("PUT", "/roles/project:*", rc, withBody(`{"description":"p","scopes":["secrets:get:project/<..>/*"]}`))
	expectStatus(t, r, 200)
	var role roleReply
	_ = json.Unmarshal(r.body, &role)
	if role.RoleID != "project:*" || strings.Join(role.ExpandedScopes, ",") != "assume:project:*,secrets:get:project/*" || !role.Created.Equal(frozen) {
		t.Fatalf("%+v", role)
	}
	if !strings.Contains(string(r.body), `"secrets:get:project/<..>/*"`) {
		t.Errorf("HTML-escaped output:\n%s", r.body)
	}
	// Idempotent create; conflicting create.
	expectStatus(t, e.api("PUT", "/roles/project:*", rc, withBody(`{"description":"p","scopes":["secrets:get:project/<..>/*"]}`)), 200)
	m := expectError(t, e.api("PUT", "/roles/project:*", rc, withBody(`{"description":"other","scopes":["secrets:get:project/<..>/*"]}`)), 409, "RequestConflict")
	if !strings.HasPrefix(m["message"].(string), "Role with roleId 'project:*' already exists") {
		t.Errorf("%q", m["message"])
	}
	// createRole sorts scopes.
	r = e.api("PUT", "/roles/project:b", rc, withBody(`{"description":"b","scopes":["secrets:get:project/z","secrets:get:project/a*","secrets:get:project/a"]}`))
	expectStatus(t, r, 200)
	_ = json.Unmarshal(r.body, &role)
	if strings.Join(role.Scopes, ",") != "secrets:get:project/a*,secrets:get:project/a,secrets:get:project/z" {
		t.Errorf("stored scopes %v", role.Scopes)
	}
	// Escalation, cycle, double star.
	expectError(t, e.api("PUT", "/roles/project:c", rc, withBody(`{"description":"c","scopes":["queue:*"]}`)), 403, "InsufficientScopes")
	m = expectError(t, e.api("PUT", "/roles/project:x", rc, withBody(`{"description":"c","scopes":["assume:project:x"]}`)), 400, "InputError")
	if !strings.HasPrefix(m["message"].(string), "Roles may not contain dependency cycles") {
		t.Errorf("%q", m["message"])
	}
	expectError(t, e.api("PUT", "/roles/project:c", rc, withBody(`{"description":"c","scopes":["a**"]}`)), 400, "InputError")
	expectError(t, e.api("PUT", "/roles/project:c", rc, withBody(`{"description":"c"}`)), 400, "InputValidationError")

	// updateRole: 404 before authorization.
	m = expectError(t, e.api("POST", "/roles/nope", withBody(`{"description":"c","scopes":[]}`)), 404, "ResourceNotFound")
	if !strings.HasPrefix(m["message"].(string), "Role with roleId 'nope' not found") {
		t.Errorf("%q", m["message"])
	}
	// scopesAdded uses satisfaction by the current expansion: b:x is
	// covered by the role's current b* even though the caller lacks it.
	e.putRole("project:sat", "b*")
	r = e.api("POST", "/roles/project:sat", rc, withBody(`{"description":"narrower","scopes":["b:x"]}`))
	expectStatus(t, r, 200)
	_ = json.Unmarshal(r.body, &role)
	if role.Description != "narrower" || strings.Join(role.Scopes, ",") != "b:x" {
		t.Errorf("%+v", role)
	}
	expectError(t, e.api("POST", "/roles/project:sat", rc, withBody(`{"description":"wider","scopes":["b:*"]}`)), 403, "InsufficientScopes")
	expectError(t, e.api("POST", "/roles/project:sat", asRoot(), withBody(`{"description":"cycle","scopes":["assume:project:sat"]}`)), 400, "InputError")

	expectError(t, e.api("GET", "/roles/nope", asRoot()), 404, "ResourceNotFound")
	expectStatus(t, e.api("GET", "/roles/project:*", asRoot()), 200)
	expectError(t, e.api("DELETE", "/roles/project:b", rc), 403, "InsufficientScopes")
	expectStatus(t, e.api("DELETE", "/roles/project:b", asRoot()), 204)
	expectStatus(t, e.api("DELETE", "/roles/project:b", asRoot()), 204)
	expectError(t, e.api("GET", "/roles/project:b", asRoot()), 404, "ResourceNotFound")
}

func TestListRolesPagination(t *testing.T) {
	v := loadVectors(t)
	e := newEnv(t)
	for i := 0; i < 25; i++ {
		e.putRole(fmt.Sprintf("r%02d", i), fmt.Sprintf("s:%d", i))
	}
	r := e.api("GET", "/roles/", asRoot())
	expectStatus(t, r, 200)
	var all []roleReply
	_ = json.Unmarshal(r.body, &all)
	if len(all) != 25 || all[0].RoleID != "r00" || strings.Join(all[3].ExpandedScopes, ",") != "assume:r03,s:3" {
		t.Fatalf("listRoles: %d roles", len(all))
	}
	var page struct {
		RoleIDs           []string `json:"roleIds"`
		Roles             []roleReply
		ContinuationToken *string
	}
	get := func(path string) {
		t.Helper()
		page.RoleIDs, page.Roles, page.ContinuationToken = nil, nil, nil
		r := e.api("GET", path, asRoot())
		expectStatus(t, r, 200)
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
	}
	get("/roleids/?limit=10")
	if len(page.RoleIDs) != 10 || page.ContinuationToken == nil || *page.ContinuationToken != v.API.RolesTokens["10"] {
		t.Fatalf("page 1: %v %v", page.RoleIDs, page.ContinuationToken)
	}
	get("/roleids/?limit=10&continuationToken=" + *page.ContinuationToken)
	if page.RoleIDs[0] != "r10" || *page.ContinuationToken != v.API.RolesTokens["20"] {
		t.Fatalf("page 2: %v %v", page.RoleIDs, page.ContinuationToken)
	}
	get("/roles2/?limit=10&continuationToken=" + *page.ContinuationToken)
	if len(page.Roles) != 5 || page.Roles[0].RoleID != "r20" || page.ContinuationToken != nil {
		t.Fatalf("page 3: %d roles, token %v", len(page.Roles), page.ContinuationToken)
	}
	// [quirk] a token without a limit is ignored.
	get("/roleids?continuationToken=" + v.API.RolesTokens["20"])
	if len(page.RoleIDs) != 25 {
		t.Fatalf("token without limit: %d ids", len(page.RoleIDs))
	}
	expectError(t, e.api("GET", "/roleids/?limit=10&continuationToken=!!", asRoot()), 400, "InputError")
	expectError(t, e.api("GET", "/roles2/?limit=10&continuationToken=zzzz", asRoot()), 400, "InputError")
	expectError(t, e.api("GET", "/roles2/", withHeader("X-Nothing", "1")), 403, "InsufficientScopes")
}

func TestScopesEndpoints(t *testing.T) {
	e := newEnv(t)
	e.putRole("anonymous", "auth:current-scopes")
	e.putRole("project:*", "secrets:get:project/<..>/*")
	e.addClient("ex", "ex-token-0123456789abcdef", "auth:expand-scopes", "assume:project:x")
	r := e.api("POST", "/scopes/expand", as("ex", "ex-token-0123456789abcdef"), withBody(`{"scopes":["assume:project:y"]}`))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"scopes": []string{"assume:project:y", "secrets:get:project/y/*"}})
	expectError(t, e.api("POST", "/scopes/expand", withBody(`{"scopes":["a"]}`)), 403, "InsufficientScopes")
	expectError(t, e.api("POST", "/scopes/expand", asRoot(), withBody(`{"scopes":"a"}`)), 400, "InputValidationError")

	// currentScopes: the caller's final scopes incl. anonymous's expansion.
	r = e.api("GET", "/scopes/current", as("ex", "ex-token-0123456789abcdef"))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"scopes": []string{"assume:anonymous", "assume:project:x", "auth:current-scopes", "auth:expand-scopes", "secrets:get:project/x/*"}})
	r = e.api("GET", "/scopes/current")
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"scopes": []string{"assume:anonymous", "auth:current-scopes"}})
}
