package raftstore

import (
	"encoding/json"
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
	f.Add([]byte(`{"op":"delete-expired-clients","time":"2020-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"op":"create-role","role":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newFSM(16)
		// Some state for the command to act on.
		m.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: seed(Command{Op: OpCreateClient, Client: &Client{ClientID: "a"}})})
		m.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: seed(Command{Op: OpCreateRole, Role: &Role{RoleID: "r", Scopes: []string{"R"}}})})
		before := len(m.st.ids) + len(m.st.roles)
		resp := m.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: data}).(*applyResponse)
		if resp.err != nil && !errIsReject(resp.err) && len(m.st.ids)+len(m.st.roles) != before {
			t.Fatalf("malformed command changed the state: %v", resp.err)
		}
		if m.index.Load() != 3 {
			t.Fatalf("index %d", m.index.Load())
		}
	})
}
