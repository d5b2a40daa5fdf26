package controlplane

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzRoute feeds arbitrary escaped paths to the router: it must never
// panic, and a matched clientId must round-trip through the escaping the
// official clients use.
func FuzzRoute(f *testing.F) {
	s := &Server{}
	s.routes = s.buildRoutes()
	for _, p := range []string{"/api/auth/v1/clients/", "/api/auth/v1/clients/a%2Fb", "/api/auth/v1/aws/s3/read-only/b/a//c/",
		"/api/auth/v1/roles/%zz", "/__heartbeat__", "/api/auth/v1", "/api/auth/v1x/ping"} {
		f.Add(p, "GET")
	}
	f.Fuzz(func(t *testing.T, path, method string) {
		u, err := url.Parse("http://h" + path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		rt, params, _ := s.matchRoute(&http.Request{Method: method, URL: u})
		if rt != nil && rt.name == "client" {
			id := params["clientId"]
			u2, err := url.Parse("http://h" + apiPrefix + "/clients/" + url.PathEscape(id))
			if err != nil {
				t.Fatal(err)
			}
			rt2, p2, _ := s.matchRoute(&http.Request{Method: "GET", URL: u2})
			if id != "" && (rt2 == nil || p2["clientId"] != id) {
				t.Fatalf("clientId %q did not round-trip (%v)", id, p2)
			}
		}
	})
}

// FuzzSchema validates arbitrary JSON against every input schema: no
// panics, and an accepted body has the types the handlers assert.
func FuzzSchema(f *testing.F) {
	f.Add(`{"description":"d","expires":"2024-01-01T00:00:00.000Z","scopes":["a"]}`)
	f.Add(`{"scopes":[1,"a","a"],"description":null}`)
	f.Add(`{"method":"get","resource":"/","host":"a.b","port":1.5}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		for sch := range schemaIDs {
			var v any
			if json.Unmarshal([]byte(body), &v) != nil {
				return
			}
			var errs []string
			out := sch.validate(v, "", &errs)
			if len(errs) > 0 {
				continue
			}
			m, ok := out.(map[string]any)
			if !ok {
				t.Fatalf("accepted non-object %s", body)
			}
			for _, name := range sch.required {
				if _, ok := m[name]; !ok {
					t.Fatalf("accepted %s without %s", body, name)
				}
			}
			if sch == createClientSchema {
				if _, err := parseDateTime(m["expires"].(string)); err != nil {
					t.Fatalf("accepted unparsable expires in %s", body)
				}
				_ = m["deleteOnExpiration"].(bool)
			}
		}
	})
}
