package raftstore

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// memClientCmd is a create-client entry as the control plane proposes it:
// JSON bytes, decoded by the apply as on every node. Its scopes are those
// of one of 100 teams, or with unique, its own.
func memClientCmd(tb testing.TB, k *Keyring, i int, unique bool) []byte {
	id := fmt.Sprintf("project/team-%d/worker-%d", i%100, i)
	sealed, err := k.Seal(id, []byte("token-0123456789abcdefghij0123456789abcdefgh"))
	if err != nil {
		tb.Fatal(err)
	}
	team := fmt.Sprint(i % 100)
	if unique {
		team = id
	}
	b, err := json.Marshal(Command{Op: OpCreateClient, Time: t0, Actor: "static/taskcluster/root", ID: id, Client: &Client{
		ClientID: id, Description: "a worker client", Expires: t0.Add(24 * time.Hour), Created: t0, LastModified: t0,
		LastDateUsed: t0, LastRotated: t0, SealedToken: sealed,
		Scopes: []string{"assume:worker-pool:proj/team-" + team, "queue:claim-work:proj/team-" + team}}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func memRoleCmd(tb testing.TB, i int, op Op) []byte {
	team := fmt.Sprint(i % 100)
	b, err := json.Marshal(Command{Op: op, Time: t0, Actor: "static/taskcluster/root", Role: &Role{
		RoleID: fmt.Sprintf("worker-pool:proj/team-%d/pool-%d", i%100, i), Description: "a worker pool",
		Scopes: []string{"queue:claim-work:proj/team-" + team + "/*", "secrets:get:proj/" + fmt.Sprint(i), "assume:project:team-" + team}}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// memApply applies entries to st through applyCommand, as the FSM does.
func memApply(tb testing.TB, st *state, first uint64, entries [][]byte) {
	for i, e := range entries {
		if _, _, err := applyCommand(st, first+uint64(i), e, FormatVersion); err != nil {
			tb.Fatal(err)
		}
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemoryPer100kRoles reports the heap the state (records and the
// resolver's index) holds per role, applied through applyCommand.
func BenchmarkMemoryPer100kRoles(b *testing.B) {
	const n = 100000
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = memRoleCmd(b, i, OpCreateRole)
	}
	for i := 0; i < b.N; i++ {
		before := liveHeap()
		st := newState()
		memApply(b, st, 1, entries)
		after := liveHeap()
		b.ReportMetric(float64(after-before)/n, "B/role")
		runtime.KeepAlive(st)
	}
}
