package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// creds are a client's credentials as a tool gets them.
type creds struct {
	ClientID, AccessToken string
}

// tcCall calls auth.<method>(...args) with the official taskcluster-client
// (integration/node/tc.js) against rootURL.
func tcCall(t *testing.T, rootURL string, c creds, method string, args ...any) (ok bool, body json.RawMessage, msg string) {
	t.Helper()
	node := harness.NeedNode(t)
	if args == nil {
		args = []any{}
	}
	in, _ := json.Marshal([]any{map[string]any{"op": "call", "rootUrl": rootURL, "method": method, "args": args,
		"credentials": map[string]string{"clientId": c.ClientID, "accessToken": c.AccessToken}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "tc.js")
	cmd.Dir = harness.NodeDir()
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node tc.js: %v\n%s", err, stderr.String())
	}
	var out []struct {
		Result struct {
			OK      bool            `json:"ok"`
			Body    json.RawMessage `json:"body"`
			Message string          `json:"message"`
		} `json:"result"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != 1 {
		t.Fatalf("tc.js output %q: %v", stdout.String(), err)
	}
	if out[0].Error != "" {
		t.Fatalf("taskcluster-client threw: %s", out[0].Error)
	}
	return out[0].Result.OK, out[0].Result.Body, out[0].Result.Message
}

// currentScopes is auth.currentScopes() through taskcluster-client; ok is
// false when the credentials are refused (msg says why).
func currentScopes(t *testing.T, rootURL string, c creds) (scopes []string, ok bool, msg string) {
	t.Helper()
	ok, body, msg := tcCall(t, rootURL, c, "currentScopes")
	if !ok {
		return nil, false, msg
	}
	var s struct{ Scopes []string }
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s.Scopes, true, ""
}

// tokenRe finds an access token (two slugids, 44 characters of the
// URL-safe base64 alphabet) in a page's text.
var tokenRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])([A-Za-z0-9_-]{44})(?:$|[^A-Za-z0-9_-])`)

// tokensIn returns the access-token-shaped strings of s.
func tokensIn(s string) []string {
	var out []string
	for _, m := range tokenRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}
