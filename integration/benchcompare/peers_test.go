package benchcompare

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// The peers that are not tcauth, nginx or Caddy run as separate processes
// too: the test binary re-executed with peerRoleEnv naming the role, so
// that their CPU is theirs and not the load generator's. TestMain
// dispatches before any test runs.
const (
	peerRoleEnv   = "BENCH_PEER_ROLE" // "upstream" or "plain-proxy"
	peerListenEnv = "BENCH_PEER_LISTEN"
	peerTargetEnv = "BENCH_PEER_TARGET" // plain-proxy: the upstream's base URL
)

// upstreamBody is the trivial service's answer: 200 and a small JSON body.
const upstreamBody = `{"ok":true,"service":"bench-upstream"}`

// seenClientHeader is the upstream's echo of the X-Taskcluster-Client-Id
// it received, so that every measured request proves the proxy in front
// attached the verified identity (and that nothing forged got through).
const seenClientHeader = "X-Bench-Seen-Client"

// runPeer runs the role named in the environment and exits; it returns
// false when no role is set (a normal test run).
func runPeer() bool {
	role := os.Getenv(peerRoleEnv)
	if role == "" {
		return false
	}
	var h http.Handler
	switch role {
	case "upstream":
		h = http.HandlerFunc(serveUpstream)
	case "plain-proxy":
		target, err := url.Parse(os.Getenv(peerTargetEnv))
		if err != nil || target.Host == "" {
			fmt.Fprintf(os.Stderr, "plain-proxy: bad %s %q\n", peerTargetEnv, os.Getenv(peerTargetEnv))
			os.Exit(2)
		}
		h = plainProxy(target)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", peerRoleEnv, role)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Getenv(peerListenEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Fprintf(os.Stderr, "%s listening on %s\n", role, ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func serveUpstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(seenClientHeader, r.Header.Get("X-Taskcluster-Client-Id"))
	w.Write([]byte(upstreamBody))
}

// plainProxy is contender (b), what one would write without tcauth: a
// ReverseProxy with Rewrite, a keep-alive transport with the sidecar's
// idle-connection limits (sidecar/proxy.go) and a buffer pool — the same
// proxy the sidecar is, minus verification, so the ratio to it is the
// price of authentication.
func plainProxy(target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		},
		BufferPool: bufferPool{},
	}
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// startPeer runs the test binary in role on a free port, tracked by c (so
// it is stopped with the cluster), and returns its base URL once it
// answers.
func startPeer(t *testing.T, c *harness.Cluster, role, readyPath string, env ...string) (*harness.Process, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := harness.FreeAddr(t)
	p := harness.NewProcess(t, self, "bench-"+role, c.Dir)
	p.Env = append([]string{peerRoleEnv + "=" + role, peerListenEnv + "=" + addr}, env...)
	c.Track(p)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, "http://"+addr+readyPath, 200)
	return p, "http://" + addr
}

// waitReady fails the test, with p's log, unless url answers status.
func waitReady(t *testing.T, p *harness.Process, url string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(ctx, url, status, 20*time.Second); err != nil {
		t.Fatalf("%s did not start: %v\n%s", p.Name, err, p.Log())
	}
}

// repoRoot is the checkout this file is in.
func repoRoot() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..")
}

// Debian's nginx with the headers-more module (make deps-nginx) and Caddy
// (make deps-bench).
const (
	nginxBin    = "/usr/sbin/nginx"
	nginxModule = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"
	caddyBin    = "/usr/bin/caddy"
)

// needPeerBinary fails the test when path is missing (a benchmark must not
// quietly drop a contender); skip says to skip instead (plain go test).
func needPeerBinary(t *testing.T, path, install string, skip bool) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if skip && os.Getenv("TCAUTH_REQUIRE_PEERS") != "1" {
		t.Skipf("%s is not installed (%s)", path, install)
	}
	t.Fatalf("%s is required (%s)", path, install)
}

var placeholder = regexp.MustCompile(`\{\{[A-Z_]+\}\}`)

// fillTemplate writes the template at src with its {{...}} placeholders
// replaced into prefix and returns the path.
func fillTemplate(t *testing.T, src, prefix string, vars map[string]string) string {
	t.Helper()
	text := string(harness.ReadFile(t, src))
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	text = strings.NewReplacer(pairs...).Replace(text)
	if left := placeholder.FindString(text); left != "" {
		t.Fatalf("%s: placeholder %s is left unfilled", src, left)
	}
	out := filepath.Join(prefix, strings.TrimSuffix(filepath.Base(src), ".template"))
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// startNginx runs examples/nginx/nginx.conf.template (as
// integration/sidecar does) in front of upstream, asking the forward-auth
// sidecar; it returns the process and nginx's base URL.
func startNginx(t *testing.T, c *harness.Cluster, sidecar, upstream, readyPath string) (*harness.Process, string) {
	t.Helper()
	needPeerBinary(t, nginxBin, "make deps-nginx", false)
	needPeerBinary(t, nginxModule, "make deps-nginx", false)
	prefix := filepath.Join(c.Dir, "nginx")
	if err := os.MkdirAll(prefix, 0o700); err != nil {
		t.Fatal(err)
	}
	listen := harness.FreeAddr(t)
	conf := fillTemplate(t, nginxTemplate(), prefix, map[string]string{
		"PREFIX": prefix, "LISTEN": listen, "SIDECAR": hostPort(sidecar), "UPSTREAM": hostPort(upstream)})
	args := []string{"-p", prefix, "-c", conf, "-g", "daemon off;"}
	if out, err := exec.Command(nginxBin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	p := harness.NewProcess(t, nginxBin, "nginx", c.Dir, args...)
	c.Track(p)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, "http://"+listen+readyPath, 200)
	return p, "http://" + listen
}

// startCaddy runs examples/caddy/Caddyfile.template in front of upstream,
// asking the forward-auth sidecar.
func startCaddy(t *testing.T, c *harness.Cluster, sidecar, upstream, readyPath string, skip bool) (*harness.Process, string) {
	t.Helper()
	needPeerBinary(t, caddyBin, "make deps-bench installs Debian's caddy", skip)
	prefix := filepath.Join(c.Dir, "caddy")
	if err := os.MkdirAll(prefix, 0o700); err != nil {
		t.Fatal(err)
	}
	listen := harness.FreeAddr(t)
	conf := fillTemplate(t, caddyTemplate(), prefix, map[string]string{
		"PREFIX": prefix, "SITE": "http://" + listen, "SIDECAR": hostPort(sidecar), "UPSTREAM": hostPort(upstream)})
	p := harness.NewProcess(t, caddyBin, "caddy", c.Dir, "run", "--adapter", "caddyfile", "--config", conf)
	// Caddy keeps state (certificates, autosave.json) under $HOME and
	// $XDG_*: keep it in the test's directory.
	p.Env = []string{"HOME=" + prefix, "XDG_DATA_HOME=" + prefix, "XDG_CONFIG_HOME=" + prefix}
	c.Track(p)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, "http://"+listen+readyPath, 200)
	return p, "http://" + listen
}

// nginxTemplate is examples/nginx's template, or TCAUTH_NGINX_TEMPLATE's
// (as in integration/sidecar): to measure another configuration.
func nginxTemplate() string {
	if p := os.Getenv("TCAUTH_NGINX_TEMPLATE"); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), "examples", "nginx", "nginx.conf.template")
}

// caddyTemplate is the Caddyfile under test; TCAUTH_CADDY_TEMPLATE points
// at another one (to show that TestCaddyForwardAuthExample fails on a
// template without one of its rules).
func caddyTemplate() string {
	if p := os.Getenv("TCAUTH_CADDY_TEMPLATE"); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), "examples", "caddy", "Caddyfile.template")
}

func hostPort(base string) string { return strings.TrimPrefix(base, "http://") }
