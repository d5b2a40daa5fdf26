package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// restartProbe is one request a valid caller makes to the restarted node
// (or through the sidecar in front of it); ok judges a 200's body.
type restartProbe struct {
	name string
	req  func() (*http.Request, error)
	ok   func(body []byte) bool
}

func signedGet(creds protocol.Credentials, url string) (*http.Request, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	auth, err := protocol.SignRequest(creds, "GET", url, protocol.SignOptions{})
	req.Header.Set("Authorization", auth)
	return req, err
}

func restartProbes(node string, sidecar string, sidecarCreds protocol.Credentials, clients ...protocol.Credentials) []restartProbe {
	var ps []restartProbe
	for _, cl := range clients {
		ps = append(ps,
			restartProbe{"authenticateHawk " + cl.ClientID, func() (*http.Request, error) {
				hawk, err := protocol.SignRequest(cl, "GET", "https://svc.example.com:443/x", protocol.SignOptions{})
				if err != nil {
					return nil, err
				}
				b, _ := json.Marshal(map[string]any{"method": "get", "resource": "/x", "host": "svc.example.com", "port": 443, "authorization": hawk})
				req, err := http.NewRequest("POST", node+"/api/auth/v1/authenticate-hawk", strings.NewReader(string(b)))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
				}
				return req, err
			}, func(b []byte) bool { return strings.Contains(string(b), `"auth-success"`) }},
			restartProbe{"currentScopes " + cl.ClientID, func() (*http.Request, error) {
				return signedGet(cl, node+"/api/auth/v1/scopes/current")
			}, func(b []byte) bool { return strings.Contains(string(b), "auth:current-scopes") }},
			restartProbe{"credentials " + cl.ClientID, func() (*http.Request, error) {
				return signedGet(sidecarCreds, node+"/api/auth/v1/tcauth/clients/"+tcclient.PathSegment(cl.ClientID)+"/credentials")
			}, func(b []byte) bool { return strings.Contains(string(b), cl.AccessToken) }},
			restartProbe{"sidecar " + cl.ClientID, func() (*http.Request, error) {
				return signedGet(cl, sidecar+"/whoami")
			}, func(b []byte) bool { return strings.Contains(string(b), cl.ClientID) }},
		)
	}
	return ps
}

// bulkCreate creates n filler clients through node i (a long log to apply
// makes the restarted node's catch-up take a while).
func bulkCreate(t *testing.T, c *harness.Cluster, i int, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cl := c.Client(i, nil)
			for k := w; k < n; k += 8 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				if _, err := createClient(ctx, cl, fmt.Sprintf("%s/%d", prefix, k), "filler:scope"); err != nil {
					failed.Add(1)
				}
				cancel()
			}
		}(w)
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d filler creates failed", failed.Load())
	}
}

// TestRestartedFollowerNeverRefusesValidCallers: a follower SIGTERMed and
// restarted on its data directory applies its log only once it hears the
// leader's commit index (1–3 s with default timeouts). From the first
// moment its port answers until well after it reports ready, every answer
// to an existing client — authenticateHawk, an authenticated API call,
// a sidecar's credential fetch, and a request through a sidecar that uses
// this node — must be 200 or 503 with Retry-After, never 401/403/404; and
// the sidecar must not have cached such a client as unknown.
func TestRestartedFollowerNeverRefusesValidCallers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	c := harness.StartCluster(t, harness.ClusterConfig{})
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := (leader + 1) % len(c.Nodes)
	node := c.Nodes[f]
	one := c.CreateClient(t, leader, "demo/one", "auth:current-scopes")
	notes := c.StartNotes(t)
	sc := c.StartSidecarVia(t, "sc", "http://"+notes, string(harness.ReadFile(t, "../../examples/notes/routes.yaml")), f)
	bulkCreate(t, c, leader, "filler-a", 200)
	// demo/one is known to the follower before the restart.
	if err := harness.Eventually(20*time.Second, func() error {
		req, _ := signedGet(one, node.URL()+"/api/auth/v1/scopes/current")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	node.Stop() // SIGTERM
	two := c.CreateClient(t, leader, "demo/two", "auth:current-scopes")
	bulkCreate(t, c, leader, "filler-b", 300)
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	probes := restartProbes(node.URL(), sc.URL, sc.Creds, one, two)
	stop := make(chan struct{})
	var readyAt time.Time
	go func() {
		defer close(stop)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := harness.WaitHTTP(ctx, node.URL()+"/readyz", 200, 90*time.Second); err != nil {
			t.Errorf("the restarted node never reported ready: %v", err)
			return
		}
		readyAt = time.Now()
		time.Sleep(2 * time.Second) // past readiness, within the sidecar's negative TTL
	}()
	var mu sync.Mutex
	counts := map[string]int{}
	var bad []string
	var first time.Time
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Add(1)
		go func(p restartProbe) {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, err := p.req()
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := cl.Do(req)
				if err != nil {
					time.Sleep(5 * time.Millisecond) // the port is not open yet
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				if first.IsZero() && !strings.HasPrefix(p.name, "sidecar") {
					first = time.Now()
				}
				counts[fmt.Sprintf("%s %d", p.name, resp.StatusCode)]++
				switch {
				case resp.StatusCode == 200 && !p.ok(b):
					bad = append(bad, fmt.Sprintf("%s: 200 but %s", p.name, b))
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" && !strings.HasPrefix(p.name, "sidecar"):
					bad = append(bad, p.name+": 503 without Retry-After")
				case resp.StatusCode != 200 && resp.StatusCode != 503:
					bad = append(bad, fmt.Sprintf("%s: %d %s", p.name, resp.StatusCode, b))
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}(p)
	}
	wg.Wait()
	t.Logf("first answer to ready: %v; answers: %v", readyAt.Sub(first).Round(time.Millisecond), counts)
	if len(bad) > 0 {
		t.Fatalf("%d answers a valid caller must not get; first: %s", len(bad), bad[0])
	}
	// After readiness every probe succeeds at once (no negative cache entry
	// left behind in the sidecar).
	for _, p := range probes {
		req, _ := p.req()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !p.ok(b) {
			t.Errorf("%s after readiness: %d %s", p.name, resp.StatusCode, b)
		}
	}
}
