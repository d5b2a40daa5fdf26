package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// TCCall calls auth.<method>(...args) with the official taskcluster-client
// (integration/node/tc.js) against rootURL, signed with creds (their
// certificate too, when they have one). ok is false when the service
// refused the call; msg is then taskcluster-client's error message. A
// failure of node itself, or of taskcluster-client before any request,
// fails the test.
func TCCall(t testing.TB, rootURL string, creds protocol.Credentials, method string, args ...any) (ok bool, body json.RawMessage, msg string) {
	t.Helper()
	node := NeedNode(t)
	c := map[string]string{"clientId": creds.ClientID, "accessToken": creds.AccessToken}
	if creds.Certificate != "" {
		c["certificate"] = creds.Certificate
	}
	if args == nil {
		// Sent as [] rather than null: tc.js spreads args into the call.
		args = []any{}
	}
	in, _ := json.Marshal([]any{map[string]any{"op": "call", "rootUrl": rootURL, "method": method, "args": args, "credentials": c}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "tc.js")
	cmd.Dir = NodeDir()
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

// CurrentScopes is auth.currentScopes() through taskcluster-client; ok is
// false when the credentials are refused (msg says why).
func CurrentScopes(t testing.TB, rootURL string, creds protocol.Credentials) (scopes []string, ok bool, msg string) {
	t.Helper()
	ok, body, msg := TCCall(t, rootURL, creds, "currentScopes")
	if !ok {
		return nil, false, msg
	}
	var s struct{ Scopes []string }
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s.Scopes, true, ""
}
