package main

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/controlplane"
)

// Every endpoint of the route table is a `tcauth api auth` subcommand
// (peer-only ones excepted), and for each the command line maps onto a
// request that the server routes to that same endpoint with the same
// parameters: arguments into the path (values with "/", spaces, "<>" and
// "&" survive the escaping), query flags into the query string, standard
// input into the body.
func TestAPIAuthEveryMethod(t *testing.T) {
	srv := newFakeAuthServer(t)
	setCreds(t, srv.URL, "c", "t")
	app := newApp()
	var listed []string
	for _, c := range app.Commands {
		if c.Name == "api" {
			for _, sub := range c.Subcommands[0].Subcommands {
				if sub.Name != "help" {
					listed = append(listed, sub.Name)
				}
			}
		}
	}
	var want []string
	methods := controlplane.APIMethods()
	for _, m := range methods {
		if !m.Internal {
			want = append(want, m.Name)
		}
	}
	sort.Strings(listed)
	sort.Strings(want)
	if !reflect.DeepEqual(listed, want) {
		t.Errorf("api auth offers %v\nroute table has %v", listed, want)
	}
	if len(want) < 40 {
		t.Fatalf("only %d methods: the route table was not read", len(want))
	}
	for _, m := range methods {
		if m.Internal {
			continue
		}
		t.Run(m.Name, func(t *testing.T) { checkAPIMethod(t, srv, m) })
	}
}

func checkAPIMethod(t *testing.T, srv *fakeAuthServer, m controlplane.APIMethod) {
	args := []string{"api", "auth", m.Name}
	wantParams := map[string]string{}
	for _, a := range m.Args {
		v := "v/" + a + " <x>&y"
		args = append(args, v)
		wantParams[a] = v
	}
	wantQuery := url.Values{}
	for _, q := range m.Query {
		args = append(args, "--"+q, "q "+q+"&<>")
		wantQuery.Set(q, "q "+q+"&<>")
	}
	stdin, wantBody := "", ""
	if m.Input {
		stdin, wantBody = ` {"k": "<v>&"} `+"\n", `{"k": "<v>&"}`
	} else if m.RawBody {
		stdin, wantBody = "raw\x00bytes", "raw\x00bytes"
	}
	srv.last.method, srv.last.path = "", ""
	if _, msg, code := runCLI(t, stdin, args...); code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, msg)
	}
	u := &url.URL{Path: "/", RawPath: srv.last.path}
	if p, err := url.PathUnescape(srv.last.path); err == nil {
		u.Path = p
	}
	name, params, ok := controlplane.EndpointOf(srv.last.method, u)
	if !ok || name != m.Name {
		t.Fatalf("sent %s %s, which the server routes to %q (ok %v)", srv.last.method, srv.last.path, name, ok)
	}
	if params == nil {
		params = map[string]string{}
	}
	if !reflect.DeepEqual(params, wantParams) {
		t.Errorf("path parameters %v, want %v", params, wantParams)
	}
	gotQuery, _ := url.ParseQuery(srv.last.rawQuery)
	if !reflect.DeepEqual(gotQuery, wantQuery) {
		t.Errorf("query %v, want %v", gotQuery, wantQuery)
	}
	if srv.last.body != wantBody {
		t.Errorf("body %q, want %q", srv.last.body, wantBody)
	}
	if !strings.HasPrefix(srv.last.auth, "Hawk ") {
		t.Errorf("not signed: %q", srv.last.auth)
	}
}

// The answer goes to -o FILE as the server sent it; bad input is refused
// before anything is sent.
func TestAPIAuthOutputAndInput(t *testing.T) {
	srv := newFakeAuthServer(t)
	setCreds(t, srv.URL, "c", "t")
	out := filepath.Join(t.TempDir(), "answer.json")
	if stdout, msg, code := runCLI(t, "", "api", "auth", "client", "x", "-o", out); code != 0 || stdout != "" {
		t.Fatalf("exit %d %s, stdout %q", code, msg, stdout)
	}
	data, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(data), `"clientId": "x"`) {
		t.Errorf("-o file: %q %v", data, err)
	}
	srv.last.method = ""
	if _, msg, code := runCLI(t, "not json", "api", "auth", "expandScopes"); code != 2 || !strings.Contains(msg, "not JSON") || srv.last.method != "" {
		t.Errorf("non-JSON input: exit %d %q, sent %q", code, msg, srv.last.method)
	}
	if _, msg, code := runCLI(t, "", "api", "auth", "client", "a", "b"); code != 2 || !strings.Contains(msg, "takes <clientId>, got 2") {
		t.Errorf("extra argument: exit %d %q", code, msg)
	}
}
