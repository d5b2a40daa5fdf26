package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// A three-node cluster of real raftstore nodes, each with its own API
// server and background jobs: writes and linearizable reads sent to a
// follower are forwarded to the leader with the caller's Hawk signature
// intact, and forwarding follows a leadership change.
func TestClusterForwarding(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	cluster := raftstore.NewTestCluster(t, 3)
	const rootTok = "cluster-root-token-0123456789"
	urls := make([]string, 3)
	servers := make([]*Server, 3)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, node := range cluster.Nodes {
		var h http.Handler
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
		t.Cleanup(hs.Close)
		cfg := DefaultConfig()
		cfg.AdvertiseURL = hs.URL
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		cfg.StaticClients = []StaticClient{{ClientID: "static/taskcluster/root", AccessToken: rootTok}}
		cfg.Logger = quietLogger()
		cfg.PeerKeyring = cluster.Keyring
		srv, err := New(cfg, NewRaftStore(node))
		if err != nil {
			t.Fatal(err)
		}
		h, urls[i], servers[i] = srv.Handler(), hs.URL, srv
		go srv.Run(ctx)
	}
	root := protocol.Credentials{ClientID: "static/taskcluster/root", AccessToken: rootTok}
	send := func(base, method, path, body string, creds protocol.Credentials) response {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+apiPrefix+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		auth, err := protocol.SignRequest(creds, method, base+apiPrefix+path, protocol.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, b}
	}
	// eventually retries until want (leader election, address publication
	// and replication take a moment).
	eventually := func(what string, f func() response, want int) response {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := f()
			if r.status == want || time.Now().After(deadline) {
				if r.status != want {
					t.Fatalf("%s: status %d, want %d\n%s", what, r.status, want, r.body)
				}
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	followerOf := func() int {
		for i, n := range cluster.Nodes {
			if n != nil && !n.IsLeader() {
				return i
			}
		}
		t.Fatal("no follower")
		return -1
	}
	f := followerOf()
	body := `{"description":"d","expires":"2099-01-01T00:00:00.000Z","scopes":["auth:current-scopes"]}`
	r := eventually("createClient via a follower", func() response { return send(urls[f], "PUT", "/clients/cl%2Fone", body, root) }, 200)
	var created protocol.ClientJSON
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	eventually("linearizable read via a follower", func() response { return send(urls[f], "GET", "/clients/cl%2Fone", "", root) }, 200)
	one := protocol.Credentials{ClientID: "cl/one", AccessToken: created.AccessToken}
	if r.header.Get(appliedIndexHeader) == "" {
		t.Error("a forwarded answer carries no applied index")
	}
	// Read-your-writes on the follower that forwarded: usable at once,
	// no retry (the follower held the answer until it had applied it).
	for k := 0; k < 20; k++ {
		path := fmt.Sprintf("/clients/cl%%2Fryw-%d", k)
		r := send(urls[f], "PUT", path, body, root)
		if r.status != 200 {
			t.Fatalf("createClient via follower: %d %s", r.status, r.body)
		}
		var c protocol.ClientJSON
		_ = json.Unmarshal(r.body, &c)
		if got := send(urls[f], "GET", "/scopes/current", "", protocol.Credentials{ClientID: c.ClientID, AccessToken: c.AccessToken}); got.status != 200 {
			t.Fatalf("client created through follower %d not usable there at once: %d %s", f, got.status, got.body)
		}
	}
	for i := range cluster.Nodes {
		eventually("new credentials on every node", func() response { return send(urls[i], "GET", "/scopes/current", "", one) }, 200)
	}

	// Leadership moves: the remaining follower forwards to the new leader.
	// (Stop hands leadership over first, so stop exactly one node.)
	for i, n := range cluster.Nodes {
		if n.IsLeader() {
			cluster.Stop(i)
			break
		}
	}
	cluster.WaitLeader()
	f = followerOf()
	eventually("createClient after failover", func() response { return send(urls[f], "PUT", "/clients/cl%2Ftwo", body, root) }, 200)
	eventually("delete after failover", func() response { return send(urls[f], "DELETE", "/clients/cl%2Fone", "", root) }, 204)
}
