package scopeengine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// syntheticCorpus builds a role set shaped like a real Taskcluster
// deployment, scaled by n (number of roles, approximately): per-repo star
// roles with <..> scopes, project roles, hook and worker-pool star roles,
// group roles pointing at projects, chains of roles (depth 20), and a few
// global parameterised roles. It also returns client-like scope lists.
func syntheticCorpus(n int) (roles []Role, clients [][]string) {
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	projects := max(n/20, 2)
	add := func(id string, scopes ...string) { roles = append(roles, Role{RoleID: id, Scopes: scopes}) }
	add("login-identity:*", "auth:create-client:<..>/*", "auth:delete-client:<..>/*", "auth:update-client:<..>/*")
	add("project-admin:*", "assume:hook-id:project-<..>/*", "auth:create-role:project:<..>/*",
		"secrets:get:project/<..>/*", "queue:create-task:highest:proj-<..>/*", "assume:project:<..>:ci")
	add("anonymous", "auth:current-scopes", "queue:get-artifact:public/*")
	for p := 0; p < projects && len(roles) < n; p++ {
		proj := fmt.Sprintf("proj%d", p)
		var ci []string
		for k := range 10 + rng.IntN(30) {
			ci = append(ci, fmt.Sprintf("queue:route:index.%s.v2.%d.*", proj, k))
		}
		ci = append(ci, "assume:worker-pool:"+proj+"/*", "secrets:get:project/"+proj+"/ci")
		add("project:"+proj+":ci", ci...)
		add("worker-pool:"+proj+"/*", "queue:claim-work:"+proj+"/<..>", "queue:worker-id:"+proj+"/*")
		add("hook-id:project-"+proj+"/*", "queue:create-task:highest:"+proj+"/<..>", "assume:project:"+proj+":ci")
		for r := 0; r < 10 && len(roles) < n; r++ {
			repo := fmt.Sprintf("repo:github.com/%s/repo%d:*", proj, r)
			add(repo, "assume:project:"+proj+":ci", "index:insert-task:"+proj+".repo"+fmt.Sprint(r)+".<..>",
				"queue:scheduler-id:"+proj, "secrets:get:repo/"+proj+"/<..>/ci")
		}
		add(fmt.Sprintf("mozilla-group:team-%d", p), "assume:project-admin:"+proj, "assume:repo:github.com/"+proj+"/*")
	}
	for c := 0; len(roles) < n; c++ {
		for d := 0; d < 20 && len(roles) < n; d++ {
			scopes := []string{fmt.Sprintf("chain-scope:%d:%d", c, d), fmt.Sprintf("queue:route:chain.%d.%d", c, d)}
			if d < 19 {
				scopes = append(scopes, fmt.Sprintf("assume:chain:%d:%d", c, d+1))
			}
			add(fmt.Sprintf("chain:%d:%d", c, d), scopes...)
		}
	}
	for i := range 360 {
		p := fmt.Sprintf("proj%d", rng.IntN(projects))
		cl := []string{"assume:anonymous", "queue:get-task:*"}
		switch i % 6 {
		case 0:
			cl = append(cl, fmt.Sprintf("assume:repo:github.com/%s/repo%d:branch:main", p, rng.IntN(10)))
		case 1:
			cl = append(cl, "assume:mozilla-group:team-"+p[4:], "assume:login-identity:github/1234|someone")
		case 2:
			cl = append(cl, "assume:project:"+p+":ci", fmt.Sprintf("assume:chain:%d:0", rng.IntN(max(n/200, 1))))
		case 3:
			cl = append(cl, "assume:hook-id:project-"+p+"/nightly", "assume:worker-pool:"+p+"/linux")
		case 4:
			cl = append(cl, "assume:repo:github.com/"+p+"/*")
		default:
			for k := range 300 { // some clients carry hundreds of scopes
				cl = append(cl, fmt.Sprintf("queue:create-task:%s/worker-%d", p, k))
			}
			cl = append(cl, "assume:project-admin:"+p)
		}
		clients = append(clients, cl)
	}
	return roles, clients
}

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
