package scopeengine

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

// syntheticCorpus is SyntheticCorpus (synthetic.go), shared with the
// bench-compare harness.
func syntheticCorpus(n int) (roles []Role, clients [][]string) { return SyntheticCorpus(n) }

func mustResolver(b *testing.B, roles []Role) *Resolver {
	b.Helper()
	r, err := NewResolver(roles)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkSatisfies1000(b *testing.B) {
	var scopes []string
	for i := range 1000 {
		if i%10 == 0 {
			scopes = append(scopes, fmt.Sprintf("queue:create-task:proj-%03d/*", i))
		} else {
			scopes = append(scopes, fmt.Sprintf("secrets:get:project/p%03d/key", i))
		}
	}
	set := NewScopeSet(scopes)
	needs := []string{
		"queue:create-task:proj-500/worker-x", "secrets:get:project/p333/key",
		"secrets:get:project/p333/other", "index:insert-task:nothing",
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		set.Satisfies(needs[i%len(needs)])
	}
}

// benchExpand reports the median of individual warm Expand calls besides the
// mean, since the target is stated as a median.
func benchExpand(b *testing.B, n int) {
	roles, clients := syntheticCorpus(n)
	r := mustResolver(b, roles)
	for _, c := range clients { // warm the memos, as a running sidecar would
		r.Expand(c)
	}
	var samples []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		r.Expand(clients[i%len(clients)])
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "median-ns")
	b.ReportMetric(float64(r.Len()), "roles")
}

func BenchmarkExpand1000Roles(b *testing.B)  { benchExpand(b, 1000) }
func BenchmarkExpand10000Roles(b *testing.B) { benchExpand(b, 10000) }

// BenchmarkExpandCold10000Roles expands every client list on a resolver
// whose memos are empty (as right after NewResolver).
func BenchmarkExpandCold10000Roles(b *testing.B) {
	roles, clients := syntheticCorpus(10000)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r := mustResolver(b, roles)
		b.StartTimer()
		for _, c := range clients {
			r.Expand(c)
		}
	}
	b.ReportMetric(float64(len(clients)), "clients/op")
}

// benchBuild measures NewResolver (index build + §8 validation), and with
// expand also expanding every client list from cold memos: the reference
// precomputes its whole trie at build time, so that is the like-for-like
// comparison with its 80 ms for the real 600-role corpus.
func benchBuild(b *testing.B, n int, expand bool) {
	roles, clients := syntheticCorpus(n)
	b.ReportAllocs()
	for b.Loop() {
		r := mustResolver(b, roles)
		for i := 0; expand && i < len(clients); i++ {
			r.Expand(clients[i])
		}
	}
}

func BenchmarkBuild600Roles(b *testing.B)                 { benchBuild(b, 600, false) }
func BenchmarkBuild600RolesExpand360Clients(b *testing.B) { benchBuild(b, 600, true) }
func BenchmarkNewResolver10000Roles(b *testing.B)         { benchBuild(b, 10000, false) }

// BenchmarkPut10000Roles replaces one role of a 10,000-role resolver (the
// role's scopes alternate so every Put is a real change). Compare with
// BenchmarkNewResolver10000Roles; retained-bytes reports the heap growth of
// keeping both snapshots alive versus one.
func BenchmarkPut10000Roles(b *testing.B) {
	roles, clients := syntheticCorpus(10000)
	r := mustResolver(b, roles)
	for _, c := range clients {
		r.Expand(c)
	}
	targets := []Role{
		{RoleID: "project:proj7:ci", Scopes: []string{"queue:route:index.proj7.*", "assume:worker-pool:proj7/*"}},
		{RoleID: "chain:3:10", Scopes: []string{"chain-scope:3:10", "assume:chain:3:11"}},
		{RoleID: "repo:github.com/proj9/repo2:*", Scopes: []string{"assume:project:proj9:ci", "x:<..>"}},
		{RoleID: "new-role-for-put", Scopes: []string{"assume:anonymous"}},
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	next, err := r.Put(targets[0])
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	retained := int64(ms1.HeapAlloc) - int64(ms0.HeapAlloc)
	runtime.KeepAlive(next)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := targets[i%len(targets)]
		t.Scopes = append(slices.Clone(t.Scopes), fmt.Sprintf("v:%d", i))
		if _, err := r.Put(t); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(retained), "retained-bytes")
}
