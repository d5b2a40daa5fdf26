package sidecar

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const explainPolicy = `
maxBodyBytes: 64
routes:
  - {method: GET, path: /healthz, public: true}
  - {method: GET, path: /whoami, authenticated: true}
  - {method: GET, path: /notes/<name>, scopes: {AnyOf: ["notes:read:<name>", "notes:write:<name>"]}}
  - {method: POST, path: /share/<id>, query: [to], body: [team, tags],
     scopes: {AllOf: ["notes:share:<id>:<to>", {for: t, in: tags, each: "notes:tag:<t>"}]}}
  - {method: GET, path: /files/<rest*>, scopes: "files:read:<rest>"}
  - {method: GET, path: /clients/<clientId>, allowEncodedSlash: true, scopes: "clients:get:<clientId>"}
default: {scopes: "fallback:<x>", query: [x]}
`

func TestPolicyExplain(t *testing.T) {
	pol, err := ParsePolicy("test.yaml", []byte(explainPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, target, body string
		route                      string
		params                     map[string]any
		sources                    map[string]string
	}{
		{"public", "GET", "/healthz", "", "GET /healthz", map[string]any{}, map[string]string{}},
		{"HEAD matches GET", "HEAD", "/notes/a", "", "GET /notes/<name>", map[string]any{"name": "a"}, map[string]string{"name": "path"}},
		{"absolute URL", "GET", "http://127.0.0.1:8081/notes/b?x=1", "", "GET /notes/<name>", map[string]any{"name": "b"}, map[string]string{"name": "path"}},
		{"query and body", "POST", "/share/n1?to=bob", `{"team":"red","tags":["x","y"]}`, "POST /share/<id>",
			map[string]any{"id": "n1", "to": "bob", "team": "red", "tags": []any{"x", "y"}}, map[string]string{"id": "path", "to": "query", "team": "body", "tags": "body"}},
		{"body not given", "POST", "/share/n1?to=bob", "", "POST /share/<id>",
			map[string]any{"id": "n1", "to": "bob"}, map[string]string{"id": "path", "to": "query", "team": "body", "tags": "body"}},
		{"rest capture", "GET", "/files/a/b.txt", "", "GET /files/<rest*>", map[string]any{"rest": "a/b.txt"}, map[string]string{"rest": "path"}},
		{"encoded slash allowed", "GET", "/clients/a%2Fb", "", "GET /clients/<clientId>", map[string]any{"clientId": "a/b"}, map[string]string{"clientId": "path"}},
		{"default", "PUT", "/other?x=7", "", "default", map[string]any{"x": "7"}, map[string]string{"x": "query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			ex, err := pol.Explain(tc.method, tc.target, body)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Route.Name != tc.route || ex.Default != (tc.route == "default") {
				t.Fatalf("route %q default %v", ex.Route.Name, ex.Default)
			}
			if !reflect.DeepEqual(ex.Params, tc.params) || !reflect.DeepEqual(ex.Sources, tc.sources) {
				t.Fatalf("params %#v sources %v", ex.Params, ex.Sources)
			}
		})
	}
}

func TestPolicyExplainRefused(t *testing.T) {
	pol, err := ParsePolicy("test.yaml", []byte(explainPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, target, body string
		want                 error
		text                 string
	}{
		{"GET", "/notes/..%2Fsecret", "", ErrRefusedRequest, "encoded /"},
		{"GET", "/notes/%2e%2e", "", ErrRefusedRequest, ". or .. segment"},
		{"GET", "/files/a//b", "", ErrRefusedRequest, "empty segment"},
		{"POST", "/share/n?to=a&to=b", "", ErrRefusedRequest, "given 2 times"},
		{"POST", "/share/n?to=a", `{"team":"a","TEAM":"b"}`, ErrRefusedRequest, "member name twice"},
		{"POST", "/share/n?to=a", `{"tags":["` + strings.Repeat("x", 64) + `"]}`, ErrRefusedRequest, "at most 64 bytes"},
		{"GET", "notes", "", ErrRefusedRequest, "must be a path"},
	} {
		_, err := pol.Explain(tc.method, tc.target, []byte(tc.body))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Explain(%s %s) = %v; want %v containing %q", tc.method, tc.target, err, tc.want, tc.text)
		}
	}
	deny, err := ParsePolicy("deny.yaml", []byte("routes:\n  - {method: GET, path: /a, public: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deny.Explain("GET", "/b", nil); !errors.Is(err, ErrNoRoute) || !strings.Contains(err.Error(), "GET /b") {
		t.Errorf("no route: %v", err)
	}
}

// FuzzPolicyExplain: any method, target and body give an explanation or
// an error, never a panic; an explanation only uses the route's own names.
func FuzzPolicyExplain(f *testing.F) {
	pol, err := ParsePolicy("test.yaml", []byte(explainPolicy))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("POST", "/share/n1?to=bob", `{"team":"red","tags":["x"]}`)
	f.Add("GET", "/clients/a%2Fb", "")
	f.Add("GET", "http://h/files/%2e/x", "")
	f.Fuzz(func(t *testing.T, method, target, body string) {
		ex, err := pol.Explain(method, target, []byte(body))
		if err != nil {
			return
		}
		for k := range ex.Params {
			if _, ok := ex.Sources[k]; !ok {
				t.Fatalf("parameter %q without a source", k)
			}
		}
	})
}
