// Package controlplanetest runs a real control plane with the login
// service for the tests of the packages built on it (the login service's
// external tests, the web UI's, tcauth signin's): a controlplane.Server on
// every node of a raftstore test cluster, each behind an httptest server,
// with a fake identity provider where no real one is needed.
//
// Only tests import it. It imports controlplane, so controlplane's own
// (internal) tests cannot use it: that would be an import cycle.
package controlplanetest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
)

// The static clients of a test node. The issuer is every node's login
// issuer (the static client that signs users' credentials, as
// web-server's is); the root client is only there when a test adds
// RootClient.
const (
	IssuerID    = "static/login-issuer"
	IssuerToken = "web-server-secret-0123456789ab"
	RootID      = "static/test/root"
	RootToken   = "test-root-token-0123456789abcdef"
)

// IssuerScopes are what the issuer needs to sign users of the provider
// "fake" in: create their clients, and assume the roles they get.
var IssuerScopes = []string{"auth:create-client:fake/*", "assume:login-identity:*", "assume:fake-group:*"}

// RootClient is the static client RootID with every scope.
func RootClient() controlplane.StaticClient {
	return controlplane.StaticClient{ClientID: RootID, AccessToken: RootToken, Description: "test root", Scopes: []string{"*"}}
}

// Node is one node's control plane, served at URL.
type Node struct {
	URL    string
	Server *controlplane.Server
}

// Start runs a controlplane.Server with the login service on every node
// of rc, each behind its own httptest server and with strategies added to
// its login service, and waits until every node is ready (leader known,
// caught up). A node's configuration is controlplane.DefaultConfig with
// the node's URL as its advertised and login public URL, rc's keyring, a
// discarded log, and the issuer (IssuerID, IssuerScopes) as its only
// static client and its login issuer; configure, if not nil, changes it
// further. Everything stops when the test ends.
func Start(t testing.TB, rc *raftstore.TestCluster, configure func(*controlplane.Config), strategies ...login.Strategy) []*Node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var nodes []*Node
	for _, rn := range rc.Nodes {
		// Unstarted, so that the node's URL is known before the server
		// (whose configuration holds it) is built.
		hs := httptest.NewUnstartedServer(nil)
		t.Cleanup(hs.Close)
		url := "http://" + hs.Listener.Addr().String()
		cfg := controlplane.DefaultConfig()
		cfg.AdvertiseURL, cfg.PeerKeyring = url, rc.Keyring
		cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		cfg.StaticClients = []controlplane.StaticClient{{ClientID: IssuerID, AccessToken: IssuerToken,
			Description: "signs users' temporary credentials", Scopes: IssuerScopes}}
		cfg.Login = &login.Config{PublicURL: url, Issuer: IssuerID}
		if configure != nil {
			configure(&cfg)
		}
		srv, err := controlplane.New(cfg, controlplane.NewRaftStore(rn))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range strategies {
			srv.Login().TestingAddStrategy(st)
		}
		hs.Config.Handler = srv.Handler()
		hs.Start()
		go srv.Run(ctx)
		nodes = append(nodes, &Node{URL: hs.URL, Server: srv})
	}
	t.Cleanup(cancel)
	waitReady(t, nodes)
	return nodes
}

// waitReady waits until every node answers its readiness probe.
func waitReady(t testing.TB, nodes []*Node) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for {
			res, err := http.Get(n.URL + "/api/auth/v1/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the control plane at %s never became ready", n.URL)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
