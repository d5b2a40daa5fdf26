package controlplane

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/raftstore"
)

// The operator's cluster endpoints on a single real raft node: scopes per
// operation, 400 for bad input that changes nothing, and a backup that
// restores exactly the state it was taken from.
func TestClusterEndpoints(t *testing.T) {
	node := raftstore.NewTestCluster(t, 1).WaitLeader()
	e := newEnvWithStore(t, NewRaftStore(node), func(c *Config) { c.Cluster = node })
	e.addClient("peer-lister", "peer-lister-token-0123456789", "auth:tcauth:cluster:list-peers")
	lister := as("peer-lister", "peer-lister-token-0123456789")

	// peers
	r := e.api("GET", "/tcauth/cluster/peers", lister)
	expectStatus(t, r, 200)
	peers := r.json(t)["peers"].([]any)
	if len(peers) != 1 || peers[0].(map[string]any)["id"] != "node0" || peers[0].(map[string]any)["leader"] != true {
		t.Fatalf("peers = %s", r.body)
	}
	expectError(t, e.api("GET", "/tcauth/cluster/peers"), 403, "InsufficientScopes")

	// join: schema, scopes
	expectError(t, e.api("POST", "/tcauth/cluster/members", asRoot(), withBody(`{"id":"bad id!","raftAddr":"127.0.0.1:1"}`)), 400, "InputValidationError")
	expectError(t, e.api("POST", "/tcauth/cluster/members", asRoot(), withBody(`{"id":"n2"}`)), 400, "InputValidationError")
	m := expectError(t, e.api("POST", "/tcauth/cluster/members", lister, withBody(`{"id":"n2","raftAddr":"127.0.0.1:1"}`)), 403, "InsufficientScopes")
	if !strings.Contains(m["message"].(string), "auth:tcauth:cluster:join") {
		t.Fatalf("403 does not name the scope: %v", m["message"])
	}

	// remove: unknown node, bad id, scope is per node
	expectError(t, e.api("DELETE", "/tcauth/cluster/members/nope", asRoot()), 404, "ResourceNotFound")
	expectError(t, e.api("DELETE", "/tcauth/cluster/members/a%20b", asRoot()), 400, "InvalidRequestArguments")
	expectError(t, e.api("DELETE", "/tcauth/cluster/members/node0", lister), 403, "InsufficientScopes")
	// the last voter: 409 in Taskcluster's shape, and the node still leads
	m = expectError(t, e.api("DELETE", "/tcauth/cluster/members/node0", asRoot()), 409, "RequestConflict")
	if !strings.Contains(m["message"].(string), "last voter") {
		t.Errorf("409 does not say why: %v", m["message"])
	}
	if !node.IsLeader() {
		t.Fatal("refused removal of the last voter changed the cluster")
	}

	// a single node has nobody to hand leadership to
	expectError(t, e.api("POST", "/tcauth/cluster/transfer-leadership", asRoot()), 503, "InternalServerError")

	// backup, change, restore
	e.addClient("kept", "kept-token-0123456789abcdef", "auth:current-scopes")
	r = e.api("GET", "/tcauth/cluster/snapshot", asRoot())
	expectStatus(t, r, 200)
	backup := r.body
	if !bytes.HasPrefix(backup, []byte(`{"format":"tcauth-raftstore-snapshot"`)) {
		t.Fatalf("backup starts %q", backup[:min(len(backup), 80)])
	}
	if bytes.Contains(backup, []byte("kept-token-0123456789abcdef")) {
		t.Fatal("backup holds a plaintext access token")
	}
	expectStatus(t, e.api("DELETE", "/clients/kept", asRoot()), 204)
	e.addClient("added-later", "added-later-token-0123456789")

	// Bad backups: 400 and nothing changes.
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not a backup"),
		"truncated": backup[:bytes.LastIndexByte(backup[:len(backup)-1], '\n')+1],
		"foreign keyring": func() []byte {
			other := raftstore.NewTestCluster(t, 1).WaitLeader()
			if _, err := other.Apply(t.Context(), raftstore.Command{Op: raftstore.OpCreateClient, Time: frozen, ID: "x",
				Client: &raftstore.Client{ClientID: "x", SealedToken: mustSeal(t, other, "x", "x-token-0123456789abcdefgh")}}); err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := other.SaveSnapshot(&b); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}(),
	} {
		r := e.api("PUT", "/tcauth/cluster/snapshot", asRoot(), withBody(string(bad)), withContentType("application/x-ndjson"))
		if r.status != 400 {
			t.Fatalf("%s backup: status %d, want 400\n%s", name, r.status, r.body)
		}
		expectError(t, r, 400, "InputError")
		if _, ok := e.store.Client("added-later"); !ok {
			t.Fatalf("%s backup changed the state", name)
		}
	}
	expectError(t, e.api("PUT", "/tcauth/cluster/snapshot", lister, withBody(string(backup)), withContentType("application/x-ndjson")), 403, "InsufficientScopes")

	expectStatus(t, e.api("PUT", "/tcauth/cluster/snapshot", asRoot(), withBody(string(backup)), withContentType("application/x-ndjson"), withPayloadHash()), 204)
	if _, ok := e.store.Client("added-later"); ok {
		t.Fatal("restore kept a client created after the backup")
	}
	if tok, ok, err := e.store.AccessToken("kept"); err != nil || !ok || tok != "kept-token-0123456789abcdef" {
		t.Fatalf("restored client kept: %q %v %v", tok, ok, err)
	}
	// The restored client authenticates again.
	expectStatus(t, e.api("GET", "/scopes/current", as("kept", "kept-token-0123456789abcdef")), 200)
}

func mustSeal(t *testing.T, s *raftstore.Store, id, token string) []byte {
	t.Helper()
	b, err := s.SealToken(id, token)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Without Config.Cluster the endpoints exist but say so.
func TestClusterEndpointsUnconfigured(t *testing.T) {
	e := newMemEnv(t)
	r := e.api("GET", "/tcauth/cluster/peers", asRoot())
	expectError(t, r, http.StatusNotFound, "ResourceNotFound")
}

// TestClusterJoinRefusesForeignKeyring: a joining node shows its keyring's
// fingerprint; one that lacks or differs in a term of the cluster's
// keyring is refused (409) before it joins, so it never replicates tokens
// it cannot open. The membership is unchanged.
func TestClusterJoinRefusesForeignKeyring(t *testing.T) {
	node := raftstore.NewTestCluster(t, 1).WaitLeader()
	e := newEnvWithStore(t, NewRaftStore(node), func(c *Config) { c.Cluster = node; c.PeerKeyring = node.Keyring() })
	foreign := raftstore.TestKeyring(t)
	for _, tc := range []struct {
		name, fp string
		status   int
	}{
		{"another deployment's keyring", foreign.Fingerprint(), 409},
		{"a term the cluster holds is missing", "99:0123456789abcdef", 409},
		{"malformed fingerprint", "1:xyz", 400},
	} {
		body := `{"id":"n9","raftAddr":"127.0.0.1:1","keyring":"` + tc.fp + `"}`
		r := e.api("POST", "/tcauth/cluster/members", asRoot(), withBody(body))
		if r.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
	}
	peers, err := node.Peers()
	if err != nil || len(peers) != 1 {
		t.Fatalf("membership changed: %v %v", peers, err)
	}
	if err := node.Keyring().CheckFingerprint(node.Keyring().Fingerprint()); err != nil {
		t.Fatalf("own fingerprint refused: %v", err)
	}
}
