package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// Valid callers during faults. While a scenario runs, probe goroutines
// authenticate acknowledged clients over and over, on every member node
// and through a sidecar in front of each node:
//
//   - authenticateHawk on the node, for a request signed by the client
//     (what every Taskcluster service does per request);
//   - currentScopes on the node, signed by the client itself (the node
//     authenticating a call to its own API);
//   - GET /whoami through that node's sidecar (the notes example behind a
//     sidecar in local verification mode whose control plane is the node).
//
// Each answer is classified (probeClass). A "valid caller refused" is an
// answer a caller with good credentials must never get: official clients
// do not retry a 401/403/404, so each one is a failed request in
// production. Allowed are: success; 503 with Retry-After (the node or
// sidecar says "not now, ask again", which clients retry); and, for a
// node only, no answer at all (killed, restarting: a load balancer or the
// client's retry moves on). A sidecar never goes down in these scenarios,
// so no answer from a sidecar is a refusal too.
//
// Which clients are "valid" at a given moment:
//
//   - clients created and seen on every node before the probes start: every
//     node, however cut off, has them in its local state and must
//     authenticate them (200) or say 503 Retry-After. A node isolated in the
//     minority is in this case: its state is older than the majority's but
//     holds these clients, so 200 is right (Taskcluster tolerates credential
//     changes taking effect after a short delay; the sidecar's max-stale
//     rests on the same tolerance), and 503 Retry-After is acceptable too;
//   - clients acknowledged during the scenario, from newClientGrace after
//     their acknowledgement. A follower learns of a commit on the leader's
//     next AppendEntries; one cut off from the leader only finds out it is
//     cut off when its heartbeat timeout runs out (hashicorp/raft: 1–2 s
//     with tcauth's default 1 s HeartbeatTimeout). Before that it cannot
//     know it is behind, so a client acknowledged less than that ago may
//     honestly be unknown to it. From then on a node either has the
//     client or knows that it may be behind, and must not say "not found".
const (
	newClientGrace  = 3 * time.Second
	probeWorkers    = 6
	probePause      = 20 * time.Millisecond
	nodeProbeWait   = 3 * time.Second
	maxRefusalNotes = 8
	// sidecarProbeWait exceeds the sidecar's 5 s control-plane fetch
	// timeout, after which it answers 503: a probe must see that answer.
	sidecarProbeWait = 8 * time.Second
)

// probeClass is how one probe answer counts.
type probeClass int

const (
	probeAccepted    probeClass = iota // 200 with the caller's identity
	probeRetryLater                    // 503 with Retry-After
	probeUnavailable                   // no answer from a node that is down or cut off
	probeRefused                       // anything else: a valid caller refused
)

// probeClient is a client the probes use, with when it became valid.
type probeClient struct {
	creds protocol.Credentials
	valid time.Time
}

// probeTarget is one place a caller is authenticated.
type probeTarget struct {
	name    string
	sidecar bool // a sidecar, not a node: it is never down
	hawk    bool // an authenticateHawk answer: 200 must say auth-success
	do      func(ctx context.Context, c protocol.Credentials) (*http.Response, []byte, error)
}

// prober runs the probe goroutines of one scenario and counts answers.
type prober struct {
	targets func() []probeTarget
	faultAt atomic.Int64 // UnixNano when the fault began (0: not yet)

	mu      sync.Mutex
	clients []probeClient
	notes   []string // the first refusals, for the failure message

	answers, accepted, retryLater, unavailable, refused atomic.Int64

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// startProber probes clients (valid now) on targets until stop.
func startProber(targets func() []probeTarget, clients []protocol.Credentials) *prober {
	p := &prober{targets: targets}
	now := time.Now()
	for _, c := range clients {
		p.clients = append(p.clients, probeClient{creds: c, valid: now})
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for w := 0; w < probeWorkers; w++ {
		p.wg.Add(1)
		go p.worker(ctx, w)
	}
	return p
}

// add makes a client acknowledged now part of the probe set once the
// grace has passed.
func (p *prober) add(c protocol.Credentials) {
	p.mu.Lock()
	p.clients = append(p.clients, probeClient{creds: c, valid: time.Now().Add(newClientGrace)})
	p.mu.Unlock()
}

// markFault notes when the fault began (for "time since the fault").
func (p *prober) markFault() { p.faultAt.Store(time.Now().UnixNano()) }

// stop ends the probes; it may be called more than once (deferred, for a
// scenario that ends in t.Fatal).
func (p *prober) stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
	})
}

// validClients returns the clients valid now.
func (p *prober) validClients() []protocol.Credentials {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var out []protocol.Credentials
	for _, c := range p.clients {
		if !now.Before(c.valid) {
			out = append(out, c.creds)
		}
	}
	return out
}

func (p *prober) worker(ctx context.Context, w int) {
	defer p.wg.Done()
	for i := w; ctx.Err() == nil; i += probeWorkers {
		targets, clients := p.targets(), p.validClients()
		if len(targets) > 0 && len(clients) > 0 {
			// Stride through targets and clients so that every worker
			// covers every pair.
			p.probe(ctx, targets[i%len(targets)], clients[(i/len(targets))%len(clients)])
		}
		select {
		case <-ctx.Done():
		case <-time.After(probePause):
		}
	}
}

func (p *prober) probe(ctx context.Context, tg probeTarget, c protocol.Credentials) {
	resp, body, err := tg.do(ctx, c)
	if ctx.Err() != nil {
		return // the scenario ended mid-call: not an answer
	}
	class, why := classifyProbe(tg, c, resp, body, err)
	p.answers.Add(1)
	switch class {
	case probeAccepted:
		p.accepted.Add(1)
	case probeRetryLater:
		p.retryLater.Add(1)
	case probeUnavailable:
		p.unavailable.Add(1)
	case probeRefused:
		p.refused.Add(1)
		p.note(fmt.Sprintf("%s, client %s: %s (%s)", tg.name, c.ClientID, why, p.sinceFault()))
	}
}

func (p *prober) note(s string) {
	p.mu.Lock()
	if len(p.notes) < maxRefusalNotes {
		p.notes = append(p.notes, s)
	}
	p.mu.Unlock()
}

func (p *prober) sinceFault() string {
	at := p.faultAt.Load()
	if at == 0 {
		return "before the fault"
	}
	return fmt.Sprintf("%+.2fs after the fault began", time.Since(time.Unix(0, at)).Seconds())
}

// report logs the counts and fails t on any refusal; it returns the
// number of answers and of refusals for the summary.
func (p *prober) report(t *testing.T, scenario string) (answers, refused int) {
	t.Helper()
	t.Logf("%s: %d probe answers (accepted %d, 503 Retry-After %d, node unavailable %d, valid callers refused %d)",
		scenario, p.answers.Load(), p.accepted.Load(), p.retryLater.Load(), p.unavailable.Load(), p.refused.Load())
	if p.accepted.Load() == 0 {
		t.Errorf("%s: no probe was accepted: the probes tested nothing", scenario)
	}
	if n := p.refused.Load(); n > 0 {
		p.mu.Lock()
		t.Errorf("%s: %d valid callers refused; first ones:\n  %s", scenario, n, strings.Join(p.notes, "\n  "))
		p.mu.Unlock()
	}
	return int(p.answers.Load()), int(p.refused.Load())
}

// classifyProbe decides how one answer counts, and says why it is a
// refusal when it is one.
func classifyProbe(tg probeTarget, c protocol.Credentials, resp *http.Response, body []byte, err error) (probeClass, string) {
	if err != nil {
		if tg.sidecar {
			return probeRefused, "no answer from the sidecar: " + err.Error()
		}
		return probeUnavailable, ""
	}
	short := describeBody(body)
	switch {
	case resp.StatusCode == http.StatusOK:
		var out struct{ Status, ClientID string }
		_ = json.Unmarshal(body, &out)
		if out.ClientID != "" && out.ClientID != c.ClientID {
			return probeRefused, fmt.Sprintf("200 for the wrong client %q: %s", out.ClientID, short)
		}
		if tg.hawk && out.Status != "auth-success" {
			return probeRefused, "200 without auth-success: " + short
		}
		return probeAccepted, ""
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return probeRetryLater, ""
	case resp.StatusCode == http.StatusServiceUnavailable:
		return probeRefused, "503 without Retry-After: " + short
	default:
		return probeRefused, fmt.Sprintf("%d: %s", resp.StatusCode, short)
	}
}

// describeBody shortens an answer for a failure message: the code and
// the first line of the message of an error or of an auth-failed answer,
// else the start of the body.
func describeBody(body []byte) string {
	var out struct{ Code, Status, Message string }
	if json.Unmarshal(body, &out) == nil && out.Message != "" {
		msg, _, _ := strings.Cut(out.Message, "\n")
		return strings.TrimSpace(out.Code + out.Status + " " + msg) // one of Code/Status is set
	}
	short := strings.Join(strings.Fields(string(body)), " ")
	if len(short) > 200 {
		short = short[:200] + "…"
	}
	return short
}

// send performs req and reads the answer.
func send(ctx context.Context, req *http.Request, timeout time.Duration) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, body, err
}

// nodeTargets are the two direct probes of node i.
func nodeTargets(c *harness.Cluster, i int) []probeTarget {
	root := c.Nodes[i].URL() + "/api/auth/v1"
	id := c.Nodes[i].ID
	return []probeTarget{
		{name: id + " authenticateHawk", hawk: true, do: func(ctx context.Context, cr protocol.Credentials) (*http.Response, []byte, error) {
			// The request a service behind us received, signed by the
			// caller; the service asks the node about it, unauthenticated.
			const host, port, resource = "notes.example", 443, "/whoami"
			auth, err := protocol.SignRequest(cr, "GET", fmt.Sprintf("https://%s:%d%s", host, port, resource), protocol.SignOptions{})
			if err != nil {
				return nil, nil, err
			}
			b, _ := json.Marshal(map[string]any{"method": "get", "resource": resource, "host": host, "port": port, "authorization": auth})
			req, _ := http.NewRequest(http.MethodPost, root+"/authenticate-hawk", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			return send(ctx, req, nodeProbeWait)
		}},
		{name: id + " currentScopes", do: func(ctx context.Context, cr protocol.Credentials) (*http.Response, []byte, error) {
			return signedGet(ctx, cr, root+"/scopes/current", nodeProbeWait)
		}},
	}
}

func signedGet(ctx context.Context, cr protocol.Credentials, url string, timeout time.Duration) (*http.Response, []byte, error) {
	auth, err := protocol.SignRequest(cr, "GET", url, protocol.SignOptions{})
	if err != nil {
		return nil, nil, err
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	return send(ctx, req, timeout)
}

// clusterTargets probes every node in nodes() directly.
func clusterTargets(c *harness.Cluster, nodes func() []int) func() []probeTarget {
	return func() []probeTarget {
		var out []probeTarget
		for _, i := range nodes() {
			out = append(out, nodeTargets(c, i)...)
		}
		return out
	}
}

// probeClientScopes let a probe client call currentScopes and nothing
// else of note.
var probeClientScopes = []string{"auth:current-scopes"}

// createProbeClients creates n clients through node and waits until
// every node in nodes authenticates each of them, so that they are valid
// everywhere before the fault.
func createProbeClients(t *testing.T, c *harness.Cluster, node int, nodes []int, prefix string, n int) []protocol.Credentials {
	t.Helper()
	var out []protocol.Credentials
	for k := 0; k < n; k++ {
		out = append(out, c.CreateClient(t, node, fmt.Sprintf("%s-%d", prefix, k), probeClientScopes...))
	}
	for _, i := range nodes {
		for _, cr := range out {
			if err := harness.Eventually(30*time.Second, func() error {
				resp, body, err := signedGet(context.Background(), cr, c.Nodes[i].URL()+"/api/auth/v1/scopes/current", nodeProbeWait)
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s on %s: %d %s", cr.ClientID, c.Nodes[i].ID, resp.StatusCode, body)
				}
				return nil
			}); err != nil {
				t.Fatalf("probe client not valid before the fault: %v", err)
			}
		}
	}
	return out
}

// clientCreator creates clients through the scenario's nodes while it
// runs; every acknowledged one joins the probe set (after the grace).
// A creation whose outcome is unknown is not probed: the client may or
// may not exist.
func startClientCreator(c *harness.Cluster, nodes func() []int, prefix string, p *prober) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var acked atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			targets := nodes()
			node := targets[n%len(targets)]
			id := fmt.Sprintf("%s-%d", prefix, n)
			api := c.Client(node, nil)
			api.HTTPClient = &http.Client{Timeout: 3 * time.Second}
			var out struct{ AccessToken string }
			err := api.Do(ctx, http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, map[string]any{
				"description": "probe client created during a fault", "expires": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
				"scopes": probeClientScopes}, &out)
			if err == nil && out.AccessToken != "" {
				acked.Add(1)
				p.add(protocol.Credentials{ClientID: id, AccessToken: out.AccessToken})
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	// Idempotent like prober.stop.
	return func() int {
		cancel()
		wg.Wait()
		return int(acked.Load())
	}
}

// sidecarFleet is one sidecar per member node, in the sidecar namespace
// in front of one notes service, each with that node as its control
// plane; callers reach sidecar i at sidecarClientIP:8090+i.
type sidecarFleet struct {
	fc     *faultCluster
	creds  protocol.Credentials
	routes string
	mu     sync.Mutex
	byNode map[int]*harness.Process
}

const notesAddr = "127.0.0.1:9000" // inside the sidecar namespace

func sidecarURL(i int) string   { return fmt.Sprintf("http://%s:%d", sidecarClientIP, 8090+i) }
func sidecarAdmin(i int) string { return fmt.Sprintf("%s:%d", sidecarClientIP, 9190+i) }

// startNotes runs the notes example in the sidecar namespace.
func startNotes(t *testing.T, fc *faultCluster) {
	notes := harness.NewProcess(t, notesBinary(t, fc.Dir), "ns-notes", fc.Dir, "-listen", notesAddr)
	notes.Prefix = []string{"ip", "netns", "exec", sidecarNS}
	fc.Track(notes)
	if err := notes.Start(); err != nil {
		t.Fatal(err)
	}
}

func newSidecarFleet(t *testing.T, fc *faultCluster) *sidecarFleet {
	f := &sidecarFleet{fc: fc, byNode: map[int]*harness.Process{}, routes: filepath.Join(fc.Dir, "probe-routes.yaml")}
	if err := os.WriteFile(f.routes, []byte("routes:\n  - {method: GET, path: /whoami, authenticated: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.creds = fc.CreateClient(t, fc.leader(t), "it/probe-sidecar", harness.SidecarScopes...)
	f.sync(t)
	return f
}

// sync starts a sidecar for every member that has none and stops those
// of nodes that left the cluster.
func (f *sidecarFleet) sync(t *testing.T) {
	t.Helper()
	members := map[int]bool{}
	for _, i := range f.fc.memberList() {
		members[i] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.byNode {
		if !members[i] {
			p.Stop()
			delete(f.byNode, i)
		}
	}
	for i := range members {
		if p := f.byNode[i]; p != nil && p.Running() {
			continue
		}
		f.byNode[i] = f.start(t, i)
	}
}

func (f *sidecarFleet) start(t *testing.T, i int) *harness.Process {
	t.Helper()
	fc := f.fc
	p := harness.NewProcess(t, fc.Bin, "probe-sidecar-"+fc.Nodes[i].ID, fc.Dir, "sidecar",
		"--listen", strings.TrimPrefix(sidecarURL(i), "http://"), "--admin-listen", sidecarAdmin(i),
		"--upstream", "http://"+notesAddr, "--control-plane", fc.Nodes[i].URL(), "--allow-insecure-control-plane",
		"--routes", f.routes, "--feed-wait", "2s", "--log-level", "debug")
	p.Prefix = []string{"ip", "netns", "exec", sidecarNS}
	p.Env = []string{"TASKCLUSTER_CLIENT_ID=" + f.creds.ClientID, "TASKCLUSTER_ACCESS_TOKEN=" + f.creds.AccessToken}
	fc.Track(p)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(ctx, "http://"+sidecarAdmin(i)+"/readyz", 200, 30*time.Second); err != nil {
		t.Fatalf("probe sidecar for %s not ready: %v", fc.Nodes[i].ID, err)
	}
	return p
}

// targets are the sidecars of the current members.
func (f *sidecarFleet) targets() []probeTarget {
	var out []probeTarget
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, i := range f.fc.memberList() {
		if f.byNode[i] == nil {
			continue
		}
		url := sidecarURL(i) + "/whoami"
		out = append(out, probeTarget{name: "sidecar→" + f.fc.Nodes[i].ID, sidecar: true,
			do: func(ctx context.Context, cr protocol.Credentials) (*http.Response, []byte, error) {
				return signedGet(ctx, cr, url, sidecarProbeWait)
			}})
	}
	return out
}

// allTargets: every member directly and through its sidecar.
func allTargets(fc *faultCluster, f *sidecarFleet) func() []probeTarget {
	direct := clusterTargets(fc.Cluster, fc.memberList)
	return func() []probeTarget { return append(direct(), f.targets()...) }
}

// TestClassifyProbe: what counts as a valid caller refused. It needs no
// namespaces and runs everywhere.
func TestClassifyProbe(t *testing.T) {
	alice := protocol.Credentials{ClientID: "it/alice"}
	node, hawk, side := probeTarget{name: "n1 currentScopes"}, probeTarget{name: "n1 authenticateHawk", hawk: true}, probeTarget{name: "sidecar→n1", sidecar: true}
	ans := func(status int, retryAfter string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}}
		if retryAfter != "" {
			r.Header.Set("Retry-After", retryAfter)
		}
		return r
	}
	notFound := `{"code":"AuthenticationFailed","message":"Client with clientId 'it/alice' not found\n\n---\n* method: x","requestInfo":{}}`
	cases := []struct {
		name   string
		tg     probeTarget
		resp   *http.Response
		body   string
		err    error
		want   probeClass
		reason string // part of the refusal description
	}{
		{"200 scopes", node, ans(200, ""), `{"scopes":["auth:current-scopes"]}`, nil, probeAccepted, ""},
		{"hawk success", hawk, ans(200, ""), `{"status":"auth-success","clientId":"it/alice","scopes":[]}`, nil, probeAccepted, ""},
		{"hawk auth-failed is a 200 that refuses", hawk, ans(200, ""), `{"status":"auth-failed","message":"Client with clientId 'it/alice' not found"}`, nil, probeRefused, "auth-failed Client with clientId 'it/alice' not found"},
		{"hawk success for someone else", hawk, ans(200, ""), `{"status":"auth-success","clientId":"it/bob"}`, nil, probeRefused, "wrong client"},
		{"sidecar whoami", side, ans(200, ""), `{"clientId":"it/alice","scheme":"hawk"}`, nil, probeAccepted, ""},
		{"sidecar whoami anonymous", side, ans(200, ""), `{"clientId":"","scheme":"none"}`, nil, probeAccepted, ""},
		{"503 with Retry-After", node, ans(503, "1"), `{"code":"ServiceUnavailable","message":"catching up"}`, nil, probeRetryLater, ""},
		{"sidecar 503 with Retry-After", side, ans(503, "1"), `{}`, nil, probeRetryLater, ""},
		{"503 without Retry-After", node, ans(503, ""), `{"code":"ServiceUnavailable","message":"no leader"}`, nil, probeRefused, "503 without Retry-After"},
		{"401 not found", node, ans(401, ""), notFound, nil, probeRefused, "401: AuthenticationFailed Client with clientId 'it/alice' not found"},
		{"403", node, ans(403, ""), `{"code":"InsufficientScopes","message":"no"}`, nil, probeRefused, "403"},
		{"404", node, ans(404, ""), `not found`, nil, probeRefused, "404: not found"},
		{"500", node, ans(500, ""), `{"code":"InternalServerError","message":"boom"}`, nil, probeRefused, "500"},
		{"502 with Retry-After is still a refusal", side, ans(502, "1"), `bad gateway`, nil, probeRefused, "502"},
		{"node down", node, nil, "", errors.New("dial tcp: connection refused"), probeUnavailable, ""},
		{"sidecar down", side, nil, "", errors.New("dial tcp: connection refused"), probeRefused, "no answer from the sidecar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := classifyProbe(tc.tg, alice, tc.resp, []byte(tc.body), tc.err)
			if got != tc.want {
				t.Fatalf("class %d (%q), want %d", got, why, tc.want)
			}
			if !strings.Contains(why, tc.reason) {
				t.Errorf("reason %q does not contain %q", why, tc.reason)
			}
		})
	}
}
