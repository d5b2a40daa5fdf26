package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// stack is a control plane, the notes service and a sidecar in front.
type stack struct {
	t        *testing.T
	cp       *harness.Cluster
	sidecar  *harness.Process
	url      string // the sidecar
	notesURL string // the notes service itself
	admin    string // the sidecar's admin address
	routes   string // the routes file the sidecar reads
	sidecarC protocol.Credentials
}

func repoRoot() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..")
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, cp: harness.StartCluster(t, harness.ClusterConfig{Size: 1})}
	notesAddr := s.cp.StartNotes(t)
	s.notesURL = "http://" + notesAddr
	routes := harness.ReadFile(t, filepath.Join(repoRoot(), "examples", "notes", "routes.yaml"))
	sc := s.cp.StartSidecar(t, "sidecar", "http://"+notesAddr, string(routes))
	s.sidecar, s.url, s.admin, s.routes, s.sidecarC = sc.Process, sc.URL, sc.Admin, sc.Routes, sc.Creds
	return s
}

func (s *stack) api() *tcclient.Client { return s.cp.Client(0, nil) }

func (s *stack) newClient(id string, scopes ...string) protocol.Credentials {
	s.t.Helper()
	return s.cp.CreateClient(s.t, 0, id, scopes...)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("status %d, body not JSON: %q", a.status, a.body)
	}
	return m
}

// call sends method path through the sidecar, signed with creds (nil:
// anonymous), with optional extra headers and body.
func (s *stack) call(creds *protocol.Credentials, method, path string, body string, hdr map[string]string) answer {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if creds != nil {
		auth, err := protocol.SignRequest(*creds, method, s.url+path, protocol.SignOptions{})
		if err != nil {
			s.t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return do(s.t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func expect(t *testing.T, what string, a answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d\n%s", what, a.status, status, a.body)
	}
	if code != "" {
		if got := a.json(t)["code"]; got != code {
			t.Fatalf("%s: code %v, want %s\n%s", what, got, code, a.body)
		}
	}
}

func TestSidecar(t *testing.T) {
	s := startStack(t)
	writer := s.newClient("it/writer", "notes:write:*", "notes:delete")
	reader := s.newClient("it/reader", "notes:read:*", "notes:list")

	// Public route, no credentials.
	expect(t, "public /healthz", s.call(nil, "GET", "/healthz", "", nil), 200, "")
	// Protected route without credentials: 401 in Taskcluster's shape.
	expect(t, "no credentials", s.call(nil, "GET", "/notes/a", "", nil), 401, "AuthenticationFailed")
	// Unmatched route: default deny.
	if a := s.call(&writer, "GET", "/admin", "", nil); a.status < 400 {
		t.Fatalf("unmatched route answered %d", a.status)
	}

	t.Run("allowed and denied", func(t *testing.T) {
		expect(t, "writer PUT", s.call(&writer, "PUT", "/notes/a", "hello", nil), 200, "")
		got := s.call(&reader, "GET", "/notes/a", "", nil)
		expect(t, "reader GET", got, 200, "")
		if m := got.json(t); m["text"] != "hello" || m["author"] != "it/writer" {
			t.Fatalf("note = %s", got.body)
		}
		denied := s.call(&reader, "DELETE", "/notes/a", "", nil)
		expect(t, "reader DELETE", denied, 403, "InsufficientScopes")
		msg := denied.json(t)["message"].(string)
		// The unsatisfied part names both scopes the reader lacks.
		if !strings.Contains(msg, "notes:write:a") || !strings.Contains(msg, "notes:delete") {
			t.Fatalf("403 does not name the unsatisfied expression:\n%s", msg)
		}
	})

	t.Run("remote verification", func(t *testing.T) {
		routes := string(harness.ReadFile(t, filepath.Join(repoRoot(), "examples", "notes", "routes.yaml")))
		remote := s.cp.StartSidecar(t, "remote-sidecar", s.notesURL, routes, "--verify", "remote")
		r := &stack{t: t, cp: s.cp, url: remote.URL}
		got := r.call(&reader, "GET", "/whoami", "", nil)
		expect(t, "remote: whoami", got, 200, "")
		if m := got.json(t); m["clientId"] != "it/reader" {
			t.Fatalf("remote whoami: %s", got.body)
		}
		expect(t, "remote: denied", r.call(&reader, "DELETE", "/notes/a", "", nil), 403, "InsufficientScopes")
		expect(t, "remote: no credentials", r.call(nil, "GET", "/notes/a", "", nil), 401, "AuthenticationFailed")
		bad := reader
		bad.AccessToken = strings.Repeat("x", len(bad.AccessToken))
		expect(t, "remote: wrong token", r.call(&bad, "GET", "/notes/a", "", nil), 401, "AuthenticationFailed")
	})

	t.Run("spoofed identity headers are stripped", func(t *testing.T) {
		got := s.call(&reader, "GET", "/whoami", "", map[string]string{
			"X-Taskcluster-Client-Id": "static/taskcluster/root",
			"X-Taskcluster-Scopes":    `["*"]`,
			"x-taskcluster-expires":   "3000-01-01T00:00:00Z",
		})
		expect(t, "whoami", got, 200, "")
		m := got.json(t)
		if m["clientId"] != "it/reader" {
			t.Fatalf("upstream saw clientId %v", m["clientId"])
		}
		for _, sc := range m["scopes"].([]any) {
			if sc == "*" {
				t.Fatal("a forged scope reached the upstream")
			}
		}
		// Anonymous callers cannot forge them either.
		if a := s.call(nil, "GET", "/whoami", "", map[string]string{"X-Taskcluster-Client-Id": "static/taskcluster/root"}); a.status != 401 {
			t.Fatalf("anonymous whoami with forged header: %d %s", a.status, a.body)
		}
	})

	t.Run("bewit", func(t *testing.T) {
		signed, err := protocol.SignedURL(reader, s.url+"/whoami", time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got := do(t, mustReq(t, "GET", signed))
		expect(t, "bewit", got, 200, "")
		if m := got.json(t); m["clientId"] != "it/reader" || m["scheme"] != "bewit" {
			t.Fatalf("whoami via bewit: %s", got.body)
		}
		// A bewit for one path does not open another.
		other := strings.Replace(signed, "/whoami", "/notes/a", 1)
		expect(t, "bewit for another path", do(t, mustReq(t, "GET", other)), 401, "AuthenticationFailed")
		// Expired.
		old, _ := protocol.SignedURL(reader, s.url+"/whoami", time.Minute, time.Now().Add(-time.Hour))
		expect(t, "expired bewit", do(t, mustReq(t, "GET", old)), 401, "AuthenticationFailed")
	})

	t.Run("temporary credentials and authorizedScopes", func(t *testing.T) {
		temp, err := protocol.CreateTemporaryCredentials(protocol.TemporaryOptions{
			Issuer: reader, Scopes: []string{"notes:read:a"}, Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, "temp creds, in scope", s.call(&temp, "GET", "/notes/a", "", nil), 200, "")
		expect(t, "temp creds, out of scope", s.call(&temp, "GET", "/notes/b", "", nil), 403, "InsufficientScopes")

		restricted := reader
		restricted.AuthorizedScopes = []string{"notes:read:b"}
		expect(t, "authorizedScopes, outside", s.call(&restricted, "GET", "/notes/a", "", nil), 403, "InsufficientScopes")
		restricted.AuthorizedScopes = []string{"notes:read:a"}
		expect(t, "authorizedScopes, inside", s.call(&restricted, "GET", "/notes/a", "", nil), 200, "")
	})

	t.Run("replay and payload hash", func(t *testing.T) {
		url := s.url + "/notes/a"
		auth, _ := protocol.SignRequest(reader, "GET", url, protocol.SignOptions{})
		first, second := mustReq(t, "GET", url), mustReq(t, "GET", url)
		first.Header.Set("Authorization", auth)
		second.Header.Set("Authorization", auth)
		expect(t, "first use", do(t, first), 200, "")
		expect(t, "replayed header", do(t, second), 401, "AuthenticationFailed")

		body := []byte("signed body")
		auth, _ = protocol.SignRequest(writer, "PUT", url, protocol.SignOptions{ContentType: "text/plain", Payload: body, HasPayload: true})
		bad, _ := http.NewRequest("PUT", url, bytes.NewReader([]byte("tampered body")))
		bad.Header.Set("Content-Type", "text/plain")
		bad.Header.Set("Authorization", auth)
		expect(t, "payload hash mismatch", do(t, bad), 401, "AuthenticationFailed")
		if got := s.call(&reader, "GET", "/notes/a", "", nil).json(t)["text"]; got != "hello" {
			t.Fatalf("a refused PUT changed the note: %v", got)
		}
		auth, _ = protocol.SignRequest(writer, "PUT", url, protocol.SignOptions{ContentType: "text/plain", Payload: body, HasPayload: true})
		good, _ := http.NewRequest("PUT", url, bytes.NewReader(body))
		good.Header.Set("Content-Type", "text/plain")
		good.Header.Set("Authorization", auth)
		expect(t, "payload hash match", do(t, good), 200, "")
	})

	t.Run("revocation within one second", func(t *testing.T) {
		victim := s.newClient("it/victim", "notes:read:*")
		expect(t, "victim before", s.call(&victim, "GET", "/notes/a", "", nil), 200, "")
		ctx := context.Background()
		for _, step := range []struct {
			name string
			do   func() error
			want int
		}{
			{"resetAccessToken", func() error {
				var out struct{ AccessToken string }
				err := s.api().Do(ctx, "POST", "/clients/it%2Fvictim/reset", nil, nil, &out)
				fresh := victim
				fresh.AccessToken = out.AccessToken
				defer func() { victim = fresh }()
				return err
			}, 401},
			{"disableClient", func() error { return s.api().Do(ctx, "POST", "/clients/it%2Fvictim/disable", nil, nil, nil) }, 401},
			{"enableClient", func() error { return s.api().Do(ctx, "POST", "/clients/it%2Fvictim/enable", nil, nil, nil) }, 200},
			{"role change", func() error {
				// Scopes granted through a role disappear when the role does.
				if err := s.api().Do(ctx, "POST", "/clients/it%2Fvictim", nil, map[string]any{
					"description": "victim", "expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
					"scopes": []string{"assume:it-notes-reader"}}, nil); err != nil {
					return err
				}
				if err := s.api().Do(ctx, "PUT", "/roles/it-notes-reader", nil, map[string]any{
					"description": "r", "scopes": []string{"notes:read:*"}}, nil); err != nil {
					return err
				}
				if err := harness.Eventually(time.Second, func() error {
					if a := s.call(&victim, "GET", "/notes/a", "", nil); a.status != 200 {
						return fmt.Errorf("status %d", a.status)
					}
					return nil
				}); err != nil {
					return fmt.Errorf("role grant not effective: %w", err)
				}
				return s.api().Do(ctx, "DELETE", "/roles/it-notes-reader", nil, nil, nil)
			}, 403},
			{"deleteClient", func() error { return s.api().Do(ctx, "DELETE", "/clients/it%2Fvictim", nil, nil, nil) }, 401},
		} {
			before := victim
			if err := step.do(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			creds := before
			if step.want == 200 {
				creds = victim
			}
			start := time.Now()
			var last answer
			for time.Since(start) < time.Second {
				if last = s.call(&creds, "GET", "/notes/a", "", nil); last.status == step.want {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if last.status != step.want {
				t.Fatalf("%s: after 1 s the sidecar still answers %d, want %d\n%s", step.name, last.status, step.want, last.body)
			}
			t.Logf("%s effective at the sidecar after %v", step.name, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("control plane stopped", func(t *testing.T) {
		unseen := s.newClient("it/unseen", "notes:read:*")
		s.cp.Nodes[0].Stop()
		expect(t, "cached client while the control plane is down", s.call(&reader, "GET", "/notes/a", "", nil), 200, "")
		expect(t, "unknown client while the control plane is down", s.call(&unseen, "GET", "/notes/a", "", nil), 503, "")
		if err := s.cp.Nodes[0].Start(); err != nil {
			t.Fatal(err)
		}
		if err := harness.Eventually(30*time.Second, func() error {
			if a := s.call(&unseen, "GET", "/notes/a", "", nil); a.status != 200 {
				return fmt.Errorf("status %d %s", a.status, a.body)
			}
			return nil
		}); err != nil {
			t.Fatalf("after the control plane came back: %v", err)
		}
	})

	t.Run("route file reload", func(t *testing.T) {
		// A broken file on SIGHUP: the old policy stays.
		if err := os.WriteFile(s.routes, []byte("routes:\n  - method: GET\n    path: /notes/<name\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.sidecar.Signal(syscall.SIGHUP)
		time.Sleep(300 * time.Millisecond)
		expect(t, "after a bad reload", s.call(&reader, "GET", "/notes/a", "", nil), 200, "")
		// A good one replaces it.
		if err := os.WriteFile(s.routes, []byte("routes:\n  - method: GET\n    path: /notes/<name>\n    scopes: notes:admin\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.sidecar.Signal(syscall.SIGHUP)
		if err := harness.Eventually(5*time.Second, func() error {
			if a := s.call(&reader, "GET", "/notes/a", "", nil); a.status != 403 {
				return fmt.Errorf("status %d", a.status)
			}
			return nil
		}); err != nil {
			t.Fatalf("reloaded policy not in force: %v", err)
		}
		if !strings.Contains(s.sidecar.Log(), "route policy not reloaded") {
			t.Error("the bad reload was not logged")
		}
	})
}

func mustReq(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSidecarRouteFileErrors starts the sidecar with broken route files:
// it must refuse to start and say where and what.
func TestSidecarRouteFileErrors(t *testing.T) {
	bin := harness.Bin(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"unclosed param", "routes:\n  - method: GET\n    path: /notes/<name\n    scopes: notes:read\n", []string{"routes.yaml:3:", "route 1 (GET /notes/<name)", "capture"}},
		{"no scopes", "routes:\n  - method: GET\n    path: /x\n", []string{"routes.yaml:2:", "scopes is missing"}},
		{"unknown param in scopes", "routes:\n  - method: GET\n    path: /notes/<name>\n    scopes: notes:read:<other>\n", []string{"routes.yaml:4:", "<other>"}},
		{"bad method", "routes:\n  - method: \"GE T\"\n    path: /x\n    public: true\n", []string{"routes.yaml:2:", "not an HTTP method"}},
		{"bad scope expression", "routes:\n  - method: GET\n    path: /x\n    scopes: {OneOf: [a]}\n", []string{"routes.yaml:4:", "scope expression"}},
		{"bad default", "default: maybe\nroutes: []\n", []string{"routes.yaml:1:", "default"}},
		{"not yaml", "routes: [\n", []string{"routes.yaml", "yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "routes.yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "sidecar", "--listen", "127.0.0.1:0", "--admin-listen", "", "--upstream", "http://127.0.0.1:1",
				"--control-plane", "http://127.0.0.1:1", "--verify", "remote", "--routes", path)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the sidecar started with a broken routes file:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("error does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}
