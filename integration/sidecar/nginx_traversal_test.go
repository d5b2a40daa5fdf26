package sidecar_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// TestNginxForwardAuthTraversal puts a stock http.FileServer behind nginx
// (examples/nginx/nginx.conf.template) and the sidecar in forward-auth
// mode. nginx hands both the sidecar ($request_uri) and the file server
// (proxy_pass without a URI) the path undecoded, so ..%2F in a captured
// segment would be authorised as files:read:public/../secret.txt and
// served as /secret.txt; the sidecar must refuse it.
func TestNginxForwardAuthTraversal(t *testing.T) {
	nginx := nginxBinary(t)
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "public", "ok.txt"), []byte("public file\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("SECRET\n"), 0o600)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	// Not ServeMux for /fs: it would clean the path and redirect, hiding
	// what a plain file server does with the path it is given.
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fs/") {
			http.StripPrefix("/fs", http.FileServer(http.Dir(dir))).ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(files.Close)

	routes := "routes:\n  - method: GET\n    path: /healthz\n    public: true\n  - method: GET\n    path: /fs/<path*>\n    scopes: files:read:<path>\n"
	sc := c.StartSidecar(t, "fwd-traversal", "", routes, "--mode", "forward-auth", "--trusted-proxy", "127.0.0.1/32")

	prefix := filepath.Join(c.Dir, "nginx")
	if err := os.MkdirAll(prefix, 0o700); err != nil {
		t.Fatal(err)
	}
	listen := harness.FreeAddr(t)
	conf := strings.NewReplacer("{{PREFIX}}", prefix, "{{LISTEN}}", listen,
		"{{SIDECAR}}", strings.TrimPrefix(sc.URL, "http://"), "{{UPSTREAM}}", strings.TrimPrefix(files.URL, "http://")).
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

	reader := c.CreateClient(t, 0, "it/nginx-files", "files:read:public/*")
	get := func(path string) answer {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		auth, err := protocol.SignRequest(reader, "GET", base+path, protocol.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		return do(t, req)
	}
	expect(t, "the public file", get("/fs/public/ok.txt"), 200, "")
	for _, p := range []string{
		"/fs/public/..%2Fsecret.txt",
		"/fs/public/..%2fsecret.txt",
		"/fs/public/%2e%2e%2fsecret.txt",
		"/fs/public/..%5Csecret.txt",
		"/fs/public/..%252Fsecret.txt",
	} {
		a := get(p)
		if strings.Contains(string(a.body), "SECRET") || a.status == 200 {
			t.Errorf("%s: %d %s — nginx served what the sidecar authorised for another path", p, a.status, a.body)
		} else if a.status != 403 {
			// Refused by the sidecar, not by nginx failing the sub-request (500).
			t.Errorf("%s: %d %s, want 403", p, a.status, a.body)
		}
	}
	// Without the scope the secret stays refused whatever the spelling.
	if a := get("/fs/secret.txt"); a.status != 403 {
		t.Errorf("/fs/secret.txt: %d", a.status)
	}
}
