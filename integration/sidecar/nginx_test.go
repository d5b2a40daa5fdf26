package sidecar_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// nginxBinary finds Debian's nginx; absent, the test skips — unless
// TCAUTH_REQUIRE_PEERS=1 (make test installs it), where that is a failure.
func nginxBinary(t *testing.T) string {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
		t.Fatal("nginx is required (make deps installs Debian's nginx-light)")
	}
	t.Skip("nginx not installed (make deps installs it)")
	return ""
}

// TestNginxForwardAuth runs examples/nginx/nginx.conf.template with a real
// nginx, the sidecar in forward-auth mode and the notes service.
func TestNginxForwardAuth(t *testing.T) {
	nginx := nginxBinary(t)
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	notes := c.StartNotes(t)
	routes := harness.ReadFile(t, filepath.Join(repoRoot(), "examples", "notes", "routes.yaml"))
	sc := c.StartSidecar(t, "fwd-sidecar", "", string(routes), "--mode", "forward-auth", "--trusted-proxy", "127.0.0.1/32")

	prefix := filepath.Join(c.Dir, "nginx")
	if err := os.MkdirAll(prefix, 0o700); err != nil {
		t.Fatal(err)
	}
	listen := harness.FreeAddr(t)
	conf := strings.NewReplacer("{{PREFIX}}", prefix, "{{LISTEN}}", listen,
		"{{SIDECAR}}", strings.TrimPrefix(sc.URL, "http://"), "{{UPSTREAM}}", notes).
		Replace(string(harness.ReadFile(t, filepath.Join(repoRoot(), "examples", "nginx", "nginx.conf.template"))))
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-p", prefix, "-c", confPath, "-g", "daemon off;").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	ng := harness.NewProcess(t, nginx, "nginx", c.Dir, "-p", prefix, "-c", confPath, "-g", "daemon off;")
	c.Track(ng)
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + listen
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(ctx, base+"/healthz", 200, 20*time.Second); err != nil {
		t.Fatalf("nginx: %v\n%s", err, harness.ReadFile(t, filepath.Join(prefix, "error.log")))
	}

	writer := c.CreateClient(t, 0, "it/nginx-writer", "notes:write:*")
	reader := c.CreateClient(t, 0, "it/nginx-reader", "notes:read:*")
	call := func(creds *protocol.Credentials, method, path, body string, hdr map[string]string) answer {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if creds != nil {
			auth, err := protocol.SignRequest(*creds, method, base+path, protocol.SignOptions{})
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", auth)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return do(t, req)
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
