package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// laggingStore is a real store whose CatchUpReporter the test sets: it
// stands for a node that has restarted and not yet applied the leader's
// commit index. (The multi-node tests show the real thing.)
type laggingStore struct {
	Store
	mu     sync.Mutex
	caught bool
	ch     chan struct{}
}

func newLaggingStore(st Store) *laggingStore {
	return &laggingStore{Store: st, ch: make(chan struct{})}
}

func (l *laggingStore) CaughtUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.caught
}

func (l *laggingStore) WaitCaughtUp(ctx context.Context) error {
	l.mu.Lock()
	ch, caught := l.ch, l.caught
	l.mu.Unlock()
	if caught {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *laggingStore) setCaughtUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.caught {
		l.caught = true
		close(l.ch)
	}
}

func authenticateHawkBody(t *testing.T, creds protocol.Credentials) string {
	hawk, err := protocol.SignRequest(creds, "GET", "https://svc.example.com:443/x", protocol.SignOptions{Now: frozen})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"method": "get", "resource": "/x", "host": "svc.example.com", "port": 443, "authorization": hawk})
	return string(b)
}

// refusalCase is one request a valid caller makes whose refusal could come
// from state that is behind: prepare (run while the node lags) makes the
// refusal come true locally, apply (run "during catch-up") the write that
// makes the request valid.
type refusalCase struct {
	name  string
	send  func(e *testEnv) response
	apply func(e *testEnv)
	ok    func(r response) bool
}

func refusalCases(t *testing.T) []refusalCase {
	late := protocol.Credentials{ClientID: "late/one", AccessToken: "late-token-0123456789abcdef"}
	addLate := func(e *testEnv) {
		e.addClient(late.ClientID, late.AccessToken, "auth:current-scopes", "assume:late-role")
	}
	is200 := func(r response) bool { return r.status == 200 }
	return []refusalCase{
		{"unknown client (401)", func(e *testEnv) response { return e.api("GET", "/scopes/current", asCreds(late)) }, addLate, is200},
		{"authenticateHawk of an unknown client", func(e *testEnv) response {
			return e.api("POST", "/authenticate-hawk", withBody(authenticateHawkBody(t, late)), withContentType("application/json"))
		}, addLate, func(r response) bool { return r.status == 200 && strings.Contains(string(r.body), `"auth-success"`) }},
		{"bad MAC after a token reset", func(e *testEnv) response {
			return e.api("GET", "/scopes/current", as("reset/one", "new-token-0123456789abcdef"))
		}, func(e *testEnv) {
			e.addClient("reset/one", "new-token-0123456789abcdef", "auth:current-scopes")
		}, is200},
		{"scopes from a role not applied yet (403)", func(e *testEnv) response {
			return e.api("GET", "/clients/", as("rolly/one", "rolly-token-0123456789abcdef"))
		}, func(e *testEnv) { e.putRole("rolly", "auth:list-clients") }, is200},
		{"write: updateRole of a role not applied yet (404)", func(e *testEnv) response {
			return e.api("POST", "/roles/late-role", as("writer/one", "writer-token-0123456789abcdef"), withBody(`{"description":"d","scopes":[]}`))
		}, func(e *testEnv) { e.putRole("late-role", "x") }, is200},
		{"sidecar credential fetch (404)", func(e *testEnv) response {
			return e.api("GET", "/tcauth/clients/late%2Fone/credentials", as("sidecar/one", "sidecar-token-0123456789abcdef"))
		}, addLate, func(r response) bool { return r.status == 200 && strings.Contains(string(r.body), late.AccessToken) }},
	}
}

func setupRefusalEnv(t *testing.T) (*testEnv, *laggingStore) {
	lag := newLaggingStore(newTestStore(t))
	e := newEnvWithStore(t, lag)
	e.addClient("sidecar/one", "sidecar-token-0123456789abcdef", "auth:tcauth:verify-clients")
	e.addClient("reset/one", "old-token-0123456789abcdefgh", "auth:current-scopes")
	e.addClient("rolly/one", "rolly-token-0123456789abcdef", "assume:rolly")
	e.addClient("writer/one", "writer-token-0123456789abcdef", "auth:update-role:*")
	return e, lag
}

// TestRefusalWaitsForCatchUp: a refusal computed while the node is not
// caught up (and cannot hand the request to a leader: here it is the
// leader) waits for the catch-up and is served again from current state.
func TestRefusalWaitsForCatchUp(t *testing.T) {
	for _, tc := range refusalCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			e, lag := setupRefusalEnv(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(100 * time.Millisecond)
				tc.apply(e) // the entries arrive...
				lag.setCaughtUp()
			}()
			r := tc.send(e)
			<-done
			if !tc.ok(r) {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
}

// TestRefusalWhileBehindIs503: no catch-up within the wait → 503 in the
// error shape with Retry-After, never the 401/403/404.
func TestRefusalWhileBehindIs503(t *testing.T) {
	old := maxCatchUpWait
	maxCatchUpWait = 50 * time.Millisecond
	t.Cleanup(func() { maxCatchUpWait = old })
	for _, tc := range refusalCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := setupRefusalEnv(t)
			r := tc.send(e)
			m := expectError(t, r, http.StatusServiceUnavailable, protocol.CodeInternalServerError)
			if r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if _, ok := m["requestInfo"]; !ok || m["message"] == "" {
				t.Errorf("not Taskcluster's error shape: %s", r.body)
			}
			if r.header.Get("WWW-Authenticate") != "" {
				t.Error("a 503 carries WWW-Authenticate")
			}
			// A refused write was never proposed: say it is safe to retry.
			if write := strings.HasPrefix(tc.name, "write:"); (r.header.Get(NotAppliedHeader) == "true") != write {
				t.Errorf("%s = %q on a write=%v", NotAppliedHeader, r.header.Get(NotAppliedHeader), write)
			}
		})
	}
}

// TestRefusalWhenCaughtUp: once caught up, refusals are answered at once
// from local state, as before.
func TestRefusalWhenCaughtUp(t *testing.T) {
	e, lag := setupRefusalEnv(t)
	lag.setCaughtUp()
	start := time.Now()
	expectError(t, e.api("GET", "/scopes/current", as("late/one", "late-token-0123456789abcdef")), 401, protocol.CodeAuthenticationFailed)
	expectError(t, e.api("GET", "/tcauth/clients/late%2Fone/credentials", as("sidecar/one", "sidecar-token-0123456789abcdef")), 404, protocol.CodeResourceNotFound)
	r := e.api("POST", "/authenticate-hawk", withBody(authenticateHawkBody(t, protocol.Credentials{ClientID: "late/one", AccessToken: "x"})), withContentType("application/json"))
	if r.status != 200 || !strings.Contains(string(r.body), `"auth-failed"`) {
		t.Fatalf("authenticateHawk: %d %s", r.status, r.body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusals took %v once caught up", d)
	}
}

// TestReadiness: /readyz (also under the API prefix) is 200 only when the
// state is caught up, a leader is known and the configured static clients
// are applied; otherwise 503 naming what is missing.
func TestReadiness(t *testing.T) {
	lag := newLaggingStore(newTestStore(t))
	const tok = "static-root-token-0123456789abcdef"
	e := newEnvWithStore(t, lag, func(c *Config) {
		c.StaticClients = []StaticClient{{ClientID: "static/taskcluster/root", AccessToken: tok}}
	})
	check := func(wantStatus int, wantReasons ...string) {
		t.Helper()
		for _, path := range []string{"/readyz", apiPrefix + "/readyz"} {
			r := e.do("GET", path)
			if r.status != wantStatus {
				t.Fatalf("%s: %d, want %d: %s", path, r.status, wantStatus, r.body)
			}
			var body struct {
				Ready    bool     `json:"ready"`
				NotReady []string `json:"notReady"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			if body.Ready != (wantStatus == 200) || len(body.NotReady) != len(wantReasons) {
				t.Fatalf("%s: %s", path, r.body)
			}
			for i, w := range wantReasons {
				if !strings.Contains(body.NotReady[i], w) {
					t.Errorf("%s: reason %q, want one about %q", path, body.NotReady[i], w)
				}
			}
			if wantStatus == 503 && r.header.Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After", path)
			}
		}
	}
	check(503, "caught up", "static clients")
	lag.setCaughtUp()
	check(503, "static clients")
	if err := e.srv.SyncStaticClients(context.Background()); err != nil {
		t.Fatal(err)
	}
	check(200)
	// Liveness does not depend on it.
	if r := e.do("GET", "/__lbheartbeat__"); r.status != 200 {
		t.Fatalf("lbheartbeat %d", r.status)
	}
	// A changed static-client configuration (a restart with a new root
	// token, say) is not ready until the new clients are applied.
	e2 := newEnvWithStore(t, lag, func(c *Config) {
		c.StaticClients = []StaticClient{{ClientID: "static/taskcluster/root", AccessToken: "another-root-token-0123456789abc"}}
	})
	if r := e2.do("GET", "/readyz"); r.status != 503 || !strings.Contains(string(r.body), "static clients") {
		t.Fatalf("changed static clients: %d %s", r.status, r.body)
	}
	if err := e2.srv.SyncStaticClients(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := e2.do("GET", "/readyz"); r.status != 200 {
		t.Fatalf("after the sync: %d %s", r.status, r.body)
	}
}
