// Package check runs `tcauth check` as a real process against a real
// `tcauth dev` and a three-node cluster with a sidecar: all green with the
// documented minimum scopes, and the failures it must name (a wrong
// token, a sidecar that does not answer), with nothing left behind.
package check

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// checkerScopes is the minimum the command's help and docs/operations.md
// document for the checking client.
var checkerScopes = []string{
	"auth:create-client:tcauth-check/*", "auth:delete-client:tcauth-check/*", "auth:reset-access-token:tcauth-check/*",
	"auth:create-role:tcauth-check/*", "auth:delete-role:tcauth-check/*", "auth:expand-scopes", "auth:current-scopes",
	"assume:tcauth-check/*", "tcauth-check/*",
}

type result struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Check, Result, Detail string
	} `json:"checks"`
}

// runCheck runs `tcauth check --json` with creds and returns its result
// and exit status.
func runCheck(t *testing.T, bin, root string, creds protocol.Credentials, args ...string) (result, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"check", "--json", "--root-url", root}, args...)...)
	cmd.Env = append(os.Environ(), "TASKCLUSTER_ROOT_URL=http://127.0.0.1:1", // --root-url overrides it
		"TASKCLUSTER_CLIENT_ID="+creds.ClientID, "TASKCLUSTER_ACCESS_TOKEN="+creds.AccessToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("output is not JSON (%v): %s\n%s", err, out, stderr.String())
	}
	return r, code
}

func (r result) row(name string) string {
	for _, c := range r.Checks {
		if c.Check == name {
			return c.Result
		}
	}
	return "missing"
}

func (r result) failed() []string {
	var out []string
	for _, c := range r.Checks {
		if c.Result != "ok" {
			out = append(out, c.Check+": "+c.Result+" "+c.Detail)
		}
	}
	return out
}

// wantAllGreen: exit 0 and every row ok, the sidecar's included.
func wantAllGreen(t *testing.T, r result, code int) {
	t.Helper()
	if code != 0 || !r.OK || len(r.failed()) > 0 {
		t.Fatalf("exit %d, ok=%v, not ok: %q", code, r.OK, r.failed())
	}
	for _, name := range []string{"ping", "/__heartbeat__", "/readyz", "authenticate (hawk)", "authorizedScopes", "temporary credentials", "bewit",
		"expand scopes", "sidecar call", "control plane refuses revoked token", "sidecar refuses revoked token", "delete client", "delete role"} {
		if r.row(name) != "ok" {
			t.Errorf("row %q: %s", name, r.row(name))
		}
	}
}

// wantNothingLeft: no client or role with the prefix remains.
func wantNothingLeft(t *testing.T, root string, creds protocol.Credentials) {
	t.Helper()
	cl := &tcclient.Client{RootURL: root, Credentials: &creds}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var clients struct{ Clients []struct{ ClientID string } }
	if err := cl.Do(ctx, http.MethodGet, "/clients/", url.Values{"prefix": {"tcauth-check/"}}, nil, &clients); err != nil {
		t.Fatal(err)
	}
	var roles []struct{ RoleID string }
	if err := cl.Do(ctx, http.MethodGet, "/roles/", nil, nil, &roles); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients.Clients {
		t.Errorf("client %s left behind", c.ClientID)
	}
	for _, r := range roles {
		if strings.HasPrefix(r.RoleID, "tcauth-check/") {
			t.Errorf("role %s left behind", r.RoleID)
		}
	}
}

func TestCheckDev(t *testing.T) {
	bin := harness.Bin(t)
	root, rootTok, sidecarURL := startDev(t, bin)
	creds := protocol.Credentials{ClientID: "static/taskcluster/root", AccessToken: rootTok}

	r, code := runCheck(t, bin, root, creds, "--sidecar", sidecarURL, "--sidecar-path", "/whoami")
	wantAllGreen(t, r, code)

	t.Run("wrong token", func(t *testing.T) {
		bad := creds
		bad.AccessToken = strings.Repeat("x", 44)
		r, code := runCheck(t, bin, root, bad)
		if code != 1 || r.OK || r.row("create client") != "FAIL" || r.row("authenticate (hawk)") != "skip" {
			t.Errorf("exit %d, rows %q", code, r.failed())
		}
	})
	t.Run("sidecar not answering", func(t *testing.T) {
		r, code := runCheck(t, bin, root, creds, "--sidecar", "http://"+harness.FreeAddr(t), "--wait", "2s")
		if code != 1 || r.row("sidecar call") != "FAIL" || r.row("bewit") != "ok" {
			t.Errorf("exit %d, rows %q", code, r.failed())
		}
		if r.row("delete client") != "ok" || r.row("delete role") != "ok" {
			t.Errorf("no clean-up after the failure: %q", r.failed())
		}
	})
	t.Run("route refuses the client", func(t *testing.T) {
		r, code := runCheck(t, bin, root, creds, "--sidecar", sidecarURL, "--sidecar-path", "/notes/x", "--wait", "20s")
		if code != 1 || r.row("sidecar call") != "FAIL" {
			t.Errorf("exit %d, rows %q", code, r.failed())
		}
	})
	wantNothingLeft(t, root, creds)
}

func TestCheckCluster(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{})
	notes := c.StartNotes(t)
	routes := string(harness.ReadFile(t, "../../examples/notes/routes.yaml"))
	sc := c.StartSidecarVia(t, "check-sidecar", "http://"+notes, routes, 1)
	checker := c.CreateClient(t, 0, "it/checker", checkerScopes...)
	// Through a node other than the sidecar's: the new client, the role
	// and the reset token must travel through Raft to both.
	r, code := runCheck(t, c.Bin, c.Nodes[2].URL(), checker, "--sidecar", sc.URL, "--sidecar-path", "/whoami")
	wantAllGreen(t, r, code)
	wantNothingLeft(t, c.Nodes[0].URL(), *c.Root())
}

// startDev runs `tcauth dev` and returns its root URL, root token and
// sidecar URL from the banner.
func startDev(t *testing.T, bin string) (root, token, sidecar string) {
	cmd := exec.Command(bin, "dev", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sidecar-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	text := harness.DevBanner(t, stdout, nil)
	find := func(re string) string { t.Helper(); return harness.BannerField(t, text, re) }
	return find(`TASKCLUSTER_ROOT_URL=(\S+)`), find(`TASKCLUSTER_ACCESS_TOKEN=(\S+)`), find(`notes example\s+(http://\S+)`)
}
