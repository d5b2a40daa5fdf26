package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func lrec(kind, key, identity string, created time.Time) *LoginRecord {
	return &LoginRecord{Kind: kind, Key: key, Identity: identity, Created: created, Expires: created.Add(time.Hour), SealedData: []byte("sealed-" + key)}
}

// loginKeys lists the state's records as "kind/key" in order.
func loginKeys(st *state) []string {
	var out []string
	for _, r := range st.logins {
		out = append(out, r.Kind+"/"+r.Key)
	}
	sort.Strings(out)
	return out
}

// checkLoginIndex verifies that the identity index is exactly the records'.
func checkLoginIndex(t *testing.T, st *state) {
	t.Helper()
	want := map[string]map[string]struct{}{}
	for _, r := range st.logins {
		if r.Identity == "" {
			continue
		}
		ik := loginIndexKey(r.Kind, r.Identity)
		if want[ik] == nil {
			want[ik] = map[string]struct{}{}
		}
		want[ik][r.Key] = struct{}{}
	}
	if !reflect.DeepEqual(want, st.loginsByIdentity) {
		t.Fatalf("identity index %v, want %v", st.loginsByIdentity, want)
	}
}

func TestLoginCommands(t *testing.T) {
	seed := []*LoginRecord{
		lrec("session", "s1", "gh/1", t0), lrec("session", "s2", "gh/1", t0.Add(time.Second)),
		lrec("session", "s3", "gh/1", t0.Add(time.Second)), lrec("session", "o1", "gh/2", t0),
		lrec("grant", "g1", "gh/1", t0), lrec("oauth-code", "c1", "", t0),
	}
	long := strings.Repeat("k", MaxLoginKey+1)
	cases := []struct {
		name    string
		cmd     Command
		err     error
		count   int
		taken   string // key of the record in res.Login
		present []string
	}{
		{name: "put new", cmd: Command{Op: OpLoginPut, Login: lrec("session", "s4", "gh/1", t0.Add(time.Minute))},
			taken: "s4", present: []string{"grant/g1", "oauth-code/c1", "session/o1", "session/s1", "session/s2", "session/s3", "session/s4"}},
		{name: "put replaces", cmd: Command{Op: OpLoginPut, Login: lrec("session", "s1", "gh/2", t0)}, taken: "s1",
			present: []string{"grant/g1", "oauth-code/c1", "session/o1", "session/s1", "session/s2", "session/s3"}},
		{name: "put create conflict", cmd: Command{Op: OpLoginPut, Create: true, Login: lrec("session", "s1", "gh/1", t0)}, err: ErrConflict, taken: "s1"},
		{name: "put create new", cmd: Command{Op: OpLoginPut, Create: true, Login: lrec("oauth-code", "c2", "", t0)}, taken: "c2",
			present: []string{"grant/g1", "oauth-code/c1", "oauth-code/c2", "session/o1", "session/s1", "session/s2", "session/s3"}},
		{name: "max per identity evicts oldest by created then key", cmd: Command{Op: OpLoginPut, MaxPerIdentity: 2,
			Login: lrec("session", "s9", "gh/1", t0.Add(time.Hour))}, count: 2, taken: "s9",
			present: []string{"grant/g1", "oauth-code/c1", "session/o1", "session/s3", "session/s9"}},
		{name: "max keeps the new record even if oldest", cmd: Command{Op: OpLoginPut, MaxPerIdentity: 1,
			Login: lrec("session", "s0", "gh/1", t0.Add(-time.Hour))}, count: 3, taken: "s0",
			present: []string{"grant/g1", "oauth-code/c1", "session/o1", "session/s0"}},
		{name: "max not reached", cmd: Command{Op: OpLoginPut, MaxPerIdentity: 5, Login: lrec("session", "o2", "gh/2", t0)}, taken: "o2",
			present: []string{"grant/g1", "oauth-code/c1", "session/o1", "session/o2", "session/s1", "session/s2", "session/s3"}},
		{name: "take", cmd: Command{Op: OpLoginTake, Kind: "oauth-code", Key: "c1", Time: t0}, count: 1, taken: "c1",
			present: []string{"grant/g1", "session/o1", "session/s1", "session/s2", "session/s3"}},
		{name: "take absent", cmd: Command{Op: OpLoginTake, Kind: "oauth-code", Key: "nope", Time: t0}, err: ErrNotFound},
		{name: "take wrong kind", cmd: Command{Op: OpLoginTake, Kind: "session", Key: "c1", Time: t0}, err: ErrNotFound},
		{name: "take at expiry", cmd: Command{Op: OpLoginTake, Kind: "oauth-code", Key: "c1", Time: t0.Add(time.Hour)}, err: ErrNotFound},
		{name: "take just before expiry", cmd: Command{Op: OpLoginTake, Kind: "oauth-code", Key: "c1", Time: t0.Add(time.Hour - time.Nanosecond)}, count: 1, taken: "c1",
			present: []string{"grant/g1", "session/o1", "session/s1", "session/s2", "session/s3"}},
		{name: "delete keys", cmd: Command{Op: OpLoginDelete, Kind: "session", Keys: []string{"s1", "o1", "absent"}}, count: 2,
			present: []string{"grant/g1", "oauth-code/c1", "session/s2", "session/s3"}},
		{name: "delete by identity", cmd: Command{Op: OpLoginDelete, Kind: "session", Identity: "gh/1"}, count: 3,
			present: []string{"grant/g1", "oauth-code/c1", "session/o1"}},
		{name: "delete by identity of another kind", cmd: Command{Op: OpLoginDelete, Kind: "grant", Identity: "gh/1"}, count: 1,
			present: []string{"oauth-code/c1", "session/o1", "session/s1", "session/s2", "session/s3"}},
		{name: "purge", cmd: Command{Op: OpLoginPurge, Time: t0.Add(time.Hour + time.Second)}, count: 4,
			present: []string{"session/s2", "session/s3"}},
		{name: "purge keeps expires equal to time", cmd: Command{Op: OpLoginPurge, Time: t0.Add(time.Hour)}},

		// Malformed: ErrBadCommand, nothing changes.
		{name: "put without record", cmd: Command{Op: OpLoginPut}, err: ErrBadCommand},
		{name: "put empty kind", cmd: Command{Op: OpLoginPut, Login: lrec("", "k", "", t0)}, err: ErrBadCommand},
		{name: "put long kind", cmd: Command{Op: OpLoginPut, Login: lrec(strings.Repeat("x", MaxLoginKind+1), "k", "", t0)}, err: ErrBadCommand},
		{name: "put NUL in kind", cmd: Command{Op: OpLoginPut, Login: lrec("a\x00b", "k", "", t0)}, err: ErrBadCommand},
		{name: "put empty key", cmd: Command{Op: OpLoginPut, Login: lrec("session", "", "", t0)}, err: ErrBadCommand},
		{name: "put long key", cmd: Command{Op: OpLoginPut, Login: lrec("session", long, "", t0)}, err: ErrBadCommand},
		{name: "put NUL in key", cmd: Command{Op: OpLoginPut, Login: lrec("session", "a\x00", "", t0)}, err: ErrBadCommand},
		{name: "put long identity", cmd: Command{Op: OpLoginPut, Login: lrec("session", "k", strings.Repeat("i", MaxLoginIdentity+1), t0)}, err: ErrBadCommand},
		{name: "put big data", cmd: Command{Op: OpLoginPut, Login: &LoginRecord{Kind: "session", Key: "k", SealedData: make([]byte, MaxLoginSealedData+1)}}, err: ErrBadCommand},
		{name: "put negative max", cmd: Command{Op: OpLoginPut, MaxPerIdentity: -1, Login: lrec("session", "k", "gh/1", t0)}, err: ErrBadCommand},
		{name: "take without time", cmd: Command{Op: OpLoginTake, Kind: "oauth-code", Key: "c1"}, err: ErrBadCommand},
		{name: "take long key", cmd: Command{Op: OpLoginTake, Kind: "oauth-code", Key: long, Time: t0}, err: ErrBadCommand},
		{name: "delete without keys or identity", cmd: Command{Op: OpLoginDelete, Kind: "oauth-code"}, err: ErrBadCommand},
		{name: "delete with a bad key", cmd: Command{Op: OpLoginDelete, Kind: "session", Keys: []string{"s1", long}}, err: ErrBadCommand},
		{name: "delete too many keys", cmd: Command{Op: OpLoginDelete, Kind: "session", Keys: make([]string, MaxLoginDeleteKeys+1)}, err: ErrBadCommand},
		{name: "purge without time", cmd: Command{Op: OpLoginPurge}, err: ErrBadCommand},
	}
	all := []string{"grant/g1", "oauth-code/c1", "session/o1", "session/s1", "session/s2", "session/s3"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newState()
			for _, r := range seed {
				st.putLogin(r)
			}
			res, changes, err := st.apply(&tc.cmd)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if len(changes) != 0 || len(st.audit) != 0 {
				t.Fatalf("login command made changes %v / audit %v", changes, st.audit)
			}
			if res.Count != tc.count {
				t.Fatalf("count %d, want %d", res.Count, tc.count)
			}
			if got := ""; res.Login != nil {
				got = res.Login.Key
				if got != tc.taken {
					t.Fatalf("result record %q, want %q", got, tc.taken)
				}
			} else if tc.taken != "" {
				t.Fatalf("no result record, want %q", tc.taken)
			}
			want := tc.present
			if want == nil {
				want = all
			}
			if got := loginKeys(st); !reflect.DeepEqual(got, want) {
				t.Fatalf("records %v, want %v", got, want)
			}
			checkLoginIndex(t, st)
		})
	}
}

// TestLoginPutDoesNotAlias: the stored record is the state's own copy; a
// caller changing its command afterwards changes nothing stored.
func TestLoginPutDoesNotAlias(t *testing.T) {
	st := newState()
	r := lrec("session", "k", "gh/1", t0)
	if _, _, err := st.apply(&Command{Op: OpLoginPut, Login: r}); err != nil {
		t.Fatal(err)
	}
	r.SealedData[0], r.Identity = 'X', "other"
	got := st.logins[loginIndexKey("session", "k")]
	if got.Identity != "gh/1" || string(got.SealedData) != "sealed-k" {
		t.Fatalf("stored record changed with the command: %+v", got)
	}
}

func TestLoginEvictionIsDeterministic(t *testing.T) {
	// Same Created everywhere: the key decides, whatever map order says.
	for range 20 {
		st := newState()
		for _, k := range []string{"d", "b", "a", "c"} {
			st.putLogin(lrec("session", k, "u", t0))
		}
		res, _, err := st.apply(&Command{Op: OpLoginPut, MaxPerIdentity: 2, Login: lrec("session", "e", "u", t0)})
		if err != nil || res.Count != 3 {
			t.Fatalf("count %d err %v", res.Count, err)
		}
		if got := loginKeys(st); !reflect.DeepEqual(got, []string{"session/d", "session/e"}) {
			t.Fatalf("kept %v, want d and e", got)
		}
	}
}

func TestLoginSnapshotRoundTrip(t *testing.T) {
	m := newFSM(16)
	apply := func(i uint64, c Command) {
		b, _ := json.Marshal(c)
		if resp := m.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: b}).(*applyResponse); resp.err != nil {
			t.Fatal(resp.err)
		}
	}
	apply(1, Command{Op: OpCreateClient, Client: &Client{ClientID: "a"}})
	apply(2, Command{Op: OpLoginPut, Login: lrec("session", "s1", "gh/1", t0)})
	apply(3, Command{Op: OpLoginPut, Login: lrec("session", "s2", "gh/1", t0)})
	apply(4, Command{Op: OpLoginPut, Login: lrec("oauth-code", "c1", "", t0)})
	var buf bytes.Buffer
	if err := m.capture().writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.SplitN(buf.String(), "\n", 2)[0], `"loginRecords":3`) {
		t.Fatalf("header lacks the login record count: %s", strings.SplitN(buf.String(), "\n", 2)[0])
	}
	st, idx, err := readSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil || idx != 4 {
		t.Fatalf("idx %d err %v", idx, err)
	}
	if !reflect.DeepEqual(st.logins, m.st.logins) || !reflect.DeepEqual(st.loginsByIdentity, m.st.loginsByIdentity) {
		t.Fatalf("restored login state differs:\n%v\n%v", st.logins, m.st.logins)
	}
	sum, err := SummarizeBackup(bytes.NewReader(buf.Bytes()))
	if err != nil || sum.LoginRecords != 3 || sum.Clients != 1 {
		t.Fatalf("summary %+v err %v", sum, err)
	}
	// Equal states give equal files (records are written sorted).
	var again bytes.Buffer
	if err := m.capture().writeTo(&again); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatalf("second snapshot differs (err %v)", err)
	}

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	drop := func(pred func(string) bool) string {
		var kept []string
		for _, l := range lines {
			if !pred(l) {
				kept = append(kept, l)
			}
		}
		return strings.Join(kept, "\n") + "\n"
	}
	for name, data := range map[string]string{
		"a login line missing": drop(func(l string) bool { return strings.Contains(l, `"key":"s2"`) }),
		"a bad login line":     strings.Replace(buf.String(), `"kind":"oauth-code"`, `"kind":""`, 1),
		"a login line doubled": strings.Replace(buf.String(), lines[2]+"\n", lines[2]+"\n"+lines[2]+"\n", 1),
	} {
		if _, _, err := readSnapshot(strings.NewReader(data)); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
	// A backup from before login records (no loginRecords, no login lines).
	old := strings.Replace(drop(func(l string) bool { return strings.HasPrefix(l, `{"login":`) }), `,"loginRecords":3`, "", 1)
	st, _, err = readSnapshot(strings.NewReader(old))
	if err != nil || len(st.logins) != 0 || len(st.clients) != 1 {
		t.Fatalf("old-format backup: %v, %d records", err, len(st.logins))
	}
}

// TestLoginDataSealing: login data is bound to its kind and key, and
// neither a client's sealed token nor a peer ticket opens as login data,
// nor login data as a token.
func TestLoginDataSealing(t *testing.T) {
	s, _ := singleNode(t)
	data, err := s.SealLoginData("session", "k1", []byte(`{"identity":"gh/1"}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := LoginRecord{Kind: "session", Key: "k1", SealedData: data}
	if got, err := s.OpenLoginData(rec); err != nil || string(got) != `{"identity":"gh/1"}` {
		t.Fatalf("open %q %v", got, err)
	}
	for name, r := range map[string]LoginRecord{
		"other key":  {Kind: "session", Key: "k2", SealedData: data},
		"other kind": {Kind: "grant", Key: "k1", SealedData: data},
	} {
		if _, err := s.OpenLoginData(r); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	// A client whose id looks like the login id's visible part.
	for _, id := range []string{"session", "k1", "session/k1", "session\x00k1", "tcauth/login/session/k1", "\x00tcauth/login/session\x00k1"[1:]} {
		tok, err := s.SealToken(id, "client-token-0123456789abcdef")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenLoginData(LoginRecord{Kind: "session", Key: "k1", SealedData: tok}); err == nil {
			t.Errorf("client %q's sealed token opened as login data", id)
		}
		if _, err := s.Keyring().Open(id, data); err == nil {
			t.Errorf("login data opened as client %q's token", id)
		}
	}
	// A restore refuses login records sealed under another keyring.
	mustApply(t, s, Command{Op: OpLoginPut, Login: &LoginRecord{Kind: "session", Key: "k1", Expires: t0, SealedData: data}})
	var backup bytes.Buffer
	if err := s.SaveSnapshot(&backup); err != nil {
		t.Fatal(err)
	}
	other, _ := singleNode(t)
	if err := other.RestoreSnapshot(bytes.NewReader(backup.Bytes())); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("foreign login data restored: %v", err)
	}
}

// TestLoginRecordsThroughRaft: a store applies login ops through the log,
// answers copies, keeps them across a restart (log replay and snapshot).
func TestLoginRecordsThroughRaft(t *testing.T) {
	s, cfg := singleNode(t)
	sealed, _ := s.SealLoginData("session", "k", []byte("data"))
	res := mustApply(t, s, Command{Op: OpLoginPut, Login: &LoginRecord{Kind: "session", Key: "k", Identity: "gh/1", Created: t0, Expires: t0.Add(time.Hour), SealedData: sealed}})
	if res.Login == nil || res.Index == 0 {
		t.Fatalf("put result %+v", res)
	}
	got, ok := s.LoginRecord("session", "k")
	if !ok || got.Identity != "gh/1" {
		t.Fatalf("record %+v %v", got, ok)
	}
	got.SealedData[0] ^= 0xff // a copy: the stored one is unchanged
	if again, _ := s.LoginRecord("session", "k"); again.SealedData[0] == got.SealedData[0] {
		t.Fatal("LoginRecord returned the stored bytes")
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Command{Op: OpLoginPut, Login: &LoginRecord{Kind: "session", Key: "k2", Identity: "gh/1", Created: t0, Expires: t0.Add(time.Hour)}})
	s.Close()
	s2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	waitLeader(t, s2)
	deadline := time.Now().Add(5 * time.Second)
	for s2.LoginRecordCount() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s2.LoginRecordCount(); n != 2 {
		t.Fatalf("%d login records after restart, want 2", n)
	}
	rec, _ := s2.LoginRecord("session", "k")
	if d, err := s2.OpenLoginData(rec); err != nil || string(d) != "data" {
		t.Fatalf("data after restart %q %v", d, err)
	}
	taken := mustApply(t, s2, Command{Op: OpLoginTake, Kind: "session", Key: "k", Time: t0})
	if taken.Login == nil || taken.Login.Key != "k" {
		t.Fatalf("take %+v", taken)
	}
	if _, err := s2.Apply(t.Context(), Command{Op: OpLoginTake, Kind: "session", Key: "k", Time: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second take: %v", err)
	}
}
