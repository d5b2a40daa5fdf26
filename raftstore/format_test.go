package raftstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestCommandFormatStamp: encoding writes the format an op needs, and ops
// of format 1 stay byte for byte what releases before versioning wrote
// (they carry no "v"), so old nodes read them as before.
func TestCommandFormatStamp(t *testing.T) {
	through := &OutboxPos{Index: 1}
	for _, tc := range []struct {
		cmd  Command
		want int // 0: no "v" field
	}{
		{Command{Op: OpCreateClient, Client: &Client{ClientID: "a"}}, 0},
		{Command{Op: OpSetNodeMeta, NodeID: "n1"}, 0},
		{Command{Op: OpLoginPurge}, 0},
		{Command{Op: OpOutboxEnable, Limit: 5}, formatOutbox},
		{Command{Op: OpOutboxAck, Through: through}, formatOutbox},
		{Command{Op: OpResealTokens}, formatReseal},
		// An explicit newer format is kept (a future op in a test).
		{Command{Op: OpSetNodeMeta, NodeID: "n1", Format: 7}, 7},
		{Command{Op: OpOutboxAck, Through: through, Format: 1}, formatOutbox},
	} {
		for _, v := range []any{tc.cmd, &tc.cmd} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			got, has := m["v"]
			switch {
			case tc.want == 0 && has:
				t.Errorf("%s: %s carries a version", tc.cmd.Op, b)
			case tc.want != 0 && got != float64(tc.want):
				t.Errorf("%s: %s, want v=%d", tc.cmd.Op, b, tc.want)
			}
		}
	}
}

// TestApplyFormatGate: what applyCommand makes of each (op, declared
// format) against the formats a node reads.
func TestApplyFormatGate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		data      string
		maxFormat int
		want      error // nil: applied
	}{
		{"unversioned old op", `{"op":"set-node-meta","nodeId":"n1"}`, FormatVersion, nil},
		{"version 1", `{"op":"set-node-meta","nodeId":"n1","v":1}`, FormatVersion, nil},
		{"old op at the current format", `{"op":"set-node-meta","nodeId":"n1","v":2}`, FormatVersion, nil},
		{"outbox op versioned", `{"op":"outbox-enable","limit":3,"v":2}`, FormatVersion, nil},
		{"outbox op unversioned", `{"op":"outbox-enable","limit":3}`, FormatVersion, ErrBadCommand},
		{"outbox op claiming 1", `{"op":"outbox-enable","limit":3,"v":1}`, FormatVersion, ErrBadCommand},
		{"unknown op, known format", `{"op":"no-such-op","v":2}`, FormatVersion, ErrBadCommand},
		{"unknown op, newer format", `{"op":"no-such-op","v":99}`, FormatVersion, ErrUnsupportedFormat},
		{"old op, newer format", `{"op":"set-node-meta","nodeId":"n1","v":99}`, FormatVersion, ErrUnsupportedFormat},
		{"reseal op unversioned", `{"op":"reseal-tokens","reseal":[{"id":"a","old":"AQ==","new":"AQ=="}]}`, FormatVersion, ErrBadCommand},
		{"reseal op claiming 2", `{"op":"reseal-tokens","reseal":[{"id":"a","old":"AQ==","new":"AQ=="}],"v":2}`, FormatVersion, ErrBadCommand},
		{"reseal op versioned", `{"op":"reseal-tokens","reseal":[{"id":"a","old":"AQ==","new":"AQ=="}],"v":3}`, FormatVersion, nil},
		{"reseal op on a format-2 node", `{"op":"reseal-tokens","reseal":[{"id":"a","old":"AQ==","new":"AQ=="}],"v":3}`, 2, ErrUnsupportedFormat},
		{"outbox op on a format-1 node", `{"op":"outbox-enable","limit":3,"v":2}`, 1, ErrUnsupportedFormat},
		{"zero and negative read as 1", `{"op":"set-node-meta","nodeId":"n1","v":-4}`, 1, nil},
		{"garbage", `{"op":`, FormatVersion, ErrBadCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newState()
			_, _, err := applyCommand(st, 5, []byte(tc.data), tc.maxFormat)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrUnsupportedFormat) && errors.Is(err, ErrBadCommand) {
				t.Fatal("a newer format must not read as a bad command (older nodes would skip it)")
			}
			if err != nil && (len(st.meta) != 0 || st.outbox.status.Enabled) {
				t.Fatalf("a refused entry changed the state: %v", err)
			}
		})
	}
}

// TestFSMHaltsOnNewerFormat: an entry of a newer format stops the FSM for
// good — it and everything after it stay unapplied, the applied index
// stays before it, no snapshot is taken and the hook hears why.
func TestFSMHaltsOnNewerFormat(t *testing.T) {
	f := newFSM(16)
	heard := make(chan error, 1)
	f.onHalt = func(err error) { heard <- err }
	cmd := func(i uint64, data string) *raft.Log {
		return &raft.Log{Index: i, Type: raft.LogCommand, Data: []byte(data)}
	}
	f.ApplyBatch([]*raft.Log{cmd(1, `{"op":"set-node-meta","nodeId":"a"}`)})
	out := f.ApplyBatch([]*raft.Log{
		cmd(2, `{"op":"set-node-meta","nodeId":"b"}`),
		cmd(3, `{"op":"set-node-meta","nodeId":"c","v":99}`),
		cmd(4, `{"op":"set-node-meta","nodeId":"d"}`),
		{Index: 5, Type: raft.LogNoop},
	})
	f.ApplyBatch([]*raft.Log{cmd(6, `{"op":"set-node-meta","nodeId":"e"}`)})
	if got := f.index.Load(); got != 2 {
		t.Fatalf("applied index %d, want 2 (before the unreadable entry)", got)
	}
	for _, id := range []string{"c", "d", "e"} {
		if _, ok := f.st.meta[id]; ok {
			t.Fatalf("entry for %s applied after the halt", id)
		}
	}
	if _, ok := f.st.meta["b"]; !ok {
		t.Fatal("the entry before the unreadable one was not applied")
	}
	if r := out[2].(*applyResponse); !errors.Is(r.err, ErrUnsupportedFormat) {
		t.Fatalf("entry 4 answered %v", r.err)
	}
	select {
	case err := <-heard:
		for _, want := range []string{"log entry 3", "format 99", fmt.Sprintf("reads formats up to %d", FormatVersion), "upgrade this node"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("halt message %q lacks %q", err, want)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnHalt not called")
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("snapshot of a halted FSM: %v", err)
	}
}

// TestSnapshotVersion: a snapshot is of the oldest version that holds its
// content, so that releases that predate the outbox read a cluster's
// snapshots until it is turned on; a newer version is refused clearly.
func TestSnapshotVersion(t *testing.T) {
	header := func(s *snapshot) snapshotHeader {
		var buf bytes.Buffer
		if err := s.writeTo(&buf); err != nil {
			t.Fatal(err)
		}
		var h snapshotHeader
		if err := json.NewDecoder(bytes.NewReader(buf.Bytes())).Decode(&h); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("own snapshot unreadable: %v", err)
		}
		return h
	}
	f := newFSM(16)
	if h := header(f.capture()); h.Version != 1 {
		t.Fatalf("outbox off: version %d, want 1", h.Version)
	}
	f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: []byte(`{"op":"outbox-enable","limit":3,"v":2}`)}})
	if h := header(f.capture()); h.Version != formatOutbox {
		t.Fatalf("outbox on: version %d, want %d", h.Version, formatOutbox)
	}
	select {
	case <-f.formatRaised:
	default:
		t.Fatal("turning the outbox on did not ask for a snapshot")
	}
	for _, tc := range []struct {
		snap string
		want string
	}{
		{`{"format":"tcauth-raftstore-snapshot","version":99,"index":1}` + "\n" + `{"end":true}`, "upgrade this node"},
		{`{"format":"tcauth-raftstore-snapshot","version":1,"index":1,"outbox":true}` + "\n" + `{"outboxStatus":{"enabled":true,"limit":3}}` + "\n" + `{"end":true}`, "needs version 2"},
		{`{"format":"tcauth-raftstore-snapshot","version":0,"index":1}` + "\n" + `{"end":true}`, "not a tcauth snapshot"},
	} {
		_, _, err := readSnapshot(strings.NewReader(tc.snap))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.snap, err, tc.want)
		}
	}
	// A backup is the same stream: SummarizeBackup refuses it alike.
	if _, err := SummarizeBackup(strings.NewReader(`{"format":"tcauth-raftstore-snapshot","version":99}` + "\n" + `{"end":true}`)); !errors.Is(err, ErrUnsupportedFormat) || !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("backup of a newer format: %v", err)
	}
}

func TestALPNFormat(t *testing.T) {
	for proto, want := range map[string]int{"": 1, "h2": 1, alpnPrefix + "2": 2, alpnPrefix + "17": 17,
		alpnPrefix + "0": 1, alpnPrefix + "-3": 1, alpnPrefix + "x": 1, "x" + alpnPrefix + "5": 1} {
		if got := alpnFormat(proto); got != want {
			t.Errorf("alpnFormat(%q) = %d, want %d", proto, got, want)
		}
	}
	if got := alpnProtos(3); fmt.Sprint(got) != fmt.Sprint([]string{alpnPrefix + "3", alpnPrefix + "2", alpnPrefix + "1"}) {
		t.Fatalf("alpnProtos(3) = %v", got)
	}
}

// TestOpenRefusesNewerFormatLog: a data directory whose log holds an entry
// of a newer format (a newer release wrote it) is refused at start, with
// the entry and what to do named, and left as it was.
func TestOpenRefusesNewerFormatLog(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.AllowInsecure, cfg.Bootstrap, cfg.Keyring = "solo", t.TempDir(), true, true, TestKeyring(t)
	FastTimeouts(&cfg)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, s)
	if err := s.SetNodeMeta(context.Background(), map[string]string{"api": "x"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	AppendTestLogEntry(t, cfg.DataDir, fmt.Sprintf(`{"op":"set-node-meta","nodeId":"solo","v":%d}`, FormatVersion+1))
	_, err = Open(cfg)
	if !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("Open: %v, want ErrUnsupportedFormat", err)
	}
	for _, want := range []string{"log entry", fmt.Sprintf("format %d", FormatVersion+1), "upgrade this node"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
}
