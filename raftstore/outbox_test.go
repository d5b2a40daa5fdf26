package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// obFSM applies commands to a bare FSM at consecutive Raft indexes.
type obFSM struct {
	t    testing.TB
	m    *fsm
	next uint64
}

func newObFSM(t testing.TB) *obFSM { return &obFSM{t: t, m: newFSM(16), next: 1} }

func (f *obFSM) try(c Command) error {
	b, err := json.Marshal(c)
	if err != nil {
		f.t.Fatal(err)
	}
	f.next++
	return f.m.Apply(&raft.Log{Index: f.next - 1, Type: raft.LogCommand, Data: b}).(*applyResponse).err
}

func (f *obFSM) do(c Command) {
	f.t.Helper()
	if err := f.try(c); err != nil {
		f.t.Fatalf("%s: %v", c.Op, err)
	}
}

func (f *obFSM) events() []OutboxEvent { return f.m.st.outbox.after(OutboxPos{}, 1<<30) }

func (f *obFSM) status() OutboxStatus { return f.m.st.outbox.statusNow() }

func ev(index uint64, seq uint32, kind, id, action string) OutboxEvent {
	return OutboxEvent{Index: index, Seq: seq, Kind: kind, ID: id, Action: action}
}

func cl(id string) *Client { return &Client{ClientID: id, SealedToken: []byte("x")} }

// TestOutboxEventsOfEveryOp: which events each command appends, from a
// state holding client "a", role "r" and the outbox enabled.
func TestOutboxEventsOfEveryOp(t *testing.T) {
	exp := t0.Add(-1)
	for _, tc := range []struct {
		name string
		cmd  Command
		want []OutboxEvent // at index 4 (the command's)
	}{
		{"create client", Command{Op: OpCreateClient, Client: cl("b")}, []OutboxEvent{ev(4, 0, "client", "b", "created")}},
		{"create existing client", Command{Op: OpCreateClient, Client: cl("a")}, nil},
		{"update client", Command{Op: OpUpdateClient, ID: "a", Client: cl("a")}, []OutboxEvent{ev(4, 0, "client", "a", "updated")}},
		{"update absent client", Command{Op: OpUpdateClient, ID: "z", Client: cl("z")}, nil},
		{"reset token", Command{Op: OpResetAccessToken, ID: "a", SealedToken: []byte("y")}, []OutboxEvent{ev(4, 0, "client", "a", "updated")}},
		{"disable", Command{Op: OpSetClientDisabled, ID: "a", Disabled: true}, []OutboxEvent{ev(4, 0, "client", "a", "updated")}},
		{"enable", Command{Op: OpSetClientDisabled, ID: "a"}, []OutboxEvent{ev(4, 0, "client", "a", "updated")}},
		{"delete client", Command{Op: OpDeleteClient, ID: "a"}, []OutboxEvent{ev(4, 0, "client", "a", "deleted")}},
		{"delete absent client", Command{Op: OpDeleteClient, ID: "z"}, []OutboxEvent{ev(4, 0, "client", "z", "deleted")}},
		{"create role", Command{Op: OpCreateRole, Role: &Role{RoleID: "s", Scopes: []string{"x"}}}, []OutboxEvent{ev(4, 0, "role", "s", "created")}},
		{"create existing role", Command{Op: OpCreateRole, Role: &Role{RoleID: "r"}}, nil},
		{"update role", Command{Op: OpUpdateRole, Role: &Role{RoleID: "r", Scopes: []string{"y"}}}, []OutboxEvent{ev(4, 0, "role", "r", "updated")}},
		{"update absent role", Command{Op: OpUpdateRole, Role: &Role{RoleID: "q"}}, nil},
		{"delete role", Command{Op: OpDeleteRole, ID: "r"}, []OutboxEvent{ev(4, 0, "role", "r", "deleted")}},
		{"delete absent role", Command{Op: OpDeleteRole, ID: "q"}, []OutboxEvent{ev(4, 0, "role", "q", "deleted")}},
		{"expire two", Command{Op: OpDeleteExpiredClients, Time: t0}, []OutboxEvent{
			ev(4, 0, "client", "e1", "deleted"), ev(4, 1, "client", "e2", "deleted")}},
		{"static sync", Command{Op: OpSyncStaticClients, Time: t0, Static: []StaticClient{{ClientID: "static/x", SealedToken: []byte("x")}}}, nil},
		{"touch", Command{Op: OpTouchClients, LastUsed: map[string]time.Time{"a": t0}}, nil},
		{"purge audit", Command{Op: OpPurgeAudit, Before: t0}, nil},
		{"node meta", Command{Op: OpSetNodeMeta, NodeID: "n", Meta: map[string]string{"a": "b"}}, nil},
		{"login put", Command{Op: OpLoginPut, Login: lrec("session", "k", "u", t0)}, nil},
		{"malformed", Command{Op: "no-such-op"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newObFSM(t)
			f.do(Command{Op: OpOutboxEnable, Limit: 10})
			f.do(Command{Op: OpCreateClient, Client: cl("a")})
			f.do(Command{Op: OpCreateRole, Role: &Role{RoleID: "r", Scopes: []string{"x"}}})
			// Expiring clients, created with the outbox off so that
			// only the command under test appears at index 4.
			f.m.st.putClient(&Client{ClientID: "e2", DeleteOnExpiration: true, Expires: exp})
			f.m.st.putClient(&Client{ClientID: "e1", DeleteOnExpiration: true, Expires: exp})
			before := len(f.events())
			_ = f.try(tc.cmd)
			if got := f.events()[before:]; !reflect.DeepEqual(got, nonNil(tc.want)) {
				t.Fatalf("events %+v, want %+v", got, tc.want)
			}
		})
	}
}

func nonNil(e []OutboxEvent) []OutboxEvent {
	if e == nil {
		return []OutboxEvent{}
	}
	return e
}

// TestOutboxDisabledRecordsNothing: without a broker there is no outbox.
func TestOutboxDisabledRecordsNothing(t *testing.T) {
	f := newObFSM(t)
	f.do(Command{Op: OpCreateClient, Client: cl("a")})
	f.do(Command{Op: OpDeleteClient, ID: "a"})
	if ev, st := f.events(), f.status(); len(ev) != 0 || st != (OutboxStatus{}) {
		t.Fatalf("disabled outbox holds %v, %+v", ev, st)
	}
	// Enabling starts with the next change, never earlier ones.
	f.do(Command{Op: OpOutboxEnable, Limit: 5})
	f.do(Command{Op: OpDeleteRole, ID: "r"})
	if got := f.events(); !reflect.DeepEqual(got, []OutboxEvent{ev(4, 0, "role", "r", "deleted")}) {
		t.Fatalf("events %+v", got)
	}
}

func TestOutboxMessageID(t *testing.T) {
	for _, tc := range []struct {
		e    OutboxEvent
		want string
	}{{ev(1, 0, "", "", ""), "1"}, {ev(12345678901, 0, "", "", ""), "12345678901"}, {ev(7, 1, "", "", ""), "7.1"}, {ev(7, 12, "", "", ""), "7.12"}} {
		if got := tc.e.MessageID(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
	ordered := []OutboxPos{{}, {0, 1}, {1, 0}, {1, 1}, {1, 2}, {2, 0}}
	for i, p := range ordered {
		for j, q := range ordered {
			if p.Less(q) != (i < j) {
				t.Errorf("%v.Less(%v) = %v", p, q, p.Less(q))
			}
		}
	}
}

// TestOutboxLimitDropsOldest: a full outbox drops its oldest event, on
// append and on shrinking, and counts it.
func TestOutboxLimitDropsOldest(t *testing.T) {
	f := newObFSM(t)
	f.do(Command{Op: OpOutboxEnable, Limit: 3}) // index 1
	for i := 0; i < 5; i++ {                    // indexes 2..6
		f.do(Command{Op: OpDeleteClient, ID: fmt.Sprint("c", i)})
	}
	want := func(st OutboxStatus, ids ...string) {
		t.Helper()
		var got []string
		for _, e := range f.events() {
			got = append(got, e.ID)
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") || f.status() != st {
			t.Fatalf("events %v status %+v, want %v %+v", got, f.status(), ids, st)
		}
	}
	want(OutboxStatus{Enabled: true, Limit: 3, Pending: 3, Dropped: 2, LastDropped: OutboxPos{Index: 3}}, "c2", "c3", "c4")
	f.do(Command{Op: OpOutboxEnable, Limit: 1}) // shrink: index 7
	want(OutboxStatus{Enabled: true, Limit: 1, Pending: 1, Dropped: 4, LastDropped: OutboxPos{Index: 5}}, "c4")
	f.do(Command{Op: OpOutboxEnable, Limit: 4}) // grow: nothing dropped
	f.do(Command{Op: OpDeleteClient, ID: "c5"}) // index 9
	want(OutboxStatus{Enabled: true, Limit: 4, Pending: 2, Dropped: 4, LastDropped: OutboxPos{Index: 5}}, "c4", "c5")
	// One entry with more events than the limit keeps its newest.
	f.m.st.outbox.status.Limit = 2
	for _, id := range []string{"x1", "x2", "x3"} {
		f.m.st.putClient(&Client{ClientID: id, DeleteOnExpiration: true, Expires: t0.Add(-1)})
	}
	f.do(Command{Op: OpDeleteExpiredClients, Time: t0}) // index 10
	want(OutboxStatus{Enabled: true, Limit: 2, Pending: 2, Dropped: 7, LastDropped: OutboxPos{Index: 10}}, "x2", "x3")
}

// TestOutboxAck: acks remove confirmed events from the front, are
// monotonic, may end inside one entry's events, and are refused when
// malformed without changing anything.
func TestOutboxAck(t *testing.T) {
	f := newObFSM(t)
	if err := f.try(Command{Op: OpOutboxAck, Through: &OutboxPos{}}); !errors.Is(err, ErrOutboxDisabled) {
		t.Fatalf("ack while disabled: %v", err)
	}
	f.do(Command{Op: OpOutboxEnable, Limit: 10}) // 2
	for _, id := range []string{"e1", "e2", "e3"} {
		f.m.st.putClient(&Client{ClientID: id, DeleteOnExpiration: true, Expires: t0.Add(-1)})
	}
	f.do(Command{Op: OpDeleteExpiredClients, Time: t0}) // 3: 3.0 3.1 3.2
	f.do(Command{Op: OpDeleteRole, ID: "r"})            // 4
	ids := func() string {
		var s []string
		for _, e := range f.events() {
			s = append(s, e.MessageID())
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name    string
		through *OutboxPos
		err     error
		acked   OutboxPos
		left    string
	}{
		{"mid entry", &OutboxPos{3, 1}, nil, OutboxPos{3, 1}, "3.2 4"},
		{"older ack changes nothing", &OutboxPos{3, 0}, nil, OutboxPos{3, 1}, "3.2 4"},
		{"same ack changes nothing", &OutboxPos{3, 1}, nil, OutboxPos{3, 1}, "3.2 4"},
		{"no position", nil, ErrBadCommand, OutboxPos{3, 1}, "3.2 4"},
		{"beyond its own entry", &OutboxPos{1000, 0}, ErrBadCommand, OutboxPos{3, 1}, "3.2 4"},
		{"all", &OutboxPos{4, 0}, nil, OutboxPos{4, 0}, ""},
		{"past the last event", &OutboxPos{5, 0}, nil, OutboxPos{5, 0}, ""},
	} {
		err := f.try(Command{Op: OpOutboxAck, Through: tc.through})
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Fatalf("%s: err %v, want %v", tc.name, err, tc.err)
		}
		if st := f.status(); st.Acked != tc.acked || ids() != tc.left {
			t.Fatalf("%s: acked %v left %q, want %v %q", tc.name, st.Acked, ids(), tc.acked, tc.left)
		}
	}
}

// TestOutboxRefusesMalformedEnable: bad limits change nothing.
func TestOutboxRefusesMalformedEnable(t *testing.T) {
	f := newObFSM(t)
	f.do(Command{Op: OpOutboxEnable, Limit: 2})
	f.do(Command{Op: OpDeleteRole, ID: "a"})
	f.do(Command{Op: OpDeleteRole, ID: "b"})
	before, evs := f.status(), f.events()
	for _, limit := range []int{0, -1, MaxOutboxLimit + 1} {
		if err := f.try(Command{Op: OpOutboxEnable, Limit: limit}); !errors.Is(err, ErrBadCommand) {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if f.status() != before || !reflect.DeepEqual(f.events(), evs) {
		t.Fatalf("refused commands changed the outbox: %+v", f.status())
	}
}

// TestOutboxAfter: reads start strictly after a position and are bounded.
func TestOutboxAfter(t *testing.T) {
	f := newObFSM(t)
	f.do(Command{Op: OpOutboxEnable, Limit: 100})
	for i := 0; i < 10; i++ { // indexes 2..11
		f.do(Command{Op: OpDeleteRole, ID: fmt.Sprint(i)})
	}
	o := &f.m.st.outbox
	for _, tc := range []struct {
		after      OutboxPos
		max        int
		first, num int
	}{
		{OutboxPos{}, 3, 2, 3}, {OutboxPos{5, 0}, 100, 6, 6}, {OutboxPos{5, 9}, 1, 6, 1},
		{OutboxPos{11, 0}, 5, 0, 0}, {OutboxPos{}, 0, 0, 0}, {OutboxPos{}, -1, 0, 0},
	} {
		got := o.after(tc.after, tc.max)
		if len(got) != tc.num || tc.num > 0 && got[0].Index != uint64(tc.first) {
			t.Errorf("after(%v, %d) = %v", tc.after, tc.max, got)
		}
	}
}

// TestOutboxQueueMatchesModel: a long run of appends, drops, acks and
// compactions agrees with a plain slice, and a snapshot taken on the way
// is never changed by later applies (it shares the queue's array).
func TestOutboxQueueMatchesModel(t *testing.T) {
	f := newObFSM(t)
	f.do(Command{Op: OpOutboxEnable, Limit: 3000})
	var model []OutboxEvent
	snaps := map[int]*snapshot{}
	snapWant := map[int][]OutboxEvent{}
	for i := 0; i < 20000; i++ {
		idx := f.next
		f.do(Command{Op: OpDeleteRole, ID: fmt.Sprint(i)})
		model = append(model, ev(idx, 0, "role", fmt.Sprint(i), "deleted"))
		if len(model) > 3000 {
			model = model[1:]
		}
		switch {
		case i == 12001: // everything confirmed: the queue empties
			through := model[len(model)-1].Pos()
			f.do(Command{Op: OpOutboxAck, Through: &through})
			model = nil
		case i%7 == 6:
			through := model[len(model)/2].Pos()
			f.do(Command{Op: OpOutboxAck, Through: &through})
			model = model[len(model)/2+1:]
		}
		// Snapshots before a compaction (5000) and before emptying (12000).
		if i == 5000 || i == 12000 {
			snaps[i] = f.m.capture()
			snapWant[i] = append([]OutboxEvent(nil), snaps[i].outboxEvents...)
		}
	}
	if !reflect.DeepEqual(f.events(), model) {
		t.Fatalf("queue differs from the model: %d vs %d events", len(f.events()), len(model))
	}
	for i, snap := range snaps {
		if !reflect.DeepEqual(snap.outboxEvents, snapWant[i]) {
			t.Fatalf("later applies changed the events of the snapshot taken at %d", i)
		}
	}
	if c := cap(f.m.st.outbox.events); c > 4*3000 {
		t.Fatalf("queue array grew to %d for at most 3000 events", c)
	}
}

// TestOutboxSnapshotRoundTrip: the outbox travels in snapshots; a backup
// from before the outbox restores as disabled and empty; damaged outbox
// lines are refused.
func TestOutboxSnapshotRoundTrip(t *testing.T) {
	f := newObFSM(t)
	f.do(Command{Op: OpCreateClient, Client: cl("a")})
	f.do(Command{Op: OpOutboxEnable, Limit: 3})
	for i := 0; i < 5; i++ { // 3..7, two dropped
		f.do(Command{Op: OpDeleteRole, ID: fmt.Sprint(i)})
	}
	f.do(Command{Op: OpOutboxAck, Through: &OutboxPos{Index: 5}}) // 8
	var buf bytes.Buffer
	if err := f.m.capture().writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	head := strings.SplitN(buf.String(), "\n", 2)[0]
	if !strings.Contains(head, `"outbox":true,"outboxEvents":2`) {
		t.Fatalf("header lacks the outbox: %s", head)
	}
	st, _, err := readSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if st.outbox.statusNow() != f.status() || !reflect.DeepEqual(st.outbox.after(OutboxPos{}, 10), f.events()) {
		t.Fatalf("restored %+v %v, want %+v %v", st.outbox.statusNow(), st.outbox.live(), f.status(), f.events())
	}
	// Restore replaces the outbox, also with a disabled one.
	empty := newObFSM(t)
	var eb bytes.Buffer
	if err := empty.m.capture().writeTo(&eb); err != nil || strings.Contains(eb.String(), "outbox") {
		t.Fatalf("disabled outbox in a snapshot (%v): %s", err, eb.String())
	}
	if err := f.m.Restore(nopCloser{&eb}); err != nil || f.status() != (OutboxStatus{}) {
		t.Fatalf("restore of an outbox-less snapshot: %v %+v", err, f.status())
	}

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	without := func(pred func(string) bool) string {
		var kept []string
		for _, l := range lines {
			if !pred(l) {
				kept = append(kept, l)
			}
		}
		return strings.Join(kept, "\n") + "\n"
	}
	isOutbox := func(l string) bool { return strings.HasPrefix(l, `{"outbox`) }
	old := strings.Replace(without(isOutbox), `,"outbox":true,"outboxEvents":2`, "", 1)
	if st, _, err := readSnapshot(strings.NewReader(old)); err != nil || st.outbox.statusNow() != (OutboxStatus{}) || len(st.clients) != 1 {
		t.Fatalf("backup from before the outbox: %v %+v", err, st.outbox.statusNow())
	}
	firstEvent := func(l string) bool { return strings.Contains(l, `"outboxEvent":{"index":6,`) }
	for name, data := range map[string]string{
		"event line missing":  without(firstEvent),
		"status line missing": without(func(l string) bool { return strings.HasPrefix(l, `{"outboxStatus"`) }),
		"events swapped":      swapLines(lines, `{"outboxEvent":{"index":6,`, `{"outboxEvent":{"index":7,`),
		"event before acked":  strings.Replace(buf.String(), `"outboxEvent":{"index":6,`, `"outboxEvent":{"index":5,`, 1),
		"unknown action":      strings.Replace(buf.String(), `"action":"deleted"`, `"action":"token-reset"`, 1),
		"unknown kind":        strings.Replace(buf.String(), `"kind":"role"`, `"kind":"task"`, 1),
		"over the limit":      strings.Replace(buf.String(), `"limit":3`, `"limit":1`, 1),
		"status doubled":      strings.Replace(buf.String(), `{"outboxStatus"`, lines[len(lines)-4]+"\n"+`{"outboxStatus"`, 1),
	} {
		if _, _, err := readSnapshot(strings.NewReader(data)); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}

// TestOutboxRestoreIntoShorterLog: a backup whose outbox names indexes
// beyond the one the restored state stands at (made on a longer log)
// keeps only what sorts before changes still to come.
func TestOutboxRestoreIntoShorterLog(t *testing.T) {
	o := outbox{status: OutboxStatus{Enabled: true, Limit: 10, Acked: OutboxPos{Index: 9}}}
	for _, i := range []uint64{10, 11, 12} {
		o.events = append(o.events, ev(i, 0, "role", "r", "deleted"))
	}
	o.clampTo(11)
	want := OutboxStatus{Enabled: true, Limit: 10, Pending: 2, Acked: OutboxPos{Index: 9}, Dropped: 1, LastDropped: OutboxPos{Index: 12}}
	if o.statusNow() != want {
		t.Fatalf("status %+v, want %+v", o.statusNow(), want)
	}
	o.clampTo(5)
	if st := o.statusNow(); st.Pending != 0 || st.Acked != (OutboxPos{Index: 5, Seq: 1<<32 - 1}) || st.Dropped != 3 {
		t.Fatalf("status %+v", st)
	}
}

// swapLines swaps the lines starting with a and b.
func swapLines(lines []string, a, b string) string {
	out := append([]string(nil), lines...)
	i, j := -1, -1
	for k, l := range out {
		if strings.HasPrefix(l, a) {
			i = k
		}
		if strings.HasPrefix(l, b) {
			j = k
		}
	}
	out[i], out[j] = out[j], out[i]
	return strings.Join(out, "\n") + "\n"
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// TestOutboxStoreAPI: the Store methods on a real single node: leader
// only, no entry when nothing would change, and reads after a position.
func TestOutboxStoreAPI(t *testing.T) {
	s, _ := singleNode(t)
	ctx := t.Context()
	if err := s.EnableOutbox(ctx, -1); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("negative limit: %v", err)
	}
	if err := s.AckOutbox(ctx, OutboxPos{Index: 1}); !errors.Is(err, ErrOutboxDisabled) {
		t.Fatalf("ack while disabled: %v", err)
	}
	if err := s.EnableOutbox(ctx, 0); err != nil {
		t.Fatal(err)
	}
	idx := s.AppliedIndex()
	if err := s.EnableOutbox(ctx, DefaultOutboxLimit); err != nil || s.AppliedIndex() != idx {
		t.Fatalf("enabling again proposed an entry (%v): %d → %d", err, idx, s.AppliedIndex())
	}
	createClient(t, s, "a", "token-0123456789abcdefghij")
	mustApply(t, s, Command{Op: OpDeleteClient, ID: "a", Time: t0})
	evs, st := s.OutboxEvents(OutboxPos{}, 10)
	if len(evs) != 2 || evs[0].Action != "created" || evs[1].Action != "deleted" || st.Pending != 2 || st.Limit != DefaultOutboxLimit {
		t.Fatalf("events %+v status %+v", evs, st)
	}
	if err := s.AckOutbox(ctx, evs[0].Pos()); err != nil {
		t.Fatal(err)
	}
	idx = s.AppliedIndex()
	if err := s.AckOutbox(ctx, evs[0].Pos()); err != nil || s.AppliedIndex() != idx {
		t.Fatalf("a repeated ack proposed an entry (%v)", err)
	}
	if rest, _ := s.OutboxEvents(s.OutboxStatus().Acked, 10); !reflect.DeepEqual(rest, evs[1:]) || s.OutboxStatus().Pending != 1 {
		t.Fatalf("after the ack: %+v", rest)
	}
}

// BenchmarkOutboxAppendAck: the apply-path cost of the outbox per change:
// "acked" appends and acks every 64 events (a publisher keeping up),
// "full" appends to a full outbox (each append drops the oldest).
func BenchmarkOutboxAppendAck(b *testing.B) {
	cmd := &Command{Op: OpCreateClient}
	changes := []Change{{Kind: "client", ID: "bench/client", Op: "created"}}
	for _, tc := range []struct {
		name  string
		limit int
		ack   bool
	}{{"acked", DefaultOutboxLimit, true}, {"full", 1000, false}} {
		b.Run(tc.name, func(b *testing.B) {
			st := newState()
			st.outbox.status = OutboxStatus{Enabled: true, Limit: tc.limit}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				idx := uint64(2*i + 1)
				st.outbox.record(idx, cmd, changes)
				if tc.ack && i%64 == 63 {
					if err := st.applyOutbox(&Command{Op: OpOutboxAck, Through: &OutboxPos{Index: idx}}, idx+1); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
