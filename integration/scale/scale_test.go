// Package scale runs one real control-plane node at deployment scale
// (100,000 roles) and checks that a broad scope expansion cannot take the
// node's memory or its other callers hostage.
//
//	go build -o /tmp/tcauth ./cmd/tcauth
//	TCAUTH_BIN=/tmp/tcauth go test -count=1 -v -run TestConcurrentLargeExpansions ./integration/scale/
//
// SCALE_ROLES changes the role count (default 100,000).
package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/benchcompare"
	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

const (
	expanders    = 10 // concurrent assume:* expansions
	expandPhase  = 6 * time.Second
	latencyPhase = 3 * time.Second
	// rssSlackMiB bounds the node's extra resident memory while the ten
	// expansions run. One assume:* answer at 100,000 roles is ~510,000
	// scopes (14 MB of JSON); it is computed once (before the phase, by the
	// first call) and shared, ~8 MiB of slice headers, and each call adds
	// a 32 KiB write buffer. Everything else the node allocates meanwhile
	// is small request garbage. 64 MiB leaves the garbage collector its
	// headroom; building the list and its JSON per call (two list copies,
	// the marshalled, indented and unescaped buffers: ~60 MiB a call) went
	// over it with a few calls at once (+135 MiB measured with ten, each
	// call taking seconds).
	rssSlackMiB = 64
)

// roleBody is role i: five scopes of its own, every tenth a star role
// with a <..> scope, and chains of ten roles through assume: scopes, so
// that assume:* reaches about 550,000 scopes at 100,000 roles.
func roleBody(i int) (id string, body map[string]any) {
	id = fmt.Sprintf("scale:%06d", i)
	scopes := make([]string, 0, 6)
	for k := range 5 {
		scopes = append(scopes, fmt.Sprintf("scale-scope:%06d:%d", i, k))
	}
	if i%10 != 9 {
		scopes = append(scopes, fmt.Sprintf("assume:scale:%06d", i+1))
	}
	if i%10 == 0 {
		id += ":*"
		scopes = append(scopes, fmt.Sprintf("scale-param:%06d:<..>", i))
	}
	return id, map[string]any{"description": "scale test role", "scopes": scopes}
}

type signer struct {
	hc    *http.Client
	base  string
	creds protocol.Credentials
}

// do sends one signed JSON request and returns status and body.
func (s *signer) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := s.base + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	auth, err := protocol.SignRequest(s.creds, method, u, protocol.SignOptions{})
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// loadRoles puts n roles into the node through a backup restore, the
// fastest real path (the API's createRole runs at ~600/s on two cores, so
// 100,000 would take minutes): a backup of the node's own state is saved,
// n role lines modelled on one real role line are added, and the backup is
// restored, which rebuilds and validates the whole role index on the node.
func loadRoles(t *testing.T, c *harness.Cluster, s *signer, n int) {
	t.Helper()
	node := c.Nodes[0]
	code, out, err := s.do(context.Background(), http.MethodPut, "/roles/scale-template", map[string]any{"description": "template", "scopes": []string{"x:y"}})
	if err != nil || code != 200 {
		t.Fatalf("createRole: %v %d %.300s", err, code, out)
	}
	file := filepath.Join(t.TempDir(), "backup.ndjson")
	if out, err := c.CLI(0, "cluster", "snapshot", "save", file); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("backup line %d: %v", i+1, err)
		}
		if i == 0 {
			m["roles"] = m["roles"].(float64) + float64(n)
			line, _ = json.Marshal(m)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		role, ok := m["role"].(map[string]any)
		if !ok || role["roleId"] != "scale-template" {
			continue
		}
		for k := range n {
			id, body := roleBody(k)
			role["roleId"], role["scopes"] = id, body["scopes"]
			line, _ := json.Marshal(m)
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// On a busy machine the restore can outlast raft's enqueue timeout
	// (a 500) and still complete: the roles appearing is what counts.
	rout, rerr := c.CLI(0, "cluster", "snapshot", "restore", "--force", file)
	last, _ := roleBody(n - 1)
	if err := harness.Eventually(90*time.Second, func() error {
		if rerr != nil && !node.Running() {
			return nil
		}
		code, out, err := s.do(context.Background(), http.MethodGet, "/roles/"+url.PathEscape(last), nil)
		if err == nil && code != 200 {
			err = fmt.Errorf("role %s: %d %.200s", last, code, out)
		}
		return err
	}); err != nil || !node.Running() {
		t.Fatalf("roles not restored: %v (restore: %v %s)", err, rerr, rout)
	}
}

// medianLatency runs closed-loop calls on two connections for d and
// returns the median; any failed call fails the test.
func medianLatency(t *testing.T, d time.Duration, call func() error) time.Duration {
	t.Helper()
	smp := benchcompare.ClosedLoop(2, d, func(_, _ int) error { return call() })
	if err := smp.Err(); err != nil {
		t.Fatal(err)
	}
	return smp.Quantile(0.5)
}

func TestConcurrentLargeExpansions(t *testing.T) {
	n := 100000
	if v := os.Getenv("SCALE_ROLES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			t.Fatalf("SCALE_ROLES=%q: want a number ≥ 10", v)
		}
	}
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	node := c.Nodes[0]
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * expanders}}
	s := &signer{hc: hc, base: node.URL() + "/api/auth/v1", creds: *c.Root()}

	hawk := authenticateHawkCall(t, s) // before the restore: the backup keeps the client
	t0 := time.Now()
	loadRoles(t, c, s, n)
	t.Logf("%d roles loaded in %s (backup restore)", n, time.Since(t0).Round(time.Millisecond))

	ctx := context.Background()
	broad := map[string]any{"scopes": []string{"assume:*"}}
	code, body, err := s.do(ctx, http.MethodPost, "/scopes/expand", broad)
	if err != nil || code != 200 {
		t.Fatalf("expandScopes assume:*: %v %d %.300s", err, code, body)
	}
	var answer protocol.ScopesetJSON
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatal(err)
	}
	// Each role's five scopes, every tenth role's parameter scope (with
	// '*'), the template role's x:y and assume:* itself, which covers
	// every assume: scope.
	if want := n*5 + n/10 + 2; len(answer.Scopes) != want {
		t.Fatalf("assume:* expanded to %d scopes, want %d", len(answer.Scopes), want)
	}
	t.Logf("assume:* expands to %d scopes (%d bytes of JSON)", len(answer.Scopes), len(body))
	answer, body = protocol.ScopesetJSON{}, nil

	time.Sleep(2 * time.Second) // let the load's garbage be collected
	idle := medianLatency(t, latencyPhase, hawk)
	rss0, err := benchcompare.RSS(node.Pid())
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var ok200, busy503 atomic.Int64
	var expErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range expanders {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, out, err := s.do(ctx, http.MethodPost, "/scopes/expand", broad)
				switch {
				case err == nil && code == 200:
					ok200.Add(1)
				case err == nil && code == 503:
					busy503.Add(1) // the node's documented back-pressure
				default:
					if err == nil {
						err = fmt.Errorf("expandScopes: %d %.300s", code, out)
					}
					expErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r, err := benchcompare.RSS(node.Pid()); err == nil && r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	time.Sleep(expandPhase - latencyPhase)
	busyLat := medianLatency(t, latencyPhase, hawk)
	close(stop)
	wg.Wait()
	<-sampled
	if e := expErr.Load(); e != nil {
		t.Fatal(*e)
	}
	const mib = 1 << 20
	t.Logf("RSS idle %d MiB, peak during %d concurrent assume:* expansions %d MiB (+%d MiB); %d answered, %d refused 503",
		rss0/mib, expanders, peak.Load()/mib, (peak.Load()-rss0)/mib, ok200.Load(), busy503.Load())
	t.Logf("authenticateHawk median: idle %s, during the expansions %s (%.2f×)", idle, busyLat, float64(busyLat)/float64(idle))
	if ok200.Load() < expanders {
		t.Errorf("only %d expansions answered in %s", ok200.Load(), expandPhase)
	}
	if extra := peak.Load() - rss0; extra > rssSlackMiB*mib {
		t.Errorf("RSS grew by %d MiB during the expansions, bound %d MiB", extra/mib, rssSlackMiB)
	}
	// 2× of idle, with a 1 ms floor: idle medians are a few hundred µs on
	// a loopback, where scheduler noise alone moves them by that much.
	if limit := max(2*idle, idle+time.Millisecond); busyLat > limit {
		t.Errorf("authenticateHawk median %s during the expansions, idle %s: above %s", busyLat, idle, limit)
	}
}

// authenticateHawkCall returns a call that asks the node to verify a
// fresh Hawk header of an ordinary client (a role or two): the other
// callers whose latency must not suffer.
func authenticateHawkCall(t *testing.T, s *signer) func() error {
	t.Helper()
	ctx := context.Background()
	id := "scale/service-client"
	code, out, err := s.do(ctx, http.MethodPut, "/clients/"+url.PathEscape(id), map[string]any{
		"description": "scale test", "expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"scopes": []string{"assume:scale:000005", "queue:create-task:x/*"}})
	if err != nil || code != 200 {
		t.Fatalf("createClient: %v %d %.300s", err, code, out)
	}
	var created struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	creds := protocol.Credentials{ClientID: id, AccessToken: created.AccessToken}
	return func() error {
		h, err := protocol.SignRequest(creds, "GET", "https://svc.example.com:443/x", protocol.SignOptions{})
		if err != nil {
			return err
		}
		code, out, err := s.do(ctx, http.MethodPost, "/authenticate-hawk", map[string]any{
			"method": "get", "resource": "/x", "host": "svc.example.com", "port": 443, "authorization": h})
		if err != nil {
			return err
		}
		if code != 200 || !bytes.Contains(out, []byte(`"auth-success"`)) {
			return fmt.Errorf("authenticateHawk: %d %.300s", code, out)
		}
		return nil
	}
}
