package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestAPIErrorVectors rebuilds the error bodies of reference-vectors.json
// "api" from their parts.
func TestAPIErrorVectors(t *testing.T) {
	var spec struct {
		API map[string]json.RawMessage `json:"api"`
	}
	loadSpec(t, "reference-vectors.json", &spec)
	allOf := stringer("{\n  \"AllOf\": [\n    \"auth:create-client:my/client\",\n    \"a:b\",\n    \"c:d\"\n  ]\n}")
	anyOf := stringer("{\n  \"AnyOf\": [\n    \"auth:aws-s3:read-only:bkt/a/b/\",\n    \"auth:aws-s3:read-write:bkt/a/b/\"\n  ]\n}")
	payload := map[string]any{"description": "d", "expires": "2024-01-01T00:00:00.000Z", "scopes": []any{"a:b", "c:d"}}
	cases := []struct {
		name    string
		err     *APIError
		method  string
		params  map[string]string
		payload any
	}{
		{"insufficient_createClient", NewAPIError(CodeInsufficientScopes, InsufficientScopesMessage("caller", stringer("c:d"), allOf, false)),
			"createClient", map[string]string{"clientId": "my/client"}, payload},
		{"authfailed_createClient", NewAPIError(CodeAuthenticationFailed, ErrBadMAC.Message), "createClient", map[string]string{"clientId": "my/client"}, nil},
		{"noauth_getClient", NewAPIError(CodeInsufficientScopes, InsufficientScopesMessage("", nil, stringer("auth:get-client:x"), true)),
			"client", map[string]string{"clientId": "x"}, nil},
		{"insufficient_aws_readonly", NewAPIError(CodeInsufficientScopes, InsufficientScopesMessage("caller", anyOf, anyOf, false)),
			"awsS3Credentials", map[string]string{"level": "read-only", "bucket": "bkt", "prefix": "a/b/"}, nil},
		{"two_schemes", NewAPIError(CodeAuthenticationFailed, TwoSchemesMessage), "client", map[string]string{"clientId": "x"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v struct {
				Status int             `json:"status"`
				Body   json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(spec.API[c.name], &v); err != nil {
				t.Fatalf("vector %s: %v", c.name, err)
			}
			if c.err.Status != v.Status {
				t.Errorf("status %d, want %d", c.err.Status, v.Status)
			}
			got, err := json.Marshal(c.err.Body(c.method, c.params, c.payload, vectorNow))
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			json.Unmarshal(got, &g)
			json.Unmarshal(v.Body, &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got  %s\nwant %s", got, v.Body)
			}
		})
	}
}

func TestInterpolate(t *testing.T) {
	details := map[string]any{"s": "text", "n": 5, "obj": map[string]any{"AllOf": []string{"a<b"}}, "st": stringer("S")}
	cases := map[string]string{
		"plain":                 "plain",
		"{{s}}!":                "text!",
		"a {{n}} b":             "a 5 b",
		"{{obj}}":               "{\n  \"AllOf\": [\n    \"a<b\"\n  ]\n}",
		"{{st}}":                "S",
		"keep {{hash}} literal": "keep {{hash}} literal",
		"{{ s }} {{}} {{s":      "{{ s }} {{}} {{s",
		"{{{s}}}":               "{text}",
		"{{s}}{{s}}":            "texttext",
	}
	for in, want := range cases {
		if got := interpolate(in, details); got != want {
			t.Errorf("interpolate(%q) = %q, want %q", in, got, want)
		}
	}
	e := &APIError{Code: "X", Status: 418, Message: "m {{s}}", Details: details}
	b := e.Body("ping", nil, nil, time.Date(2020, 1, 2, 3, 4, 5, 6_000_000, time.FixedZone("x", 3600)))
	want := "m text\n\n---\n\n* method:     ping\n* errorCode:  X\n* statusCode: 418\n* time:       2020-01-02T02:04:05.006Z"
	if b.Message != want || b.RequestInfo.Time != "2020-01-02T02:04:05.006Z" || b.RequestInfo.Params == nil || b.RequestInfo.Payload == nil {
		t.Errorf("body %+v", b)
	}
	if NewAPIError("Nope", "x").Status != 500 || NewAPIError(CodeResourceNotFound, "x").Status != 404 {
		t.Error("status table")
	}
}

func TestTypesJSON(t *testing.T) {
	ts := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	cases := []struct {
		v    any
		want string
	}{
		{ClientJSON{ClientID: "c", Description: "d", Expires: ts, Created: ts, LastModified: ts, LastDateUsed: ts, LastRotated: ts},
			`{"clientId":"c","description":"d","expires":"2023-11-14T22:13:20.000Z","created":"2023-11-14T22:13:20.000Z","lastModified":"2023-11-14T22:13:20.000Z","lastDateUsed":"2023-11-14T22:13:20.000Z","lastRotated":"2023-11-14T22:13:20.000Z","deleteOnExpiration":false,"scopes":[],"expandedScopes":[],"disabled":false}`},
		{ClientJSON{ClientID: "c", Scopes: []string{"a"}, ExpandedScopes: []string{"a"}, Disabled: true, AccessToken: "tok", Expires: ts, Created: ts, LastModified: ts, LastDateUsed: ts, LastRotated: ts},
			`{"clientId":"c","description":"","expires":"2023-11-14T22:13:20.000Z","created":"2023-11-14T22:13:20.000Z","lastModified":"2023-11-14T22:13:20.000Z","lastDateUsed":"2023-11-14T22:13:20.000Z","lastRotated":"2023-11-14T22:13:20.000Z","deleteOnExpiration":false,"scopes":["a"],"expandedScopes":["a"],"disabled":true,"accessToken":"tok"}`},
		{RoleJSON{RoleID: "r", Description: "d", LastModified: ts, Created: ts},
			`{"roleId":"r","scopes":[],"expandedScopes":[],"description":"d","lastModified":"2023-11-14T22:13:20.000Z","created":"2023-11-14T22:13:20.000Z"}`},
		{AuditEntryJSON{ClientID: "c", ActionType: "created", Created: ts, EntityID: "e", EntityType: "client"},
			`{"clientId":"c","actionType":"created","created":"2023-11-14T22:13:20.000Z","entityId":"e","entityType":"client"}`},
		{AuditHistoryResponse{}, `{"auditHistory":[]}`},
		{ListClientsResponse{ContinuationToken: "t"}, `{"clients":[],"continuationToken":"t"}`},
		{ListRoles2Response{}, `{"roles":[]}`},
		{ListRoleIdsResponse{}, `{"roleIds":[]}`},
		{ScopesetJSON{}, `{"scopes":[]}`},
		{CreateRoleRequest{Description: "d"}, `{"scopes":[],"description":"d"}`},
		{CreateClientRequest{Expires: ts, Description: "d"}, `{"expires":"2023-11-14T22:13:20.000Z","description":"d"}`},
		{TestAuthenticateResponse{ClientID: "auth-failed:no-auth"}, `{"clientId":"auth-failed:no-auth","scopes":[]}`},
		{AuthenticateHawkRequest{Method: "get", Resource: "/", Host: "h", Port: 443}, `{"method":"get","resource":"/","host":"h","port":443}`},
		{PingResponse{Alive: true, Uptime: 1.5}, `{"alive":true,"uptime":1.5}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("%T: got %s (%v)\nwant %s", c.v, got, err, c.want)
		}
	}
	var req CreateClientRequest
	if err := json.Unmarshal([]byte(`{"expires":"2024-01-01T00:00:00.000Z","description":"d"}`), &req); err != nil || req.Scopes != nil || !req.Expires.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("CreateClientRequest decode: %+v %v", req, err)
	}
	if got := (AuthenticateHawkRequest{Method: "get", Resource: "/r", Host: "h", Port: 1, Authorization: "a", SourceIP: "ip"}).Request(); got != (Request{"get", "/r", "h", 1, "a", "ip"}) {
		t.Errorf("Request() = %+v", got)
	}
}
