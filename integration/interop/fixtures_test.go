package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// frozen is the instant every clock in these tests is frozen at (the reference
// vectors use it too), so timestamps, bewit expiries and certificate windows
// are deterministic on both sides.
var frozen = time.UnixMilli(1700000000000)

const (
	testerID  = "tester"
	testerKey = "no-secret"
	issuerID  = "issuer"
	issuerKey = "issuer-secret-0123456789abcdef"
)

// clientMap is a ClientSource over fixed clients (a store stand-in: the
// store is not what these tests are about).
type clientMap map[string]protocol.Client

func (m clientMap) Client(_ context.Context, id string) (*protocol.Client, error) {
	c, ok := m[id]
	if !ok {
		return nil, protocol.ErrClientNotFound
	}
	c.ExpandedScopes = slices.Clone(c.ExpandedScopes)
	return &c, nil
}

// engineOps backs the verifier with scopeengine's algebra and no roles, so
// results are exactly the certificate / authorizedScopes / client scopes plus
// assume:anonymous.
type engineOps struct{}

func (engineOps) Expand(s []string) []string { return scopeengine.NewScopeSet(s) }
func (engineOps) Satisfies(have []string, need string) bool {
	return scopeengine.NewScopeSet(have).Satisfies(need)
}

func testClients() clientMap {
	return clientMap{
		testerID: {ClientID: testerID, AccessToken: testerKey, ExpandedScopes: []string{"test:*"}},
		issuerID: {
			ClientID: issuerID, AccessToken: issuerKey,
			ExpandedScopes: []string{"assume:project:x", "auth:create-client:temp/*", "test:*"},
			Expires:        frozen.Add(365 * 24 * time.Hour),
		},
	}
}

func newAuthenticator(clients clientMap) *protocol.Authenticator {
	return &protocol.Authenticator{Clients: clients, Scopes: engineOps{}, Now: func() time.Time { return frozen }}
}

// authServer is a Go HTTP server that authenticates every request it gets
// with protocol.Authenticator from the request as received (RequestURI, Host
// header), records the result, and answers like a Taskcluster service: 200
// with the caller's clientId and scopes, or 401 AuthenticationFailed.
type authServer struct {
	*httptest.Server
	auth     *protocol.Authenticator
	mu       sync.Mutex
	results  []protocol.Result
	requests []protocol.Request
}

func newAuthServer(t *testing.T, auth *protocol.Authenticator) *authServer {
	s := &authServer{auth: auth}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *authServer) serve(w http.ResponseWriter, r *http.Request) {
	req := protocol.RequestFromHTTP(r, false)
	res := s.auth.Authenticate(r.Context(), req)
	s.mu.Lock()
	s.results = append(s.results, res)
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if res.Status != protocol.StatusSuccess {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "AuthenticationFailed", "message": res.Message})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"clientId": res.ClientID, "scopes": res.Scopes})
}

// take returns and clears the recorded results.
func (s *authServer) take() []protocol.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.results
	s.results, s.requests = nil, nil
	return r
}

// takeRequests returns and clears the recorded requests (as the verifier
// saw them) and their results.
func (s *authServer) takeRequests() ([]protocol.Request, []protocol.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, r := s.requests, s.results
	s.results, s.requests = nil, nil
	return q, r
}

// requestURL joins scheme, host, port (omitted when default) and resource.
func requestURL(scheme, host string, port int, resource string) string {
	def := map[string]int{"http": 80, "https": 443}[scheme]
	if port == def {
		return scheme + "://" + host + resource
	}
	return scheme + "://" + host + ":" + strconv.Itoa(port) + resource
}

// wantSuccess checks an Authenticator result against the expected identity.
func wantSuccess(t *testing.T, what string, res protocol.Result, clientID string, scopes []string) {
	t.Helper()
	if res.Status != protocol.StatusSuccess {
		t.Errorf("%s: status %s (%s), want auth-success", what, res.Status, res.Message)
		return
	}
	if res.ClientID != clientID {
		t.Errorf("%s: clientId %q, want %q", what, res.ClientID, clientID)
	}
	if scopes != nil && !setsEqual(res.Scopes, scopes) {
		t.Errorf("%s: scopes %q, want %q", what, res.Scopes, scopes)
	}
}

func wantFailure(t *testing.T, what string, res protocol.Result, message string) {
	t.Helper()
	if res.Status != protocol.StatusFailed || res.Message != message {
		t.Errorf("%s: got %s %q, want auth-failed %q", what, res.Status, res.Message, message)
	}
}
