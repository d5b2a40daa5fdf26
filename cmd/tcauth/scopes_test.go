package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the tcauth app in-process with the given arguments and
// standard input, returning stdout, stderr-equivalent error text and the
// exit code main would use.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	app.Reader = strings.NewReader(stdin)
	err := app.Run(prepareArgs(app, append([]string{"tcauth"}, args...)))
	if err == nil {
		return out.String(), "", 0
	}
	msg := ""
	if err != errNo {
		msg = describeError(err)
	}
	return out.String(), msg, exitCode(err)
}

func TestScopesCLI(t *testing.T) {
	dir := t.TempDir()
	roles := filepath.Join(dir, "roles.json")
	writeFile(t, roles, `[
	  {"roleId": "group:admins", "scopes": ["admin-scope-1", "assume:group:devs"], "description": "ignored"},
	  {"roleId": "group:devs", "scopes": ["dev-scope"]},
	  {"roleId": "project-admin:*", "scopes": ["secrets:get:project/<..>/*"]}
	]`)
	cyclic := filepath.Join(dir, "cyclic.json")
	writeFile(t, cyclic, `[{"roleId": "a", "scopes": ["assume:a"]}]`)
	badScopeRoles := filepath.Join(dir, "badscope.json")
	writeFile(t, badScopeRoles, `[{"roleId": "a", "scopes": ["tab\there"]}]`)
	setA := filepath.Join(dir, "a.txt")
	writeFile(t, setA, "queue:*\nsecrets:get:x\n")

	tests := []struct {
		name     string
		stdin    string
		args     []string
		want     string
		wantErr  string // substring of the error line
		wantCode int
	}{
		{name: "normalize args", args: []string{"scopes", "normalize", "a", "a*", "ab", "b"}, want: "a*\nb\n"},
		{name: "normalize stdin lines", stdin: "q:1\nq:*\nq:2\nr\n", args: []string{"scopes", "normalize"}, want: "q:*\nr\n"},
		{name: "normalize stdin json", stdin: `["x:*","x*",""]`, args: []string{"scopes", "normalize", "--json"}, want: `["","x*"]` + "\n"},
		{name: "normalize bad scope", args: []string{"scopes", "normalize", "caf\u00e9"}, wantErr: "invalid scope", wantCode: 2},
		{name: "normalize bad json", stdin: `{"a":1}`, args: []string{"scopes", "normalize", "--json"}, wantErr: "JSON array", wantCode: 2},
		{name: "intersect", args: []string{"scopes", "intersect", "--json", "--a", `["a*"]`, "--b", `["ab*","b"]`}, want: `["ab*"]` + "\n"},
		{name: "intersect unordered", args: []string{"scopes", "intersect", "--a", `["a*","ab"]`, "--b", `["ab*"]`}, want: "ab\nab*\n"},
		{name: "intersect bad", args: []string{"scopes", "intersect", "--a", `["a"`, "--b", `[]`}, wantErr: "--a", wantCode: 2},
		{name: "satisfied", args: []string{"scopes", "satisfies", "--have", `["a:*","b"]`, "--expr", `{"AllOf":["a:1","b"]}`}, want: ""},
		{name: "satisfied json", args: []string{"scopes", "satisfies", "--json", "--have", `["a:*","b"]`, "--expr", `"a:1"`}, want: "null\n"},
		{name: "unsatisfied", args: []string{"scopes", "satisfies", "--have", `["a"]`, "--expr", `{"AllOf":["a","b",{"AnyOf":["c","d"]}]}`},
			want: "{\n  \"AllOf\": [\n    \"b\",\n    {\n      \"AnyOf\": [\n        \"c\",\n        \"d\"\n      ]\n    }\n  ]\n}\n", wantCode: 1},
		{name: "unsatisfied single", args: []string{"scopes", "satisfies", "--have", `["a:*"]`, "--expr", `{"AllOf":["a:1","b"]}`}, want: "b\n", wantCode: 1},
		{name: "unsatisfied json", args: []string{"scopes", "satisfies", "--json", "--have", `["x"]`, "--expr", `{"AnyOf":[{"AllOf":["x","y"]},"z"]}`}, want: `{"AnyOf":["y","z"]}` + "\n", wantCode: 1},
		{name: "bad expression", args: []string{"scopes", "satisfies", "--have", `[]`, "--expr", `{"AllOf":["a"],"AnyOf":["b"]}`}, wantErr: "--expr", wantCode: 2},
		{name: "expand", args: []string{"scopes", "expand", "--roles", roles, "assume:group:admins", "my-scope"},
			want: "admin-scope-1\nassume:group:admins\nassume:group:devs\ndev-scope\nmy-scope\n"},
		{name: "expand parameterised", args: []string{"scopes", "expand", "--json", "--roles", roles, "assume:project-admin:ops*"},
			want: `["assume:project-admin:ops*","secrets:get:project/ops*"]` + "\n"},
		{name: "expand cycle", args: []string{"scopes", "expand", "--roles", cyclic, "x"}, wantErr: "cycles", wantCode: 2},
		{name: "expand bad role scope", args: []string{"scopes", "expand", "--roles", badScopeRoles, "x"}, wantErr: "invalid scope", wantCode: 2},
		{name: "expand missing file", args: []string{"scopes", "expand", "--roles", filepath.Join(dir, "nope.json"), "x"}, wantErr: "--roles", wantCode: 2},
		{name: "diff same", args: []string{"scopes", "diff", `["a*"]`, `["a*","ab"]`}, want: ""},
		{name: "diff differs", args: []string{"scopes", "diff", "@" + setA, `["queue:create-task:x","other"]`},
			want: "- queue:*\n- secrets:get:x\n+ other\n", wantCode: 1},
		{name: "diff json", args: []string{"scopes", "diff", "--json", `["a"]`, `["b"]`},
			want: "{\n  \"onlyA\": [\n    \"a\"\n  ],\n  \"onlyB\": [\n    \"b\"\n  ]\n}\n", wantCode: 1},
		{name: "missing flag", args: []string{"scopes", "satisfies", "--have", `[]`}, wantErr: "--expr is required", wantCode: 2},
		{name: "diff arity", args: []string{"scopes", "diff", `["a"]`}, wantErr: "two scope sets", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errText, code := runCLI(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d (out %q, err %q)", code, tc.wantCode, out, errText)
			}
			if tc.wantErr != "" {
				if !strings.Contains(errText, tc.wantErr) {
					t.Fatalf("error %q does not mention %q", errText, tc.wantErr)
				}
				if strings.Contains(errText, "\n") {
					t.Fatalf("error is more than one line: %q", errText)
				}
				return
			}
			if out != tc.want {
				t.Fatalf("output\n%q\nwant\n%q", out, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
