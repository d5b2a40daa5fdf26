package login_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
)

// TestBrowserFlowAcrossNodes runs the browser flow over a real three-node
// cluster (raftstore + the control plane's login backend): sign-in started
// on node 0 finishes on node 1, credentials come from node 2, logout
// through node 1 ends the session on every node, and a user removed at
// the provider loses every session.
func TestBrowserFlowAcrossNodes(t *testing.T) {
	urls, fake := newBrowserCluster(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string, cookies ...*http.Cookie) *http.Response {
		req, _ := http.NewRequest("GET", u, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	signIn := func(startNode, callbackNode int) *http.Cookie {
		res := get(urls[startNode] + "/login/fake")
		loc, _ := url.Parse(res.Header.Get("Location"))
		state := loc.Query().Get("state")
		var flow *http.Cookie
		for _, c := range res.Cookies() {
			if c.Name == login.FlowCookieName(state) {
				flow = c
			}
		}
		if res.StatusCode != 302 || flow == nil {
			t.Fatalf("start: %d", res.StatusCode)
		}
		res = get(urls[callbackNode]+"/login/fake/callback?code=code-alice&state="+state, flow)
		for _, c := range res.Cookies() {
			if c.Name == login.SessionCookie && c.Value != "" {
				return c
			}
		}
		t.Fatalf("callback: %d, no session cookie", res.StatusCode)
		return nil
	}
	sc := signIn(0, 1)
	for i := range urls {
		if res := get(urls[i]+"/login/credentials", sc); res.StatusCode != 200 {
			t.Fatalf("credentials on node %d: %d", i, res.StatusCode)
		}
	}
	// a logout without a session is a no-op
	req, _ := http.NewRequest("POST", urls[1]+"/login/logout", nil)
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 204 {
		t.Fatalf("logout without a session: %v %v", res, err)
	}
	res.Body.Close()
	req, _ = http.NewRequest("POST", urls[1]+"/login/logout", nil)
	req.AddCookie(sc)
	if res, err = client.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("logout: %v %v", res, err)
	}
	res.Body.Close()
	for i := range urls {
		if res := get(urls[i]+"/login/credentials", sc); res.StatusCode != 401 {
			t.Fatalf("node %d after logout: %d", i, res.StatusCode)
		}
	}
	a, b := signIn(2, 0), signIn(1, 2)
	fake.RemoveUser("alice")
	if res := get(urls[0]+"/login/credentials", a); res.StatusCode != 401 {
		t.Fatalf("gone user: %d", res.StatusCode)
	}
	if res := get(urls[1]+"/login/credentials", b); res.StatusCode != 401 {
		t.Fatalf("gone user's other session: %d", res.StatusCode)
	}
}

func newBrowserCluster(t *testing.T) ([]string, *login.FakeStrategy) {
	rc := raftstore.NewTestCluster(t, 3)
	fake := login.NewFakeStrategy("fake")
	fake.AddUser("code-alice", login.User{IdentityID: "alice", Roles: []string{"fake-group:admins"}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var urls []string
	for _, node := range rc.Nodes {
		var mu sync.RWMutex
		var h http.Handler
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.RLock()
			defer mu.RUnlock()
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(hs.Close)
		cfg := controlplane.DefaultConfig()
		cfg.AdvertiseURL = hs.URL
		cfg.PeerKeyring = rc.Keyring
		cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		cfg.StaticClients = []controlplane.StaticClient{{ClientID: "static/login-issuer",
			AccessToken: "web-server-secret-0123456789ab", Description: "signs users temporary credentials",
			Scopes: []string{"auth:create-client:fake/*", "assume:login-identity:*", "assume:fake-group:*"}}}
		cfg.Login = &login.Config{PublicURL: hs.URL, Issuer: "static/login-issuer"}
		srv, err := controlplane.New(cfg, controlplane.NewRaftStore(node))
		if err != nil {
			t.Fatal(err)
		}
		srv.Login().AddStrategyForTest(fake)
		mu.Lock()
		h = srv.Handler()
		mu.Unlock()
		go srv.Run(ctx)
		urls = append(urls, hs.URL)
	}
	// wait until every node is ready (leader known, caught up)
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range urls {
		for {
			res, err := http.Get(u + "/api/auth/v1/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s never answered", u)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return urls, fake
}
