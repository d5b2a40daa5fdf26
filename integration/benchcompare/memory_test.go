package benchcompare

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// memWriters load the state: many writers, as the brief of this section
// is to fill a node quickly, not to measure writes.
const memWriters = 64

// memSettle is how long a process is left idle before its RSS is read,
// empty or full alike, so that both readings are taken the same way
// (smoke runs: a quarter of it).
const memSettle = 2 * time.Second

// whoamiRoutes is a sidecar policy with one route any valid caller may
// use.
const whoamiRoutes = "default: deny\nroutes:\n  - {method: GET, path: /whoami, authenticated: true}\n"

// benchMemory reports resident memory: a sidecar caching many clients, a
// control-plane node holding many clients and roles (after a Raft
// snapshot), and a node holding many roles before and after role updates.
// Per-item figures are (RSS − RSS of the same process empty) / items.
func benchMemory(t *testing.T, s Settings) []Row {
	rows := memClients(t, s, s.Size(100000, 1000), s.Size(10000, 100))
	return append(rows, memRoles(t, s, s.Size(100000, 1000), s.Size(300, 30))...)
}

// rssAfterSettle is pid's RSS after memSettle of quiet.
func rssAfterSettle(t *testing.T, s Settings, what string, pid int) int64 {
	t.Helper()
	if s.Smoke {
		time.Sleep(memSettle / 4)
	} else {
		time.Sleep(memSettle)
	}
	v, err := RSS(pid)
	if err != nil {
		t.Fatalf("memory, RSS of %s: %v", what, err)
	}
	return v
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func perItem(full, empty int64, n int) float64 { return float64(full-empty) / float64(n) }

// memClients fills one node with nClients clients and nRoles roles and a
// sidecar in front of it with every one of those clients.
func memClients(t *testing.T, s Settings, nClients, nRoles int) []Row {
	c := startBenchCluster(t, 1)
	defer c.StopAll()
	node := c.Nodes[0]
	_, upstream := startPeer(t, c, "upstream", "/")
	// The sidecar's default cache (100,000 clients, a bound over all its
	// shards) holds the default size; larger runs get room for every client.
	cacheSize := max(nClients, 100_000)
	flags := []string{"--log-level", benchLogLevel, "--client-cache-size", strconv.Itoa(cacheSize),
		"--unknown-client-rate", "1000000", "--unknown-client-burst", "1000000",
		"--max-nonces", strconv.Itoa(max(1_000_000, 2*nClients))}
	profileDir := os.Getenv("BENCH_MEM_PROFILE") // a directory: the sidecar's heap profile when full
	if profileDir != "" {
		flags = append(flags, "--pprof")
	}
	sc := c.StartSidecar(t, "mem-sidecar", upstream, whoamiRoutes, flags...)
	nodeEmpty := rssAfterSettle(t, s, "empty node", node.Pid())
	scEmpty := rssAfterSettle(t, s, "empty sidecar", sc.Pid())

	t0 := time.Now()
	creds := createBenchClients(t, c, "bench/mem/", nClients)
	loadClients := time.Since(t0)
	nodeClients := rssAfterSettle(t, s, "node with clients", node.Pid())
	t0 = time.Now()
	createRoles(t, c, "bench-mem-role-", nRoles, memWriters)
	loadRoles := time.Since(t0)
	t.Logf("memory: %d clients loaded in %s, %d roles in %s", nClients, loadClients.Round(time.Millisecond),
		nRoles, loadRoles.Round(time.Millisecond))
	snap := waitSnapshot(t, s, node)
	nodeFull := rssAfterSettle(t, s, "node with clients and roles", node.Pid())

	t0 = time.Now()
	warmSidecar(t, sc, creds)
	warm := time.Since(t0)
	scFull := rssAfterSettle(t, s, "sidecar with clients", sc.Pid())
	if profileDir != "" {
		harness.SaveHeapProfile(t, sc.Admin, filepath.Join(profileDir, "sidecar.pprof"))
	}
	t.Logf("memory: %s; %d sidecar requests in %s", snap, nClients, warm.Round(time.Millisecond))

	clientsLoad := fmt.Sprintf("%s cached clients", groupThousands(int64(nClients)))
	nodeLoad := fmt.Sprintf("%s clients + %s roles", groupThousands(int64(nClients)), groupThousands(int64(nRoles)))
	scNote := fmt.Sprintf("empty %.1f MiB; one signed request per client (%d writers, %s); --client-cache-size %d, "+
		"--unknown-client-rate/--unknown-client-burst 1000000, --max-nonces %d", mib(scEmpty), memWriters,
		warm.Round(time.Second), cacheSize, max(1_000_000, 2*nClients))
	nodeNote := fmt.Sprintf("empty %.1f MiB; %s; loaded by %d writers in %s", mib(nodeEmpty), snap, memWriters,
		(loadClients + loadRoles).Round(time.Second))
	return []Row{
		{Section: "memory", Contender: "tcauth sidecar", Load: clientsLoad, Value: mib(scFull), Unit: "MiB", Note: scNote},
		{Section: "memory", Contender: "tcauth sidecar", Load: clientsLoad, Value: perItem(scFull, scEmpty, nClients), Unit: "B/client"},
		{Section: "memory", Contender: "tcauth control-plane node", Load: nodeLoad, Value: mib(nodeFull), Unit: "MiB", Note: nodeNote},
		{Section: "memory", Contender: "tcauth control-plane node", Load: nodeLoad, Value: perItem(nodeClients, nodeEmpty, nClients),
			Unit: "B/client", Note: "RSS after the clients, before the roles and the snapshot"},
		{Section: "memory", Contender: "tcauth control-plane node", Load: nodeLoad, Value: perItem(nodeFull, nodeClients, nRoles),
			Unit: "B/role", Note: "RSS growth from the roles (and the snapshot)"},
	}
}

// createBenchClients creates n clients (prefix + i) with memWriters
// writers and returns their credentials.
func createBenchClients(t *testing.T, c *harness.Cluster, prefix string, n int) []protocol.Credentials {
	t.Helper()
	creds := make([]protocol.Credentials, n)
	expires := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	err := loadParallelCheck(c, memWriters, n, func(i int) (string, string, any) {
		creds[i].ClientID = prefix + strconv.Itoa(i)
		return http.MethodPut, "/clients/" + pathSeg(creds[i].ClientID),
			map[string]any{"description": "bench client", "expires": expires, "scopes": []string{"bench:mem:" + strconv.Itoa(i)}}
	}, func(i int, answer []byte) error {
		var out struct{ AccessToken string }
		if err := json.Unmarshal(answer, &out); err != nil || out.AccessToken == "" {
			return fmt.Errorf("createClient answer without accessToken: %.200s", answer)
		}
		creds[i].AccessToken = out.AccessToken
		return nil
	})
	if err != nil {
		t.Fatalf("creating %d clients: %v", n, err)
	}
	return creds
}

// waitSnapshot waits (full runs: up to 5 min, as hashicorp/raft checks
// every 2–4 min) until node has taken a Raft snapshot and says what
// happened. Smoke runs have fewer entries than SnapshotThreshold (8192)
// and cannot snapshot: they do not wait.
func waitSnapshot(t *testing.T, s Settings, node *harness.Node) string {
	t.Helper()
	if s.Smoke {
		return "no snapshot (smoke: fewer entries than SnapshotThreshold)"
	}
	t0 := time.Now()
	err := harness.Eventually(5*time.Minute, func() error {
		v, err := node.Metric(snapshotMetric)
		if err == nil && v < 1 {
			err = fmt.Errorf("no snapshot yet")
		}
		return err
	})
	if err != nil {
		t.Fatalf("memory: %s took no snapshot: %v", node.ID, err)
	}
	return fmt.Sprintf("after a Raft snapshot (waited %s for it)", time.Since(t0).Round(time.Second))
}

// warmSidecar sends one request per client through sc (signed just
// before, memWriters at a time) and checks that all of them are cached.
func warmSidecar(t *testing.T, sc *harness.Sidecar, creds []protocol.Credentials) {
	t.Helper()
	pool := &requestPool{reqs: make([]preparedRequest, len(creds))}
	for i, cr := range creds {
		url := sc.URL + "/whoami"
		auth, err := protocol.SignRequest(cr, http.MethodGet, url, protocol.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pool.reqs[i] = preparedRequest{method: http.MethodGet, url: url, auth: auth}
	}
	hc := benchHTTPClient(memWriters)
	if err := parallelN(memWriters, len(creds), func(int) error { return pool.send(hc, nil) }); err != nil {
		t.Fatalf("memory: requests through the sidecar: %v", err)
	}
	n, err := harness.ScrapeMetric("http://"+sc.Admin+"/metrics", `tcauth_sidecar_cache_entries{cache="client"}`)
	if err != nil {
		t.Fatalf("memory: %v", err)
	}
	if int(n) < len(creds) {
		t.Fatalf("memory: sidecar caches %d clients, want at least %d", int(n), len(creds))
	}
}

// memRoles fills a fresh node with nRoles roles, then updates `updates`
// of them.
func memRoles(t *testing.T, s Settings, nRoles, updates int) []Row {
	c := startBenchCluster(t, 1)
	defer c.StopAll()
	node := c.Nodes[0]
	empty := rssAfterSettle(t, s, "empty node", node.Pid())
	t0 := time.Now()
	ids := createRoles(t, c, "bench-roles-", nRoles, memWriters)
	load := time.Since(t0)
	full := rssAfterSettle(t, s, "node with roles", node.Pid())
	t0 = time.Now()
	err := loadParallel(c, 1, updates, func(i int) (string, string, any) {
		return http.MethodPost, "/roles/" + pathSeg(ids[i*len(ids)/updates]),
			map[string]any{"description": "bench role, updated", "scopes": []string{"bench:updated:" + strconv.Itoa(i)}}
	})
	if err != nil {
		t.Fatalf("memory: updating roles: %v", err)
	}
	upd := time.Since(t0)
	updated := rssAfterSettle(t, s, "node after role updates", node.Pid())
	t.Logf("memory: %d roles loaded in %s, %d updates (one writer) in %s", nRoles, load.Round(time.Millisecond), updates, upd.Round(time.Millisecond))
	roles := groupThousands(int64(nRoles)) + " roles"
	after := fmt.Sprintf("%s, after %d role updates", roles, updates)
	return []Row{
		{Section: "memory", Contender: "tcauth control-plane node", Load: roles, Value: mib(full), Unit: "MiB",
			Note: fmt.Sprintf("empty %.1f MiB; loaded by %d writers in %s", mib(empty), memWriters, load.Round(time.Second))},
		{Section: "memory", Contender: "tcauth control-plane node", Load: roles, Value: perItem(full, empty, nRoles), Unit: "B/role"},
		{Section: "memory", Contender: "tcauth control-plane node", Load: after, Value: mib(updated), Unit: "MiB",
			Note: fmt.Sprintf("updates one at a time, spread over the roles, in %s", upd.Round(time.Millisecond))},
	}
}
