package sidecar_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// nginxBinary finds Debian's nginx; absent, the test skips — unless
// TCAUTH_REQUIRE_PEERS=1 (make test installs it), where that is a failure.
// The template also needs the headers-more module (nginxModule).
func nginxBinary(t *testing.T) string {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			if _, err := os.Stat(nginxModule); err == nil {
				return path
			}
			break
		}
	}
	if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
		t.Fatal("nginx and its headers-more module are required (make deps-nginx installs nginx-light and libnginx-mod-http-headers-more-filter)")
	}
	t.Skip("nginx or its headers-more module not installed (make deps-nginx installs them)")
	return ""
}

// nginxModule is where Debian's libnginx-mod-http-headers-more-filter puts
// the module the template loads.
const nginxModule = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"

// startNginx runs examples/nginx/nginx.conf.template with a real nginx in
// front of upstream (host:port), asking the forward-auth sidecar at
// sidecarURL. It returns nginx's base URL once readyPath answers 200; nginx
// is stopped with the cluster.
func startNginx(t *testing.T, c *harness.Cluster, sidecarURL, upstream, readyPath string) string {
	t.Helper()
	nginx := nginxBinary(t)
	prefix := filepath.Join(c.Dir, "nginx-"+filepath.Base(t.Name()))
	if err := os.MkdirAll(prefix, 0o700); err != nil {
		t.Fatal(err)
	}
	listen := harness.FreeAddr(t)
	conf := strings.NewReplacer("{{PREFIX}}", prefix, "{{LISTEN}}", listen,
		"{{SIDECAR}}", strings.TrimPrefix(sidecarURL, "http://"), "{{UPSTREAM}}", upstream).
		Replace(string(harness.ReadFile(t, nginxTemplate())))
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-p", prefix, "-c", confPath, "-g", "daemon off;").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	ng := harness.NewProcess(t, nginx, "nginx-"+filepath.Base(t.Name()), c.Dir, "-p", prefix, "-c", confPath, "-g", "daemon off;")
	c.Track(ng)
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + listen
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(ctx, base+readyPath, 200, 20*time.Second); err != nil {
		t.Fatalf("nginx: %v\n%s", err, harness.ReadFile(t, filepath.Join(prefix, "error.log")))
	}
	return base
}

// nginxTemplate is the template under test; TCAUTH_NGINX_TEMPLATE points
// at another one (to show that a test fails on an older template).
func nginxTemplate() string {
	if p := os.Getenv("TCAUTH_NGINX_TEMPLATE"); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), "examples", "nginx", "nginx.conf.template")
}

// nginxCall sends method path to base, Hawk-signed with creds (nil:
// anonymous); hdr values are set under exactly the given names (no
// canonicalisation, so lower-case and underscore variants go out as
// written).
func nginxCall(t *testing.T, base string, creds *protocol.Credentials, method, path, body string, opts protocol.SignOptions, hdr map[string]string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if creds != nil {
		auth, err := protocol.SignRequest(*creds, method, base+path, opts)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
	}
	if opts.ContentType != "" {
		req.Header.Set("Content-Type", opts.ContentType)
	}
	for k, v := range hdr {
		req.Header[k] = append(req.Header[k], v)
	}
	return do(t, req)
}

// TestNginxForwardAuth runs examples/nginx/nginx.conf.template with a real
// nginx, the sidecar in forward-auth mode and the notes service.
func TestNginxForwardAuth(t *testing.T) {
	nginxBinary(t)
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	notes := c.StartNotes(t)
	routes := harness.ReadFile(t, filepath.Join(repoRoot(), "examples", "notes", "routes.yaml"))
	sc := c.StartSidecar(t, "fwd-sidecar", "", string(routes), "--mode", "forward-auth", "--trusted-proxy", "127.0.0.1/32")
	base := startNginx(t, c, sc.URL, notes, "/healthz")

	writer := c.CreateClient(t, 0, "it/nginx-writer", "notes:write:*")
	reader := c.CreateClient(t, 0, "it/nginx-reader", "notes:read:*")
	call := func(creds *protocol.Credentials, method, path, body string, hdr map[string]string) answer {
		t.Helper()
		return nginxCall(t, base, creds, method, path, body, protocol.SignOptions{}, hdr)
	}

	expect(t, "writer PUT through nginx", call(&writer, "PUT", "/notes/n", "via nginx", nil), 200, "")
	who := call(&reader, "GET", "/whoami", "", map[string]string{"X-Taskcluster-Client-Id": "static/taskcluster/root", "X-Taskcluster-Scopes": `["*"]`})
	expect(t, "whoami through nginx", who, 200, "")
	var w struct {
		ClientID string   `json:"clientId"`
		Scopes   []string `json:"scopes"`
	}
	if err := json.Unmarshal(who.body, &w); err != nil || w.ClientID != "it/nginx-reader" {
		t.Fatalf("the service saw clientId %q (forged or missing): %s", w.ClientID, who.body)
	}
	for _, s := range w.Scopes {
		if s == "*" {
			t.Fatal("a forged scope reached the service")
		}
	}
	expect(t, "reader GET", call(&reader, "GET", "/notes/n", "", nil), 200, "")

	noCreds := call(nil, "GET", "/notes/n", "", nil)
	expect(t, "no credentials", noCreds, 401, "AuthenticationFailed")
	if noCreds.header.Get("WWW-Authenticate") != "hawk" {
		t.Error("401 without WWW-Authenticate: hawk")
	}
	denied := call(&reader, "PUT", "/notes/n", "nope", nil)
	expect(t, "reader PUT", denied, 403, "InsufficientScopes")
	if msg, _ := denied.json(t)["message"].(string); !strings.Contains(msg, "notes:write:n") {
		t.Errorf("403 does not name the unsatisfied scope: %s", msg)
	}
	if got := call(&reader, "GET", "/notes/n", "", nil).json(t)["text"]; got != "via nginx" {
		t.Errorf("the refused PUT changed the note: %v", got)
	}
	expect(t, "public /healthz", call(nil, "GET", "/healthz", "", nil), 200, "")
	// Unmatched routes are denied (403, which nginx passes on).
	if a := call(&writer, "GET", "/admin", "", nil); a.status != 403 {
		t.Errorf("unmatched route: %d", a.status)
	}
}

// TestNginxForgedIdentityHeaders: whatever X-Taskcluster-* headers a caller
// sends through nginx, in whatever spelling, the service sees only the ones
// the sidecar attached — anonymous or authenticated, with or without a
// payload hash.
func TestNginxForgedIdentityHeaders(t *testing.T) {
	nginxBinary(t)
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	rec := &harness.HeaderRecorder{}
	svc := httptest.NewServer(rec)
	t.Cleanup(svc.Close)
	routes := "routes:\n  - {method: GET, path: /public, public: true}\n" +
		"  - {method: GET, path: /echo, authenticated: true}\n  - {method: PUT, path: /echo, authenticated: true}\n"
	sc := c.StartSidecar(t, "forged-sidecar", "", routes, "--mode", "forward-auth", "--trusted-proxy", "127.0.0.1/32")
	base := startNginx(t, c, sc.URL, strings.TrimPrefix(svc.URL, "http://"), "/public")
	user := c.CreateClient(t, 0, "it/nginx-forger", "forger:a")

	body := `{"note": "signed"}`
	withHash := protocol.SignOptions{HasPayload: true, ContentType: "application/json", Payload: []byte(body)}
	cases := []struct {
		name   string
		creds  *protocol.Credentials
		method string
		path   string
		opts   protocol.SignOptions
		want   map[string]string // the X-Taskcluster-* headers the service must see
	}{
		{"anonymous, public route", nil, "GET", "/public", protocol.SignOptions{},
			map[string]string{"x-taskcluster-auth-scheme": "none", "x-taskcluster-route": "*"}},
		{"authenticated", &user, "GET", "/echo", protocol.SignOptions{},
			map[string]string{"x-taskcluster-auth-scheme": "hawk", "x-taskcluster-client-id": user.ClientID}},
		{"authenticated with a payload hash", &user, "PUT", "/echo", withHash,
			map[string]string{"x-taskcluster-auth-scheme": "hawk", "x-taskcluster-client-id": user.ClientID,
				"x-taskcluster-payload-hash": protocol.PayloadHash("application/json", []byte(body))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := ""
			if tc.method == "PUT" {
				b = body
			}
			a := nginxCall(t, base, tc.creds, tc.method, tc.path, b, tc.opts, harness.ForgedIdentityHeaders())
			expect(t, tc.name, a, 200, "")
			got := rec.Take()
			if got == nil {
				t.Fatal("the request did not reach the service")
			}
			checkIdentityHeaders(t, got, tc.want)
		})
	}
}

// checkIdentityHeaders fails if any forged value reached the service (under
// any name) or an expected identity header is missing or different ("*":
// present with any value).
func checkIdentityHeaders(t *testing.T, got http.Header, want map[string]string) {
	t.Helper()
	var tc []string
	for name, vs := range got {
		norm := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		for _, v := range vs {
			if strings.Contains(v, "forged-") {
				t.Errorf("forged header reached the service: %s: %s", name, v)
			}
		}
		if strings.HasPrefix(norm, "x-taskcluster") {
			tc = append(tc, name)
		}
	}
	sort.Strings(tc)
	t.Logf("X-Taskcluster-* headers the service saw: %v", tc)
	for name, v := range want {
		if g := got.Get(name); g != v && (v != "*" || g == "") {
			t.Errorf("%s = %q, want %q", name, g, v)
		}
	}
}
