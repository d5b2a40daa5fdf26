package benchcompare

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// etcdBin is Debian's etcd (3.4), the replicated store people reach for
// when they need one.
const etcdBin = "/usr/bin/etcd"

// snapshotMetric counts a tcauth node's Raft snapshots (hashicorp/raft's
// raft.snapshot.create timing, one sample per snapshot).
const snapshotMetric = "tcauth_raft_snapshot_create_duration_seconds_count"

// etcdSnapshotMetric counts an etcd member's snapshots (3.4 exports it at
// the client URL's /metrics).
const etcdSnapshotMetric = "etcd_debugging_snap_save_total_duration_seconds_count"

const (
	wCreate = "tcauth createClient"
	wUpdate = "tcauth updateRole"
	wEtcd   = "etcd put (256 B)"
)

// benchWrites measures replicated writes: createClient and updateRole on
// a three-node tcauth cluster next to put on a three-member etcd cluster,
// both on loopback and both fsyncing. Writers go round-robin over the
// nodes per request, as callers behind a load balancer would: a write
// reaching a follower is forwarded to the leader in both systems.
func benchWrites(t *testing.T, s Settings) []Row {
	c := startBenchCluster(t, 3)
	defer c.StopAll()
	e := startEtcd(t, 3)
	defer e.stop()
	w := &writeBench{s: s, c: c, e: e, urls: nodeURLs(c), root: *c.Root(), sizer: &poolSizer{perSecond: float64(s.Size(15000, 6000))}}
	// One role per writer: updateRole writers do not queue on one key.
	w.roles = createRoles(t, c, "bench-write-role-", slicesMax(s.Conns), memWriters)
	var rows []Row
	for _, writers := range s.Conns {
		rows = append(rows, w.atWriters(t, writers)...)
	}
	return append(rows, w.sustained(t)...)
}

type writeBench struct {
	s     Settings
	c     *harness.Cluster
	e     *etcdCluster
	urls  []string
	root  protocol.Credentials
	roles []string
	sizer *poolSizer
	seq   atomic.Int64 // makes every pool's clientIds and keys unique
}

// atWriters runs the three contenders for s.Rounds rounds and reports
// each round's writes/s and the snapshots taken during it.
func (w *writeBench) atWriters(t *testing.T, writers int) []Row {
	hc := benchHTTPClient(writers)
	perRound := map[string][]string{}
	samples, err := Rounds(w.s.Rounds, []string{wCreate, wUpdate, wEtcd}, func(name string) (Sample, error) {
		before, err := w.snapshots(name)
		if err != nil {
			return Sample{}, err
		}
		smp, err := w.run(name, writers, hc, w.s.Duration)
		if err != nil {
			return Sample{}, err
		}
		after, err := w.snapshots(name)
		if err != nil {
			return Sample{}, err
		}
		perRound[name] = append(perRound[name], fmt.Sprintf("%.0f (%d snap.)", smp.RPS(), after-before))
		return smp, nil
	})
	if err != nil {
		t.Fatalf("writes, %d writers: %v", writers, err)
	}
	load := plural(writers, "writer") + ", 3 nodes"
	var rows []Row
	for _, name := range []string{wCreate, wUpdate, wEtcd} {
		base := wEtcd
		if name == wEtcd {
			base = ""
		}
		r := RowFromSamples("writes", name, load, "writes/s", base, samples[name])
		r.Note = "per round: " + strings.Join(perRound[name], ", ") + "; round-robin over the nodes per request"
		if name != wEtcd {
			r.Note += "; a follower answers a forwarded write once it has applied it itself (read-your-writes)"
		}
		rows = append(rows, r)
		AddSeries("writes, "+load, name, mergeLatencies(samples[name]))
	}
	return rows
}

// run is one contender's closed loop with a pool signed just before it.
func (w *writeBench) run(name string, writers int, hc *http.Client, d time.Duration) (Sample, error) {
	// Sized by what this contender did at this writer count: the rate at
	// one writer says nothing of sixteen.
	key := fmt.Sprintf("%s, %d writers", name, writers)
	if name == wEtcd {
		tag := w.seq.Add(1)
		value := strings.Repeat("v", 256)
		return withCPU(w.e.pids(), func() Sample {
			return ClosedLoop(writers, d, func(wk, seq int) error {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				key := fmt.Sprintf("bench/%d/%d/%d", tag, wk, seq)
				_, err := w.e.clients[(wk+seq)%len(w.e.clients)].Put(ctx, key, value)
				return err
			})
		})
	}
	return w.sizer.run(key, d, func(n int) (Sample, error) {
		pool, err := w.signWrites(name, w.seq.Add(1), n)
		if err != nil {
			return Sample{}, err
		}
		return withCPU(nodePids(w.c), func() Sample {
			return ClosedLoop(writers, d, func(int, int) error { return pool.send(hc, nil) })
		})
	})
}

// signWrites prepares n createClient or updateRole calls with root
// credentials, payload hash included, round-robin over the nodes.
func (w *writeBench) signWrites(name string, tag int64, n int) (*requestPool, error) {
	p := &requestPool{reqs: make([]preparedRequest, n)}
	expires := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for i := range p.reqs {
		var method, route string
		var body map[string]any
		if name == wCreate {
			method, route = http.MethodPut, "/clients/"+pathSeg(fmt.Sprintf("bench/w/%d/%d", tag, i))
			body = map[string]any{"description": "bench write", "expires": expires,
				"scopes": []string{"bench:scope:" + strconv.Itoa(i)}}
		} else {
			method, route = http.MethodPost, "/roles/"+pathSeg(w.roles[i%len(w.roles)])
			body = map[string]any{"description": "bench write", "scopes": []string{fmt.Sprintf("bench:role:%d:%d", tag, i)}}
		}
		r, err := signJSON(w.root, method, w.urls[i%len(w.urls)]+"/api/auth/v1"+route, body)
		if err != nil {
			return nil, err
		}
		p.reqs[i] = r
	}
	return p, nil
}

// signJSON prepares a request with a JSON body, signed now (fresh nonce,
// payload hash) as the official clients sign.
func signJSON(creds protocol.Credentials, method, url string, body any) (preparedRequest, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return preparedRequest{}, err
	}
	auth, err := protocol.SignRequest(creds, method, url, protocol.SignOptions{
		ContentType: "application/json", Payload: b, HasPayload: true})
	if err != nil {
		return preparedRequest{}, err
	}
	return preparedRequest{method: method, url: url, contentType: "application/json", body: b, auth: auth}, nil
}

// snapshots is the number of snapshots taken so far by every node of the
// contender's cluster.
func (w *writeBench) snapshots(name string) (int, error) {
	total := 0
	if name == wEtcd {
		for _, u := range w.e.clientURLs {
			v, err := harness.ScrapeMetric(u+"/metrics", etcdSnapshotMetric)
			if err != nil {
				return 0, err
			}
			total += int(v)
		}
		return total, nil
	}
	for _, n := range w.c.Nodes {
		v, err := n.Metric(snapshotMetric)
		if err != nil {
			return 0, err
		}
		total += int(v)
	}
	return total, nil
}

// createRoles creates n roles (prefix + i) through the leader with
// `writers` writers in parallel and returns their ids.
func createRoles(t *testing.T, c *harness.Cluster, prefix string, n, writers int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	err := loadParallel(c, writers, n, func(i int) (string, string, any) {
		return http.MethodPut, "/roles/" + pathSeg(ids[i]),
			map[string]any{"description": "bench role", "scopes": []string{"bench:role-scope:" + strconv.Itoa(i)}}
	})
	if err != nil {
		t.Fatalf("creating %d roles: %v", n, err)
	}
	return ids
}

// loadParallel sends n root-signed writes (made by req(i)) to the leader
// from `writers` goroutines; the first failure ends it.
func loadParallel(c *harness.Cluster, writers, n int, req func(i int) (method, route string, body any)) error {
	return loadParallelCheck(c, writers, n, req, nil)
}

// loadParallelCheck is loadParallel with check(i, answer) run on every
// answer (to keep what a write returned, such as an access token).
func loadParallelCheck(c *harness.Cluster, writers, n int, req func(i int) (method, route string, body any), check func(i int, answer []byte) error) error {
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		return err
	}
	hc := benchHTTPClient(writers)
	base := c.Nodes[leader].URL() + "/api/auth/v1"
	return parallelN(writers, n, func(i int) error {
		method, route, body := req(i)
		r, err := signJSON(*c.Root(), method, base+route, body)
		if err != nil {
			return err
		}
		var chk func([]byte) error
		if check != nil {
			chk = func(b []byte) error { return check(i, b) }
		}
		return expectOK(hc, r.method, r.url, r.body, r.contentType, chk, "Authorization", r.auth)
	})
}

// parallelN runs do(0..n-1) on `workers` goroutines; the first error
// stops the others and is returned.
func parallelN(workers, n int, do func(i int) error) error {
	var next atomic.Int64
	errs := make(chan error, workers)
	for wk := 0; wk < workers; wk++ {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					errs <- nil
					return
				}
				if err := do(i); err != nil {
					next.Store(int64(n))
					errs <- fmt.Errorf("item %d: %w", i, err)
					return
				}
			}
		}()
	}
	var first error
	for wk := 0; wk < workers; wk++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// etcdCluster is a three-member etcd on loopback with one client per
// member.
type etcdCluster struct {
	procs      []*harness.Process
	clientURLs []string
	clients    []*clientv3.Client
}

// startEtcd starts n etcd members with default settings (fsync on,
// --snapshot-count 100000 as 3.4 ships) and waits until a put succeeds
// through every member. Skips when /usr/bin/etcd is missing, unless
// TCAUTH_REQUIRE_PEERS=1 (make bench-compare), where that fails.
func startEtcd(t *testing.T, n int) *etcdCluster {
	t.Helper()
	needPeerBinary(t, etcdBin, "make deps-bench: Debian's etcd-server", true)
	dir := t.TempDir()
	e := &etcdCluster{}
	var peers, initial []string
	for i := 0; i < n; i++ {
		e.clientURLs = append(e.clientURLs, "http://"+harness.FreeAddr(t))
		peers = append(peers, "http://"+harness.FreeAddr(t))
		initial = append(initial, fmt.Sprintf("e%d=%s", i+1, peers[i]))
	}
	t.Cleanup(e.stop)
	harness.DumpLogsOnFailure(t, func() []*harness.Process { return e.procs })
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("e%d", i+1)
		p := harness.NewProcess(t, etcdBin, "etcd-"+name, dir, "--name", name,
			"--data-dir", filepath.Join(dir, name), "--listen-client-urls", e.clientURLs[i],
			"--advertise-client-urls", e.clientURLs[i], "--listen-peer-urls", peers[i],
			"--initial-advertise-peer-urls", peers[i], "--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "bench", "--logger", "zap", "--log-level", "warn")
		if err := p.Start(); err != nil {
			t.Fatalf("start etcd %s: %v", name, err)
		}
		e.procs = append(e.procs, p)
	}
	for _, u := range e.clientURLs {
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{u}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatalf("etcd client %s: %v", u, err)
		}
		e.clients = append(e.clients, cl)
		if err := harness.Eventually(30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := cl.Put(ctx, "bench/ready", "1")
			return err
		}); err != nil {
			t.Fatalf("etcd member %s not serving: %v", u, err)
		}
	}
	return e
}

func (e *etcdCluster) pids() []int {
	var p []int
	for _, pr := range e.procs {
		p = append(p, pr.Pid())
	}
	return p
}

func (e *etcdCluster) stop() {
	for _, cl := range e.clients {
		cl.Close()
	}
	e.clients = nil
	for _, p := range e.procs {
		p.Stop()
	}
}

// window is one slice of the sustained phase.
type window struct {
	rps    float64
	before int // snapshots the cluster took in this phase before the window
	during int // and during it
}

// sustainLimit bounds the sustained phase: BENCH_SUSTAIN (a Go duration),
// else 6 min (hashicorp/raft looks every SnapshotInterval, 2 min plus up
// to 2 min of jitter, whether SnapshotThreshold entries have passed, so
// two snapshots need up to 8 min and usually about 5), in smoke runs two
// windows.
func sustainLimit(s Settings) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BENCH_SUSTAIN")); err == nil && d > 0 {
		return d
	}
	if s.Smoke {
		return 0 // the two windows every phase has
	}
	return 6 * time.Minute
}

// sustained writes at the largest writer count in windows until the tcauth
// leader has taken two snapshots in the phase (or sustainLimit passes),
// then runs etcd for as many windows: whether writes stay flat across
// snapshots shows as the rows before and after each one's first (counted
// over all nodes: a follower's snapshot can slow commits too).
func (w *writeBench) sustained(t *testing.T) []Row {
	writers := slicesMax(w.s.Conns)
	hc := benchHTTPClient(writers)
	leader, err := w.c.Leader(30 * time.Second)
	if err != nil {
		t.Fatalf("writes, sustained: %v", err)
	}
	lbase, err := w.c.Nodes[leader].Metric(snapshotMetric)
	if err != nil {
		t.Fatalf("writes, sustained: %v", err)
	}
	limit, start := sustainLimit(w.s), time.Now()
	tc := w.windows(t, wCreate, writers, hc, func(int, int) bool {
		v, err := w.c.Nodes[leader].Metric(snapshotMetric)
		return (err == nil && v-lbase >= 2) || time.Since(start) >= limit
	})
	ec := w.windows(t, wEtcd, writers, hc, func(i int, _ int) bool { return i >= len(tc) })
	return append(w.sustainRows(wCreate, writers, tc, wEtcd), w.sustainRows(wEtcd, writers, ec, "")...)
}

// window is the length of one window of the sustained phase: s.Duration,
// half of it in smoke runs (which only show that the phase works).
func (w *writeBench) window() time.Duration {
	if w.s.Smoke {
		return w.s.Duration / 2
	}
	return w.s.Duration
}

func slicesMax(v []int) int {
	m := 1
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// windows runs name window after window until done(windows so far,
// snapshots so far) says so; at least two windows.
func (w *writeBench) windows(t *testing.T, name string, writers int, hc *http.Client, done func(int, int) bool) []window {
	base, err := w.snapshots(name)
	if err != nil {
		t.Fatalf("writes, sustained %s: %v", name, err)
	}
	var out []window
	prev, start := base, time.Now()
	for len(out) < 2 || !done(len(out), prev-base) {
		smp, err := w.run(name, writers, hc, w.window())
		if err == nil {
			err = smp.Err()
		}
		now, err2 := w.snapshots(name)
		if err != nil {
			// Say where in the phase it broke: a failure during a
			// snapshot is what this phase is looking for.
			t.Fatalf("writes, sustained %s, window %d (%s into the phase; snapshots in the phase before it %d, during it %d): %v",
				name, len(out)+1, time.Since(start).Round(time.Second), prev-base, now-prev, err)
		}
		if err2 != nil {
			t.Fatalf("writes, sustained %s, window %d: %v", name, len(out)+1, err2)
		}
		out = append(out, window{rps: smp.RPS(), before: prev - base, during: now - prev})
		prev = now
	}
	return out
}

// sustainRows are the medians of the windows before the phase's first
// snapshot and of those after it (a class without windows gets no row).
func (w *writeBench) sustainRows(name string, writers int, ws []window, baseline string) []Row {
	var before, after []float64
	var trace []string
	minRPS := ws[0].rps
	for i, x := range ws {
		switch {
		case x.before == 0 && x.during == 0:
			before = append(before, x.rps)
		case x.before > 0:
			after = append(after, x.rps)
		}
		if x.during > 0 {
			trace = append(trace, fmt.Sprintf("snapshot in window %d (%.0f writes/s)", i+1, x.rps))
		}
		minRPS = min(minRPS, x.rps)
	}
	if len(trace) == 0 {
		trace = append(trace, "no snapshot")
	}
	note := fmt.Sprintf("%d windows of %s; snapshots counted over all 3 nodes: %s; lowest window %.0f writes/s", len(ws), w.window(),
		strings.Join(trace, ", "), minRPS)
	var rows []Row
	for _, cls := range []struct {
		label string
		v     []float64
	}{{"before first snapshot", before}, {"after first snapshot", after}} {
		if len(cls.v) == 0 {
			continue
		}
		rows = append(rows, Row{Section: "writes", Contender: name, Unit: "writes/s", HigherIsBetter: true,
			Load: fmt.Sprintf("%d writers, sustained, %s", writers, cls.label), Value: Median(cls.v),
			Baseline: baseline, Note: note})
	}
	return rows
}

// TestSustainRows checks how the sustained phase's windows are classed:
// before any snapshot, during one (in neither class), after the first.
func TestSustainRows(t *testing.T) {
	w := &writeBench{s: Settings{Duration: time.Second}}
	for _, tc := range []struct {
		name          string
		ws            []window
		before, after float64 // 0: no row
	}{
		{"no snapshot", []window{{rps: 10}, {rps: 30}}, 20, 0},
		{"one in the middle", []window{{rps: 10}, {rps: 1, during: 1}, {rps: 30, before: 1}, {rps: 50, before: 1}}, 10, 40},
		{"in the first window", []window{{rps: 1, during: 2}, {rps: 30, before: 2}}, 0, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]float64{}
			for _, r := range w.sustainRows(wCreate, 64, tc.ws, wEtcd) {
				got[strings.TrimPrefix(r.Load, "64 writers, sustained, ")] = r.Value
				if r.Baseline != wEtcd || r.Unit != "writes/s" {
					t.Errorf("row %+v", r)
				}
			}
			if got["before first snapshot"] != tc.before || got["after first snapshot"] != tc.after || len(got) != btoi(tc.before > 0)+btoi(tc.after > 0) {
				t.Errorf("rows %v, want before %v after %v", got, tc.before, tc.after)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
