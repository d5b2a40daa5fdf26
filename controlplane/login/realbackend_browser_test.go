package login_test

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/controlplanetest"
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
	// do retries a 503 (no leader for a moment: on a loaded machine a
	// heartbeat can time out and the cluster re-elects), as a browser's
	// user would; any other answer is final.
	do := func(method, u string, cookies ...*http.Cookie) *http.Response {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			req, _ := http.NewRequest(method, u, nil)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return res
			}
		}
	}
	get := func(u string, cookies ...*http.Cookie) *http.Response { return do("GET", u, cookies...) }
	attempt := func(startNode, callbackNode int) (*http.Cookie, int) {
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
		// Not retried as such: the flow is single use once the provider
		// vouched; a 503 starts a new sign-in instead.
		req, _ := http.NewRequest("GET", urls[callbackNode]+"/login/fake/callback?code=code-alice&state="+state, nil)
		req.AddCookie(flow)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		for _, c := range res.Cookies() {
			if c.Name == login.SessionCookie && c.Value != "" {
				return c, res.StatusCode
			}
		}
		return nil, res.StatusCode
	}
	signIn := func(startNode, callbackNode int) *http.Cookie {
		for try := 0; ; try++ {
			c, status := attempt(startNode, callbackNode)
			if c != nil {
				return c
			}
			if status != http.StatusServiceUnavailable || try == 20 {
				t.Fatalf("callback: %d, no session cookie", status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	sc := signIn(0, 1)
	for i := range urls {
		if res := get(urls[i]+"/login/credentials", sc); res.StatusCode != 200 {
			t.Fatalf("credentials on node %d: %d", i, res.StatusCode)
		}
	}
	// a logout without a session is a no-op
	if res := do("POST", urls[1]+"/login/logout"); res.StatusCode != 204 {
		t.Fatalf("logout without a session: %d", res.StatusCode)
	}
	if res := do("POST", urls[1]+"/login/logout", sc); res.StatusCode != 204 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
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
	fake := login.NewFakeStrategy("fake")
	fake.AddUser("code-alice", login.User{IdentityID: "alice", Roles: []string{"fake-group:admins"}})
	var urls []string
	for _, n := range controlplanetest.Start(t, raftstore.NewTestCluster(t, 3), nil, fake) {
		urls = append(urls, n.URL)
	}
	return urls, fake
}
