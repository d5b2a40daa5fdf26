package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// requireRun skips (or, with TCAUTH_REQUIRE_PEERS=1, fails) when the
// namespaces cannot be made here.
func requireRun(t *testing.T) {
	if why := canRun(); why != "" {
		if os.Getenv("TCAUTH_REQUIRE_PEERS") == "1" {
			t.Fatalf("the reliability suite must run here but cannot: %s", why)
		}
		t.Skipf("reliability suite skipped: %s", why)
	}
}

// faultCluster is the three-node cluster in namespaces plus the set of
// nodes currently members (a replaced node leaves it).
type faultCluster struct {
	*harness.Cluster
	net     *network
	mu      sync.Mutex
	members []int
	acked   []string // unique clients acknowledged over the whole run
	// probeClients are the clients valid on every node, probed in every
	// scenario after the one that created them.
	probeClients []protocol.Credentials
	fleet        *sidecarFleet
}

func (fc *faultCluster) memberList() []int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]int(nil), fc.members...)
}

func (fc *faultCluster) setMembers(m []int) {
	fc.mu.Lock()
	fc.members = m
	fc.mu.Unlock()
}

func without(list []int, x int) []int {
	var out []int
	for _, v := range list {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

func startFaultCluster(t *testing.T) *faultCluster {
	net := newNetwork(t)
	var httpAddrs, raftAddrs, hosts []string
	for i := 0; i < maxNodes; i++ {
		httpAddrs = append(httpAddrs, apiIP(i)+":8080")
		raftAddrs = append(raftAddrs, raftIP(i)+":8300")
		hosts = append(hosts, apiIP(i), raftIP(i))
	}
	c := harness.NewCluster(t, harness.ClusterConfig{
		HTTPAddrs: httpAddrs, RaftAddrs: raftAddrs, PKIHosts: hosts,
		TrustedProxy: "10.77.1.0/24",
		Prefix:       func(i int) []string { return []string{"ip", "netns", "exec", nsName(i)} },
	})
	if err := c.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	return &faultCluster{Cluster: c, net: net, members: []int{0, 1, 2}}
}

// leader waits for the running members to agree on a leader.
func (fc *faultCluster) leader(t *testing.T) int {
	t.Helper()
	l, err := fc.Leader(45 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (fc *faultCluster) follower(t *testing.T) int {
	l := fc.leader(t)
	for _, i := range fc.memberList() {
		if i != l {
			return i
		}
	}
	t.Fatal("no follower")
	return -1
}

// settle waits until every member is running, lists all members and
// agrees on the leader.
func (fc *faultCluster) settle(t *testing.T) {
	t.Helper()
	members := fc.memberList()
	for _, i := range members {
		if err := fc.WaitMembers(i, len(members), 60*time.Second); err != nil {
			t.Fatalf("cluster did not settle: %v", err)
		}
	}
	fc.leader(t)
}

type scenario struct {
	name  string
	fault func(t *testing.T, fc *faultCluster) int // returns faults injected
}

var scenarios = []scenario{
	{"leader killed", func(t *testing.T, fc *faultCluster) int {
		l := fc.leader(t)
		fc.Nodes[l].Kill()
		if nl := fc.leader(t); nl == l {
			t.Fatal("the killed node is still leader")
		}
		time.Sleep(2 * time.Second)
		if err := fc.Nodes[l].Start(); err != nil {
			t.Fatal(err)
		}
		return 1
	}},
	{"leader isolated in the minority", func(t *testing.T, fc *faultCluster) int {
		l := fc.leader(t)
		if err := fc.net.cutRaft(l); err != nil {
			t.Fatal(err)
		}
		// Writes sent to the isolated node: none may be acknowledged
		// (they could not be committed), every read there fails or is
		// checked by porcupine with the rest of the history.
		deadline := time.Now().Add(4 * time.Second)
		acked := 0
		for n := 0; time.Now().Before(deadline); n++ {
			api := fc.Client(l, nil)
			api.HTTPClient = &http.Client{Timeout: 2 * time.Second}
			id := fmt.Sprintf("minority-%d-%d", time.Now().UnixNano()%1e6, n)
			err := api.Do(context.Background(), http.MethodPut, "/roles/"+id, nil, map[string]any{"description": "x", "scopes": []string{"x"}}, nil)
			if err == nil {
				acked++
				t.Errorf("isolated old leader acknowledged a write (%s)", id)
			}
		}
		if err := fc.net.healRaft(l); err != nil {
			t.Fatal(err)
		}
		return 1
	}},
	{"follower partitioned and healed", func(t *testing.T, fc *faultCluster) int {
		f := fc.follower(t)
		if err := fc.net.cutRaft(f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if err := fc.net.healRaft(f); err != nil {
			t.Fatal(err)
		}
		return 1
	}},
	{"rolling restart", func(t *testing.T, fc *faultCluster) int {
		for _, i := range fc.memberList() {
			fc.Nodes[i].Stop()
			if err := fc.Nodes[i].Start(); err != nil {
				t.Fatal(err)
			}
			fc.settle(t)
		}
		return len(fc.memberList())
	}},
	{"node replaced", func(t *testing.T, fc *faultCluster) int {
		f := fc.follower(t)
		l := fc.leader(t)
		id := fc.Nodes[f].ID
		// As an operator would, take the node out of rotation (the
		// workload's and the probes' targets) before removing it.
		fc.setMembers(without(fc.memberList(), f))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := fc.Client(l, nil).Do(ctx, http.MethodDelete, "/tcauth/cluster/members/"+id, nil, nil, nil); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		fc.Nodes[f].Kill()
		n := fc.AddNode()
		if err := fc.Join(n, fc.Nodes[l]); err != nil {
			t.Fatal(err)
		}
		fc.setMembers(append(fc.memberList(), len(fc.Nodes)-1))
		return 2
	}},
	{"whole cluster restarted from disk", func(t *testing.T, fc *faultCluster) int {
		for _, i := range fc.memberList() {
			fc.Nodes[i].Stop()
		}
		time.Sleep(500 * time.Millisecond)
		for _, i := range fc.memberList() {
			if err := fc.Nodes[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		return 1
	}},
}

func TestFaults(t *testing.T) {
	requireRun(t)
	fc := startFaultCluster(t)
	startNotes(t, fc)
	fc.fleet = newSidecarFleet(t, fc)
	t.Run("sidecar partitioned from the control plane", func(t *testing.T) { sidecarPartition(t, fc) })
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, fc, sc) })
	}
	t.Run("snapshot restored into a new cluster", func(t *testing.T) { restoreScenario(t, fc) })
	countCrashes(fc.Cluster)
}

func runScenario(t *testing.T, fc *faultCluster, sc scenario) {
	start := time.Now()
	row := summaryRow{name: sc.name}
	defer func() { row.duration = time.Since(start); row.failed = t.Failed(); record(row) }()
	fc.settle(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := "reg-" + strings.ReplaceAll(sc.name, " ", "-")
	keys, err := setupKeys(ctx, fc.Cluster, fc.leader(t), prefix, 12)
	if err != nil {
		t.Fatal(err)
	}
	p, stopCreator := fc.startProbes(t, prefix)
	defer p.stop()
	defer stopCreator()
	w := startWorkload(fc.Cluster, fc.memberList, keys, 6)
	time.Sleep(1500 * time.Millisecond)
	p.markFault()
	row.faults = sc.fault(t, fc)
	fc.settle(t)
	time.Sleep(1500 * time.Millisecond) // load on the healed cluster
	ops := w.stop()
	fc.stopProbes(t, sc.name, p, stopCreator, &row)
	row.ops = int(w.ops.Load())
	t.Logf("%s: %d operations (writes ok %d, unknown %d, refused %d; reads ok %d, failed %d), %d unique creates acknowledged",
		sc.name, row.ops, w.writesOK.Load(), w.writesUnknown.Load(), w.writesFailed.Load(), w.readsOK.Load(), w.readsFailed.Load(), len(w.ackedCreate))
	if len(w.unknownWhy) > 0 {
		t.Logf("%s: writes of unknown outcome, e.g.: %s", sc.name, strings.Join(w.unknownWhy, "; "))
	}
	if w.writesOK.Load() == 0 || w.readsOK.Load() == 0 {
		t.Errorf("the workload made no progress")
	}
	checkStart := time.Now()
	res, err := checkLinearizable(ops)
	switch {
	case res == porcupine.Illegal:
		row.violations = 1
		t.Errorf("%s: %v", sc.name, err)
	case err != nil:
		// Not a violation, but not a proof either: fail, say so.
		row.unproven = true
		t.Errorf("%s: %v", sc.name, err)
	default:
		t.Logf("%s: %d recorded operations linearizable (checked in %v)", sc.name, len(ops), time.Since(checkStart).Round(time.Millisecond))
	}
	fc.acked = append(fc.acked, w.ackedCreate...)
	row.lost = checkAckedEverywhere(t, fc.Cluster, fc.memberList(), fc.acked)
}

// checkAckedEverywhere reads every acknowledged unique role from each
// node's own applied state and returns how many are missing anywhere.
func checkAckedEverywhere(t *testing.T, c *harness.Cluster, nodes []int, acked []string) int {
	t.Helper()
	lost := 0
	for _, i := range nodes {
		have := map[string]bool{}
		err := harness.Eventually(30*time.Second, func() error {
			ids, err := localRoleIDs(c, i)
			if err != nil {
				return err
			}
			have = ids
			for _, id := range acked {
				if !have[id] {
					return fmt.Errorf("%s lacks %s", c.Nodes[i].ID, id)
				}
			}
			return nil
		})
		if err != nil {
			for _, id := range acked {
				if !have[id] {
					lost++
				}
			}
			t.Errorf("node %s: %v (%d of %d acknowledged writes missing)", c.Nodes[i].ID, err, lost, len(acked))
		}
	}
	return lost
}

// localRoleIDs lists the unique roles in node i's own applied state.
// Role reads are linearizable, i.e. answered by the leader, so they would
// not show what a follower holds; currentScopes is served from the node's
// local state, and the probe client holds assume:uc-*, which expands to
// "uc:<roleId>" for every unique role the node has applied.
func localRoleIDs(c *harness.Cluster, i int) (map[string]bool, error) {
	var out struct {
		Scopes []string `json:"scopes"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Client(i, probeCreds(c)).Do(ctx, http.MethodGet, "/scopes/current", nil, nil, &out); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, s := range out.Scopes {
		if strings.HasPrefix(s, "uc:") {
			ids[s[len("uc:"):]] = true
		}
	}
	return ids, nil
}

var (
	probeOnce sync.Map // cluster dir → *protocol.Credentials
)

// probeCreds is a client holding assume:uc-*: its currentScopes, served
// from the node's local state, list "uc:<roleId>" for every unique role
// that node has applied.
func probeCreds(c *harness.Cluster) *protocol.Credentials {
	if v, ok := probeOnce.Load(c.Dir); ok {
		return v.(*protocol.Credentials)
	}
	var out struct{ AccessToken string }
	for i := range c.Nodes {
		if !c.Nodes[i].Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Client(i, nil).Do(ctx, http.MethodPut, "/clients/it%2Fprobe", nil, map[string]any{
			"description": "reads local state", "expires": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339),
			"scopes": []string{"assume:uc-*", "auth:current-scopes"}}, &out)
		cancel()
		var e *tcclient.Error
		if err == nil || (errors.As(err, &e) && e.StatusCode == http.StatusConflict) {
			break
		}
	}
	creds := &protocol.Credentials{ClientID: "it/probe", AccessToken: out.AccessToken}
	probeOnce.Store(c.Dir, creds)
	return creds
}

// startProbes makes fresh probe clients, checks that every probe client
// is valid on every node, and starts probing them everywhere (directly
// and through the sidecars) plus a creator of new clients.
func (fc *faultCluster) startProbes(t *testing.T, prefix string) (*prober, func() int) {
	t.Helper()
	fc.fleet.sync(t)
	nodes := fc.memberList()
	fresh := createProbeClients(t, fc.Cluster, fc.leader(t), nodes, "it/"+prefix, 3)
	old := fc.probeClients
	fc.probeClients = append(fc.probeClients, fresh...)
	// Earlier scenarios' clients: they must be everywhere by now too.
	for _, i := range nodes {
		for _, cr := range old {
			if err := harness.Eventually(10*time.Second, func() error {
				resp, body, err := signedGet(context.Background(), cr, fc.Nodes[i].URL()+"/api/auth/v1/scopes/current", nodeProbeWait)
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%d %s", resp.StatusCode, body)
				}
				return err
			}); err != nil {
				t.Errorf("%s, acknowledged in an earlier scenario, not valid on %s before the fault: %v", cr.ClientID, fc.Nodes[i].ID, err)
			}
		}
	}
	p := startProber(allTargets(fc, fc.fleet), fc.probeClients)
	return p, startClientCreator(fc.Cluster, fc.memberList, "it/"+prefix+"-new", p)
}

// stopProbes ends the probes, keeps the clients created meanwhile for
// later scenarios and fills row.
func (fc *faultCluster) stopProbes(t *testing.T, name string, p *prober, stopCreator func() int, row *summaryRow) {
	t.Helper()
	created := stopCreator()
	p.stop()
	p.mu.Lock()
	for _, c := range p.clients[len(fc.probeClients):] {
		fc.probeClients = append(fc.probeClients, c.creds)
	}
	p.mu.Unlock()
	row.probes, row.refused = p.report(t, name)
	t.Logf("%s: %d clients created and acknowledged during the scenario were probed too", name, created)
}

func restoreScenario(t *testing.T, fc *faultCluster) {
	start := time.Now()
	row := summaryRow{name: "snapshot restored into a new cluster", faults: 1}
	defer func() { row.duration = time.Since(start); row.failed = t.Failed(); record(row) }()
	fc.settle(t)
	node := fc.memberList()[0]
	backup := filepath.Join(t.TempDir(), "backup.ndjson")
	if out, err := fc.CLI(node, "cluster", "snapshot", "save", backup); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	fresh := harness.StartCluster(t, harness.ClusterConfig{Keyring: fc.KeyringPath()})
	if out, err := fresh.CLI(0, "cluster", "snapshot", "restore", "--force", backup); err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	// The probe client came with the backup; its token works on the new
	// cluster because the keyring is the same.
	probeOnce.Store(fresh.Dir, probeCreds(fc.Cluster))
	// So did the clients the probes used: from the grace after the
	// restore was acknowledged on, every node of the new cluster must
	// authenticate them.
	restored := time.Now()
	p := startProber(clusterTargets(fresh, func() []int { return []int{0, 1, 2} }), nil)
	defer p.stop()
	p.markFault()
	for _, c := range fc.probeClients {
		p.add(c)
	}
	row.lost = checkAckedEverywhere(t, fresh, []int{0, 1, 2}, fc.acked)
	time.Sleep(time.Until(restored.Add(newClientGrace + 2*time.Second)))
	p.stop()
	row.probes, row.refused = p.report(t, row.name)
	row.ops = len(fc.acked)
	countCrashes(fresh)
}

// sidecarPartition: a sidecar cut off from the control plane keeps
// serving cached clients within max-stale, refuses unknown ones with 503,
// and applies revocations made meanwhile once it is reconnected.
func sidecarPartition(t *testing.T, fc *faultCluster) {
	start := time.Now()
	row := summaryRow{name: "sidecar partitioned from the control plane", faults: 1}
	defer func() { row.duration = time.Since(start); row.failed = t.Failed(); record(row) }()
	fc.settle(t)
	ctx := context.Background()
	mk := func(id string, scopes ...string) protocol.Credentials {
		var out struct{ AccessToken string }
		if err := fc.Client(0, nil).Do(ctx, http.MethodPut, "/clients/"+tcclient.PathSegment(id), nil, map[string]any{
			"description": "sidecar test", "expires": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
			"scopes": scopes}, &out); err != nil {
			t.Fatal(err)
		}
		return protocol.Credentials{ClientID: id, AccessToken: out.AccessToken}
	}
	sidecarCreds := mk("it/ns-sidecar", harness.SidecarScopes...)
	alice := mk("it/alice", "notes:read:*")
	bob := mk("it/bob", "notes:read:*")

	prefix := []string{"ip", "netns", "exec", sidecarNS}
	routes := filepath.Join(fc.Dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte("routes:\n  - method: GET\n    path: /notes/<name>\n    scopes: notes:read:<name>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cps []string
	for _, i := range fc.memberList() {
		cps = append(cps, fc.Nodes[i].URL())
	}
	// Two sidecars: one whose max-stale outlasts the partition, one
	// (max-stale 1 s) that is past it as soon as it notices the partition.
	start1 := func(name, port, admin, maxStale string) *harness.Process {
		sc := harness.NewProcess(t, fc.Bin, name, fc.Dir, "sidecar",
			"--listen", sidecarClientIP+":"+port, "--admin-listen", sidecarClientIP+":"+admin,
			"--upstream", "http://"+notesAddr, "--control-plane", cps[0], "--allow-insecure-control-plane",
			"--routes", routes, "--max-stale", maxStale, "--feed-wait", "2s", "--log-level", "debug")
		sc.Prefix = prefix
		sc.Env = []string{"TASKCLUSTER_CLIENT_ID=" + sidecarCreds.ClientID, "TASKCLUSTER_ACCESS_TOKEN=" + sidecarCreds.AccessToken}
		fc.Track(sc)
		if err := sc.Start(); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := harness.WaitHTTP(wctx, "http://"+sidecarClientIP+":"+admin+"/readyz", 200, 30*time.Second); err != nil {
			t.Fatalf("sidecar %s not ready: %v", name, err)
		}
		return sc
	}
	sc := start1("ns-sidecar", "8081", "9091", "30s")
	defer sc.Stop()
	short := start1("ns-sidecar-short", "8082", "9092", "1s")
	defer short.Stop()
	getVia := func(port string, c protocol.Credentials) (int, http.Header) {
		url := "http://" + sidecarClientIP + ":" + port + "/notes/x"
		req, _ := http.NewRequest("GET", url, nil)
		auth, _ := protocol.SignRequest(c, "GET", url, protocol.SignOptions{})
		req.Header.Set("Authorization", auth)
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	get := func(c protocol.Credentials) (int, http.Header) { return getVia("8081", c) }
	// notes answers 404 for a missing note: that is the upstream's answer,
	// so the sidecar let the call through.
	if s, _ := get(alice); s != 404 {
		t.Fatalf("alice before the partition: %d", s)
	}
	if s, _ := getVia("8082", alice); s != 404 {
		t.Fatalf("alice before the partition (short max-stale sidecar): %d", s)
	}
	// The probe sidecars share the namespace, so they are cut off too:
	// cached clients must keep working through them, new ones get 503
	// with Retry-After.
	p, stopCreator := fc.startProbes(t, "sidecar-partition")
	defer func() { fc.stopProbes(t, row.name, p, stopCreator, &row) }()
	p.markFault()
	if err := fc.net.cutSidecar(); err != nil {
		t.Fatal(err)
	}
	// Revoke alice while the sidecar cannot hear about it.
	var reset struct{ AccessToken string }
	if err := fc.Client(0, nil).Do(ctx, http.MethodPost, "/clients/it%2Falice/reset", nil, nil, &reset); err != nil {
		t.Fatal(err)
	}
	// The partition is silent (packets dropped): the sidecar notices when
	// its long poll overruns (feed-wait 2 s + 3 s). Until then and after,
	// cached alice is served; after it, with the staleness marker.
	cut := time.Now()
	if err := harness.Eventually(15*time.Second, func() error {
		s, h := get(alice)
		if s != 404 {
			return fmt.Errorf("cached alice during the partition: %d, want the upstream's 404 (served within max-stale)", s)
		}
		if h.Get("X-Taskcluster-Auth-Stale") == "" {
			return errors.New("no X-Taskcluster-Auth-Stale marker yet")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	t.Logf("the sidecar marked its answers stale %v after the partition", time.Since(cut).Round(100*time.Millisecond))
	if s, h := get(bob); s != 503 || h.Get("Retry-After") == "" {
		t.Errorf("unknown bob during the partition: %d (Retry-After %q), want 503 with Retry-After", s, h.Get("Retry-After"))
	}
	// Past max-stale even cached clients are refused, with 503 and
	// Retry-After: the sidecar cannot vouch for them, but a retry may work.
	if err := harness.Eventually(10*time.Second, func() error {
		if s, h := getVia("8082", alice); s != 503 || h.Get("Retry-After") == "" {
			return fmt.Errorf("cached alice past max-stale: %d (Retry-After %q), want 503 with Retry-After", s, h.Get("Retry-After"))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := fc.net.healSidecar(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if err := harness.Eventually(15*time.Second, func() error {
		if s, _ := get(alice); s != 401 {
			return fmt.Errorf("old token still answered %d", s)
		}
		return nil
	}); err != nil {
		t.Fatalf("revocation made during the partition not applied after healing: %v", err)
	}
	t.Logf("revocation applied %v after the partition healed", time.Since(healed).Round(10*time.Millisecond))
	alice.AccessToken = reset.AccessToken
	if s, _ := get(alice); s != 404 {
		t.Errorf("alice's new token after healing: %d", s)
	}
	row.ops = 6
}

func notesBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "notes-server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := buildNotes(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}
