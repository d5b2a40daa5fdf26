package raftstore

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzApplyCommand feeds arbitrary bytes to the FSM as committed log
// entries: it must never panic, and a rejected command must leave the
// state as it was.
func FuzzApplyCommand(f *testing.F) {
	seed := func(c Command) []byte { b, _ := json.Marshal(c); return b }
	f.Add(seed(Command{Op: OpCreateClient, Client: &Client{ClientID: "a", Scopes: []string{"x"}}}))
	f.Add(seed(Command{Op: OpCreateRole, Role: &Role{RoleID: "a*", Scopes: []string{"assume:a<..>"}}}))
	f.Add(seed(Command{Op: OpUpdateRole, Role: &Role{RoleID: "r", Scopes: []string{"assume:r"}}}))
	f.Add(seed(Command{Op: OpTouchClients, LastUsed: map[string]time.Time{"a": time.Unix(1, 0)}}))
	f.Add(seed(Command{Op: OpSyncStaticClients, Static: []StaticClient{{ClientID: "static/x"}}}))
	f.Add(seed(Command{Op: OpResealTokens, Reseal: []ResealItem{{ID: "a", Old: []byte{1}, New: []byte{2}}, {Kind: "session", ID: "k", New: []byte{3}}}}))
	f.Add([]byte(`{"op":"delete-expired-clients","time":"2020-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"op":"create-role","role":null}`))
	f.Add(seed(Command{Op: OpLoginPut, MaxPerIdentity: 1, Login: &LoginRecord{Kind: "session", Key: "k2", Identity: "u", SealedData: []byte("x")}}))
	f.Add(seed(Command{Op: OpLoginPut, Create: true, Login: &LoginRecord{Kind: "session", Key: "k"}}))
	f.Add(seed(Command{Op: OpLoginTake, Kind: "session", Key: "k", Time: time.Unix(1, 0)}))
	f.Add(seed(Command{Op: OpLoginDelete, Kind: "session", Identity: "u"}))
	f.Add(seed(Command{Op: OpLoginDelete, Kind: "session", Keys: []string{"k", ""}}))
	f.Add(seed(Command{Op: OpLoginPurge, Time: time.Unix(1<<40, 0)}))
	f.Add([]byte(`{"op":"login-put","login":{"kind":"session","key":"a\u0000b"}}`))
	f.Add(seed(Command{Op: OpOutboxEnable, Limit: 1}))
	f.Add(seed(Command{Op: OpOutboxEnable, Limit: -5}))
	f.Add(seed(Command{Op: OpOutboxAck, Through: &OutboxPos{Index: 3, Seq: 0}}))
	f.Add(seed(Command{Op: OpOutboxAck, Through: &OutboxPos{Index: 4}}))
	f.Add([]byte(`{"op":"outbox-ack","through":{"index":-1}}`))
	f.Add([]byte(`{"op":"outbox-ack"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newFSM(16)
		// Some state for the command to act on.
		m.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: seed(Command{Op: OpCreateClient, Client: &Client{ClientID: "a"}})})
		m.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: seed(Command{Op: OpCreateRole, Role: &Role{RoleID: "r", Scopes: []string{"R"}}})})
		m.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: seed(Command{Op: OpLoginPut, Login: &LoginRecord{
			Kind: "session", Key: "k", Identity: "u", Expires: time.Unix(100, 0)}})})
		// The outbox on, holding the events of indexes 2 and 3 (put
		// directly: enabling through the log would shift the indexes).
		m.st.outbox.status = OutboxStatus{Enabled: true, Limit: 4}
		m.st.outbox.push(OutboxEvent{Index: 2, Kind: "role", ID: "r", Action: "created"})
		m.st.outbox.push(OutboxEvent{Index: 3, Kind: "client", ID: "a", Action: "deleted"})
		size := func() int { return m.st.ids.len() + len(m.st.roles) + len(m.st.logins) + len(m.st.loginsByIdentity) }
		before, obBefore := size(), m.st.outbox.statusNow()
		resp := m.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: data}).(*applyResponse)
		if resp.err != nil && (size() != before || m.st.outbox.statusNow() != obBefore) {
			t.Fatalf("rejected command changed the state: %v", resp.err)
		}
		// The outbox stays a valid one, whatever was applied.
		if err := m.st.outbox.check(); err != nil {
			t.Fatal(err)
		}
		// The sorted client index holds exactly the map's records.
		indexed := 0
		for c := range m.st.ids.view().all() {
			if m.st.clients[c.ClientID] != c {
				t.Fatalf("client index holds a record the map does not: %q", c.ClientID)
			}
			indexed++
		}
		if indexed != len(m.st.clients) || indexed != m.st.ids.len() {
			t.Fatalf("client index holds %d (len %d), the map %d", indexed, m.st.ids.len(), len(m.st.clients))
		}
		// The identity index always matches the records.
		n := 0
		for _, set := range m.st.loginsByIdentity {
			n += len(set)
		}
		withID := 0
		for _, r := range m.st.logins {
			if r.Identity != "" {
				withID++
			}
		}
		if n != withID {
			t.Fatalf("identity index holds %d keys for %d records", n, withID)
		}
		// An entry of a newer format halts the FSM before it (format.go).
		if m.index.Load() != 4 && !(errors.Is(resp.err, ErrUnsupportedFormat) && m.index.Load() == 3) {
			t.Fatalf("index %d", m.index.Load())
		}
	})
}
