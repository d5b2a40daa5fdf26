package controlplane

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/raftstore"
)

// Every way a ticket can be wrong is refused; only a ticket sealed with
// the cluster keyring, for the purpose and body at hand, recently, passes.
func TestPeerTickets(t *testing.T) {
	kr := raftstore.TestKeyring(t)
	now := frozen
	p := &peerTickets{keyring: kr, now: func() time.Time { return now }}
	other := &peerTickets{keyring: raftstore.TestKeyring(t), now: p.now}
	body := []byte(`{"lastUsed":{"a":"2023-11-14T22:13:20.000Z"}}`)
	good, err := p.issue(purposeLastUsed, body)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.issue(purposeLastUsed, body)
	fwd, _ := p.issue(purposeForward, nil)
	at := func(d time.Duration) string {
		q := &peerTickets{keyring: kr, now: func() time.Time { return now.Add(d) }}
		s, _ := q.issue(purposeLastUsed, body)
		return s
	}
	// A client's sealed token (as in a backup) is not a ticket.
	token, _ := kr.Seal("some/client", []byte("v1\nlast-used\n1700000000\n"))
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flipped := append([]byte{}, raw...)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name, ticket, purpose string
		body                  []byte
		ok                    bool
	}{
		{"valid", good, purposeLastUsed, body, true},
		{"issued 1 min ago", at(-time.Minute), purposeLastUsed, body, true},
		{"issued 30 s ahead (clock skew)", at(30 * time.Second), purposeLastUsed, body, true},
		{"expired", at(-peerTicketMaxAge - time.Second), purposeLastUsed, body, false},
		{"too far in the future", at(peerTicketMaxSkew + time.Second), purposeLastUsed, body, false},
		{"other body", good, purposeLastUsed, []byte(`{"lastUsed":{"b":"2099-01-01T00:00:00.000Z"}}`), false},
		{"other purpose", fwd, purposeLastUsed, body, false},
		{"last-used ticket used as forward ticket", good, purposeForward, nil, false},
		{"another cluster's keyring", foreign, purposeLastUsed, body, false},
		{"a sealed client token", base64.RawURLEncoding.EncodeToString(token), purposeLastUsed, body, false},
		{"tampered", base64.RawURLEncoding.EncodeToString(flipped), purposeLastUsed, body, false},
		{"truncated", good[:len(good)-4], purposeLastUsed, body, false},
		{"empty", "", purposeLastUsed, body, false},
		{"the old marker", "1", purposeForward, nil, false},
		{"not base64", "!!!!", purposeLastUsed, body, false},
		{"huge", strings.Repeat("A", 100000), purposeLastUsed, body, false},
	} {
		err := p.verify(tc.ticket, tc.purpose, tc.body)
		if (err == nil) != tc.ok {
			t.Errorf("%s: verify = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// The forward ticket is reused for a while, then renewed.
	a, _ := p.forward()
	now = now.Add(peerTicketReuse / 2)
	if b, _ := p.forward(); b != a {
		t.Error("forward ticket not reused within peerTicketReuse")
	}
	now = now.Add(peerTicketReuse)
	if b, _ := p.forward(); b == a {
		t.Error("forward ticket not renewed")
	}
}

// reportLastUsed is refused without a valid peer ticket, whoever calls:
// an anonymous caller from a trusted proxy address, a caller with forged
// markers, even the root client; nothing reaches the batch. With a ticket
// it is accepted, and future times are taken as now.
func TestReportLastUsedNeedsPeerTicket(t *testing.T) {
	e := newMemEnv(t) // trusts 127.0.0.0/8: every caller here is a "trusted proxy"
	body := `{"lastUsed":{"root":"2099-01-01T00:00:00.000Z"}}`
	fwd, _ := e.srv.peers.forward()
	otherBody, _ := e.srv.peers.issue(purposeLastUsed, []byte(`{"lastUsed":{}}`))
	foreign := &peerTickets{keyring: raftstore.TestKeyring(t), now: e.srv.peers.now}
	foreignTicket, _ := foreign.issue(purposeLastUsed, []byte(body))
	for _, tc := range []struct {
		name string
		opts []opt
	}{
		{"anonymous", nil},
		{"root's Hawk credentials", []opt{asRoot()}},
		{"old-style forwarded marker", []opt{withHeader(forwardedHeader, "1")}},
		{"a valid forward ticket", []opt{withHeader(forwardedHeader, fwd)}},
		{"forward ticket as peer ticket", []opt{withHeader(peerHeader, fwd)}},
		{"garbage peer ticket", []opt{withHeader(peerHeader, "AAAA")}},
		{"ticket for another body", []opt{withHeader(peerHeader, otherBody)}},
		{"ticket of another cluster", []opt{withHeader(peerHeader, foreignTicket)}},
	} {
		r := e.api("POST", "/tcauth/internal/last-used", append([]opt{withBody(body)}, tc.opts...)...)
		if r.status != 403 || r.json(t)["code"] != "InsufficientScopes" {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
		if got := e.srv.lastUsed.take(); len(got) != 0 {
			t.Fatalf("%s: refused report reached the batch: %v", tc.name, got)
		}
	}
	ticket, _ := e.srv.peers.issue(purposeLastUsed, []byte(body))
	expectStatus(t, e.api("POST", "/tcauth/internal/last-used", withBody(body), withHeader(peerHeader, ticket)), 200)
	if got := e.srv.lastUsed.take(); !got["root"].Equal(frozen) {
		t.Errorf("accepted report: %v, want root at now (future time clamped)", got)
	}
}

// countingLeader wraps the leader's handler to count what reaches it.
func countingLeader(t *testing.T, leader *testEnv) *atomic.Int64 {
	var n atomic.Int64
	h := leader.srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	leader.base = hs.URL
	return &n
}

// A follower authenticates the caller before forwarding: unsigned callers
// that the route's scopes refuse never reach the leader; signed requests it
// refuses are handed to the leader (its own state may be behind), and
// everything forwarded is checked again by the leader
// against the caller's own signature, so a limited client stays limited
// and a forged marker changes nothing. reportLastUsed is not forwarded.
func TestFollowerChecksCallerBeforeForwarding(t *testing.T) {
	leader := newMemEnv(t)
	hits := countingLeader(t, leader)
	fsrv, furl := newFollower(t, leader)
	f := &testEnv{t: t, store: leader.store, srv: fsrv, base: furl}
	leader.addClient("limited", "limited-token-0123456789", "auth:create-client:lim/*", "auth:delete-client:lim/*")
	leader.addClient("victim", "victim-token-0123456789", "x")
	lim := as("limited", "limited-token-0123456789")
	create := func(scopes string) opt {
		return withBody(`{"description":"d","expires":"2030-01-01T00:00:00.000Z","scopes":` + scopes + `}`)
	}
	for _, tc := range []struct {
		name          string
		method, path  string
		opts          []opt
		status        int
		reachesLeader bool
	}{
		// Signed requests refused here may be refused only because this node
		// is behind: the leader decides (and refuses them just the same).
		{"bad token", "PUT", "/clients/lim%2Fa", []opt{as("limited", "wrong-token-0123456789"), create(`[]`)}, 401, true},
		{"unknown client", "PUT", "/clients/lim%2Fa", []opt{as("nobody", "wrong-token-0123456789"), create(`[]`)}, 401, true},
		{"anonymous delete", "DELETE", "/clients/victim", nil, 403, false},
		{"limited delete outside its prefix", "DELETE", "/clients/victim", []opt{lim}, 403, true},
		{"limited delete, forged marker", "DELETE", "/clients/victim", []opt{lim, withHeader(forwardedHeader, "1")}, 403, true},
		{"anonymous join", "POST", "/tcauth/cluster/members", []opt{withBody(`{"id":"evil","raftAddr":"10.0.0.66:8300"}`)}, 403, false},
		{"limited reset outside its scopes", "POST", "/clients/victim/reset", []opt{lim}, 403, true},
		// The scopes of createClient depend on the body: the leader decides.
		{"limited create with more scopes than it has", "PUT", "/clients/lim%2Fb", []opt{lim, create(`["*"]`)}, 403, true},
		{"limited create, forged marker", "PUT", "/clients/lim%2Fc", []opt{lim, create(`["*"]`), withHeader(forwardedHeader, "1")}, 403, true},
		{"limited create within its scopes", "PUT", "/clients/lim%2Fd", []opt{lim, create(`[]`)}, 200, true},
		{"anonymous last-used", "POST", "/tcauth/internal/last-used", []opt{withBody(`{"lastUsed":{"victim":"2099-01-01T00:00:00.000Z"}}`)}, 403, false},
	} {
		before := hits.Load()
		r := f.api(tc.method, tc.path, tc.opts...)
		if r.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
		if got := hits.Load() > before; got != tc.reachesLeader {
			t.Errorf("%s: reached the leader = %v, want %v", tc.name, got, tc.reachesLeader)
		}
	}
	for _, id := range []string{"lim/a", "lim/b", "lim/c"} {
		if _, ok := leader.store.Client(id); ok {
			t.Errorf("%s was created", id)
		}
	}
	if _, ok := leader.store.Client("victim"); !ok {
		t.Error("victim deleted")
	}
	if got := leader.srv.lastUsed.take(); len(got) != 0 {
		t.Errorf("leader's batch: %v", got)
	}
	if got := fsrv.lastUsed.take(); len(got) != 0 {
		t.Errorf("follower's batch: %v", got)
	}
}

// A follower's batch reaches the leader only with the cluster's keyring;
// a node with another keyring is refused and keeps its batch.
func TestLastUsedBatchNeedsClusterKeyring(t *testing.T) {
	leader := newMemEnv(t, func(c *Config) { c.PeerKeyring = raftstore.TestKeyring(t) })
	good, _ := newFollower(t, leader)
	good.lastUsed.add("root", frozen)
	good.FlushLastUsed(context.Background())
	if got := leader.srv.lastUsed.take(); !got["root"].Equal(frozen) {
		t.Fatalf("batch from a peer not received: %v", got)
	}
	stranger, _ := newFollower(t, leader, func(c *Config) { c.PeerKeyring = raftstore.TestKeyring(t) })
	stranger.lastUsed.add("root", frozen)
	stranger.FlushLastUsed(context.Background())
	if got := leader.srv.lastUsed.take(); len(got) != 0 {
		t.Fatalf("batch from another cluster's node accepted: %v", got)
	}
	if got := stranger.lastUsed.take(); !got["root"].Equal(frozen) {
		t.Errorf("undelivered batch not kept: %v", got)
	}
}

// A node that is not leading keeps a peer's batch and delivers it with
// its own (leadership moved while the batch was on its way).
func TestLastUsedReportToNonLeaderIsKept(t *testing.T) {
	leader := newMemEnv(t)
	fsrv, furl := newFollower(t, leader)
	f := &testEnv{t: t, store: leader.store, srv: fsrv, base: furl}
	body := `{"lastUsed":{"root":"2023-11-14T22:00:00.000Z"}}`
	ticket, _ := fsrv.peers.issue(purposeLastUsed, []byte(body))
	expectStatus(t, f.api("POST", "/tcauth/internal/last-used", withBody(body), withHeader(peerHeader, ticket)), 200)
	fsrv.FlushLastUsed(context.Background())
	if got := leader.srv.lastUsed.take(); len(got) != 1 {
		t.Errorf("batch not passed on to the leader: %v", got)
	}
}

// FuzzPeerTicket: no header value panics the check or passes as a ticket
// (only the keyring can make one).
func FuzzPeerTicket(f *testing.F) {
	kr := raftstore.TestKeyring(f)
	p := &peerTickets{keyring: kr, now: func() time.Time { return frozen }}
	good, _ := p.issue(purposeLastUsed, []byte("{}"))
	for _, s := range []string{good, good[:10], "1", "", "AAAA", strings.Repeat("_", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ticket string) {
		err := p.verify(ticket, purposeLastUsed, []byte("{}"))
		if err == nil && ticket != good {
			// Base64 has one canonical form per ticket under RawURLEncoding's
			// strict decoding only for full groups; anything else that
			// decodes to the very same sealed bytes is the same ticket.
			sealed, _ := base64.RawURLEncoding.DecodeString(ticket)
			want, _ := base64.RawURLEncoding.DecodeString(good)
			if string(sealed) != string(want) {
				t.Fatalf("forged ticket %q accepted", ticket)
			}
		}
		_ = p.verify(ticket, purposeForward, nil)
	})
}
