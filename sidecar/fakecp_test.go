package sidecar

// fakeControlPlane is a HAND-WRITTEN STAND-IN for unit tests only: the
// sidecar may not import controlplane (layering rule), so this serves the
// five endpoints the sidecar calls from maps, following the behaviour
// documented in controlplane/DESIGN.md (tcauth extensions). The real
// control plane is exercised end to end by the tests in integration/.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

type fakeClient struct {
	token    string
	scopes   []string
	expires  time.Time
	disabled bool
}

type laggingAnswer struct {
	client fakeClient
	index  uint64
}

// credFault is how the fake answers one clientId's credentials call: an
// HTTP status (with Retry-After if retryAfter), or no answer at all
// (hang: wait past the sidecar's fetch timeout; drop: close the
// connection).
type credFault struct {
	status     int
	retryAfter bool
	hang, drop bool
}

type fakeControlPlane struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	clients map[string]*fakeClient
	roles   map[string][]string
	changes []changeEvent
	index   uint64
	notify  chan struct{} // closed and replaced on every change
	lost    uint64        // feed history before this index is gone (410)

	down          atomic.Bool
	credDelay     atomic.Int64 // nanoseconds to wait before answering credentials
	credFetches   sync.Map     // clientId → *atomic.Int64
	lagging       sync.Map     // clientId → *laggingAnswer: answer as a follower that is behind
	credFaults    sync.Map     // clientId → credFault: answer the credentials call for it with an error
	credInFlight  atomic.Int64 // credentials calls being answered now
	credMaxFlight atomic.Int64 // the most credentials calls answered at once
	authCalls     atomic.Int64
	rejectedCalls atomic.Int64
}

const sidecarID, sidecarToken = "sidecar", "sidecar-secret-0123456789abcdef"

func newFakeControlPlane(t testing.TB) *fakeControlPlane {
	cp := &fakeControlPlane{
		t:       t,
		clients: map[string]*fakeClient{},
		roles:   map[string][]string{},
		index:   100,
		notify:  make(chan struct{}),
	}
	cp.clients[sidecarID] = &fakeClient{token: sidecarToken, scopes: []string{
		"auth:tcauth:verify-clients", "auth:tcauth:watch-changes", "auth:list-roles", "auth:get-role:*"}}
	cp.srv = httptest.NewServer(http.HandlerFunc(cp.serve))
	t.Cleanup(cp.srv.Close)
	return cp
}

func (cp *fakeControlPlane) fetches(id string) int64 {
	v, ok := cp.credFetches.Load(id)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// publish records a change and wakes the long polls. Call with mu held.
func (cp *fakeControlPlane) publishLocked(kind, id, op string) {
	cp.index++
	cp.changes = append(cp.changes, changeEvent{Index: cp.index, Kind: kind, ID: id, Op: op, Deleted: op == "deleted"})
	close(cp.notify)
	cp.notify = make(chan struct{})
}

func (cp *fakeControlPlane) setClient(id, token string, scopes ...string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	op := "updated"
	if cp.clients[id] == nil {
		op = "created"
	}
	cp.clients[id] = &fakeClient{token: token, scopes: scopes}
	cp.publishLocked("client", id, op)
}

func (cp *fakeControlPlane) deleteClient(id string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	delete(cp.clients, id)
	cp.publishLocked("client", id, "deleted")
}

func (cp *fakeControlPlane) setRole(id string, scopes ...string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.roles[id] = scopes
	cp.publishLocked("role", id, "updated")
}

// setClientSilently changes a client without a feed event (to prove that
// what the sidecar serves comes from its cache).
func (cp *fakeControlPlane) setClientSilently(id, token string, scopes ...string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.clients[id] = &fakeClient{token: token, scopes: scopes}
	cp.index++
}

func (cp *fakeControlPlane) resolver() *scopeengine.Resolver {
	var roles []scopeengine.Role
	for id, s := range cp.roles {
		roles = append(roles, scopeengine.Role{RoleID: id, Scopes: s})
	}
	r, err := scopeengine.NewResolver(roles)
	if err != nil {
		cp.t.Errorf("fake control plane: bad roles: %v", err)
	}
	return r
}

type fakeSource struct{ cp *fakeControlPlane }

func (f fakeSource) Client(_ context.Context, id string) (*protocol.Client, error) {
	f.cp.mu.Lock()
	defer f.cp.mu.Unlock()
	c := f.cp.clients[id]
	if c == nil {
		return nil, protocol.ErrClientNotFound
	}
	return &protocol.Client{ClientID: id, AccessToken: c.token, ExpandedScopes: f.cp.resolver().Expand(c.scopes),
		Expires: c.expires, Disabled: c.disabled}, nil
}

type fakeScopes struct{ r *scopeengine.Resolver }

func (f fakeScopes) Expand(s []string) []string { return f.r.Expand(s) }
func (f fakeScopes) Satisfies(have []string, need string) bool {
	return scopeengine.ScopeSet(have).Satisfies(need)
}

func (cp *fakeControlPlane) writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

func (cp *fakeControlPlane) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// hangUp simulates an unreachable control plane: the connection is closed
// without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (cp *fakeControlPlane) serve(w http.ResponseWriter, r *http.Request) {
	if cp.down.Load() {
		hangUp(w)
		return
	}
	const prefix = "/api/auth/v1"
	path := strings.TrimPrefix(r.URL.EscapedPath(), prefix)
	if path == "/authenticate-hawk" && r.Method == "POST" {
		cp.authCalls.Add(1)
		var body protocol.AuthenticateHawkRequest
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			cp.writeErr(w, 400, protocol.CodeInputError, err.Error())
			return
		}
		cp.mu.Lock()
		res := cp.resolver()
		cp.mu.Unlock()
		a := protocol.Authenticator{Clients: fakeSource{cp}, Scopes: fakeScopes{res}}
		cp.reply(w, a.Authenticate(r.Context(), body.Request()))
		return
	}
	// Every other endpoint needs the sidecar's own credentials and scope.
	a := protocol.Authenticator{Clients: fakeSource{cp}}
	res := a.Authenticate(r.Context(), protocol.RequestFromHTTP(r, false))
	if res.Status != protocol.StatusSuccess {
		cp.rejectedCalls.Add(1)
		cp.writeErr(w, 401, protocol.CodeAuthenticationFailed, res.Message)
		return
	}
	need := ""
	switch {
	case path == "/tcauth/changes":
		need = "auth:tcauth:watch-changes"
	case strings.HasPrefix(path, "/tcauth/clients/") && strings.HasSuffix(path, "/credentials"):
		need = "auth:tcauth:verify-clients"
	case path == "/roles/":
		need = "auth:list-roles"
	case strings.HasPrefix(path, "/roles/"):
		id, _ := url.PathUnescape(strings.TrimPrefix(path, "/roles/"))
		need = "auth:get-role:" + id
	default:
		cp.writeErr(w, 404, protocol.CodeResourceNotFound, "no such endpoint "+path)
		return
	}
	if !scopeengine.ScopeSet(res.Scopes).Satisfies(need) {
		cp.rejectedCalls.Add(1)
		cp.writeErr(w, 403, protocol.CodeInsufficientScopes, "missing "+need)
		return
	}
	switch {
	case path == "/tcauth/changes":
		cp.serveChanges(w, r)
	case strings.HasPrefix(path, "/tcauth/clients/"):
		id, _ := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(path, "/tcauth/clients/"), "/credentials"))
		v, _ := cp.credFetches.LoadOrStore(id, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		n := cp.credInFlight.Add(1)
		defer cp.credInFlight.Add(-1)
		for m := cp.credMaxFlight.Load(); n > m && !cp.credMaxFlight.CompareAndSwap(m, n); m = cp.credMaxFlight.Load() {
		}
		if cp.credFault(w, r, id) {
			return
		}
		if d := cp.credDelay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		cp.mu.Lock()
		c := cp.clients[id]
		var out map[string]any
		if c != nil {
			exp := ""
			if !c.expires.IsZero() {
				exp = protocol.FormatTime(c.expires)
			}
			out = map[string]any{"clientId": id, "accessToken": c.token, "scopes": c.scopes, "expandedScopes": []string(cp.resolver().Expand(c.scopes)),
				"expires": exp, "disabled": c.disabled, "lastModified": protocol.FormatTime(time.Now())}
		}
		idx := cp.index
		cp.mu.Unlock()
		if lag, ok := cp.lagging.Load(id); ok {
			l := lag.(*laggingAnswer)
			out["accessToken"], idx = l.client.token, l.index
		}
		if c == nil {
			cp.writeErr(w, 404, protocol.CodeResourceNotFound, "client not found")
			return
		}
		w.Header().Set(headerAppliedIndex, strconv.FormatUint(idx, 10))
		cp.reply(w, out)
	case path == "/roles/":
		cp.mu.Lock()
		var out []map[string]any
		for id, s := range cp.roles {
			out = append(out, map[string]any{"roleId": id, "scopes": s})
		}
		cp.mu.Unlock()
		sort.Slice(out, func(i, j int) bool { return out[i]["roleId"].(string) < out[j]["roleId"].(string) })
		if out == nil {
			out = []map[string]any{}
		}
		cp.reply(w, out)
	default:
		id, _ := url.PathUnescape(strings.TrimPrefix(path, "/roles/"))
		cp.mu.Lock()
		s, ok := cp.roles[id]
		cp.mu.Unlock()
		if !ok {
			cp.writeErr(w, 404, protocol.CodeResourceNotFound, "role not found")
			return
		}
		cp.reply(w, map[string]any{"roleId": id, "scopes": s})
	}
}

// credFault answers a credentials call as set in credFaults, or as the
// real control plane answers an id that does not match the clientId
// pattern (400 InvalidRequestArguments); false when neither applies.
func (cp *fakeControlPlane) credFault(w http.ResponseWriter, r *http.Request, id string) bool {
	if !clientIDPattern.MatchString(id) {
		cp.writeErr(w, 400, protocol.CodeInvalidRequestArguments, "Invalid URL patterns: clientId")
		return true
	}
	v, ok := cp.credFaults.Load(id)
	if !ok {
		return false
	}
	f := v.(credFault)
	switch {
	case f.drop:
		hangUp(w)
	case f.hang:
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		cp.writeErr(w, 500, protocol.CodeInternalServerError, "too late")
	default:
		if f.retryAfter {
			w.Header().Set("Retry-After", "1")
		}
		cp.writeErr(w, f.status, "Fault", "injected fault")
	}
	return true
}

var clientIDPattern = regexp.MustCompile(protocol.ClientIDPattern)

// serveChanges is the long poll: answers at once when changes after
// `after` exist, else waits for one (or `wait` seconds).
func (cp *fakeControlPlane) serveChanges(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	deadline := time.After(time.Duration(wait) * time.Second)
	for {
		cp.mu.Lock()
		if after < cp.lost {
			cp.mu.Unlock()
			cp.writeErr(w, 410, protocol.CodeResourceExpired, "feed history expired")
			return
		}
		var out []changeEvent
		for _, c := range cp.changes {
			if c.Index > after {
				out = append(out, c)
			}
		}
		idx, ch := cp.index, cp.notify
		cp.mu.Unlock()
		if len(out) > 0 || wait <= 0 {
			if out == nil {
				out = []changeEvent{}
			}
			w.Header().Set(headerAppliedIndex, strconv.FormatUint(idx, 10))
			cp.reply(w, changesResponse{Index: idx, Changes: out})
			return
		}
		select {
		case <-ch:
			if cp.down.Load() {
				hangUp(w)
				return
			}
		case <-deadline:
			wait = 0
		case <-r.Context().Done():
			return
		}
	}
}

// setDown switches the control plane off (connections are dropped) or
// back on; long polls in progress are woken and dropped too.
func (cp *fakeControlPlane) setDown(down bool) {
	cp.down.Store(down)
	cp.mu.Lock()
	close(cp.notify)
	cp.notify = make(chan struct{})
	cp.mu.Unlock()
}
