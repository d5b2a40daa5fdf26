package raftstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// TestProfileWritesThroughSnapshot is a measurement, not a check: a
// three-node cluster of real processes (mutual TLS), 64 writers of
// createClient from this process against the leader, the write rate and
// the leader's CPU per write in 10 s windows, and a 20 s CPU profile of
// the leader before and after its first Raft snapshot (raft takes it 2-4
// minutes in, with the default SnapshotInterval). It runs only with
// RAFT_PROFILE_DIR set (where the profiles go) and TCAUTH_BIN:
//
//	go build -o /tmp/x/tcauth ./cmd/tcauth
//	RAFT_PROFILE_DIR=/tmp/x TCAUTH_BIN=/tmp/x/tcauth go test -count=1 -v -timeout 20m \
//	  -run TestProfileWritesThroughSnapshot ./raftstore/
//	go tool pprof -top /tmp/x/tcauth /tmp/x/cpu-after.pb.gz
func TestProfileWritesThroughSnapshot(t *testing.T) {
	out := os.Getenv("RAFT_PROFILE_DIR")
	if out == "" {
		t.Skip("RAFT_PROFILE_DIR not set: a measurement of several minutes")
	}
	c := harness.NewCluster(t, harness.ClusterConfig{})
	admin := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		admin[i] = harness.FreeAddr(t)
		n.Args = append(n.Args, "--admin-addr", admin[i], "--pprof", "--log-level", "info")
	}
	if err := c.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writes, failed atomic.Int64
	wg := startWriters(ctx, c, leader, &writes, &failed)
	defer wg.Wait()
	defer cancel()

	pid := c.Nodes[leader].Pid()
	snapshotted := func() bool { return strings.Contains(c.Nodes[leader].Log(), "snapshot complete") }
	w := window{pid: pid, writes: &writes}
	w.start()
	time.Sleep(15 * time.Second)
	w.report(t, "warm-up")
	profile(t, admin[leader], filepath.Join(out, "cpu-before.pb.gz"))
	w.report(t, "before (profiled)")
	for deadline := time.Now().Add(6 * time.Minute); !snapshotted(); {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot within 6 minutes")
		}
		time.Sleep(10 * time.Second)
		w.report(t, "before")
	}
	t.Logf("first snapshot: %s", harness.LastLineWith(c.Nodes[leader].Log(), "snapshot complete"))
	time.Sleep(5 * time.Second)
	w.report(t, "snapshot")
	profile(t, admin[leader], filepath.Join(out, "cpu-after.pb.gz"))
	w.report(t, "after (profiled)")
	for range 4 {
		time.Sleep(10 * time.Second)
		w.report(t, "after")
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d writes failed", f)
	}
}

func startWriters(ctx context.Context, c *harness.Cluster, leader int, writes, failed *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.Client(leader, nil)
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("project/team-%d/worker-%d-%d", w%8, w, i)
				body := map[string]any{"description": "a worker client", "expires": "3000-01-01T00:00:00.000Z",
					"scopes": []string{"assume:worker-pool:" + id, "queue:claim-work:" + id}}
				// A write that fails is counted, and the test fails at the
				// end: a figure from failing writes means nothing.
				if err := cl.Do(ctx, http.MethodPut, "/clients/"+url.PathEscape(id), nil, body, nil); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				writes.Add(1)
			}
		}()
	}
	return &wg
}

// window reports the write rate and the process's CPU per write since the
// previous report.
type window struct {
	pid    int
	writes *atomic.Int64
	at     time.Time
	n      int64
	cpu    time.Duration
}

func (w *window) start() { w.at, w.n, w.cpu = time.Now(), w.writes.Load(), procCPU(w.pid) }

func (w *window) report(t *testing.T, label string) {
	now, n, cpu := time.Now(), w.writes.Load(), procCPU(w.pid)
	d := float64(n - w.n)
	t.Logf("%-18s %6.0f writes/s  %.3f ms leader CPU/write  (%d writes in %.1fs)", label,
		d/now.Sub(w.at).Seconds(), float64(cpu-w.cpu)/float64(time.Millisecond)/max(d, 1), n-w.n, now.Sub(w.at).Seconds())
	w.at, w.n, w.cpu = now, n, cpu
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func profile(t *testing.T, admin, path string) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/profile?seconds=20")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("profile: %d %v", resp.StatusCode, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
