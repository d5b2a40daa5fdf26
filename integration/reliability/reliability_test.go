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
}

func (fc *faultCluster) memberList() []int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]int(nil), fc.members...)
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
		fc.mu.Lock()
		var m []int
		for _, i := range fc.members {
			if i != f {
				m = append(m, i)
			}
		}
		fc.members = append(m, len(fc.Nodes)-1)
		fc.mu.Unlock()
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
	w := startWorkload(fc.Cluster, fc.memberList, keys, 6)
	time.Sleep(1500 * time.Millisecond)
	row.faults = sc.fault(t, fc)
	fc.settle(t)
	time.Sleep(1500 * time.Millisecond) // load on the healed cluster
	ops := w.stop()
	row.ops = int(w.ops.Load())
	t.Logf("%s: %d operations (writes ok %d, unknown %d, refused %d; reads ok %d, failed %d), %d unique creates acknowledged",
		sc.name, row.ops, w.writesOK.Load(), w.writesUnknown.Load(), w.writesFailed.Load(), w.readsOK.Load(), w.readsFailed.Load(), len(w.ackedCreate))
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
	if out, err := fresh.CLI(0, "cluster", "snapshot", "restore", backup); err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	// The probe client came with the backup; its token works on the new
	// cluster because the keyring is the same.
	probeOnce.Store(fresh.Dir, probeCreds(fc.Cluster))
	row.lost = checkAckedEverywhere(t, fresh, []int{0, 1, 2}, fc.acked)
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
	sidecarCreds := mk("it/ns-sidecar", "auth:tcauth:verify-clients", "auth:tcauth:watch-changes", "auth:list-roles", "auth:get-role:*")
	alice := mk("it/alice", "notes:read:*")
	bob := mk("it/bob", "notes:read:*")

	prefix := []string{"ip", "netns", "exec", sidecarNS}
	notes := harness.NewProcess(t, notesBinary(t, fc.Dir), "ns-notes", fc.Dir, "-listen", "127.0.0.1:9000")
	notes.Prefix = prefix
	routes := filepath.Join(fc.Dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte("routes:\n  - method: GET\n    path: /notes/<name>\n    scopes: notes:read:<name>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cps []string
	for _, i := range fc.memberList() {
		cps = append(cps, fc.Nodes[i].URL())
	}
	sc := harness.NewProcess(t, fc.Bin, "ns-sidecar", fc.Dir, "sidecar",
		"--listen", sidecarClientIP+":8081", "--admin-listen", sidecarClientIP+":9091",
		"--upstream", "http://127.0.0.1:9000", "--control-plane", cps[0], "--allow-insecure-control-plane",
		"--routes", routes, "--max-stale", "30s", "--feed-wait", "2s", "--log-level", "debug")
	sc.Prefix = prefix
	sc.Env = []string{"TASKCLUSTER_CLIENT_ID=" + sidecarCreds.ClientID, "TASKCLUSTER_ACCESS_TOKEN=" + sidecarCreds.AccessToken}
	fc.Track(notes)
	fc.Track(sc)
	for _, p := range []*harness.Process{notes, sc} {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	}
	defer sc.Stop()
	defer notes.Stop()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(wctx, "http://"+sidecarClientIP+":9091/readyz", 200, 30*time.Second); err != nil {
		t.Fatalf("sidecar not ready: %v", err)
	}
	get := func(c protocol.Credentials) (int, http.Header) {
		url := "http://" + sidecarClientIP + ":8081/notes/x"
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
	// notes answers 404 for a missing note: that is the upstream's answer,
	// so the sidecar let the call through.
	if s, _ := get(alice); s != 404 {
		t.Fatalf("alice before the partition: %d", s)
	}
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
	if s, _ := get(bob); s != 503 {
		t.Errorf("unknown bob during the partition: %d, want 503", s)
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
