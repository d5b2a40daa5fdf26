package sidecar

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error, each must appear
	}{
		{"yaml syntax", "routes:\n  - method: GET\n    path: [unclosed\n", []string{"bad.yaml", "line"}},
		{"empty file", "", []string{"empty"}},
		{"top level list", "- a\n", []string{"bad.yaml:1:1", "top level"}},
		{"unknown top key", "routs: []\n", []string{"bad.yaml:1:1", `unknown key "routs"`}},
		{"missing scopes", "routes:\n  - method: GET\n    path: /x\n", []string{"bad.yaml:2:5", "route 1 (GET /x)", "scopes is missing"}},
		{"missing path", "routes:\n  - method: GET\n    scopes: a\n", []string{"bad.yaml:2:5", "path is missing"}},
		{"bad method", "routes:\n  - method: get it\n    path: /x\n    scopes: a\n", []string{"bad.yaml:2:13", `"get it" is not an HTTP method`}},
		{"bad capture", "routes:\n  - method: GET\n    path: /x/<a-b>\n    scopes: a\n", []string{"bad.yaml:3:11", "route 1 (GET /x/<a-b>)", "not a valid capture"}},
		{"partial capture", "routes:\n  - method: GET\n    path: /x/v<id>\n    scopes: a\n", []string{"whole segment"}},
		{"rest not last", "routes:\n  - method: GET\n    path: /x/<p*>/y\n    scopes: a\n", []string{"last path segment"}},
		{"unknown param", "routes:\n  - method: GET\n    path: /x/<id>\n    scopes: a:<other>\n", []string{"bad.yaml:4:13", "<other>"}},
		{"param twice", "routes:\n  - method: GET\n    path: /x/<id>\n    query: [id]\n    scopes: a:<id>\n", []string{"declared both"}},
		{"public with scopes", "routes:\n  - method: GET\n    path: /x\n    public: true\n    scopes: a\n", []string{"cannot also require scopes"}},
		{"bad expression", "routes:\n  - method: GET\n    path: /x\n    scopes: {OneOf: [a]}\n", []string{"route 1 (GET /x)", "scopes:"}},
		{"bad default", "default: allow\n", []string{"bad.yaml:1:10", "default"}},
		{"dot segment", "routes:\n  - method: GET\n    path: /a/../b\n    scopes: a\n", []string{"dot segments"}},
		{"second route named", "routes:\n  - method: GET\n    path: /ok\n    public: true\n  - method: PUT\n    path: /bad\n", []string{"bad.yaml:5:5", "route 2 (PUT /bad)"}},
		{"several errors at once", "routes:\n  - method: GET\n    path: /a\n  - method: GET\n    path: b\n    scopes: x\n", []string{"route 1 (GET /a)", "route 2 (GET b)", "must start with /"}},
		{"maxBodyBytes", "maxBodyBytes: -1\n", []string{"maxBodyBytes must be a positive integer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidRoutes) {
				t.Errorf("error %v does not wrap ErrInvalidRoutes", err)
			}
			var re *RouteError
			if !errors.As(err, &re) {
				t.Errorf("error %v is not a *RouteError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPolicyMatch(t *testing.T) {
	pol, err := ParsePolicy("t.yaml", []byte(testRoutes))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		route        string // "" = no match
		params       map[string]string
	}{
		{"GET", "/notes/a", "GET /notes/<name>", map[string]string{"name": "a"}},
		{"HEAD", "/notes/a", "GET /notes/<name>", map[string]string{"name": "a"}},
		{"GET", "/notes/a%2Fb", "GET /notes/<name>", map[string]string{"name": "a/b"}},
		{"GET", "/notes/", "", nil},
		{"GET", "/notes", "", nil},
		{"GET", "/notes/a/b", "", nil},
		{"POST", "/notes/a", "PUT,POST /notes/<name>", map[string]string{"name": "a"}},
		{"PATCH", "/whoami", "* /whoami", nil},
		{"GET", "/files/a/b/c", "GET /files/<path*>", map[string]string{"path": "a/b/c"}},
		{"GET", "/files/", "", nil},
		{"GET", "/files", "", nil},
		{"OPTIONS", "/notes/a", "", nil},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			segs, err := splitPath(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			r, params, ok := pol.Match(tc.method, segs)
			if tc.route == "" {
				if ok {
					t.Fatalf("matched %q", r.Name)
				}
				return
			}
			if !ok || r.Name != tc.route {
				t.Fatalf("matched %v, want %q", r, tc.route)
			}
			if len(params) != len(tc.params) {
				t.Fatalf("params %v, want %v", params, tc.params)
			}
			for k, v := range tc.params {
				if params[k] != v {
					t.Errorf("param %s = %q, want %q", k, params[k], v)
				}
			}
		})
	}
}

func TestSplitPathRefusesDotSegments(t *testing.T) {
	for _, p := range []string{"/a/..", "/a/%2e%2e/b", "/./a", "/a/%2E"} {
		if _, err := splitPath(p); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}

func TestDefaultRoutes(t *testing.T) {
	for _, tc := range []struct {
		yaml   string
		public bool
		match  bool
	}{
		{"default: deny\n", false, false},
		{"default: public\n", true, true},
		{"default: {scopes: svc:any}\n", false, true},
	} {
		pol, err := ParsePolicy("d.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		r, _, ok := pol.Match("GET", []string{"x"})
		if ok != tc.match || ok && r.Public != tc.public {
			t.Errorf("%q: match=%v route=%+v", tc.yaml, ok, r)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testRoutes))
	f.Add([]byte("default: public\n"))
	f.Add([]byte("routes:\n  - method: [GET, PUT]\n    path: /a/<b>/<c*>\n    query: [q]\n    scopes: {AllOf: [\"x:<b>:<c>:<q>\", {for: t, in: q, each: \"y:<t>\"}]}\n"))
	f.Add([]byte("routes: {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pol, err := ParsePolicy("fuzz.yaml", data)
		if err != nil {
			var re *RouteError
			if !errors.As(err, &re) {
				t.Fatalf("error is not a *RouteError: %v", err)
			}
			return
		}
		// Every accepted policy can be matched against without panicking.
		for _, p := range []string{"/", "/a/b/c", "/notes/x", "/a/%2F/"} {
			segs, err := splitPath(p)
			if err != nil {
				continue
			}
			if r, params, ok := pol.Match("GET", segs); ok && !r.Public {
				m := map[string]any{}
				for k, v := range params {
					m[k] = v
				}
				_, _, _ = r.Template.Render(m)
			}
		}
	})
}

func FuzzPathMatch(f *testing.F) {
	pol, err := ParsePolicy("t.yaml", []byte(testRoutes))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/notes/a", "/files/a/b", "/notes/%2e%2e", "/a//b", "/notes/a%2Fb", "/files/"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		segs, err := splitPath(path)
		if err != nil {
			return
		}
		for _, s := range segs {
			if s == "." || s == ".." {
				t.Fatalf("dot segment %q survived in %q", s, path)
			}
		}
		r, params, ok := pol.Match(method, segs)
		if !ok {
			return
		}
		// Captures are never empty and come from the path's segments.
		for k, v := range params {
			if v == "" {
				t.Fatalf("%s: empty capture %s for route %s", path, k, r.Name)
			}
		}
		// A route without a rest capture matched exactly its segment count.
		if r.rest == "" && len(segs) != len(r.segs) {
			t.Fatalf("%s matched %s with %d segments", path, r.Name, len(segs))
		}
	})
}
