package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each case names several problems at once: all of them must be reported
// in one run, with exit status 2, and nothing may be written. The same
// configuration is then started without --check-config: start-up must
// refuse it with the same problems (one set of checks).
func TestCheckConfig(t *testing.T) {
	dir, write := tempWriter(t)
	badStatic := write("static.json", `[{"clientId": "nostatic", "accessToken": "x"},
	  {"clientId": "static/a", "accessToken": "short"},
	  {"clientId": "static/taskcluster/nosuch", "accessToken": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]`)
	goodStatic := write("good-static.json", `[{"clientId": "static/ops", "accessToken": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "description": "ops", "scopes": ["x"]}]`)
	badLogin := write("login.yaml", "publicUrl: https://tc.example.com\nstrategies:\n  - {name: a, type: oidc, issuer: 'not a url', clientId: c}\n  - {name: b, type: nosuch}\n")
	unknownKey := write("login-typo.yaml", "publicUrl: https://tc.example.com\nstratgies: []\n")
	badEvents := write("events.yaml", "exchangePrefix: x\n")
	brokenRoutes := write("routes.yaml", "routes:\n  - {method: GET, path: /x/<a>, scopes: 'x:<b>'}\n")
	bodyRoutes := write("body-routes.yaml", "routes:\n  - {method: POST, path: /x, body: [team], scopes: 'x:<team>'}\n")
	goodRoutes := write("good-routes.yaml", "routes:\n  - {method: GET, path: /x, authenticated: true}\n")
	stateDir := filepath.Join(dir, "with-state")
	if err := os.MkdirAll(filepath.Join(stateDir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("with-state/raft/node-id", "n1\n")
	badKeyring := filepath.Join(dir, "bad-keyring.json")
	write("bad-keyring.json", "{not json")
	fresh := filepath.Join(dir, "fresh") // must never be created

	cp := func(args ...string) []string { return append([]string{"controlplane"}, args...) }
	sc := func(args ...string) []string { return append([]string{"sidecar"}, args...) }
	tests := []struct {
		name string
		args []string
		want []string // each must be one reported line; nil = configuration OK
	}{
		{"controlplane ok", cp("--node-id", "n1", "--data-dir", fresh, "--insecure-raft", "--bootstrap", "--static-clients", goodStatic), nil},
		{"controlplane flags", cp("--data-dir", fresh, "--bootstrap", "--join", "ftp://x", "--http-addr", "nope", "--raft-advertise", "h:99999", "--trusted-proxy", "10.0.0.300"), []string{
			"flag --node-id is required", "--bootstrap and --join exclude each other", "Raft traffic needs --tls-ca",
			`--join "ftp://x": want an http(s) URL`, `--http-addr "nope": want host:port`, `--raft-advertise "h:99999": the port must be`,
			`--trusted-proxy: trusted proxy "10.0.0.300"`}},
		{"controlplane files", cp("--node-id", "n1", "--data-dir", fresh, "--bootstrap", "--static-clients", badStatic,
			"--tls-ca", filepath.Join(dir, "no-ca.pem"), "--tls-cert", filepath.Join(dir, "no-cert.pem"), "--tls-key", filepath.Join(dir, "no-key.pem"),
			"--login-config", badLogin, "--cloud-config", filepath.Join(dir, "no-cloud.yaml"), "--events-config", badEvents), []string{
			`static client "nostatic": clientId must start with static/`, `static client "static/a": accessToken must match`,
			`static client "static/taskcluster/nosuch" is not a built-in`, "Raft TLS:", `issuer "not a url"`, `unknown type "nosuch"`,
			"--cloud-config: open", "--events-config " + badEvents}},
		{"controlplane unknown key", cp("--node-id", "n1", "--data-dir", fresh, "--insecure-raft", "--login-config", unknownKey), []string{
			"field stratgies not found", "no token keyring; a node that joins a cluster"}},
		{"controlplane keyring", cp("--node-id", "n1", "--data-dir", stateDir, "--insecure-raft", "--bootstrap"), []string{
			"the token keyring is missing, but"}},
		{"controlplane bad keyring", cp("--node-id", "n1", "--data-dir", fresh, "--insecure-raft", "--keyring", badKeyring, "--raft-addr", ":x"), []string{
			"keyring: ", `--raft-addr ":x": the port must be`}},
		{"controlplane pprof without admin", cp("--node-id", "n1", "--data-dir", fresh, "--insecure-raft", "--bootstrap", "--pprof", "--admin-addr", ""), []string{
			"--pprof needs --admin-addr"}},
		{"controlplane admin addr", cp("--node-id", "n1", "--data-dir", fresh, "--insecure-raft", "--bootstrap", "--pprof", "--admin-addr", "nope"), []string{
			`--admin-addr "nope": want host:port`}},
		{"controlplane pprof ok", cp("--node-id", "n1", "--data-dir", fresh, "--insecure-raft", "--bootstrap", "--pprof", "--admin-addr", suggestedControlPlaneAdmin), nil},
		{"sidecar ok", sc("--routes", goodRoutes, "--upstream", "http://127.0.0.1:1", "--control-plane", "http://127.0.0.1:2"), nil},
		{"sidecar flags", sc("--mode", "bad", "--verify", "worse", "--listen", "x", "--admin-listen", "y:z", "--trusted-proxy", "1.2.3.999",
			"--public-host", "a/b", "--feed-wait", "2m"), []string{
			"mode must be proxy or forward-auth", "verify must be local or remote", `--listen "x"`, `--admin-listen "y:z"`,
			`trusted proxy "1.2.3.999"`, "public host must be", "feed wait cannot exceed", "a control-plane URL is required", "a route policy"}},
		{"sidecar routes", sc("--routes", brokenRoutes, "--upstream", "ftp://x", "--control-plane", "http://10.1.2.3"), []string{
			brokenRoutes + ":", `upstream "ftp://x" must be`, "needs an https control-plane URL"}},
		{"sidecar forward-auth", sc("--mode", "forward-auth", "--routes", bodyRoutes, "--control-plane", "nope"), []string{
			"forward-auth mode cannot use body parameters", `control plane "nope" must be`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setCreds(t, "", "check-config-test", "t")
			for _, check := range []bool{true, false} {
				if !check && tc.want == nil {
					continue // a good configuration would start
				}
				args := tc.args
				if check {
					args = append(append([]string{}, args...), "--check-config")
				}
				out, msg, code := runCLI(t, "", args...)
				if tc.want == nil {
					if code != 0 || strings.TrimSpace(out) != "configuration OK" {
						t.Fatalf("check=%v: exit %d, output %q, %s", check, code, out, msg)
					}
					continue
				}
				if code != 2 {
					t.Errorf("check=%v: exit %d, want 2 (%s)", check, code, msg)
				}
				lines := problemLines(errorsOf(t, args))
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("check=%v: %q not reported in\n%s", check, w, msg)
					}
				}
				if len(tc.want) > 1 && len(lines) < len(tc.want) {
					t.Errorf("check=%v: %d problems reported, want at least %d:\n%s", check, len(lines), len(tc.want), msg)
				}
			}
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Fatalf("the data directory %s was created (%v)", fresh, err)
			}
		})
	}
}

// errorsOf runs args and returns the error itself (not its text).
func errorsOf(t *testing.T, args []string) error {
	t.Helper()
	app := newApp()
	var sink strings.Builder
	app.Writer, app.ErrWriter = &sink, &sink
	return app.Run(prepareArgs(app, append([]string{"tcauth"}, args...)))
}

func TestProblemLines(t *testing.T) {
	one := badInput("just one")
	if got := describeError(one); got != "just one" {
		t.Errorf("one problem: %q", got)
	}
	err := configResult(nil, (&configErrors{badInput("first"), errorsJoinWrapped()}).err())
	got := describeError(err)
	want := "3 problems:\n  first\n  --static-clients f.json: a\n  --static-clients f.json: b"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if exitCode(err) != 2 {
		t.Errorf("exit %d, want 2", exitCode(err))
	}
}

func errorsJoinWrapped() error {
	return fmt.Errorf("--static-clients f.json: %w", errors.Join(errors.New("a"), errors.New("b")))
}
