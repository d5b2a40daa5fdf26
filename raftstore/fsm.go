package raftstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// fsm applies committed commands to the state. Readers take mu for
// reading; applies take it for writing, briefly (records are immutable, so
// no copying happens under the lock).
type fsm struct {
	mu    sync.RWMutex
	st    *state
	feed  *changeFeed
	index atomic.Uint64 // last applied log index

	// applied is closed and replaced after every apply batch, waking
	// WaitForIndex and Changes callers.
	appliedMu sync.Mutex
	applied   chan struct{}
}

func newFSM(feedSize int) *fsm {
	return &fsm{st: newState(), feed: newChangeFeed(feedSize), applied: make(chan struct{})}
}

// applyResponse is what Apply returns through raft's ApplyFuture.
type applyResponse struct {
	result ApplyResult
	err    error
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies a batch under one lock acquisition; with BatchApplyCh
// raft hands over everything committed together.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			f.index.Store(l.Index)
			continue
		}
		out[i] = f.applyOne(l)
		f.index.Store(l.Index)
	}
	f.mu.Unlock()
	f.notifyApplied()
	return out
}

func (f *fsm) applyOne(l *raft.Log) *applyResponse {
	res, changes, err := applyCommand(f.st, l.Data)
	res.Index = l.Index
	for i := range changes {
		changes[i].Index = l.Index
	}
	f.feed.add(changes)
	return &applyResponse{result: res, err: err}
}

// applyCommand decodes a command entry and applies it to st: the one way
// log bytes become state, for the FSM and for the start-up check that
// replays the log (datadir.go). Undecodable bytes and a panicking apply are
// rejected (ErrBadCommand), never a crash: every node reaches the same
// verdict for the same bytes, so rejecting keeps them agreed.
func applyCommand(st *state, data []byte) (res ApplyResult, changes []Change, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, changes, err = ApplyResult{}, nil, fmt.Errorf("%w: apply panicked: %v", ErrBadCommand, r)
		}
	}()
	var cmd Command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return ApplyResult{}, nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return st.apply(&cmd)
}

func (f *fsm) notifyApplied() {
	f.appliedMu.Lock()
	close(f.applied)
	f.applied = make(chan struct{})
	f.appliedMu.Unlock()
}

func (f *fsm) appliedCh() <-chan struct{} {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied
}

// Snapshot captures the state cheaply (shallow copies; records are
// immutable) and lets raft persist it off the apply path.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.capture(), nil
}

func (f *fsm) capture() *snapshot {
	st := f.st
	snap := &snapshot{index: f.index.Load(), clients: make([]*Client, 0, len(st.ids)), audit: st.audit,
		meta: make(map[string]map[string]string, len(st.meta))}
	for _, id := range st.ids {
		snap.clients = append(snap.clients, st.clients[id])
	}
	for _, r := range st.roles {
		snap.roles = append(snap.roles, r)
	}
	for k, v := range st.meta {
		snap.meta[k] = v
	}
	snap.logins = make([]*LoginRecord, 0, len(st.logins))
	for _, r := range st.logins {
		snap.logins = append(snap.logins, r)
	}
	return snap
}

// Restore replaces the state with a snapshot's. The change feed cannot
// know what changed before it, so it is marked truncated: sidecars reload.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, idx, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.index.Store(idx)
	f.feed.truncate(idx)
	f.mu.Unlock()
	f.notifyApplied()
	return nil
}

// snapshot is a point-in-time view, written as JSON lines: a header line,
// then one line per record. Streaming keeps memory flat for large stores.
type snapshot struct {
	index   uint64
	clients []*Client
	roles   []*Role
	audit   []AuditEntry
	meta    map[string]map[string]string
	logins  []*LoginRecord // unordered; writeTo sorts them
}

type snapshotHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
	Clients int    `json:"clients"`
	Roles   int    `json:"roles"`
	Audit   int    `json:"audit"`
	// LoginRecords is omitted when zero, so a backup made before login
	// records existed reads as one with none.
	LoginRecords int `json:"loginRecords,omitempty"`
}

type snapshotLine struct {
	Client *Client                      `json:"client,omitempty"`
	Role   *Role                        `json:"role,omitempty"`
	Audit  *AuditEntry                  `json:"audit,omitempty"`
	Meta   map[string]map[string]string `json:"meta,omitempty"`
	Login  *LoginRecord                 `json:"login,omitempty"`
	// End is the last line: a backup cut anywhere (even after its last
	// record) is refused rather than restored short.
	End bool `json:"end,omitempty"`
}

const snapshotFormat = "tcauth-raftstore-snapshot"

func (s *snapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: 1, Index: s.index,
		Clients: len(s.clients), Roles: len(s.roles), Audit: len(s.audit), LoginRecords: len(s.logins)}); err != nil {
		return err
	}
	for _, c := range s.clients {
		if err := enc.Encode(snapshotLine{Client: c}); err != nil {
			return err
		}
	}
	for _, r := range s.roles {
		if err := enc.Encode(snapshotLine{Role: r}); err != nil {
			return err
		}
	}
	for i := range s.audit {
		if err := enc.Encode(snapshotLine{Audit: &s.audit[i]}); err != nil {
			return err
		}
	}
	// Sorted here, off the apply path, so that equal states give equal files.
	sort.Slice(s.logins, func(i, j int) bool {
		a, b := s.logins[i], s.logins[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && a.Key < b.Key
	})
	for _, r := range s.logins {
		if err := enc.Encode(snapshotLine{Login: r}); err != nil {
			return err
		}
	}
	if err := enc.Encode(snapshotLine{Meta: s.meta}); err != nil {
		return err
	}
	if err := enc.Encode(snapshotLine{End: true}); err != nil {
		return err
	}
	return bw.Flush()
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

func readSnapshot(r io.Reader) (*state, uint64, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, 0, fmt.Errorf("raftstore: snapshot header: %w", err)
	}
	if h.Format != snapshotFormat || h.Version != 1 {
		return nil, 0, fmt.Errorf("raftstore: not a tcauth snapshot (format %q version %d)", h.Format, h.Version)
	}
	st := newState()
	ended := false
	for {
		var line snapshotLine
		err := dec.Decode(&line)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("raftstore: snapshot: %w", err)
		}
		if ended {
			return nil, 0, errors.New("raftstore: snapshot has data after its end")
		}
		switch {
		case line.End:
			ended = true
		case line.Client != nil:
			st.putClient(line.Client)
		case line.Role != nil:
			st.roles[line.Role.RoleID] = line.Role
		case line.Audit != nil:
			st.audit = append(st.audit, *line.Audit)
		case line.Meta != nil:
			st.meta = line.Meta
		case line.Login != nil:
			if err := line.Login.check(); err != nil {
				return nil, 0, fmt.Errorf("raftstore: snapshot: %v", err)
			}
			st.putLogin(line.Login)
		}
	}
	if !ended {
		return nil, 0, errors.New("raftstore: snapshot is truncated: no end line")
	}
	if len(st.clients) != h.Clients || len(st.roles) != h.Roles || len(st.audit) != h.Audit || len(st.logins) != h.LoginRecords {
		return nil, 0, fmt.Errorf("raftstore: snapshot is truncated: %d/%d clients, %d/%d roles, %d/%d audit, %d/%d login records",
			len(st.clients), h.Clients, len(st.roles), h.Roles, len(st.audit), h.Audit, len(st.logins), h.LoginRecords)
	}
	// The one full index build: on restore, never on a role change.
	res, err := newResolverChecked(st)
	if err != nil {
		return nil, 0, err
	}
	st.resolver = res
	return st, h.Index, nil
}
