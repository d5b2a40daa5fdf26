package benchcompare

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// benchScopeEngine measures the scope engine as a library, in the test
// process (it is one): the median expansion of client-like scope lists at
// 1,000 / 10,000 / 100,000 synthetic roles (scopeengine.SyntheticCorpus:
// per-repo star roles with <..>, project and group roles, chains of 20),
// one role changed under each (time, and the heap the new snapshot adds
// while both are alive, over the resolver's own heap), the first
// expand(["assume:*"]) after a change, and the index build of the
// 600-role corpus (the size of Taskcluster's community deployment).
func benchScopeEngine(t *testing.T, s Settings) []Row {
	var rows []Row
	for _, n := range []int{s.Size(1000, 300), s.Size(10000, 1000), s.Size(100000, 3000)} {
		rows = append(rows, benchEngineAt(t, s, n)...)
	}
	return append(rows, benchEngineBuild(t, s))
}

const engineSection = "scope engine"

func benchEngineAt(t *testing.T, s Settings, n int) []Row {
	roles, clients := scopeengine.SyntheticCorpus(n)
	h0 := heapAlloc()
	r, err := scopeengine.NewResolver(roles)
	if err != nil {
		t.Fatalf("scope engine, %d roles: %v", n, err)
	}
	for _, c := range clients { // warm the memos, as a running node would
		r.Expand(c)
	}
	t0 := time.Now()
	r.Expand([]string{"assume:*"}) // and the subtree unions a change keeps
	cold := time.Since(t0)
	base := heapAlloc() - h0
	runtime.KeepAlive(roles) // counted in h0: keep it out of base
	load := fmt.Sprintf("%s roles", groupThousands(int64(r.Len())))

	var exp, put, star []Sample
	for range s.Rounds {
		exp = append(exp, ClosedLoop(1, s.Duration, func(_, i int) error {
			r.Expand(clients[i%len(clients)])
			return nil
		}))
		put = append(put, ClosedLoop(1, s.Duration/2, func(_, i int) error {
			_, err := r.Put(changedRole(i))
			return err
		}))
		// The first broad expansion of a new snapshot (later ones share
		// its answer): a Put, then expand(["assume:*"]) once.
		star = append(star, ClosedLoop(1, s.Duration/2, func(_, i int) error {
			next, err := r.Put(changedRole(i))
			if err == nil {
				next.Expand([]string{"assume:*"})
			}
			return err
		}))
	}
	for _, smp := range [][]Sample{exp, put, star} {
		for _, x := range smp {
			if err := x.Err(); err != nil {
				t.Fatalf("scope engine, %s: %v", load, err)
			}
		}
	}
	extra := changeHeap(r, clients)
	rows := []Row{
		engineLatencyRow("expand (client scope lists)", load, time.Microsecond, "µs", exp,
			fmt.Sprintf("median of %d client lists, warm; aim ≤ 100 µs at 100,000 roles", len(clients))),
		engineLatencyRow("Put (one role changed)", load, time.Millisecond, "ms", put, "aim ≤ 2 ms"),
		engineLatencyRow("first expand assume:* after a change", load, time.Millisecond, "ms", star,
			fmt.Sprintf("Put + expand; later calls share the answer; on the fresh index %s", formatDur(cold))),
		{Section: engineSection, Contender: "extra heap per change", Load: load,
			Value: 100 * float64(extra) / float64(base), Unit: "%",
			Note: fmt.Sprintf("%s kB on a %.1f MiB resolver, both snapshots alive and warm; aim ≤ 1 %%",
				groupThousands(extra>>10), float64(base)/(1<<20))},
	}
	return rows
}

// changedRole is the i-th role change: one of a few shapes (a chain link,
// a star role with <..>, a new role), with a scope that differs every time
// so that each Put really changes something.
func changedRole(i int) scopeengine.Role {
	v := fmt.Sprintf("bench-change:%d", i)
	switch i % 3 {
	case 0:
		return scopeengine.Role{RoleID: "chain:0:10", Scopes: []string{"chain-scope:0:10", "assume:chain:0:11", v}}
	case 1:
		return scopeengine.Role{RoleID: "repo:github.com/proj1/repo2:*", Scopes: []string{"assume:project:proj1:ci", "x:<..>", v}}
	}
	return scopeengine.Role{RoleID: "new-role-for-bench", Scopes: []string{"assume:anonymous", v}}
}

// changeHeap is the heap a changed snapshot adds while the old one is
// still alive (readers holding it), after both are warm: the live heap
// with both, minus the live heap once the new one is dropped (measured in
// that order so that unrelated garbage of the run cancels out).
func changeHeap(r *scopeengine.Resolver, clients [][]string) int64 {
	both := func() int64 {
		next, err := r.Put(changedRole(1))
		if err != nil {
			return -1
		}
		for _, c := range clients {
			next.Expand(c)
		}
		h := heapAlloc()
		runtime.KeepAlive(next)
		return h
	}()
	one := heapAlloc()
	runtime.KeepAlive(r)
	return both - one
}

// heapAlloc is the live heap after a full collection. Two cycles: objects
// in sync.Pool caches survive the first one (victim cache).
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// engineLatencyRow is a row whose figure is the median over rounds of the
// per-call median, in unit.
func engineLatencyRow(contender, load string, unit time.Duration, unitName string, samples []Sample, note string) Row {
	q := func(p float64) time.Duration {
		v := make([]float64, len(samples))
		for i, x := range samples {
			v[i] = float64(x.Quantile(p))
		}
		return time.Duration(Median(v))
	}
	return Row{Section: engineSection, Contender: contender, Load: load,
		Value: float64(q(0.5)) / float64(unit), Unit: unitName,
		P50: q(0.5), P99: q(0.99), P999: q(0.999), Note: note}
}

// benchEngineBuild is NewResolver (index build and §8 validation) of the
// 600-role corpus, median over repeated builds.
func benchEngineBuild(t *testing.T, s Settings) Row {
	roles, _ := scopeengine.SyntheticCorpus(600)
	var smp []Sample
	for range s.Rounds {
		smp = append(smp, ClosedLoop(1, s.Duration/2, func(_, _ int) error {
			_, err := scopeengine.NewResolver(slices.Clone(roles))
			return err
		}))
	}
	for _, x := range smp {
		if err := x.Err(); err != nil {
			t.Fatalf("scope engine, build: %v", err)
		}
	}
	return engineLatencyRow("index build (NewResolver)", fmt.Sprintf("%d roles", len(roles)), time.Millisecond, "ms", smp,
		"the reference precomputes its whole trie at startup")
}
