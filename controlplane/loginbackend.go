package controlplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// loginApplyPath is the leader's endpoint, under the API prefix, for
// login writes handed over by followers. It is not part of the auth API:
// only a request carrying a login-apply peer ticket bound to its body is
// served, and only the ops of loginApplyOps.
const loginApplyPath = "/tcauth/internal/login-apply"

// The ops a follower may hand over: the login-state writes and the two
// client writes of the login service. Nothing else can be applied through
// the endpoint, whatever the ticket.
const (
	loginOpCreateClient  = "create-client"
	loginOpDisableClient = "disable-client"
)

var loginApplyOps = map[string]login.Op{
	"login-put": login.OpPut, "login-take": login.OpTake, "login-delete": login.OpDelete, "login-purge": login.OpPurge,
	loginOpCreateClient: "", loginOpDisableClient: "",
}

// maxLoginApplyBody bounds the endpoint's body: a record's data is at most
// 64 KiB (raftstore.MaxLoginSealedData), base64 in JSON about 88 KiB.
const maxLoginApplyBody = 256 << 10

// ErrInvalidLoginClient: a client the login service asked for is not one
// the API would create (bad clientId, a static/ id, an invalid scope).
var ErrInvalidLoginClient = errors.New("controlplane: invalid client for the login service")

// loginBackend is login.Backend over the Server's store. Writes on the
// leader are applied directly; a follower hands them to the leader through
// the login-apply endpoint and returns once it has applied them itself.
type loginBackend struct {
	s      *Server
	ls     LoginStore
	http   *http.Client
	replay *replayGuard
}

var _ login.Backend = (*loginBackend)(nil)

func newLoginBackend(s *Server, ls LoginStore) *loginBackend {
	return &loginBackend{s: s, ls: ls, http: &http.Client{Timeout: s.cfg.ForwardTimeout},
		replay: newReplayGuard(peerTicketMaxAge+peerTicketMaxSkew, 1<<16)}
}

// loginApplyRequest is the body of a handed-over write. Nonce makes every
// body unique, so the leader can refuse a replayed one (replayGuard).
type loginApplyRequest struct {
	Op       string            `json:"op"`
	Nonce    string            `json:"nonce"`
	Login    *login.Command    `json:"login,omitempty"`
	Client   *login.ClientSpec `json:"client,omitempty"`
	ClientID string            `json:"clientId,omitempty"`
	Actor    string            `json:"actor,omitempty"`
}

// loginApplyReply is the leader's answer once the command is applied:
// Outcome "ok", "not-found" or "conflict", and the index to wait for.
type loginApplyReply struct {
	Index       string        `json:"index"`
	Outcome     string        `json:"outcome"`
	Result      login.Result  `json:"result"`
	Client      *login.Client `json:"client,omitempty"`
	AccessToken string        `json:"accessToken,omitempty"`
}

// ---- login.Backend ----

func (b *loginBackend) Apply(ctx context.Context, cmd login.Command) (login.Result, error) {
	var op string
	for name, o := range loginApplyOps {
		if o != "" && o == cmd.Op {
			op = name
		}
	}
	if op == "" {
		return login.Result{}, fmt.Errorf("controlplane: unknown login op %q", cmd.Op)
	}
	if b.s.store.IsLeader() {
		res, _, err := b.applyLogin(ctx, cmd)
		if !errors.Is(err, ErrNotLeader) { // nothing proposed: hand it over instead
			return res, b.mapErr(err)
		}
	}
	rep, err := b.remote(ctx, loginApplyRequest{Op: op, Login: &cmd})
	if err != nil {
		return login.Result{}, err
	}
	return rep.Result, outcomeErr(rep.Outcome)
}

func (b *loginBackend) Record(kind, key string) (login.Record, bool, error) {
	return b.ls.LoginRecord(kind, key)
}

// Sync is the read-index recipe on any node: the leader confirms its
// leadership with a quorum; a follower asks the leader for its read index
// and waits until it has applied that much (bounded: a node that cannot
// catch up says so rather than answer from old state).
func (b *loginBackend) Sync(ctx context.Context) error {
	s := b.s
	if s.store.IsLeader() {
		err := s.store.LinearizableRead(ctx)
		if !errors.Is(err, ErrNotLeader) {
			return b.mapErr(err)
		}
	}
	idx, err := s.fetchReadIndex(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", login.ErrUnavailable, err)
	}
	return b.waitIndex(ctx, idx)
}

func (b *loginBackend) CreateClient(ctx context.Context, spec login.ClientSpec) (login.Client, string, error) {
	if err := checkLoginClient(spec); err != nil {
		return login.Client{}, "", err
	}
	if b.s.store.IsLeader() {
		c, tok, _, err := b.createClientHere(ctx, spec)
		if !errors.Is(err, ErrNotLeader) {
			return c, tok, b.mapErr(err)
		}
	}
	rep, err := b.remote(ctx, loginApplyRequest{Op: loginOpCreateClient, Client: &spec})
	if err != nil {
		return login.Client{}, "", err
	}
	var c login.Client
	if rep.Client != nil {
		c = *rep.Client
	}
	return c, rep.AccessToken, outcomeErr(rep.Outcome)
}

func (b *loginBackend) DisableClient(ctx context.Context, clientID, actor string) error {
	if b.s.store.IsLeader() {
		_, err := b.disableClientHere(ctx, clientID, actor)
		if !errors.Is(err, ErrNotLeader) {
			return b.mapErr(err)
		}
	}
	rep, err := b.remote(ctx, loginApplyRequest{Op: loginOpDisableClient, ClientID: clientID, Actor: actor})
	if err != nil {
		return err
	}
	return outcomeErr(rep.Outcome)
}

func (b *loginBackend) Client(clientID string) (login.Client, bool) {
	rec, ok := b.s.store.Client(clientID)
	return loginClient(rec), ok
}

func (b *loginBackend) ListClients(prefix string) []login.Client {
	recs, _ := b.s.store.ListClients(prefix, 0, -1)
	out := make([]login.Client, len(recs))
	for i, r := range recs {
		out[i] = loginClient(r)
	}
	return out
}

func (b *loginBackend) AccessToken(clientID string) (string, bool, error) {
	return b.s.store.AccessToken(clientID)
}

func (b *loginBackend) Resolver() *scopeengine.Resolver { return b.s.store.Resolver() }

func (b *loginBackend) IsLeader() bool { return b.s.store.IsLeader() }

func loginClient(r ClientRecord) login.Client {
	return login.Client{ClientID: r.ClientID, Description: r.Description, Scopes: r.Scopes, Expires: r.Expires,
		Created: r.Created, DeleteOnExpiration: r.DeleteOnExpiration, Disabled: r.Disabled}
}

// ---- the leader's side ----

// checkLoginClient refuses a client the API would refuse too: the login
// service builds clientIds from identities, and a bug there must not
// create a static/ client or one with an invalid scope.
func checkLoginClient(spec login.ClientSpec) error {
	if !clientIDRe.MatchString(spec.ClientID) || strings.HasPrefix(spec.ClientID, "static/") {
		return fmt.Errorf("%w: clientId %q", ErrInvalidLoginClient, spec.ClientID)
	}
	for _, sc := range spec.Scopes {
		if !scopeengine.ValidScope(sc) || strings.HasSuffix(sc, "**") {
			return fmt.Errorf("%w: scope %q", ErrInvalidLoginClient, sc)
		}
	}
	if spec.Expires.IsZero() {
		return fmt.Errorf("%w: no expiry", ErrInvalidLoginClient)
	}
	return nil
}

// createClientHere (leader) creates the client with a fresh token, as
// createClient does, audited as spec.Actor.
func (b *loginBackend) createClientHere(ctx context.Context, spec login.ClientSpec) (login.Client, string, uint64, error) {
	s := b.s
	now := s.cfg.Now()
	scopes := spec.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	token := newAccessToken()
	rec := ClientRecord{ClientID: spec.ClientID, Description: spec.Description, Scopes: scopes, Expires: spec.Expires,
		Created: now, LastModified: now, LastDateUsed: now, LastRotated: now, DeleteOnExpiration: spec.DeleteOnExpiration}
	err := s.apply(ctx, Command{Op: OpCreateClient, Time: now, Actor: spec.Actor, ID: spec.ClientID, Client: rec, AccessToken: token})
	idx := s.store.AppliedIndex()
	if errors.Is(err, ErrConflict) {
		old, _ := s.store.Client(spec.ClientID)
		return loginClient(old), "", idx, err
	}
	if err != nil {
		return login.Client{}, "", idx, err
	}
	stored, _ := s.store.Client(spec.ClientID)
	return loginClient(stored), token, idx, nil
}

func (b *loginBackend) disableClientHere(ctx context.Context, clientID, actor string) (uint64, error) {
	s := b.s
	err := s.apply(ctx, Command{Op: OpSetClientDisabled, Time: s.cfg.Now(), Actor: actor, ID: clientID, Disabled: true})
	return s.store.AppliedIndex(), err
}

// applyLogin applies on this (leader) node, timed like the API's writes.
func (b *loginBackend) applyLogin(ctx context.Context, cmd login.Command) (login.Result, uint64, error) {
	start := time.Now()
	res, idx, err := b.ls.ApplyLogin(ctx, cmd)
	b.s.metrics.applyLatency.WithLabelValues("login-" + string(cmd.Op)).Observe(time.Since(start).Seconds())
	return res, idx, err
}

// mapErr turns store errors into the login package's sentinels.
func (b *loginBackend) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, login.ErrNotFound), errors.Is(err, login.ErrConflict), errors.Is(err, login.ErrUnavailable):
		return err
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w (%v)", login.ErrNotFound, err)
	case errors.Is(err, ErrConflict):
		return fmt.Errorf("%w (%v)", login.ErrConflict, err)
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrOutcomeUnknown):
		return fmt.Errorf("%w: %v", login.ErrUnavailable, err)
	}
	return err
}

// outcome is the wire form of a rejection (the inverse of outcomeErr).
func outcome(err error) string {
	switch {
	case errors.Is(err, login.ErrNotFound):
		return "not-found"
	case errors.Is(err, login.ErrConflict):
		return "conflict"
	}
	return "ok"
}

func outcomeErr(o string) error {
	switch o {
	case "not-found":
		return login.ErrNotFound
	case "conflict":
		return login.ErrConflict
	}
	return nil
}

// serveLoginApply is the leader's login-apply endpoint. It is served
// where it arrives, never forwarded (a follower that gets one answers
// 503: the sender retries with the leader it then knows).
func (b *loginBackend) serveLoginApply(w http.ResponseWriter, r *http.Request) {
	s := b.s
	if r.Method != http.MethodPost {
		b.fail(w, r, apiErr(protocol.CodeResourceNotFound, "No such API endpoint: %s %s", r.Method, r.URL.EscapedPath()))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLoginApplyBody+1))
	if err != nil || len(body) > maxLoginApplyBody {
		b.fail(w, r, apiErr(protocol.CodeInputTooLarge, "Request body exceeds %d bytes", maxLoginApplyBody))
		return
	}
	if err := s.peers.verify(r.Header.Get(peerHeader), purposeLoginApply, body); err != nil {
		s.log.Warn("login write refused: not from a peer", "source", r.RemoteAddr, "reason", err.Error())
		b.fail(w, r, apiErr(protocol.CodeInsufficientScopes, "Only control-plane peers may hand over login writes (the request carries no valid peer ticket)."))
		return
	}
	var req loginApplyRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Nonce == "" || !b.wellFormed(req) {
		b.fail(w, r, apiErr(protocol.CodeMalformedPayload, "Not a login write this endpoint applies."))
		return
	}
	if !s.store.IsLeader() {
		b.fail(w, r, errNoLeader)
		return
	}
	sum := sha256.Sum256(body)
	switch b.replay.check(string(sum[:]), s.cfg.Now()) {
	case replaySeen:
		b.fail(w, r, apiErr(protocol.CodeRequestConflict, "This login write was already received."))
		return
	case replayFull:
		b.fail(w, r, errNoLeader)
		return
	}
	rep, err := b.applyHere(r.Context(), req)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.writeJSON(w, http.StatusOK, rep)
}

// wellFormed: the op is one of loginApplyOps and carries what it needs.
func (b *loginBackend) wellFormed(req loginApplyRequest) bool {
	lop, ok := loginApplyOps[req.Op]
	switch {
	case !ok:
		return false
	case lop != "":
		return req.Login != nil && req.Login.Op == lop && req.Client == nil && req.ClientID == ""
	case req.Op == loginOpCreateClient:
		return req.Client != nil && req.Login == nil && req.ClientID == ""
	default:
		return req.ClientID != "" && req.Login == nil && req.Client == nil
	}
}

func (b *loginBackend) applyHere(ctx context.Context, req loginApplyRequest) (loginApplyReply, error) {
	var rep loginApplyReply
	var idx uint64
	var err error
	switch req.Op {
	case loginOpCreateClient:
		if err = checkLoginClient(*req.Client); err != nil {
			return rep, apiErr(protocol.CodeInvalidRequestArguments, "%s", err.Error())
		}
		var c login.Client
		c, rep.AccessToken, idx, err = b.createClientHere(ctx, *req.Client)
		rep.Client = &c
	case loginOpDisableClient:
		idx, err = b.disableClientHere(ctx, req.ClientID, req.Actor)
	default:
		rep.Result, idx, err = b.applyLogin(ctx, *req.Login)
	}
	err = b.mapErr(err)
	if err != nil && !errors.Is(err, login.ErrNotFound) && !errors.Is(err, login.ErrConflict) {
		if errors.Is(err, login.ErrUnavailable) {
			return rep, errNoLeader
		}
		return rep, err
	}
	rep.Outcome, rep.Index = outcome(err), strconv.FormatUint(idx, 10)
	return rep, nil
}

func (b *loginBackend) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *protocol.APIError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, ErrOutcomeUnknown):
		ae = errOutcomeUnknown
	default:
		id := protocol.Slugid()
		b.s.log.Error("internal error", "endpoint", "loginApply", "incidentId", id, "error", err.Error())
		ae = apiErr(protocol.CodeInternalServerError, "Internal Server Error, incidentId %s.", id)
	}
	if ae == errNoLeader {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	b.writeJSON(w, ae.Status, ae.Body("loginApply", nil, nil, b.s.cfg.Now()))
}

func (b *loginBackend) writeJSON(w http.ResponseWriter, status int, v any) {
	out, err := protocol.Marshal(v)
	if err != nil {
		status, out = http.StatusInternalServerError, []byte(`{"code":"InternalServerError"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(out)
}

// ---- the follower's side ----

// remote hands a write to the leader and waits until this node has
// applied it (at most maxReadYourWritesWait; past that the write stands
// and the answer is given, but a local Record may lag a little).
func (b *loginBackend) remote(ctx context.Context, req loginApplyRequest) (loginApplyReply, error) {
	s := b.s
	var rep loginApplyReply
	leader := s.store.LeaderAPIAddress()
	if leader == "" {
		return rep, fmt.Errorf("%w: no leader known", login.ErrUnavailable)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return rep, err
	}
	req.Nonce = base64.RawURLEncoding.EncodeToString(nonce)
	body, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	ticket, err := s.peers.issue(purposeLoginApply, body)
	if err != nil {
		return rep, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(leader, "/")+apiPrefix+loginApplyPath, bytes.NewReader(body))
	if err != nil {
		return rep, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set(peerHeader, ticket)
	resp, err := b.http.Do(hreq)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return rep, fmt.Errorf("%w: leader unreachable: %v", login.ErrUnavailable, err)
		}
		return rep, fmt.Errorf("%w: the leader may or may not have applied the write: %v", login.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxLoginApplyBody))
	if err != nil {
		return rep, fmt.Errorf("%w: reading the leader's answer: %v", login.ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		return rep, fmt.Errorf("%w: the leader answered 503", login.ErrUnavailable)
	case resp.StatusCode != http.StatusOK:
		return rep, fmt.Errorf("controlplane: the leader refused the login write: HTTP %d %s", resp.StatusCode, bytes.TrimSpace(rb))
	}
	if err := json.Unmarshal(rb, &rep); err != nil {
		return rep, fmt.Errorf("controlplane: the leader's answer to a login write: %v", err)
	}
	idx, err := strconv.ParseUint(rep.Index, 10, 64)
	if err != nil {
		return rep, fmt.Errorf("controlplane: the leader's answer to a login write has no index: %v", err)
	}
	if err := b.waitIndex(ctx, idx); err != nil {
		s.log.Warn("login write applied by the leader but not yet here", "index", idx, "error", err.Error())
	}
	return rep, nil
}

// waitIndex waits, at most maxReadYourWritesWait, until this node has
// applied idx; login.ErrUnavailable when it has not.
func (b *loginBackend) waitIndex(ctx context.Context, idx uint64) error {
	ctx, cancel := context.WithTimeout(ctx, maxReadYourWritesWait)
	defer cancel()
	if err := b.ls.WaitForIndex(ctx, idx); err != nil {
		return fmt.Errorf("%w: this node has not applied index %d yet: %v", login.ErrUnavailable, idx, err)
	}
	return nil
}

// replayGuard remembers the bodies the endpoint served while their
// tickets are valid, so a captured request cannot be sent again (a
// replayed session put after a logout would otherwise revive it). It is
// per leader: a new leader does not know its predecessor's, which leaves
// one replay per request possible across a leader change, within a
// ticket's lifetime. When full it refuses new bodies (503) rather than
// forget old ones.
type replayGuard struct {
	mu        sync.Mutex
	ttl       time.Duration
	max       int
	seen      map[string]time.Time
	lastPrune time.Time
}

type replayVerdict int

const (
	replayNew replayVerdict = iota
	replaySeen
	replayFull
)

func newReplayGuard(ttl time.Duration, max int) *replayGuard {
	return &replayGuard{ttl: ttl, max: max, seen: map[string]time.Time{}}
}

// check records key and says whether it is new.
func (g *replayGuard) check(key string, now time.Time) replayVerdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) >= g.max || now.Sub(g.lastPrune) > g.ttl {
		g.lastPrune = now
		for k, at := range g.seen {
			if now.Sub(at) > g.ttl {
				delete(g.seen, k)
			}
		}
	}
	if at, ok := g.seen[key]; ok && now.Sub(at) <= g.ttl {
		return replaySeen
	}
	if len(g.seen) >= g.max {
		return replayFull
	}
	g.seen[key] = now
	return replayNew
}
