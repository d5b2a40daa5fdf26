// Package cpmemory measures a real control-plane process's resident memory
// per stored client and per role: one node, clients and roles created
// through the API by many writers, RSS read from /proc after a Raft
// snapshot. It runs only with CPMEM=1 (it takes a minute or two):
//
//	go build -o /tmp/tcauth ./cmd/tcauth
//	CPMEM=1 TCAUTH_BIN=/tmp/tcauth go test -count=1 -v -run TestControlPlaneMemory ./integration/cpmemory/
//
// CPMEM_CLIENTS and CPMEM_ROLES change the sizes (default 100,000 and
// 10,000); CPMEM_MAX_MIB makes the test fail above a bound.
package cpmemory

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/benchcompare"
	"github.com/tcauth/tcauth/integration/harness"
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

// parallel runs do(i) for i in [0, n) on 64 writers and fails on the
// first error.
func parallel(t *testing.T, n int, do func(ctx context.Context, i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := do(ctx, i)
				cancel()
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		t.Fatal(*p)
	}
}

// rssMiB is pid's resident set in MiB; with CPMEM_PROFILE=DIR it also
// saves the process's heap profile there as NAME.pprof.
func rssMiB(t *testing.T, pid int, admin, name string) float64 {
	t.Helper()
	// Let a snapshot in progress and the GC settle: RSS is what the
	// process keeps, not a transient peak.
	time.Sleep(3 * time.Second)
	b, err := benchcompare.RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "Rss") {
			t.Logf("%s: %s", name, strings.Join(strings.Fields(l), " "))
		}
	}
	logMappings(t, pid, name)
	if dir := os.Getenv("CPMEM_PROFILE"); dir != "" {
		harness.SaveHeapProfile(t, admin, filepath.Join(dir, name+".pprof"))
	}
	return float64(b) / (1 << 20)
}

// logMappings logs the file mappings holding the most resident memory
// (the bolt file's, the binary's), to tell them from the Go heap.
func logMappings(t *testing.T, pid int, name string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return
	}
	var file string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			file = ""
			if len(f) >= 6 {
				file = f[5]
			}
		case len(f) == 3 && f[0] == "Rss:" && file != "" && !strings.HasPrefix(file, "["):
			if kb, _ := strconv.Atoi(f[1]); kb >= 4096 {
				t.Logf("%s: %s resident %d kB", name, filepath.Base(file), kb)
			}
		}
	}
}

func TestControlPlaneMemory(t *testing.T) {
	if os.Getenv("CPMEM") != "1" {
		t.Skip("set CPMEM=1 to measure the control plane's memory (a minute or two)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	nClients, nRoles := envInt(t, "CPMEM_CLIENTS", 100000), envInt(t, "CPMEM_ROLES", 10000)
	admin := harness.FreeAddr(t)
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1, ExtraArgs: []string{"--admin-addr", admin, "--pprof"}})
	n := c.Nodes[0]
	n.WaitReady(t, 30*time.Second)
	api := c.Client(0, nil)
	empty := rssMiB(t, n.Pid(), admin, "empty")
	t.Logf("empty: %.1f MiB", empty)

	start := time.Now()
	expires := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	parallel(t, nClients, func(ctx context.Context, i int) error {
		id := fmt.Sprintf("project/team-%d/worker-%d", i%100, i)
		body := map[string]any{"description": "a worker client", "expires": expires,
			"scopes": []string{"assume:worker-pool:proj/team-" + strconv.Itoa(i%100), "queue:claim-work:proj/team-" + strconv.Itoa(i%100)}}
		return api.Do(ctx, http.MethodPut, "/clients/"+url.PathEscape(id), nil, body, nil)
	})
	t.Logf("%d clients created in %s", nClients, time.Since(start).Round(time.Second))
	withClients := rssMiB(t, n.Pid(), admin, "clients")
	t.Logf("clients: %.1f MiB, %.0f bytes per client", withClients, (withClients-empty)*(1<<20)/float64(max(nClients, 1)))

	start = time.Now()
	parallel(t, nRoles, func(ctx context.Context, i int) error {
		id := fmt.Sprintf("worker-pool:proj/team-%d/pool-%d", i%100, i)
		body := map[string]any{"description": "a worker pool", "scopes": []string{
			"queue:claim-work:proj/team-" + strconv.Itoa(i%100) + "/*", "secrets:get:proj/" + strconv.Itoa(i), "assume:project:team-" + strconv.Itoa(i%100)}}
		return api.Do(ctx, http.MethodPut, "/roles/"+url.PathEscape(id), nil, body, nil)
	})
	t.Logf("%d roles created in %s", nRoles, time.Since(start).Round(time.Second))
	total := rssMiB(t, n.Pid(), admin, "clients-roles")
	t.Logf("clients+roles: %.1f MiB, %.0f bytes per role", total, (total-withClients)*(1<<20)/float64(max(nRoles, 1)))
	if m := envInt(t, "CPMEM_MAX_MIB", 0); m > 0 && total > float64(m) {
		t.Fatalf("RSS %.1f MiB with %d clients and %d roles, over %d MiB", total, nClients, nRoles, m)
	}
}
