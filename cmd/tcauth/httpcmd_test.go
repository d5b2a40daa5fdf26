package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol"
)

type oneClient struct{ id, token string }

func (o oneClient) Client(_ context.Context, id string) (*protocol.Client, error) {
	if id != o.id {
		return nil, protocol.ErrClientNotFound
	}
	return &protocol.Client{ClientID: id, AccessToken: o.token, ExpandedScopes: []string{"notes:*"}}, nil
}

// `tcauth http` and `tcauth signed-url` produce requests a verifier
// accepts: the server here checks them with protocol.Authenticator and
// echoes what it verified.
func TestHTTPAndSignedURLCommands(t *testing.T) {
	authn := &protocol.Authenticator{Clients: oneClient{"me", "my-token-0123456789abcdefghij"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res := authn.Authenticate(r.Context(), protocol.RequestFromHTTP(r, false))
		if res.Status != protocol.StatusSuccess {
			w.WriteHeader(401)
			fmt.Fprintf(w, "%s: %s", res.Status, res.Message)
			return
		}
		if res.Hash != "" && res.Hash != protocol.PayloadHash(r.Header.Get("Content-Type"), body) {
			w.WriteHeader(401)
			fmt.Fprint(w, "bad hash")
			return
		}
		fmt.Fprintf(w, "%s %s scheme=%s hash=%v scopes=%v body=%s", res.ClientID, r.Method, res.Scheme, res.Hash != "", res.Scopes, body)
	}))
	defer srv.Close()
	t.Setenv("TASKCLUSTER_CLIENT_ID", "me")
	t.Setenv("TASKCLUSTER_ACCESS_TOKEN", "my-token-0123456789abcdefghij")
	t.Setenv("TASKCLUSTER_CERTIFICATE", "")

	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"get", []string{"http", "GET", srv.URL + "/notes/a"}, "me GET scheme=hawk hash=false", 0},
		{"put with hash, flags after args", []string{"http", "PUT", srv.URL + "/notes/a", "-d", "hello", "--hash", "--content-type", "text/plain"}, "hash=true scopes=[assume:anonymous notes:*] body=hello", 0},
		{"authorized scopes", []string{"http", "GET", srv.URL + "/x", "--authorized-scope", "notes:read:a"}, "scopes=[assume:anonymous notes:read:a]", 0},
		{"bad header flag", []string{"http", "GET", srv.URL, "-H", "nocolon"}, "", 2},
		{"one arg", []string{"http", "GET"}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, msg, code := runCLI(t, "", tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (%s), output %q; want exit %d containing %q", code, msg, out, tc.code, tc.want)
			}
		})
	}

	out, msg, code := runCLI(t, "", "signed-url", srv.URL+"/notes/a", "--ttl", "1m")
	if code != 0 {
		t.Fatalf("signed-url: %d %s", code, msg)
	}
	resp, err := http.Get(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(out, "bewit=") || !strings.HasPrefix(string(b), "me GET") {
		t.Fatalf("bewit URL: %d %s", resp.StatusCode, b)
	}

	t.Setenv("TASKCLUSTER_ACCESS_TOKEN", "wrong-token-0123456789abcdefgh")
	if _, _, code := runCLI(t, "", "http", "GET", srv.URL+"/x"); code != 1 {
		t.Fatalf("a 401 answer exits %d, want 1", code)
	}
}

// `tcauth signed-url` refuses, with the signer's message and exit code 2,
// a URL no verifier would accept once the bewit is appended (and other
// unsignable URLs), instead of printing a bewit that can never work.
func TestSignedURLCommandRefuses(t *testing.T) {
	t.Setenv("TASKCLUSTER_CLIENT_ID", "me")
	t.Setenv("TASKCLUSTER_ACCESS_TOKEN", "my-token-0123456789abcdefghij")
	t.Setenv("TASKCLUSTER_CERTIFICATE", "")
	for _, tc := range []struct{ name, url, want string }{
		{"too long with the bewit", "http://127.0.0.1:1/notes/" + strings.Repeat("a", protocol.MaxBewitResourceLength-60), "longer than the 4096 characters"},
		{"IDN host", "https://ü.example/notes/a", "ASCII hostname"},
		{"line terminator in query", "https://h/notes/a?q=\u2028", "percent-encode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, msg, code := runCLI(t, "", "signed-url", tc.url)
			if code != 2 || !strings.Contains(msg, tc.want) || strings.Contains(out, "bewit=") {
				t.Fatalf("exit %d, message %q, output %q; want exit 2 with %q", code, msg, out, tc.want)
			}
		})
	}
}
