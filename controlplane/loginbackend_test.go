package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
)

// loginCluster is three real raftstore nodes, each with a Server that
// runs the login service, behind an httptest server.
type loginCluster struct {
	t       *testing.T
	raft    *raftstore.TestCluster
	srv     []*Server
	backend []login.Backend
	urls    []string
}

func newLoginCluster(t *testing.T, n int) *loginCluster {
	t.Helper()
	c := &loginCluster{t: t, raft: raftstore.NewTestCluster(t, n)}
	ctx, cancel := context.WithCancel(context.Background())
	for i, node := range c.raft.Nodes {
		var h http.Handler
		var mu sync.RWMutex
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.RLock()
			defer mu.RUnlock()
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(hs.Close)
		cfg := DefaultConfig()
		cfg.AdvertiseURL = hs.URL
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		cfg.PeerKeyring = c.raft.Keyring
		cfg.StaticClients = []StaticClient{{ClientID: "static/taskcluster/root", AccessToken: catchUpRootToken}}
		cfg.Logger = quietLogger()
		cfg.Login = &login.Config{PublicURL: hs.URL}
		srv, err := New(cfg, NewRaftStore(node))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		h = srv.Handler()
		mu.Unlock()
		go srv.Run(ctx)
		c.srv, c.urls = append(c.srv, srv), append(c.urls, hs.URL)
		c.backend = append(c.backend, srv.LoginBackend())
		_ = i
	}
	t.Cleanup(cancel)
	// Every node must know where the leader's API is.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range c.srv {
		for s.store.LeaderAPIAddress() == "" || (!s.store.IsLeader() && !s.caughtUp()) {
			if time.Now().After(deadline) {
				t.Fatal("the leader's API address did not reach every node")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return c
}

// followers are the indexes of the nodes that do not lead.
func (c *loginCluster) followers() []int {
	var out []int
	for i, n := range c.raft.Nodes {
		if n != nil && !n.IsLeader() {
			out = append(out, i)
		}
	}
	return out
}

func (c *loginCluster) leader() int {
	for i, n := range c.raft.Nodes {
		if n != nil && n.IsLeader() {
			return i
		}
	}
	c.t.Fatal("no leader")
	return -1
}

func sessionPut(key, identity string, data string) login.Command {
	now := time.Now()
	return login.Command{Op: login.OpPut, Time: now, MaxPerIdentity: 3, Record: login.Record{Kind: login.KindSession, Key: key,
		Identity: identity, Created: now, Expires: now.Add(time.Hour), Data: []byte(data)}}
}

// TestLoginBackendSingleNode: the leader's own path (no hop), and the
// error mapping of raftstore's rejections.
func TestLoginBackendSingleNode(t *testing.T) {
	c := newLoginCluster(t, 1)
	b, ctx := c.backend[0], context.Background()
	if _, err := b.Apply(ctx, sessionPut("k1", "gh/1", `{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := b.Record(login.KindSession, "k1")
	if err != nil || !ok || string(rec.Data) != `{"a":1}` || rec.Identity != "gh/1" {
		t.Fatalf("record %+v %v %v", rec, ok, err)
	}
	put := sessionPut("k1", "gh/1", "x")
	put.Create = true
	if _, err := b.Apply(ctx, put); !errors.Is(err, login.ErrConflict) {
		t.Fatalf("create over an existing key: %v", err)
	}
	res, err := b.Apply(ctx, login.Command{Op: login.OpTake, Time: time.Now(), Kind: login.KindSession, Key: "k1"})
	if err != nil || string(res.Record.Data) != `{"a":1}` {
		t.Fatalf("take %+v %v", res, err)
	}
	if _, err := b.Apply(ctx, login.Command{Op: login.OpTake, Time: time.Now(), Kind: login.KindSession, Key: "k1"}); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("second take: %v", err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(ctx, login.Command{Op: "frobnicate"}); err == nil {
		t.Fatal("unknown op applied")
	}
	// Data is sealed in the store: the plaintext is nowhere in a backup.
	if _, err := b.Apply(ctx, sessionPut("k2", "gh/1", "very-secret-session-data")); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := c.raft.Nodes[0].SaveSnapshot(&backup); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(backup.Bytes(), []byte("very-secret")) || !bytes.Contains(backup.Bytes(), []byte(`"loginRecords":1`)) {
		t.Fatalf("backup: %s", backup.Bytes())
	}
}

// TestLoginBackendFollowerWrites: a follower's writes are visible on that
// follower as soon as Apply returns (read-your-writes), Sync on another
// follower sees them, and rejections keep their meaning across the hop.
func TestLoginBackendFollowerWrites(t *testing.T) {
	c := newLoginCluster(t, 3)
	f := c.followers()
	ctx := context.Background()
	a, b := c.backend[f[0]], c.backend[f[1]]
	for i := range 20 {
		key := fmt.Sprintf("rw-%d", i)
		if _, err := a.Apply(ctx, sessionPut(key, "gh/1", "data-"+key)); err != nil {
			t.Fatal(err)
		}
		rec, ok, err := a.Record(login.KindSession, key)
		if !ok || err != nil || string(rec.Data) != "data-"+key {
			t.Fatalf("write %d not visible on the follower that made it: %+v %v %v", i, rec, ok, err)
		}
		if err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.Record(login.KindSession, key); !ok {
			t.Fatalf("write %d not visible on another follower after Sync", i)
		}
	}
	// MaxPerIdentity 3 kept the three newest.
	if _, ok, _ := a.Record(login.KindSession, "rw-16"); ok {
		t.Fatal("rw-16 survived MaxPerIdentity 3")
	}
	put := sessionPut("rw-19", "gh/1", "x")
	put.Create = true
	if _, err := b.Apply(ctx, put); !errors.Is(err, login.ErrConflict) {
		t.Fatalf("conflict through a follower: %v", err)
	}
	if _, err := b.Apply(ctx, login.Command{Op: login.OpTake, Time: time.Now(), Kind: login.KindCode, Key: "absent"}); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("absent take through a follower: %v", err)
	}
	res, err := b.Apply(ctx, login.Command{Op: login.OpDelete, Kind: login.KindSession, Identity: "gh/1"})
	if err != nil || res.Count != 3 {
		t.Fatalf("logout everywhere: %+v %v", res, err)
	}
	if _, ok, _ := b.Record(login.KindSession, "rw-19"); ok {
		t.Fatal("deleted session still visible on the follower that deleted it")
	}
	// Sync on the leader too.
	if err := c.backend[c.leader()].Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLoginBackendTakeIsSingleUse: two nodes take the same key at once;
// exactly one gets it.
func TestLoginBackendTakeIsSingleUse(t *testing.T) {
	c := newLoginCluster(t, 3)
	ctx := context.Background()
	f := c.followers()
	pairs := [][2]int{{f[0], f[1]}, {c.leader(), f[0]}}
	for round := range 10 {
		key := fmt.Sprintf("code-%d", round)
		now := time.Now()
		cmd := login.Command{Op: login.OpPut, Time: now, Record: login.Record{Kind: login.KindCode, Key: key, Created: now, Expires: now.Add(time.Minute), Data: []byte("c")}}
		if _, err := c.backend[f[0]].Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		pair := pairs[round%2]
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, node := range pair {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[j] = c.backend[node].Apply(ctx, login.Command{Op: login.OpTake, Time: time.Now(), Kind: login.KindCode, Key: key})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, login.ErrNotFound):
				t.Fatalf("take: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d takes won, want exactly 1 (%v)", round, won, errs)
		}
	}
}

// TestLoginBackendClientsFromFollower: CreateClient and DisableClient work
// from a follower, are visible there at once and are audited.
func TestLoginBackendClientsFromFollower(t *testing.T) {
	c := newLoginCluster(t, 3)
	ctx := context.Background()
	fi := c.followers()[0]
	b, store := c.backend[fi], c.srv[fi].store
	spec := login.ClientSpec{ClientID: "gh/1|octo/app-abc", Description: "for app", Scopes: []string{"assume:login-identity:gh/1|octo"},
		Expires: time.Now().Add(24 * time.Hour), DeleteOnExpiration: true, Actor: "static/taskcluster/web-server"}
	cl, tok, err := b.CreateClient(ctx, spec)
	if err != nil || tok == "" || cl.ClientID != spec.ClientID || !cl.DeleteOnExpiration {
		t.Fatalf("create: %+v %q %v", cl, tok, err)
	}
	if got, ok, _ := b.AccessToken(spec.ClientID); !ok || got != tok {
		t.Fatal("the new client's token is not readable on the follower at once")
	}
	if !accessTokenRe.MatchString(tok) {
		t.Fatalf("token %q is not an access token", tok)
	}
	again, tok2, err := b.CreateClient(ctx, spec)
	if !errors.Is(err, login.ErrConflict) || tok2 != "" || again.ClientID != spec.ClientID {
		t.Fatalf("second create: %+v %q %v", again, tok2, err)
	}
	if err := b.DisableClient(ctx, spec.ClientID, "static/taskcluster/web-server"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Client(spec.ClientID); !got.Disabled {
		t.Fatal("disable not visible on the follower at once")
	}
	if err := b.DisableClient(ctx, "gh/none", "x"); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("disable absent: %v", err)
	}
	audit, _ := store.Audit(AuditQuery{EntityType: "client", EntityID: spec.ClientID}, 0, -1)
	if len(audit) != 2 || audit[0].ActionType != "created" || audit[1].ActionType != "client disabled" ||
		audit[0].ClientID != spec.Actor || audit[1].ClientID != spec.Actor {
		t.Fatalf("audit %+v", audit)
	}
	if got := b.ListClients("gh/1|octo/"); len(got) != 1 {
		t.Fatalf("list %+v", got)
	}
	for _, bad := range []login.ClientSpec{
		{ClientID: "static/taskcluster/root", Expires: spec.Expires},
		{ClientID: "bad id", Expires: spec.Expires},
		{ClientID: "gh/2/x", Expires: spec.Expires, Scopes: []string{"a**"}},
		{ClientID: "gh/2/x"},
	} {
		if _, _, err := b.CreateClient(ctx, bad); !errors.Is(err, ErrInvalidLoginClient) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestLoginApplyEndpointRefuses: the internal endpoint applies nothing
// without a valid login-apply ticket for exactly its body, nothing
// replayed, and nothing outside its ops.
func TestLoginApplyEndpointRefuses(t *testing.T) {
	c := newLoginCluster(t, 1)
	srv, url := c.srv[0], c.urls[0]+apiPrefix+loginApplyPath
	rs := c.raft.Nodes[0]
	now := time.Now()
	body := func(op, key string) []byte {
		b, _ := json.Marshal(loginApplyRequest{Op: op, Nonce: key, Login: &login.Command{Op: login.OpPut, Time: now,
			Record: login.Record{Kind: login.KindSession, Key: key, Created: now, Expires: now.Add(time.Hour)}}})
		return b
	}
	post := func(b []byte, ticket string) int {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if ticket != "" {
			req.Header.Set(peerHeader, ticket)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ticket := func(purpose string, b []byte) string {
		tk, err := srv.peers.issue(purpose, b)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	foreign := &peerTickets{keyring: raftstore.TestKeyring(t), now: time.Now}
	foreignTicket, _ := foreign.issue(purposeLoginApply, body("login-put", "k-foreign"))
	fwd, _ := srv.peers.forward()
	other := body("login-put", "k-other")
	deleteClient, _ := json.Marshal(map[string]any{"op": "delete-client", "nonce": "n", "clientId": "static/taskcluster/root"})
	unknownField, _ := json.Marshal(map[string]any{"op": "login-purge", "nonce": "n", "login": map[string]any{"Op": "purge", "Time": now}, "extra": 1})
	mismatch, _ := json.Marshal(loginApplyRequest{Op: "login-take", Nonce: "n", Login: &login.Command{Op: login.OpPurge, Time: now}})
	cases := []struct {
		name   string
		body   []byte
		ticket string
		status int
	}{
		{"no ticket", body("login-put", "k-none"), "", 403},
		{"garbage ticket", body("login-put", "k-garbage"), "AAAA", 403},
		{"another cluster's ticket", body("login-put", "k-foreign"), foreignTicket, 403},
		{"a forward ticket", body("login-put", "k-fwd"), fwd, 403},
		{"a last-used ticket", body("login-put", "k-lu"), ticket(purposeLastUsed, body("login-put", "k-lu")), 403},
		{"a ticket for another body", body("login-put", "k-moved"), ticket(purposeLoginApply, other), 403},
		{"an op it does not apply", deleteClient, ticket(purposeLoginApply, deleteClient), 400},
		{"an unknown member", unknownField, ticket(purposeLoginApply, unknownField), 400},
		{"op and command disagree", mismatch, ticket(purposeLoginApply, mismatch), 400},
	}
	for _, tc := range cases {
		if got := post(tc.body, tc.ticket); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.status)
		}
	}
	if n := rs.LoginRecordCount(); n != 0 {
		t.Fatalf("%d login records after refused requests", n)
	}
	if _, ok := rs.Client("static/taskcluster/root"); !ok {
		t.Fatal("root client deleted through the login endpoint")
	}
	// The same body and ticket once: applied; twice: refused.
	good := body("login-put", "k-good")
	tk := ticket(purposeLoginApply, good)
	if got := post(good, tk); got != 200 {
		t.Fatalf("valid request: %d", got)
	}
	if got := post(good, tk); got != 409 {
		t.Fatalf("replayed request: %d, want 409", got)
	}
	if n := rs.LoginRecordCount(); n != 1 {
		t.Fatalf("%d login records, want 1", n)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// TestLoginBackendNoLeader: without a leader, writes and syncs on a
// follower fail with login.ErrUnavailable (the login service's 503).
func TestLoginBackendNoLeader(t *testing.T) {
	c := newLoginCluster(t, 3)
	f := c.followers()[0]
	for i := range c.raft.Nodes {
		if i != f {
			c.raft.Stop(i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.srv[f].store.LeaderAPIAddress() != "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := c.backend[f]
	if _, err := b.Apply(ctx, sessionPut("k", "gh/1", "x")); !errors.Is(err, login.ErrUnavailable) {
		t.Fatalf("apply without a leader: %v", err)
	}
	if err := b.Sync(ctx); !errors.Is(err, login.ErrUnavailable) {
		t.Fatalf("sync without a leader: %v", err)
	}
	if _, _, err := b.CreateClient(ctx, login.ClientSpec{ClientID: "gh/1/x", Expires: time.Now().Add(time.Hour)}); !errors.Is(err, login.ErrUnavailable) {
		t.Fatalf("create without a leader: %v", err)
	}
	if strings.Contains(fmt.Sprint(b.IsLeader()), "true") {
		t.Fatal("a lone follower claims to lead")
	}
}
