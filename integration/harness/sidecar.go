package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// SidecarScopes are what a sidecar's own client needs for local
// verification.
var SidecarScopes = []string{"auth:tcauth:verify-clients", "auth:tcauth:watch-changes", "auth:list-roles", "auth:get-role:*"}

// CreateClient creates a client through node i with root credentials and
// returns its credentials.
func (c *Cluster) CreateClient(t testing.TB, i int, id string, scopes ...string) protocol.Credentials {
	t.Helper()
	var out struct{ AccessToken string }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := c.Client(i, nil).Do(ctx, http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, map[string]any{
		"description": "integration test", "expires": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
		"scopes": scopes}, &out)
	if err != nil {
		t.Fatalf("createClient %s: %v", id, err)
	}
	return protocol.Credentials{ClientID: id, AccessToken: out.AccessToken}
}

// StartNotes builds and starts the notes example on a free loopback port
// and returns its address.
func (c *Cluster) StartNotes(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(c.Dir, "notes-server")
	if _, err := os.Stat(bin); err != nil {
		_, here, _, _ := runtime.Caller(0)
		build := exec.Command("go", "build", "-o", bin, "./examples/notes/cmd/notes-server")
		build.Dir = filepath.Join(filepath.Dir(here), "..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build notes-server: %v\n%s", err, out)
		}
	}
	addr := FreeAddr(t)
	p := NewProcess(t, bin, "notes", c.Dir, "-listen", addr)
	c.Track(p)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := WaitHTTP(ctx, "http://"+addr+"/healthz", 200, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Sidecar is a running `tcauth sidecar`.
type Sidecar struct {
	*Process
	URL    string // where callers reach it
	Admin  string // admin address (host:port)
	Routes string // the routes file it reads
	Creds  protocol.Credentials
}

// StartSidecar starts a sidecar in local mode in front of upstream, with
// routes (YAML) written to a file, its own client created through node 0,
// extra flags appended; it returns once /readyz answers 200.
func (c *Cluster) StartSidecar(t testing.TB, name, upstream, routes string, extra ...string) *Sidecar {
	t.Helper()
	return c.StartSidecarVia(t, name, upstream, routes, 0, extra...)
}

// StartSidecarVia is StartSidecar with node `via` as its control plane.
func (c *Cluster) StartSidecarVia(t testing.TB, name, upstream, routes string, via int, extra ...string) *Sidecar {
	t.Helper()
	s := &Sidecar{Routes: filepath.Join(c.Dir, name+"-routes.yaml")}
	if err := os.WriteFile(s.Routes, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Creds = c.CreateClient(t, 0, "it/"+name, SidecarScopes...)
	listen, admin := FreeAddr(t), FreeAddr(t)
	s.URL, s.Admin = "http://"+listen, admin
	args := append([]string{"sidecar", "--listen", listen, "--admin-listen", admin, "--upstream", upstream,
		"--control-plane", c.Nodes[via].URL(), "--routes", s.Routes, "--log-level", "debug"}, extra...)
	s.Process = NewProcess(t, c.Bin, name, c.Dir, args...)
	s.Env = []string{"TASKCLUSTER_CLIENT_ID=" + s.Creds.ClientID, "TASKCLUSTER_ACCESS_TOKEN=" + s.Creds.AccessToken}
	c.Track(s.Process)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitHTTP(ctx, "http://"+admin+"/readyz", 200, 30*time.Second); err != nil {
		t.Fatalf("sidecar %s not ready: %v", name, err)
	}
	return s
}

// ReadFile is os.ReadFile that fails the test.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(fmt.Errorf("read %s: %w", path, err))
	}
	return b
}
