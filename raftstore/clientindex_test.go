package raftstore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// checkIndex compares the index with the reference (ids → record) and
// checks the chunk invariants.
func checkIndex(t *testing.T, x *clientIndex, ref map[string]*Client) {
	t.Helper()
	want := make([]string, 0, len(ref))
	for id := range ref {
		want = append(want, id)
	}
	sort.Strings(want)
	var got []string
	for c := range x.view().all() {
		if ref[c.ClientID] != c {
			t.Fatalf("index holds a stale record for %s", c.ClientID)
		}
		got = append(got, c.ClientID)
	}
	if !slices.Equal(got, want) || x.len() != len(want) {
		t.Fatalf("index holds %d ids (len %d), want %d; first diff near %v", len(got), x.len(), len(want), firstDiff(got, want))
	}
	for i, ch := range x.chunks {
		if len(ch.cs) == 0 || len(ch.cs) > 2*indexChunk {
			t.Fatalf("chunk %d holds %d clients", i, len(ch.cs))
		}
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + " / " + b[i]
		}
	}
	return "the end"
}

// TestClientIndexRandomOps drives the index with random puts (new and
// replacing) and deletes (present and absent), enough to split and merge
// chunks, with views frozen along the way that must never change.
func TestClientIndexRandomOps(t *testing.T) {
	for _, tc := range []struct {
		name        string
		space, ops  int
		deleteShare float64
	}{
		{"grow", 6000, 8000, 0.1},
		{"churn", 3000, 20000, 0.5},
		{"shrink", 3000, 12000, 0.8},
		{"small", 10, 500, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.ops)))
			var x clientIndex
			ref := map[string]*Client{}
			type frozen struct {
				v    clientView
				want []*Client
			}
			var views []frozen
			for op := range tc.ops {
				id := fmt.Sprintf("c/%05d", r.IntN(tc.space))
				if r.Float64() < tc.deleteShare {
					_, had := ref[id]
					if x.delete(id) != had {
						t.Fatalf("delete(%s) = %v, want %v", id, !had, had)
					}
					delete(ref, id)
				} else {
					c := &Client{ClientID: id, Description: fmt.Sprint(op)}
					x.put(c)
					ref[id] = c
				}
				if op%997 == 0 {
					v := x.freeze()
					views = append(views, frozen{v, slices.Collect(v.all())})
				}
			}
			checkIndex(t, &x, ref)
			for i, f := range views {
				if got := slices.Collect(f.v.all()); !slices.Equal(got, f.want) || f.v.n != len(f.want) {
					t.Fatalf("view %d changed after later writes", i)
				}
			}
		})
	}
}

// TestClientIndexViewWhileWriting reads a frozen view while writes go on,
// as Persist does; run with -race.
func TestClientIndexViewWhileWriting(t *testing.T) {
	var x clientIndex
	for i := range 3000 {
		x.put(&Client{ClientID: fmt.Sprintf("c/%05d", i*2)})
	}
	v := x.freeze()
	want := slices.Collect(v.all())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 3000 {
			x.put(&Client{ClientID: fmt.Sprintf("c/%05d", i*2+1)})
			x.put(&Client{ClientID: fmt.Sprintf("c/%05d", i*2)})
			x.delete(fmt.Sprintf("c/%05d", (i*7)%6000))
		}
	}()
	for range 20 {
		if got := slices.Collect(v.all()); !slices.Equal(got, want) {
			t.Fatal("a frozen view changed under writes")
		}
	}
	wg.Wait()
}

// listReference is prefix listing over a sorted id slice, the way it was
// done before the chunked index.
func listReference(ids []string, prefix string, offset, limit int) ([]string, bool) {
	start, _ := slices.BinarySearch(ids, prefix)
	end := start
	for end < len(ids) && strings.HasPrefix(ids[end], prefix) {
		end++
	}
	from := min(start+max(offset, 0), end)
	to := end
	if limit >= 0 && from+limit < end {
		to = from + limit
	}
	return ids[from:to], to < end
}

func TestListClientsAcrossChunks(t *testing.T) {
	st := newState()
	var ids []string
	for i := range 2500 {
		id := fmt.Sprintf("p%d/c%04d", i%3, i)
		ids = append(ids, id)
		st.putClient(&Client{ClientID: id})
	}
	sort.Strings(ids)
	if len(st.ids.chunks) < 3 {
		t.Fatalf("want several chunks, have %d", len(st.ids.chunks))
	}
	for _, tc := range []struct {
		prefix        string
		offset, limit int
	}{
		{"", 0, -1}, {"", 0, 0}, {"", 10, 5}, {"", 2499, 10}, {"", 2500, 10}, {"", 9999, -1}, {"", -3, 2},
		{"p1/", 0, -1}, {"p1/", 500, 400}, {"p1/", 833, 1}, {"p1/", 834, 1}, {"p2/c2", 0, 3},
		{"p0/c1023", 0, -1}, {"q", 0, -1}, {"a", 0, 10}, {"p1/c0001", 0, -1}, {"p", 1020, 10},
	} {
		t.Run(fmt.Sprintf("%q/%d/%d", tc.prefix, tc.offset, tc.limit), func(t *testing.T) {
			wantIDs, wantMore := listReference(ids, tc.prefix, tc.offset, tc.limit)
			got, more := st.listClients(tc.prefix, tc.offset, tc.limit)
			gotIDs := []string{}
			for _, c := range got {
				gotIDs = append(gotIDs, c.ClientID)
			}
			if !slices.Equal(gotIDs, append([]string{}, wantIDs...)) || more != wantMore {
				t.Fatalf("got %d ids (more %v), want %d (more %v)", len(gotIDs), more, len(wantIDs), wantMore)
			}
		})
	}
}

// TestSnapshotCaptureCopiesNoClients: taking a snapshot of 100,000 clients
// allocates a few KiB (the role and login lists aside), not a second list
// of every client.
func TestSnapshotCaptureCopiesNoClients(t *testing.T) {
	f := newFSM(0)
	for i := range 100000 {
		f.st.putClient(&Client{ClientID: fmt.Sprintf("c/%06d", i)})
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	snap := f.capture()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("capturing 100,000 clients allocated %d bytes", n)
	}
	// A write after the capture copies one chunk, not the index.
	runtime.ReadMemStats(&before)
	f.st.putClient(&Client{ClientID: "c/050000x"})
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("a write after a capture allocated %d bytes", n)
	}
	if snap.clients.n != 100000 || f.st.ids.len() != 100001 {
		t.Fatalf("snapshot holds %d, state %d", snap.clients.n, f.st.ids.len())
	}
}

func sameBytes(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestStateInternsScopes: equal scopes of clients, roles and audit actors,
// applied from separate log entries or restored from a snapshot, share one
// copy of their bytes.
func TestStateInternsScopes(t *testing.T) {
	k := TestKeyring(t)
	st := newState()
	entries := [][]byte{memClientCmd(t, k, 1, false), memClientCmd(t, k, 101, false), memRoleCmd(t, 1, OpCreateRole), memRoleCmd(t, 101, OpCreateRole)}
	memApply(t, st, 1, entries)
	check := func(t *testing.T, st *state) {
		t.Helper()
		a, b := st.clients["project/team-1/worker-1"], st.clients["project/team-1/worker-101"]
		if a == nil || b == nil || a.Scopes[0] != b.Scopes[0] || !sameBytes(a.Scopes[0], b.Scopes[0]) || !sameBytes(a.Scopes[1], b.Scopes[1]) {
			t.Fatal("two clients' equal scopes are separate copies")
		}
		ra, rb := st.roles["worker-pool:proj/team-1/pool-1"], st.roles["worker-pool:proj/team-1/pool-101"]
		if ra == nil || rb == nil || !sameBytes(ra.Scopes[0], rb.Scopes[0]) || !sameBytes(ra.Scopes[2], rb.Scopes[2]) {
			t.Fatal("two roles' equal scopes are separate copies")
		}
		if len(st.audit) != 4 || !sameBytes(st.audit[0].ClientID, st.audit[3].ClientID) {
			t.Fatal("audit actors are separate copies")
		}
	}
	check(t, st)
	var buf strings.Builder
	f := &fsm{st: st}
	if err := f.capture().writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	restored, _, err := readSnapshot(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("restored", func(t *testing.T) { check(t, restored) })
}

// TestInternerSweepDropsUnused: strings of deleted clients leave the
// interning set once it has doubled, and records keep their values.
func TestInternerSweepDropsUnused(t *testing.T) {
	st := newState()
	apply := func(cmd Command) {
		t.Helper()
		if _, _, err := st.apply(&cmd); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 * minSweep {
		id := fmt.Sprintf("c/%d", i)
		apply(Command{Op: OpCreateClient, Time: t0, Actor: "root", Client: &Client{ClientID: id, Scopes: []string{"unique:" + id, "shared:x"}}})
		if i >= 10 {
			apply(Command{Op: OpDeleteClient, Time: t0, Actor: "root", ID: fmt.Sprintf("c/%d", i-10)})
		}
	}
	// 10 clients × 2 scopes + "shared:x" + the actor remain in use.
	if st.strs.n > 2*minSweep {
		t.Fatalf("interning set holds %d strings for 10 clients", st.strs.n)
	}
	for id, c := range st.clients {
		if !slices.Equal(c.Scopes, []string{"unique:" + id, "shared:x"}) {
			t.Fatalf("client %s has scopes %q after a sweep", id, c.Scopes)
		}
	}
}

func TestInternerTable(t *testing.T) {
	in := newInterner()
	for _, s := range []string{"", "a", "b", "a", strings.Repeat("x", 300), ""} {
		got := in.intern(strings.Clone(s))
		if got != s || got != in.intern(strings.Clone(s)) || (s != "" && !sameBytes(got, in.intern(strings.Clone(s)))) {
			t.Fatalf("intern(%q) = %q", s, got)
		}
	}
	if in.n != 3 {
		t.Fatalf("set holds %d strings, want 3", in.n)
	}
	if in.all(nil) != nil || len(in.all([]string{})) != 0 {
		t.Fatal("all keeps nil and empty apart")
	}
}

// BenchmarkSortedInsert100k compares one insert at a random place among
// 100,000 clients: the sorted id slice the state used to keep (a memmove of
// half the slice) and the chunked index.
func BenchmarkSortedInsert100k(b *testing.B) {
	const n = 100000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("project/team-%d/worker-%06d", i%100, i)
	}
	extra := make([]string, 0, 1<<16)
	for i := range cap(extra) {
		extra = append(extra, fmt.Sprintf("project/team-%d/worker-%06dx", i%100, rand.IntN(n)))
	}
	b.Run("slice", func(b *testing.B) {
		s := slices.Sorted(slices.Values(ids))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			id := extra[i%len(extra)]
			j, _ := slices.BinarySearch(s, id)
			s = slices.Insert(s, j, id)
			if len(s) > n+len(extra)/2 {
				b.StopTimer()
				s = slices.Sorted(slices.Values(ids))
				b.StartTimer()
			}
		}
	})
	b.Run("index", func(b *testing.B) {
		var x clientIndex
		for _, id := range ids {
			x.put(&Client{ClientID: id})
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			x.put(&Client{ClientID: extra[i%len(extra)]})
		}
	})
}
