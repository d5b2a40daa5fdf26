package controlplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/raftstore"
)

// TestKeyringEndpoints: each keyring endpoint needs its own scope (403
// naming it), the status shows the node's terms and fingerprints — never
// a key — with how many tokens each term seals, and reseal answers its
// report; without a cluster both are 404.
func TestKeyringEndpoints(t *testing.T) {
	node := raftstore.NewTestCluster(t, 1).WaitLeader()
	e := newEnvWithStore(t, NewRaftStore(node), func(c *Config) { c.Cluster = node; c.PeerKeyring = node.Keyring() })
	e.addClient("kr-status", "kr-status-token-0123456789", "auth:tcauth:keyring:status")
	e.addClient("kr-reseal", "kr-reseal-token-0123456789", "auth:tcauth:keyring:reseal")
	status, reseal := as("kr-status", "kr-status-token-0123456789"), as("kr-reseal", "kr-reseal-token-0123456789")
	for _, tc := range []struct {
		method, path string
		who          opt
		want         int
		scope        string
	}{
		{"GET", "/tcauth/keyring/status", status, 200, ""},
		{"GET", "/tcauth/keyring/status", reseal, 403, "auth:tcauth:keyring:status"},
		{"POST", "/tcauth/keyring/reseal", reseal, 200, ""},
		{"POST", "/tcauth/keyring/reseal", status, 403, "auth:tcauth:keyring:reseal"},
	} {
		r := e.api(tc.method, tc.path, tc.who)
		if r.status != tc.want {
			t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, r.status, tc.want, r.body)
		}
		if tc.scope != "" && !strings.Contains(string(r.body), tc.scope) {
			t.Fatalf("403 does not name %s: %s", tc.scope, r.body)
		}
	}
	r := e.api("GET", "/tcauth/keyring/status", status)
	body := r.json(t)
	kr := body["keyring"].(map[string]any)
	terms := kr["terms"].([]any)
	if kr["primary"] != float64(1) || len(terms) != 1 || len(terms[0].(map[string]any)["fingerprint"].(string)) != 16 {
		t.Fatalf("status = %s", r.body)
	}
	if n := body["tokensByTerm"].(map[string]any)["1"]; n != float64(3) {
		t.Fatalf("tokens under term 1: %v, want the 2 clients and root: %s", n, r.body)
	}
	r = e.api("POST", "/tcauth/keyring/reseal", reseal)
	if rep := r.json(t); rep["primary"] != float64(1) || rep["resealedTokens"] != float64(0) || rep["tokensByTerm"].(map[string]any)["1"] != float64(3) {
		t.Fatalf("reseal with nothing to do = %s", r.body)
	}

	bare := newEnvWithStore(t, NewRaftStore(node))
	expectError(t, bare.api("POST", "/tcauth/keyring/reseal", asRoot()), http.StatusNotFound, "ResourceNotFound")
	expectError(t, bare.api("GET", "/tcauth/keyring/status", asRoot()), http.StatusNotFound, "ResourceNotFound")
}
