package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/buildinfo"
)

// fakeAuthServer answers like a control plane: 403 InsufficientScopes (a
// multi-line message, as the real one) under /forbidden, a JSON body with
// HTML-escaped scopes elsewhere; it records the last request.
type fakeAuthServer struct {
	*httptest.Server
	last struct {
		method, path, rawQuery, body, auth string
	}
}

func newFakeAuthServer(t *testing.T) *fakeAuthServer {
	f := &fakeAuthServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.last.method, f.last.path, f.last.rawQuery, f.last.body = r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b)
		f.last.auth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "forbidden") {
			w.WriteHeader(403)
			io.WriteString(w, `{"code": "InsufficientScopes", "message": "Client ID c does not have sufficient scopes and is missing the following scopes:\n\n`+
				"```\\nauth:get-client:x\\n```"+`\n\n---\n\n* method: client", "requestInfo": {}}`)
			return
		}
		io.WriteString(w, `{"clientId": "x", "scopes": ["notes:write:\u003c..\u003e/*", "a\u0026b"], "big": 12345678901234567890}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func setCreds(t *testing.T, root, id, token string) {
	t.Setenv("TASKCLUSTER_ROOT_URL", root)
	t.Setenv("TASKCLUSTER_CLIENT_ID", id)
	t.Setenv("TASKCLUSTER_ACCESS_TOKEN", token)
	t.Setenv("TASKCLUSTER_CERTIFICATE", "")
}

// Exit codes by error class: 2 for bad usage, 1 for a refused call or an
// unreachable server, each with one line that says what to do.
func TestExitCodes(t *testing.T) {
	srv := newFakeAuthServer(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // a port nothing listens on
	tests := []struct {
		name     string
		env      [3]string // root URL, client id, token
		args     []string
		wantCode int
		wantMsg  string // a regexp the one-line message must match
	}{
		{"unknown command", [3]string{}, []string{"nosuch"}, 2, `^unknown command "nosuch" \(see 'tcauth --help'\)$`},
		{"unknown subcommand", [3]string{}, []string{"client", "nosuch"}, 2, `^client: unknown command "nosuch"`},
		{"unknown nested subcommand", [3]string{}, []string{"api", "auth", "nosuch"}, 2, `^api auth: unknown command "nosuch"`},
		{"unknown flag", [3]string{}, []string{"client", "get", "--bogus", "x"}, 2, `^client get: unknown flag --bogus \(see 'tcauth client get --help'\)$`},
		{"unknown flag of a group", [3]string{}, []string{"scopes", "--bogus"}, 2, `unknown flag --bogus`},
		{"bad duration", [3]string{}, []string{"signed-url", "--ttl", "5 fortnights", "http://x/"}, 2, `invalid value "5 fortnights" for flag --ttl`},
		{"bad expires", [3]string{srv.URL, "c", "t"}, []string{"client", "create", "x", "--description", "d", "--expires", "soon"}, 2, `--expires "soon"`},
		{"bad from-now", [3]string{}, []string{"from-now", "tomorrow"}, 2, `not a time expression`},
		{"no root URL", [3]string{"", "c", "t"}, []string{"client", "get", "x"}, 2, `TASKCLUSTER_ROOT_URL is not set`},
		{"no access token", [3]string{srv.URL, "c", ""}, []string{"client", "get", "x"}, 2, `TASKCLUSTER_ACCESS_TOKEN is not`},
		{"no access token, http", [3]string{srv.URL, "c", ""}, []string{"http", "GET", srv.URL}, 2, `TASKCLUSTER_ACCESS_TOKEN is not`},
		{"no access token, api", [3]string{srv.URL, "c", ""}, []string{"api", "auth", "ping"}, 2, `TASKCLUSTER_ACCESS_TOKEN is not`},
		{"wrong argument count", [3]string{srv.URL, "c", "t"}, []string{"api", "auth", "client"}, 2, `takes <clientId>, got 0`},
		{"relative URL without root", [3]string{"", "c", "t"}, []string{"http", "GET", "/api/auth/v1/ping"}, 2, `TASKCLUSTER_ROOT_URL is not set`},
		{"refused call", [3]string{srv.URL, "c", "t"}, []string{"client", "get", "forbidden"}, 1,
			`^InsufficientScopes \(HTTP 403\): Client ID c does not have sufficient scopes and is missing the following scopes: auth:get-client:x — ask for the missing scopes`},
		{"refused call, api", [3]string{srv.URL, "c", "t"}, []string{"api", "auth", "client", "forbidden"}, 1, `^InsufficientScopes \(HTTP 403\)`},
		{"unreachable", [3]string{dead.URL, "c", "t"}, []string{"client", "get", "x"}, 1,
			`^cannot reach ` + regexp.QuoteMeta(dead.URL) + ` \(Get ` + regexp.QuoteMeta(dead.URL) + `/api/auth/v1/clients/x\): connection refused — is the server running`},
		{"unreachable, http", [3]string{dead.URL, "c", "t"}, []string{"http", "GET", "/x"}, 1, `^cannot reach ` + regexp.QuoteMeta(dead.URL)},
		{"negative answer", [3]string{}, []string{"scopes", "satisfies", "--have", `["a"]`, "--expr", `"b"`}, 1, `^$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setCreds(t, tc.env[0], tc.env[1], tc.env[2])
			_, msg, code := runCLI(t, "", tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (%s)", code, tc.wantCode, msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
			if !regexp.MustCompile(tc.wantMsg).MatchString(msg) {
				t.Errorf("message %q does not match %s", msg, tc.wantMsg)
			}
		})
	}
}

// `tcauth http` takes a path relative to TASKCLUSTER_ROOT_URL.
func TestHTTPRelativePath(t *testing.T) {
	srv := newFakeAuthServer(t)
	for _, p := range []string{"/api/auth/v1/ping", "api/auth/v1/ping"} {
		setCreds(t, srv.URL+"/", "c", "t")
		if _, msg, code := runCLI(t, "", "http", "GET", p); code != 0 {
			t.Fatalf("%s: exit %d: %s", p, code, msg)
		}
		if srv.last.path != "/api/auth/v1/ping" || !strings.HasPrefix(srv.last.auth, "Hawk ") {
			t.Errorf("%s: sent %s (auth %q)", p, srv.last.path, srv.last.auth)
		}
	}
}

// `tcauth help client create` shows that subcommand, not `client`.
func TestHelpSubcommand(t *testing.T) {
	for _, args := range [][]string{{"help", "client", "create"}, {"client", "create", "--help"}, {"client", "help", "create"}} {
		out, msg, code := runCLI(t, "", args...)
		if code != 0 || !strings.Contains(out, "tcauth client create - create a client") || !strings.Contains(out, "--delete-on-expiration") {
			t.Errorf("%v: exit %d %s\n%s", args, code, msg, out)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"30 days", 30 * 24 * time.Hour, true},
		{"1 year", 365 * 24 * time.Hour, true},
		{"2 months", 60 * 24 * time.Hour, true},
		{"1d2h3min", 26*time.Hour + 3*time.Minute, true},
		{" 5 minutes ", 5 * time.Minute, true},
		{"2 hours", 2 * time.Hour, true},
		{"- 1 hour", -time.Hour, true},
		{"", 0, false},
		{"-", 0, false},
		{"5 fortnights", 0, false},
		{"days 30", 0, false},
		{"300 years", 0, false}, // past time.Duration's 292 years
	}
	for _, tc := range tests {
		got, err := protocol.ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// Duration flags read from a --config YAML file take fromNow too.
func TestConfigDurationFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/c.yaml"
	writeFile(t, cfg, "max-stale: 2 days\n")
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"x", "--config", cfg}, 48 * time.Hour},
		{[]string{"x", "--config", cfg, "--max-stale", "1 hour"}, time.Hour},
		{[]string{"x"}, 5 * time.Minute},
	} {
		var got time.Duration
		flags := []cli.Flag{&cli.StringFlag{Name: "config"}, configDuration("max-stale", 5*time.Minute, "")}
		app := &cli.App{Flags: flags, Before: altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config")),
			Action: func(c *cli.Context) error { got = flagDuration(c, "max-stale"); return nil }}
		if err := app.Run(tc.args); err != nil || got != tc.want {
			t.Errorf("%v: %v, %v; want %v", tc.args, got, err, tc.want)
		}
	}
}

func TestFromNowCommand(t *testing.T) {
	now := time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"30 days": "2025-03-02T12:00:00.000Z", "1 year": "2026-01-31T12:00:00.000Z",
		"2h30min": "2025-01-31T14:30:00.000Z", "- 1 day": "2025-01-30T12:00:00.000Z",
	} {
		got, err := fromNow(in, now)
		if err != nil || isoTime(got) != want {
			t.Errorf("fromNow(%q) = %s, %v; want %s", in, isoTime(got), err, want)
		}
	}
	out, msg, code := runCLI(t, "", "from-now", "1", "hour")
	got, err := time.Parse(time.RFC3339, strings.TrimSpace(out))
	if code != 0 || err != nil || time.Until(got) < 59*time.Minute || time.Until(got) > 61*time.Minute {
		t.Errorf("from-now 1 hour: %q %s %d", out, msg, code)
	}
}

// `tcauth version` and `--version` report the build; /__version__ serves
// the same (controlplane's TestVersionIsBuildInfo).
func TestVersionCommand(t *testing.T) {
	want := buildinfo.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		if out, msg, code := runCLI(t, "", args...); code != 0 || out != want {
			t.Errorf("%v: %q (%s, %d), want %q", args, out, msg, code, want)
		}
	}
	out, _, _ := runCLI(t, "", "version", "--json")
	var doc map[string]string
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc["version"] != buildinfo.Get().Version || doc["source"] == "" {
		t.Errorf("version --json: %q %v", out, err)
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "complete -o bashdefault", "zsh": "compdef _tcauth_complete tcauth", "fish": "complete -c tcauth"} {
		if out, msg, code := runCLI(t, "", "completion", shell); code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: %d %s\n%.300s", shell, code, msg, out)
		}
	}
	// What the scripts ask at <TAB>. urfave/cli reads os.Args to tell a
	// flag being completed from a command.
	defer func(saved []string) { os.Args = saved }(os.Args)
	os.Args = []string{"tcauth", "client", "--generate-bash-completion"}
	out, _, _ := runCLI(t, "", "client", "--generate-bash-completion")
	if !strings.Contains(out, "create\n") || !strings.Contains(out, "reset\n") {
		t.Errorf("client completions: %q", out)
	}
	os.Args = []string{"tcauth", "api", "auth", "--generate-bash-completion"}
	out, _, _ = runCLI(t, "", "api", "auth", "--generate-bash-completion")
	if !strings.Contains(out, "listAuditHistory\n") || !strings.Contains(out, "testAuthenticate\n") {
		t.Errorf("api auth completions: %q", out)
	}
}

// Every JSON the CLI prints keeps <, > and & as they are.
func TestCLIJSONNotHTMLEscaped(t *testing.T) {
	srv := newFakeAuthServer(t)
	setCreds(t, srv.URL, "c", "t")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"scopes normalize --json", []string{"scopes", "normalize", "--json", "notes:write:<..>/*", "a&b"}, `["a&b","notes:write:<..>/*"]`},
		{"scopes satisfies --json", []string{"scopes", "satisfies", "--json", "--have", `[]`, "--expr", `{"AllOf":["<a>","b&c"]}`}, `"<a>"`},
		{"scopes diff --json", []string{"scopes", "diff", "--json", `["<a>"]`, `["b&c"]`}, `"onlyA": [`},
		{"client get (re-indented answer)", []string{"client", "get", "x"}, `"notes:write:<..>/*"`},
		{"client get keeps numbers", []string{"client", "get", "x"}, `"big": 12345678901234567890`},
		{"version --json", []string{"version", "--json"}, `"source": "https://`},
	}
	for _, tc := range tests {
		out, msg, _ := runCLI(t, "", tc.args...)
		if strings.Contains(out, `\u00`) || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %q (%s), want it to contain %s and no \\u00 escapes", tc.name, out, msg, tc.want)
		}
	}
}

// The default ports do not collide with each other (dev, control plane,
// sidecar, the examples/cluster recipe) nor with well-known services.
func TestDefaultPortsDistinct(t *testing.T) {
	wellKnown := map[string]string{
		"8300": "Consul server RPC", "8301": "Consul Serf LAN", "8302": "Consul Serf WAN", "8500": "Consul HTTP", "8600": "Consul DNS",
		"9090": "Prometheus", "9091": "Prometheus Pushgateway", "9093": "Alertmanager", "9100": "node_exporter",
		"8200": "Vault", "8201": "Vault cluster", "4646": "Nomad", "4647": "Nomad RPC", "4648": "Nomad Serf",
		"2379": "etcd", "2380": "etcd peers", "4001": "rqlite HTTP", "4002": "rqlite Raft", "3000": "Grafana",
	}
	ports := map[string]string{} // port → which default
	add := func(what, addr string) {
		p := addr[strings.LastIndexByte(addr, ':')+1:]
		if p == "0" {
			return // any free port
		}
		if s, ok := wellKnown[p]; ok {
			t.Errorf("%s (%s) is %s's port", what, addr, s)
		}
		if prev, ok := ports[p]; ok {
			t.Errorf("%s and %s both default to port %s", what, prev, p)
		}
		ports[p] = what
	}
	add("controlplane --http-addr", defaultControlPlaneHTTP)
	add("controlplane --raft-addr", defaultControlPlaneRaft)
	add("controlplane --admin-addr (suggested)", suggestedControlPlaneAdmin)
	add("sidecar --listen", defaultSidecarListen)
	add("sidecar --admin-listen", defaultSidecarAdmin)
	add("dev --http-addr", defaultDevHTTP)
	add("dev --sidecar-addr", defaultDevSidecar)
	add("dev --raft-addr", defaultDevRaft)
	// The flags really use the constants.
	app := newApp()
	for _, c := range []struct{ cmd, flag, want string }{
		{"controlplane", "http-addr", defaultControlPlaneHTTP}, {"controlplane", "raft-addr", defaultControlPlaneRaft},
		{"sidecar", "listen", defaultSidecarListen}, {"sidecar", "admin-listen", defaultSidecarAdmin},
		{"dev", "http-addr", defaultDevHTTP}, {"dev", "sidecar-addr", defaultDevSidecar}, {"dev", "raft-addr", defaultDevRaft},
	} {
		if got := flagDefault(app, c.cmd, c.flag); got != c.want {
			t.Errorf("%s --%s defaults to %q, want %q", c.cmd, c.flag, got, c.want)
		}
	}
	script, err := os.ReadFile("../../examples/cluster/run-local-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"HTTP", "RAFT"} {
		m := regexp.MustCompile(`TCAUTH_CLUSTER_` + v + `_PORTS:-([0-9 ]+)\}`).FindSubmatch(script)
		if m == nil {
			t.Fatalf("no TCAUTH_CLUSTER_%s_PORTS default in the cluster script", v)
		}
		for i, p := range strings.Fields(string(m[1])) {
			add("examples/cluster "+strings.ToLower(v)+" n"+string(rune('1'+i)), "127.0.0.1:"+p)
		}
	}
}

func flagDefault(app *cli.App, cmd, flag string) string {
	for _, c := range app.Commands {
		if c.Name != cmd {
			continue
		}
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if n == flag {
					if g, ok := f.(cli.DocGenerationFlag); ok {
						return g.GetValue()
					}
				}
			}
		}
	}
	return ""
}

// Scope commands take scopes the same ways: the main list positionally or
// on standard input (lines, or JSON with --json), a named set as a JSON
// array or @FILE.
func TestScopeInputConsistent(t *testing.T) {
	held := t.TempDir() + "/held.txt"
	writeFile(t, held, "a:*\nb\n")
	expr := `{"AllOf":["a:1","b"]}`
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
		code  int
	}{
		{"satisfies positional", "", []string{"scopes", "satisfies", "--expr", expr, "a:*", "b"}, "", 0},
		{"satisfies stdin lines", "a:*\nb\n", []string{"scopes", "satisfies", "--expr", expr}, "", 0},
		{"satisfies stdin json", `["a:*","b"]`, []string{"scopes", "satisfies", "--json", "--expr", expr}, "null\n", 0},
		{"satisfies --have @FILE", "", []string{"scopes", "satisfies", "--have", "@" + held, "--expr", expr}, "", 0},
		{"satisfies --have @-", "a:*\n", []string{"scopes", "satisfies", "--have", "@-", "--expr", expr}, "b\n", 1},
		{"intersect @FILE", "", []string{"scopes", "intersect", "--a", "@" + held, "--b", `["a:1"]`}, "a:1\n", 0},
		{"diff @FILE", "", []string{"scopes", "diff", "@" + held, `["a:*","b"]`}, "", 0},
	}
	for _, tc := range tests {
		out, msg, code := runCLI(t, tc.stdin, tc.args...)
		if out != tc.want || code != tc.code {
			t.Errorf("%s: %q exit %d (%s), want %q exit %d", tc.name, out, code, msg, tc.want, tc.code)
		}
	}
}
