package controlplane

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// testStoreContract checks a Store against the semantics documented on the
// Op constants; every Store implementation (the in-memory one, the raftstore
// adapter) must pass it.
func testStoreContract(t *testing.T, st Store) {
	ctx := context.Background()
	at := func(min int) time.Time { return frozen.Add(time.Duration(min) * time.Minute) }
	apply := func(cmd Command) error {
		t.Helper()
		if cmd.Actor == "" {
			cmd.Actor = "actor"
		}
		return st.Apply(ctx, cmd)
	}
	must := func(cmd Command) {
		t.Helper()
		if err := apply(cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op, err)
		}
	}
	rec := ClientRecord{ClientID: "c/1", Description: "d", Scopes: []string{"z", "a"}, Expires: at(60), Created: at(0),
		LastModified: at(0), LastDateUsed: at(0), LastRotated: at(0)}
	start := st.AppliedIndex()
	must(Command{Op: OpCreateClient, Time: at(0), ID: "c/1", Client: rec, AccessToken: "tok-1"})
	if got, ok := st.Client("c/1"); !ok || !slices.Equal(got.Scopes, []string{"z", "a"}) || !got.Created.Equal(at(0)) {
		t.Fatalf("create: %+v %v", got, ok)
	}
	if tok, ok, err := st.AccessToken("c/1"); tok != "tok-1" || !ok || err != nil {
		t.Fatalf("token %q %v %v", tok, ok, err)
	}
	if err := apply(Command{Op: OpCreateClient, Time: at(1), ID: "c/1", Client: rec, AccessToken: "tok-x"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	upd := rec
	upd.Description, upd.Scopes, upd.DeleteOnExpiration = "e", []string{"b"}, true
	must(Command{Op: OpUpdateClient, Time: at(2), ID: "c/1", Client: upd})
	if got, _ := st.Client("c/1"); got.Description != "e" || !got.DeleteOnExpiration || !got.LastModified.Equal(at(2)) || !got.Created.Equal(at(0)) {
		t.Fatalf("update: %+v", got)
	}
	if err := apply(Command{Op: OpUpdateClient, Time: at(2), ID: "nope", Client: ClientRecord{ClientID: "nope"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update absent: %v", err)
	}
	must(Command{Op: OpResetAccessToken, Time: at(3), ID: "c/1", AccessToken: "tok-2"})
	if tok, _, _ := st.AccessToken("c/1"); tok != "tok-2" {
		t.Fatalf("reset: %q", tok)
	}
	if got, _ := st.Client("c/1"); !got.LastRotated.Equal(at(3)) {
		t.Fatalf("reset lastRotated %v", got.LastRotated)
	}
	must(Command{Op: OpSetClientDisabled, Time: at(4), ID: "c/1", Disabled: true})
	if got, _ := st.Client("c/1"); !got.Disabled {
		t.Fatal("not disabled")
	}
	for _, id := range []string{"c/2", "c/3", "d/1"} {
		r := rec
		r.ClientID = id
		must(Command{Op: OpCreateClient, Time: at(5), ID: id, Client: r, AccessToken: "tok-" + id})
	}
	page, more := st.ListClients("c/", 1, 1)
	if len(page) != 1 || page[0].ClientID != "c/2" || !more {
		t.Fatalf("list: %+v %v", page, more)
	}
	if page, more := st.ListClients("c/", 2, 5); len(page) != 1 || more {
		t.Fatalf("list tail: %+v %v", page, more)
	}

	must(Command{Op: OpCreateRole, Time: at(6), ID: "r:*", Role: RoleRecord{RoleID: "r:*", Scopes: []string{"s:<..>"}, Description: "r", Created: at(6), LastModified: at(6)}})
	if err := apply(Command{Op: OpCreateRole, Time: at(6), ID: "cyc", Role: RoleRecord{RoleID: "cyc", Scopes: []string{"assume:cyc"}}}); !errors.Is(err, ErrInvalidRoles) {
		t.Fatalf("cycle: %v", err)
	}
	if _, ok := st.Role("cyc"); ok {
		t.Fatal("invalid role stored")
	}
	if got := st.Resolver().Expand([]string{"assume:r:x"}); strings.Join(got, ",") != "assume:r:x,s:x" {
		t.Fatalf("expand %v", got)
	}
	must(Command{Op: OpUpdateRole, Time: at(7), ID: "r:*", Role: RoleRecord{RoleID: "r:*", Scopes: []string{"t:<..>"}, Description: "r2", Created: at(6), LastModified: at(7)}})
	if r, _ := st.Role("r:*"); r.Description != "r2" || !r.Created.Equal(at(6)) || !r.LastModified.Equal(at(7)) {
		t.Fatalf("update role %+v", r)
	}
	if err := apply(Command{Op: OpUpdateRole, Time: at(7), ID: "nope", Role: RoleRecord{RoleID: "nope"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update absent role: %v", err)
	}
	must(Command{Op: OpCreateRole, Time: at(8), ID: "a", Role: RoleRecord{RoleID: "a", Scopes: []string{}, Created: at(8), LastModified: at(8)}})
	if roles := st.Roles(); len(roles) != 2 || roles[0].RoleID != "a" {
		t.Fatalf("roles %+v", roles)
	}
	must(Command{Op: OpDeleteRole, Time: at(9), ID: "a"})
	must(Command{Op: OpDeleteRole, Time: at(9), ID: "a"})
	if _, ok := st.Role("a"); ok {
		t.Fatal("role not deleted")
	}

	must(Command{Op: OpTouchClients, Time: at(10), LastUsed: map[string]time.Time{"c/2": at(10), "gone": at(10)}})
	if got, _ := st.Client("c/2"); !got.LastDateUsed.Equal(at(10)) {
		t.Fatalf("touch %v", got.LastDateUsed)
	}
	// c/1 has deleteOnExpiration and expires at(60).
	must(Command{Op: OpDeleteExpiredClients, Time: at(61), Actor: "static/taskcluster/auth"})
	if _, ok := st.Client("c/1"); ok {
		t.Fatal("expired client kept")
	}
	if _, ok := st.Client("c/2"); !ok {
		t.Fatal("client without deleteOnExpiration deleted")
	}
	must(Command{Op: OpDeleteClient, Time: at(62), ID: "d/1"})
	must(Command{Op: OpDeleteClient, Time: at(62), ID: "d/1"})

	rows, _ := st.Audit(AuditQuery{EntityType: "client", EntityID: "c/1"}, 0, 100)
	var actions []string
	for _, r := range rows {
		actions = append(actions, r.ActionType)
	}
	if strings.Join(actions, ",") != "created,updated,access token reset,client disabled,expired" {
		t.Fatalf("audit of c/1: %v", actions)
	}
	if rows, _ := st.Audit(AuditQuery{Actor: "static/taskcluster/auth"}, 0, 100); len(rows) != 1 {
		t.Fatalf("audit by actor: %+v", rows)
	}
	must(Command{Op: OpPurgeAudit, Time: at(100), Before: at(5)})
	if rows, _ := st.Audit(AuditQuery{EntityType: "client", EntityID: "c/1"}, 0, 100); len(rows) != 1 {
		t.Fatalf("purge kept %+v", rows)
	}

	must(Command{Op: OpCreateClient, Time: at(0), ID: "static/old", Client: ClientRecord{ClientID: "static/old"}, AccessToken: "tok-old"})
	must(Command{Op: OpSyncStaticClients, Time: at(200), Static: []StaticClient{{ClientID: "static/new", AccessToken: "tok-new", Description: "n", Scopes: []string{"x"}}}})
	if _, ok := st.Client("static/old"); ok {
		t.Fatal("unconfigured static client kept")
	}
	if got, ok := st.Client("static/new"); !ok || !got.Expires.Equal(at(200).AddDate(1000, 0, 0)) || got.Description != "n" {
		t.Fatalf("static/new %+v", got)
	}

	if st.AppliedIndex() <= start {
		t.Fatal("applied index did not advance")
	}
	changes, idx, err := st.Changes(ctx, start)
	if err != nil || idx != st.AppliedIndex() || len(changes) == 0 || changes[0].ID != "c/1" || changes[0].Kind != "client" {
		t.Fatalf("changes %+v %d %v", changes, idx, err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	// Without news, Changes returns when ctx ends: nothing, with either no
	// error or the context's.
	if ch, _, err := st.Changes(short, st.AppliedIndex()); len(ch) != 0 || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
		t.Fatalf("Changes without news: %v %v", ch, err)
	}
}

func TestMemStoreContract(t *testing.T) { testStoreContract(t, newMemStore()) }
