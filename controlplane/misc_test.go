package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

func TestDockerflowAndHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.api("GET", "/ping")
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"alive": true, "uptime": 0})
	for _, p := range []string{"/api/auth/v1/__lbheartbeat__", "/__lbheartbeat__"} {
		r := e.do("GET", p)
		expectStatus(t, r, 200)
		jsonEq(t, r.body, map[string]any{})
	}
	r = e.do("GET", "/__version__")
	expectStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"version"`) {
		t.Errorf("%s", r.body)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Max-Age":       "900",
		"Access-Control-Allow-Methods": "OPTIONS,GET,HEAD,POST,PUT,DELETE,TRACE,CONNECT",
		"Access-Control-Allow-Headers": "X-Requested-With,Content-Type,Authorization,Accept,Origin,Cache-Control",
		"Cache-Control":                "no-store no-cache must-revalidate",
	}
	for k, v := range want {
		if r.header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, r.header.Get(k), v)
		}
	}
	m := expectError(t, e.api("GET", "/no/such/thing"), 404, "ResourceNotFound")
	if m["requestInfo"] == nil {
		t.Errorf("no requestInfo")
	}
	expectStatus(t, e.api("OPTIONS", "/clients/x"), 200)
	expectError(t, e.api("PATCH", "/clients/x"), 404, "ResourceNotFound")
	// Body limit.
	big := `{"scopes":["` + strings.Repeat("a", 11<<20) + `"]}`
	expectError(t, e.api("POST", "/scopes/expand", asRoot(), withBody(big)), 413, "InputTooLarge")
}

func TestHeartbeat(t *testing.T) {
	e := newMemEnv(t)
	expectStatus(t, e.do("GET", "/__heartbeat__"), 200)
	e.mem.setLeader(false, "http://leader.invalid")
	expectStatus(t, e.do("GET", "/__heartbeat__"), 429)
	expectStatus(t, e.do("GET", "/__heartbeat__?standbyok=true"), 200)
	e.mem.setLeader(false, "")
	r := e.do("GET", "/__heartbeat__")
	expectStatus(t, r, 503)
	if !strings.Contains(string(r.body), "no-quorum") {
		t.Errorf("%s", r.body)
	}
}

func TestAuthenticateHawk(t *testing.T) {
	e := newEnv(t)
	e.putRole("anonymous", "auth:current-scopes")
	e.addClient("svc", "svc-token-0123456789abcdef", "test:*")
	header, err := protocol.SignRequest(protocol.Credentials{ClientID: "svc", AccessToken: "svc-token-0123456789abcdef"}, "GET",
		"https://queue.example.com/api/queue/v1/task/x", protocol.SignOptions{Now: frozen})
	if err != nil {
		t.Fatal(err)
	}
	body := func(auth string) string {
		b, _ := json.Marshal(map[string]any{"method": "get", "resource": "/api/queue/v1/task/x", "host": "queue.example.com", "port": 443, "authorization": auth})
		return string(b)
	}
	r := e.api("POST", "/authenticate-hawk", withBody(body(header)))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"status": "auth-success", "scheme": "hawk", "scopes": []string{"assume:anonymous", "auth:current-scopes", "test:*"},
		"clientId": "svc", "expires": "2023-11-15T22:13:20.000Z"})
	r = e.api("POST", "/authenticate-hawk", withBody(strings.Replace(body(header), "443", "80", 1)))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"status": "auth-failed", "message": "Unauthorized: Bad mac"})
	r = e.api("POST", "/authenticate-hawk", withBody(`{"method":"get","resource":"/x","host":"queue.example.com","port":443}`))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"status": "no-auth", "scheme": "none", "scopes": []string{"assume:anonymous", "auth:current-scopes"}, "expires": "2023-11-14T22:28:20.000Z"})
	m := expectError(t, e.api("POST", "/authenticate-hawk", withBody(`{"method":"GET","resource":"/x","host":"bad host!","port":70000,"sourceIp":"nope"}`)), 400, "InputValidationError")
	msg := m["message"].(string)
	for _, want := range []string{"data/method must be equal to one of the allowed values", `data/host must match format "hostname"`, "data/port must be <= 65535", `data/sourceIp must match format "ip"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestCloudEndpointsNotConfigured(t *testing.T) {
	e := newEnv(t)
	// method path status code
	table := `
GET /aws/s3/read-write/bkt/a/b 404 ResourceNotFound
GET /aws/s3/read-only/bkt//a 400 InputError
GET /aws/s3/read-sometimes/bkt/a 400 InvalidRequestArguments
GET /aws/s3/read-only/bkt/a?format=iam-role-compat 404 ResourceNotFound
GET /azure/accounts 200 -
GET /azure/acct/tables 404 ResourceNotFound
GET /azure/acct/table/Tbl/read-only 404 ResourceNotFound
GET /azure/acct/containers 404 ResourceNotFound
GET /azure/acct/containers/con--t/read-only 400 InvalidRequestArguments
GET /sentry/proj/dsn 404 ResourceNotFound
GET /gcp/credentials/p/sa@p.iam.gserviceaccount.com 404 ResourceNotFound
POST /github/app/Owner/repo-token 404 ResourceNotFound`
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		f := strings.Fields(line)
		status, _ := strconv.Atoi(f[2])
		opts := []opt{asRoot()}
		if f[0] == "POST" {
			opts = append(opts, withBody(`{"permissions":{"contents":"read"},"repositories":["Repo"]}`))
		}
		r := e.api(f[0], f[1], opts...)
		if f[3] == "-" {
			expectStatus(t, r, status)
			continue
		}
		expectError(t, r, status, f[3])
	}
	// githubRepoToken authorizes with lower-cased owner and repo.
	e.addClient("gh", "gh-token-0123456789abcdef", "auth:github-repo-token:app/owner/repo:contents:read")
	expectError(t, e.api("POST", "/github/app/Owner/repo-token", as("gh", "gh-token-0123456789abcdef"),
		withBody(`{"permissions":{"contents":"read"},"repositories":["Repo"]}`)), 404, "ResourceNotFound")
	expectError(t, e.api("POST", "/github/app/Owner/repo-token", as("gh", "gh-token-0123456789abcdef"),
		withBody(`{"permissions":{"contents":"write"},"repositories":["Repo"]}`)), 403, "InsufficientScopes")
}

func TestMetricsAndLogs(t *testing.T) {
	e := newEnv(t)
	expectStatus(t, e.api("GET", "/clients/root", asRoot()), 200)
	r := e.do("GET", "/metrics")
	expectStatus(t, r, 200)
	for _, want := range []string{`tcauth_api_requests_total{endpoint="client",status="200"} 1`, `tcauth_raft_state{state="leader"} 1`, "tcauth_api_request_duration_seconds_bucket"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	r = e.api("PUT", "/clients/new", asRoot(), withBody(`{"description":"d","expires":"2030-01-01T00:00:00.000Z"}`))
	expectStatus(t, r, 200)
	token := decodeClient(t, r).AccessToken
	logs := e.logBuf.String()
	if !strings.Contains(logs, `"endpoint":"createClient"`) {
		t.Errorf("no request log:\n%s", logs)
	}
	for _, secret := range []string{rootToken, token, "Hawk id="} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret (%q)", secret)
		}
	}
	expectStatus(t, e.do("GET", "/metrics"), 200)
	if !strings.Contains(string(e.do("GET", "/metrics").body), `tcauth_raft_apply_duration_seconds_count{op="create-client"} 1`) {
		t.Errorf("no apply latency observed")
	}
}

func TestChangeFeedAndCredentials(t *testing.T) {
	e := newEnv(t)
	e.addClient("sidecar", "sidecar-token-0123456789", "auth:tcauth:watch-changes", "auth:tcauth:verify-clients")
	sidecar := as("sidecar", "sidecar-token-0123456789")
	base := e.store.AppliedIndex()
	expectStatus(t, e.api("PUT", "/clients/w1", asRoot(), withBody(`{"description":"d","expires":"2030-01-01T00:00:00.000Z"}`)), 200)
	type feed struct {
		Index   uint64   `json:"index"`
		Changes []Change `json:"changes"`
	}
	decodeFeed := func(r response) feed {
		t.Helper()
		expectStatus(t, r, 200)
		var f feed
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	r := e.api("GET", "/tcauth/changes?after="+strconv.FormatUint(base, 10), sidecar)
	f := decodeFeed(r)
	if f.Index <= base || len(f.Changes) != 1 || f.Changes[0] != (Change{Index: f.Index, Kind: "client", ID: "w1", Op: f.Changes[0].Op}) {
		t.Fatalf("feed after %d: %+v", base, f)
	}
	if r.header.Get("X-Tcauth-Applied-Index") != strconv.FormatUint(f.Index, 10) {
		t.Errorf("applied index header %q", r.header.Get("X-Tcauth-Applied-Index"))
	}
	// A long poll returns when the next change is applied.
	after := strconv.FormatUint(f.Index, 10)
	done := make(chan response)
	go func() { done <- e.api("GET", "/tcauth/changes?wait=30&after="+after, sidecar) }()
	time.Sleep(50 * time.Millisecond)
	expectStatus(t, e.api("DELETE", "/clients/w1", asRoot()), 204)
	select {
	case r := <-done:
		g := decodeFeed(r)
		if g.Index <= f.Index || len(g.Changes) != 1 || g.Changes[0] != (Change{Index: g.Index, Kind: "client", ID: "w1", Deleted: true, Op: "deleted"}) {
			t.Fatalf("long poll: %+v", g)
		}
		f = g
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return")
	}
	// Timeout: no changes, the current index.
	g := decodeFeed(e.api("GET", "/tcauth/changes?wait=0&after="+strconv.FormatUint(f.Index, 10), sidecar))
	if g.Index != f.Index || g.Changes == nil || len(g.Changes) != 0 {
		t.Fatalf("timeout: %+v", g)
	}
	expectError(t, e.api("GET", "/tcauth/changes?after=x", sidecar), 400, "InvalidRequestArguments")
	expectError(t, e.api("GET", "/tcauth/changes"), 403, "InsufficientScopes")

	r = e.api("GET", "/tcauth/clients/root/credentials", sidecar)
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"clientId": "root", "accessToken": rootToken, "scopes": []string{"*"}, "expandedScopes": []string{"*"},
		"expires": "2023-11-15T22:13:20.000Z", "disabled": false, "lastModified": "2023-11-14T21:13:20.000Z"})
	expectError(t, e.api("GET", "/tcauth/clients/nope/credentials", sidecar), 404, "ResourceNotFound")
	e.addClient("other", "other-token-0123456789a", "auth:tcauth:watch-changes")
	expectError(t, e.api("GET", "/tcauth/clients/root/credentials", as("other", "other-token-0123456789a")), 403, "InsufficientScopes")
}

func TestLastUsedBatching(t *testing.T) {
	e := newMemEnv(t)
	e.put(ClientRecord{ClientID: "stale", Scopes: []string{"auth:current-scopes"}, Expires: frozen.Add(time.Hour), LastDateUsed: frozen.Add(-7 * time.Hour)}, "stale-token-0123456789ab")
	e.put(ClientRecord{ClientID: "fresh", Scopes: []string{"auth:current-scopes"}, Expires: frozen.Add(time.Hour), LastDateUsed: frozen.Add(-time.Hour)}, "fresh-token-0123456789ab")
	for i := 0; i < 5; i++ {
		expectStatus(t, e.api("GET", "/scopes/current", as("stale", "stale-token-0123456789ab")), 200)
		expectStatus(t, e.api("GET", "/scopes/current", as("fresh", "fresh-token-0123456789ab")), 200)
	}
	before := len(e.mem.commands())
	e.srv.FlushLastUsed(context.Background())
	cmds := e.mem.commands()[before:]
	if len(cmds) != 1 || cmds[0].Op != OpTouchClients || len(cmds[0].LastUsed) != 1 || !cmds[0].LastUsed["stale"].Equal(frozen) {
		t.Fatalf("want one batched touch of stale only, got %+v", cmds)
	}
	if c, _ := e.store.Client("stale"); !c.LastDateUsed.Equal(frozen) {
		t.Errorf("lastDateUsed %v", c.LastDateUsed)
	}
	e.srv.FlushLastUsed(context.Background())
	if len(e.mem.commands()) != before+1 {
		t.Errorf("empty batch was committed")
	}
	// A failed commit keeps the batch.
	e.srv.lastUsed.add("x", frozen)
	e.mem.mu.Lock()
	e.mem.applyErr = ErrNotLeader
	e.mem.mu.Unlock()
	e.srv.FlushLastUsed(context.Background())
	if len(e.srv.lastUsed.take()) != 1 {
		t.Errorf("undelivered batch dropped")
	}
}

func TestBackgroundJobs(t *testing.T) {
	e := newMemEnv(t)
	e.put(ClientRecord{ClientID: "gone", Expires: frozen.Add(-time.Minute), DeleteOnExpiration: true}, "gone-token-0123456789abcd")
	e.put(ClientRecord{ClientID: "kept", Expires: frozen.Add(-time.Minute)}, "kept-token-0123456789abcd")
	if err := e.srv.DeleteExpiredClients(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.store.Client("gone"); ok {
		t.Errorf("expired client with deleteOnExpiration kept")
	}
	if _, ok := e.store.Client("kept"); !ok {
		t.Errorf("expired client without deleteOnExpiration deleted")
	}
	rows, _ := e.store.Audit(AuditQuery{EntityType: "client", EntityID: "gone"}, 0, 10)
	if len(rows) != 2 || rows[1].ActionType != "expired" || rows[1].ClientID != "static/taskcluster/auth" {
		t.Errorf("audit %+v", rows)
	}
	// Expired clients cannot authenticate.
	expectError(t, e.api("GET", "/scopes/current", as("kept", "kept-token-0123456789abcd")), 401, "AuthenticationFailed")

	e.mem.mu.Lock()
	e.mem.audit = append(e.mem.audit, AuditRecord{EntityType: "client", EntityID: "ancient", Created: frozen.Add(-31 * 24 * time.Hour)})
	e.mem.mu.Unlock()
	if err := e.srv.PurgeAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows, _ := e.store.Audit(AuditQuery{EntityType: "client", EntityID: "ancient"}, 0, 10); len(rows) != 0 {
		t.Errorf("old audit row kept")
	}
	if rows, _ := e.store.Audit(AuditQuery{EntityType: "client", EntityID: "gone"}, 0, 10); len(rows) != 2 {
		t.Errorf("recent audit row purged")
	}
}

func TestStaticClients(t *testing.T) {
	static := []StaticClient{
		{ClientID: "static/taskcluster/root", AccessToken: "root-static-token-0123456789"},
		{ClientID: "static/mine", AccessToken: "mine-static-token-0123456789", Description: "mine", Scopes: []string{"b", "a"}},
	}
	e := newEnv(t, func(c *Config) { c.StaticClients = static })
	e.put(ClientRecord{ClientID: "static/obsolete"}, "obsolete-token-0123456789")
	if err := e.srv.SyncStaticClients(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.store.Client("static/obsolete"); ok {
		t.Errorf("unconfigured static client kept")
	}
	r := e.api("GET", "/clients/static%2Ftaskcluster%2Froot", as("static/taskcluster/root", "root-static-token-0123456789"))
	expectStatus(t, r, 200)
	c := decodeClient(t, r)
	if c.Description != "Internal client"+StaticDescriptionNote || strings.Join(c.Scopes, ",") != "*" || !c.Expires.Equal(frozen.AddDate(1000, 0, 0)) {
		t.Errorf("%+v", c)
	}
	if m, _ := e.store.Client("static/mine"); strings.Join(m.Scopes, ",") != "b,a" {
		t.Errorf("static scopes not stored as configured: %v", m.Scopes)
	}
	// A second sync in the same leadership, or after a restart with the same
	// configuration, writes nothing.
	n := e.store.AppliedIndex()
	e.srv.staticSynced = false
	if err := e.srv.SyncStaticClients(context.Background()); err != nil || e.store.AppliedIndex() != n {
		t.Errorf("unchanged static clients re-synced (%v)", err)
	}
	// The API refuses to touch them.
	expectError(t, e.api("POST", "/clients/static%2Fmine/disable", asRoot()), 400, "InputError")

	for _, bad := range [][]StaticClient{
		{{ClientID: "static/taskcluster/unknown", AccessToken: "tok-0123456789abcdefghijk"}},
		{{ClientID: "static/taskcluster/root", AccessToken: "tok-0123456789abcdefghijk", Scopes: []string{"*"}}},
		{{ClientID: "nostatic", AccessToken: "tok-0123456789abcdefghijk", Description: "d", Scopes: []string{}}},
		{{ClientID: "static/x", AccessToken: "short", Description: "d", Scopes: []string{}}},
		{{ClientID: "static/x", AccessToken: "tok-0123456789abcdefghijk"}},
	} {
		if _, err := ResolveStaticClients(bad); err == nil {
			t.Errorf("ResolveStaticClients(%+v) accepted", bad)
		}
	}
}

func TestEnsureRootToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, created, err := EnsureRootToken(dir)
	if err != nil || !created || len(tok) != 44 {
		t.Fatalf("%q %v %v", tok, created, err)
	}
	st, err := os.Stat(filepath.Join(dir, RootTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	again, created, err := EnsureRootToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second call: %q %v %v", again, created, err)
	}
	if _, err := ResolveStaticClients([]StaticClient{{ClientID: "static/taskcluster/root", AccessToken: tok}}); err != nil {
		t.Errorf("generated token rejected: %v", err)
	}
}

// memFollower is a replica of a memStore's state that does not lead.
type memFollower struct {
	*memStore
	leaderURL string
}

func (f *memFollower) IsLeader() bool                         { return false }
func (f *memFollower) RaftState() string                      { return "follower" }
func (f *memFollower) LeaderAPIAddress() string               { return f.leaderURL }
func (f *memFollower) Apply(context.Context, Command) error   { return ErrNotLeader }
func (f *memFollower) LinearizableRead(context.Context) error { return ErrNotLeader }

func newFollower(t *testing.T, leader *testEnv, mut ...func(*Config)) (*Server, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return frozen }
	cfg.Logger = leader.srv.log
	cfg.PeerKeyring = leader.srv.peers.sealer() // one cluster, one keyring
	for _, m := range mut {
		m(&cfg)
	}
	srv, err := New(cfg, &memFollower{memStore: leader.mem, leaderURL: leader.base})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

func TestForwardingToLeader(t *testing.T) {
	leader := newMemEnv(t) // trusts 127.0.0.0/8, i.e. the follower
	fsrv, furl := newFollower(t, leader)
	f := &testEnv{t: t, store: leader.store, srv: fsrv, base: furl}

	// A write signed for the follower's host:port verifies on the leader.
	r := f.api("PUT", "/clients/fw", asRoot(), withBody(`{"description":"d","expires":"2030-01-01T00:00:00.000Z"}`))
	expectStatus(t, r, 200)
	if _, ok := leader.store.Client("fw"); !ok {
		t.Fatal("forwarded write not applied on the leader")
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("forwarded response lost its headers")
	}
	// Encoded path segments survive forwarding byte for byte.
	expectStatus(t, f.api("PUT", "/clients/a%2Fb", asRoot(), withBody(`{"description":"d","expires":"2030-01-01T00:00:00.000Z"}`)), 200)
	expectStatus(t, f.api("GET", "/clients/a%2Fb", asRoot()), 200)
	// Errors come back from the leader unchanged.
	expectError(t, f.api("PUT", "/clients/fw2", as("root", "wrong-token-0123456789"), withBody(`{"description":"d","expires":"2030-01-01T00:00:00.000Z"}`)), 401, "AuthenticationFailed")
	// Local endpoints are answered by the follower itself.
	expectStatus(t, f.api("GET", "/scopes/current", asRoot()), 200)

	// Stale reads are served locally.
	ssrv, surl := newFollower(t, leader, func(c *Config) { c.StaleReads = true })
	s := &testEnv{t: t, store: leader.store, srv: ssrv, base: surl}
	expectStatus(t, s.api("GET", "/clients/fw", asRoot()), 200)

	// No known leader: 503.
	nsrv, nurl := newFollower(t, leader)
	nsrv.store.(*memFollower).leaderURL = ""
	n := &testEnv{t: t, store: leader.store, srv: nsrv, base: nurl}
	expectStatus(t, n.api("DELETE", "/clients/fw", asRoot()), 503)

	// lastDateUsed batches go to the leader.
	fsrv.lastUsed.add("fw", frozen)
	fsrv.FlushLastUsed(context.Background())
	if got := leader.srv.lastUsed.take(); !got["fw"].Equal(frozen) {
		t.Errorf("leader did not receive the follower's batch: %v", got)
	}
}

func TestForwardedHeadersNeedTrust(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedProxies = nil })
	// Signed for https://<host>/ (port 443) but sent to the test port: only a
	// trusted proxy may say the port was 443.
	r := e.api("GET", "/scopes/current", asRoot(), viaHost("tc.example.com"))
	expectError(t, r, 401, "AuthenticationFailed")
	trusting := newMemEnv(t)
	expectStatus(t, trusting.api("GET", "/scopes/current", asRoot(), viaHost("tc.example.com")), 200)
	// A forwarded request reaching a non-leader is not forwarded again.
	trusting.mem.setLeader(false, trusting.base)
	ticket, err := trusting.srv.peers.forward()
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, trusting.api("DELETE", "/clients/x", asRoot(), withHeader(forwardedHeader, ticket)), 503)
	// Only peers may report lastDateUsed.
	expectError(t, e.api("POST", "/tcauth/internal/last-used", withBody(`{"lastUsed":{}}`)), 403, "InsufficientScopes")
}

func TestRunSyncsStaticClientsOnLeadership(t *testing.T) {
	e := newMemEnv(t, func(c *Config) {
		c.StaticClients = []StaticClient{{ClientID: "static/taskcluster/root", AccessToken: "root-static-token-0123456789"}}
		c.AdvertiseURL = "http://node-a:8080"
	})
	e.mem.setLeader(false, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.srv.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	if _, ok := e.store.Client("static/taskcluster/root"); ok {
		t.Fatal("a follower synced static clients")
	}
	e.mem.setLeader(true, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := e.store.Client("static/taskcluster/root"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("static clients not synced after gaining leadership")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.store.LeaderAPIAddress() != "http://node-a:8080" {
		t.Errorf("API address not published: %q", e.store.LeaderAPIAddress())
	}
}

// A failed write says whether it is safe to retry: not proposed at all
// (NotAppliedHeader) or proposed with an unknown outcome (no header).
func TestWriteFailureOutcome(t *testing.T) {
	e := newMemEnv(t)
	for _, tc := range []struct {
		err        error
		notApplied bool
	}{
		{ErrNotLeader, true},
		{fmt.Errorf("%w: leadership lost while committing", ErrOutcomeUnknown), false},
	} {
		e.mem.mu.Lock()
		e.mem.applyErr = tc.err
		e.mem.mu.Unlock()
		r := e.api("PUT", "/roles/outcome", asRoot(), withBody(`{"description":"d","scopes":["a"]}`))
		expectError(t, r, 503, "InternalServerError")
		if got := r.header.Get(NotAppliedHeader) == "true"; got != tc.notApplied {
			t.Errorf("%v: %s present = %v, want %v", tc.err, NotAppliedHeader, got, tc.notApplied)
		}
	}
}
