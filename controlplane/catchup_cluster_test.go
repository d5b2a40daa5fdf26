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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// catchUpCluster is three real raftstore nodes, each behind an httptest
// server whose handler is swapped when the node restarts, so a restarted
// node answers at the same URL from its first moment.
type catchUpCluster struct {
	t        *testing.T
	raft     *raftstore.TestCluster
	urls     []string
	handlers []atomic.Pointer[http.Handler]
	cancels  []context.CancelFunc
}

const catchUpRootToken = "catchup-root-token-0123456789"

func newCatchUpCluster(t *testing.T) *catchUpCluster {
	c := &catchUpCluster{t: t, raft: raftstore.NewTestCluster(t, 3)}
	c.urls = make([]string, 3)
	c.handlers = make([]atomic.Pointer[http.Handler], 3)
	c.cancels = make([]context.CancelFunc, 3)
	for i := range c.raft.Nodes {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := c.handlers[i].Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			http.Error(w, "node down", http.StatusBadGateway)
		}))
		t.Cleanup(hs.Close)
		c.urls[i] = hs.URL
		c.start(i)
	}
	t.Cleanup(func() {
		for _, cancel := range c.cancels {
			if cancel != nil {
				cancel()
			}
		}
	})
	return c
}

// start serves node i's current store.
func (c *catchUpCluster) start(i int) {
	cfg := DefaultConfig()
	cfg.AdvertiseURL = c.urls[i]
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.StaticClients = []StaticClient{{ClientID: "static/taskcluster/root", AccessToken: catchUpRootToken}}
	cfg.Logger = quietLogger()
	srv, err := New(cfg, NewRaftStore(c.raft.Nodes[i]))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancels[i] = cancel
	go srv.Run(ctx)
	h := srv.Handler()
	c.handlers[i].Store(&h)
}

func (c *catchUpCluster) stop(i int) {
	c.handlers[i].Store(nil)
	c.cancels[i]()
	c.raft.Stop(i)
}

func (c *catchUpCluster) follower() int {
	for i, n := range c.raft.Nodes {
		if n != nil && !n.IsLeader() {
			return i
		}
	}
	c.t.Fatal("no follower")
	return -1
}

// create writes a client through whichever node leads (retrying across a
// leadership change a busy machine may cause).
func (c *catchUpCluster) create(id, token string, scopes ...string) {
	c.t.Helper()
	now := time.Now().UTC()
	rec := ClientRecord{ClientID: id, Description: "d", Scopes: scopes, Expires: now.AddDate(10, 0, 0), Created: now, LastModified: now}
	for attempt := 0; ; attempt++ {
		err := NewRaftStore(c.raft.WaitLeader()).Apply(context.Background(), Command{Op: OpCreateClient, Time: now, Actor: "test", Client: rec, AccessToken: token})
		if err == nil || (attempt > 0 && strings.Contains(err.Error(), "exists")) {
			return
		}
		if attempt == 5 {
			c.t.Fatal(err)
		}
	}
}

// bulk creates n filler clients concurrently, so that a restarted node has
// a long log to apply.
func (c *catchUpCluster) bulk(prefix string, n int) {
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < n; k += 16 {
				c.create(fmt.Sprintf("%s/%d", prefix, k), "filler-token-0123456789abcdef")
			}
		}(w)
	}
	wg.Wait()
}

// catchUpProbe is one kind of request a valid caller makes.
type catchUpProbe struct {
	name string
	req  func(base string) *http.Request
	// ok checks a 200 answer's body.
	ok func(body []byte) bool
}

func signed(t *testing.T, creds protocol.Credentials, method, url string, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	auth, err := protocol.SignRequest(creds, method, url, protocol.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	return req
}

// probesFor are the local-state lookups of a client: authenticateHawk on
// its behalf, its own authenticated API call, and a sidecar's credential
// fetch.
func probesFor(t *testing.T, client, sidecar protocol.Credentials) []catchUpProbe {
	escaped := strings.ReplaceAll(client.ClientID, "/", "%2F")
	return []catchUpProbe{
		{"authenticateHawk", func(base string) *http.Request {
			hawk, err := protocol.SignRequest(client, "GET", "https://svc.example.com:443/x", protocol.SignOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(map[string]any{"method": "get", "resource": "/x", "host": "svc.example.com", "port": 443, "authorization": hawk})
			req, _ := http.NewRequest("POST", base+apiPrefix+"/authenticate-hawk", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
			return req
		}, func(b []byte) bool { return strings.Contains(string(b), `"auth-success"`) }},
		{"currentScopes", func(base string) *http.Request {
			return signed(t, client, "GET", base+apiPrefix+"/scopes/current", "")
		}, func(b []byte) bool { return strings.Contains(string(b), "auth:current-scopes") }},
		{"clientCredentials", func(base string) *http.Request {
			return signed(t, sidecar, "GET", base+apiPrefix+"/tcauth/clients/"+escaped+"/credentials", "")
		}, func(b []byte) bool { return strings.Contains(string(b), client.AccessToken) }},
	}
}

// hammer sends every probe to base in a loop until stop, and reports any
// answer a valid caller must never get: 401/403/404, an auth-failed
// authenticateHawk, a 503 without Retry-After. behind counts the answers
// to requests sent while the node was not caught up.
func hammer(t *testing.T, base string, probes []catchUpProbe, caughtUp func() bool, stop <-chan struct{}) (counts map[string]int, behind int64, bad []string) {
	var mu sync.Mutex
	counts = map[string]int{}
	var nBehind atomic.Int64
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Add(1)
		go func(p catchUpProbe) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				wasBehind := !caughtUp()
				resp, err := http.DefaultClient.Do(p.req(base))
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if wasBehind {
					nBehind.Add(1)
				}
				mu.Lock()
				counts[fmt.Sprintf("%s %d", p.name, resp.StatusCode)]++
				switch {
				case resp.StatusCode == 200 && !p.ok(b):
					bad = append(bad, fmt.Sprintf("%s: 200 but %s", p.name, b))
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "":
					bad = append(bad, fmt.Sprintf("%s: 503 without Retry-After", p.name))
				case resp.StatusCode != 200 && resp.StatusCode != 503:
					bad = append(bad, fmt.Sprintf("%s: %d %s", p.name, resp.StatusCode, b))
				}
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	return counts, nBehind.Load(), bad
}

// TestClusterRestartedFollowerNeverRefusesKnownClients: a follower
// restarted on its data directory applies its log only once it hears the
// leader's commit index. From its first answer on, a client that exists
// must get 200 (or 503 with Retry-After, which official clients retry),
// never "not found" — both for a client the follower had applied before
// the restart and for one created while it was down.
func TestClusterRestartedFollowerNeverRefusesKnownClients(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	c := newCatchUpCluster(t)
	sidecar := protocol.Credentials{ClientID: "sidecar/one", AccessToken: "sidecar-token-0123456789abcdef"}
	one := protocol.Credentials{ClientID: "demo/one", AccessToken: "demo-one-token-0123456789abcdef"}
	two := protocol.Credentials{ClientID: "demo/two", AccessToken: "demo-two-token-0123456789abcdef"}
	c.create(sidecar.ClientID, sidecar.AccessToken, "auth:tcauth:verify-clients")
	c.bulk("filler-a", 400)
	c.create(one.ClientID, one.AccessToken, "auth:current-scopes")

	for round, tc := range []struct {
		name         string
		whileStopped func()
		client       protocol.Credentials
	}{
		{"log applied before the restart", func() {}, one},
		{"writes missed while stopped", func() {
			c.bulk("filler-b", 400)
			c.create(two.ClientID, two.AccessToken, "auth:current-scopes")
		}, two},
	} {
		f := c.follower()
		node := c.raft.Nodes[f]
		if err := node.WaitForIndex(context.Background(), c.raft.WaitLeader().AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		c.stop(f)
		tc.whileStopped()
		restarted := c.raft.Restart(f)
		c.start(f)
		stop := make(chan struct{})
		var caughtErr error
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			caughtErr = restarted.WaitCaughtUp(ctx)
			time.Sleep(300 * time.Millisecond)
			close(stop)
		}()
		counts, behind, bad := hammer(t, c.urls[f], probesFor(t, tc.client, sidecar), restarted.CaughtUp, stop)
		t.Logf("round %d (%s): %v; %d answers to requests sent while not caught up", round, tc.name, counts, behind)
		if len(bad) > 0 {
			t.Fatalf("round %d (%s): %d answers a valid caller must not get, first: %s", round, tc.name, len(bad), bad[0])
		}
		if caughtErr != nil {
			t.Fatalf("round %d: the restarted node did not catch up: %v", round, caughtErr)
		}
	}
}
