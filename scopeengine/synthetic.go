package scopeengine

import (
	"fmt"
	"math/rand/v2"
)

// SyntheticCorpus builds a role set shaped like a real Taskcluster
// deployment, scaled by n (number of roles, approximately): per-repo star
// roles with <..> scopes, project roles, hook and worker-pool star roles,
// group roles pointing at projects, chains of roles (depth 20), and a few
// global parameterised roles. It also returns client-like scope lists.
// Deterministic for a given n; for benchmarks and tests (the bench-compare
// harness uses it too, which is why it is not in a _test file).
func SyntheticCorpus(n int) (roles []Role, clients [][]string) {
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
