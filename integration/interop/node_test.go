package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// nodeDir is the npm project holding the reference peers and the helper
// scripts, relative to this package's directory (go test runs there).
const nodeDir = "../node"

var (
	nodeOnce   sync.Once
	nodePath   string
	nodeReason string
)

// requireNode skips the test when the reference peers cannot run here. In CI
// (CI=true, set by the runner) or with TCAUTH_REQUIRE_NODE=1 a missing peer
// is a failure instead: `make test` installs them first, so a skip there
// would hide a broken install step.
func requireNode(t testing.TB) string {
	t.Helper()
	nodeOnce.Do(func() {
		p, err := exec.LookPath("node")
		if err != nil {
			nodeReason = "node is not on PATH (install nodejs, then `npm ci --prefix integration/node`)"
			return
		}
		for _, pkg := range []string{"@hapi/hawk", "taskcluster-client", "taskcluster-lib-scopes"} {
			if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
				nodeReason = "integration/node/node_modules/" + pkg + " is missing (run `npm ci --prefix integration/node` or `make deps`)"
				return
			}
		}
		nodePath = p
	})
	if nodePath == "" {
		if os.Getenv("CI") == "true" || os.Getenv("TCAUTH_REQUIRE_NODE") == "1" || os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatalf("reference peers required but unavailable: %s", nodeReason)
		}
		t.Skipf("skipping interop test: %s", nodeReason)
	}
	return nodePath
}

// outcome is one case's answer from a helper script (see ../node/lib/run.js).
type outcome struct {
	Result    json.RawMessage `json:"result"`
	Undefined bool            `json:"undefined"`
	Error     string          `json:"error"`
}

// runNode sends cases (each a JSON object with an "op") to script in one
// process and returns one outcome per case. Any failure of the process
// itself is fatal: a peer that did not answer proves nothing.
func runNode(t testing.TB, script string, cases []any) []outcome {
	t.Helper()
	node := requireNode(t)
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatalf("marshal cases for %s: %v", script, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = nodeDir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s", script, err, stderr.String())
	}
	var out []outcome
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("node %s: bad output (%v): %.500s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	if len(out) != len(cases) {
		t.Fatalf("node %s: %d outcomes for %d cases", script, len(out), len(cases))
	}
	return out
}

// value decodes a successful outcome into v, failing the test when the peer
// threw instead.
func (o outcome) value(t testing.TB, what string, v any) {
	t.Helper()
	if o.Error != "" {
		t.Fatalf("%s: peer threw: %s", what, o.Error)
	}
	if err := json.Unmarshal(o.Result, v); err != nil {
		t.Fatalf("%s: decode %s: %v", what, o.Result, err)
	}
}

// call is a convenience for a single case.
func call(t testing.TB, script string, c any, v any) {
	t.Helper()
	runNode(t, script, []any{c})[0].value(t, script, v)
}

// peerVerdict is how hawk.js reports @hapi/hawk's authenticate and
// authenticateBewit, and how tc.js reports an API call.
type peerVerdict struct {
	OK         bool
	ID         string
	Message    string
	StatusCode int
	Artifacts  struct{ Ext string }
}

// signedURLs runs buildSignedUrl cases through tc.js and parses the URLs.
func signedURLs(t *testing.T, cases []any) []*url.URL {
	t.Helper()
	out := runNode(t, "tc.js", cases)
	urls := make([]*url.URL, len(out))
	for i, o := range out {
		var raw string
		o.value(t, "buildSignedUrl", &raw)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("taskcluster-client made an unparsable URL %q: %v", raw, err)
		}
		urls[i] = u
	}
	return urls
}
