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

	// maxFormat is the newest format this node reads (FormatVersion; tests
	// pretend to be an older release). An entry newer than it halts the
	// FSM for good (format.go): halted is closed, haltErr says why, onHalt
	// (Config.OnHalt) is told.
	maxFormat int
	haltOnce  sync.Once
	haltErr   atomic.Pointer[error]
	halted    chan struct{}
	onHalt    func(error)
	// formatRaised receives when the state starts to hold a newer format.
	formatRaised chan struct{}
}

func newFSM(feedSize int) *fsm {
	return &fsm{st: newState(), feed: newChangeFeed(feedSize), applied: make(chan struct{}),
		maxFormat: FormatVersion, halted: make(chan struct{}), formatRaised: make(chan struct{}, 1)}
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
	before := f.st.format()
	for i, l := range logs {
		// A halted FSM applies nothing, not even no-ops: its index stays
		// before the entry it cannot read.
		if err := f.haltedErr(); err != nil {
			out[i] = &applyResponse{err: err}
			continue
		}
		if l.Type != raft.LogCommand {
			f.index.Store(l.Index)
			continue
		}
		resp := f.applyOne(l)
		out[i] = resp
		if errors.Is(resp.err, ErrUnsupportedFormat) {
			f.halt(fmt.Errorf("log entry %d: %w", l.Index, resp.err))
			continue
		}
		f.index.Store(l.Index)
	}
	raised := f.st.format() > before
	f.mu.Unlock()
	if raised {
		select {
		case f.formatRaised <- struct{}{}:
		default:
		}
	}
	f.notifyApplied()
	return out
}

func (f *fsm) applyOne(l *raft.Log) *applyResponse {
	res, changes, err := applyCommand(f.st, l.Index, l.Data, f.maxFormat)
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
// verdict for the same bytes, so rejecting keeps them agreed. index is the
// entry's Raft index: it names the entry's outbox events. An entry of a
// format newer than maxFormat is ErrUnsupportedFormat and changes nothing:
// rejecting it would not keep the nodes agreed (newer ones apply it), so
// the caller halts instead.
func applyCommand(st *state, index uint64, data []byte, maxFormat int) (res ApplyResult, changes []Change, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, changes, err = ApplyResult{}, nil, fmt.Errorf("%w: apply panicked: %v", ErrBadCommand, r)
		}
	}()
	var cmd Command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return ApplyResult{}, nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if err := checkFormat(&cmd, maxFormat); err != nil {
		return ApplyResult{}, nil, err
	}
	st.applying = index
	st.committedFormat = max(st.committedFormat, max1(cmd.Format))
	res, changes, err = st.apply(&cmd)
	if err == nil {
		st.outbox.record(index, &cmd, changes)
	}
	return res, changes, err
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

// Snapshot captures the state cheaply (records are immutable; the client
// index is frozen, copy-on-write, rather than copied) and lets raft persist
// it off the apply path.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.haltedErr(); err != nil {
		return nil, fmt.Errorf("raftstore: no snapshot of a halted state machine: %w", err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.capture(), nil
}

func (f *fsm) capture() *snapshot {
	st := f.st
	// No copy of the clients: later writes copy the chunks they change
	// (clientindex.go). The audit slice is only appended to or replaced,
	// never written below its length.
	snap := &snapshot{index: f.index.Load(), clients: st.ids.freeze(), audit: st.audit,
		meta: make(map[string]map[string]string, len(st.meta))}
	snap.roles = make([]*Role, 0, len(st.roles))
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
	// The live queue is never written in place (outbox.go), so no copy.
	snap.outbox, snap.outboxEvents = st.outbox.status, st.outbox.live()
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
// then one line per record, encoded straight to the sink through a 64 KiB
// buffer. Streaming keeps memory flat for large stores.
type snapshot struct {
	index   uint64
	clients clientView
	roles   []*Role
	audit   []AuditEntry
	meta    map[string]map[string]string
	logins  []*LoginRecord // unordered; writeTo sorts them

	outbox       OutboxStatus // Pending unused
	outboxEvents []OutboxEvent
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
	// Outbox says an outboxStatus line follows, OutboxEvents how many
	// outboxEvent lines; both omitted while the outbox is disabled, so
	// older backups restore as "disabled, empty".
	Outbox       bool `json:"outbox,omitempty"`
	OutboxEvents int  `json:"outboxEvents,omitempty"`
}

type snapshotLine struct {
	Client *Client                      `json:"client,omitempty"`
	Role   *Role                        `json:"role,omitempty"`
	Audit  *AuditEntry                  `json:"audit,omitempty"`
	Meta   map[string]map[string]string `json:"meta,omitempty"`
	Login  *LoginRecord                 `json:"login,omitempty"`

	OutboxStatus *OutboxStatus `json:"outboxStatus,omitempty"`
	OutboxEvent  *OutboxEvent  `json:"outboxEvent,omitempty"`
	// End is the last line: a backup cut anywhere (even after its last
	// record) is refused rather than restored short.
	End bool `json:"end,omitempty"`
}

const snapshotFormat = "tcauth-raftstore-snapshot"

func (s *snapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: s.version(), Index: s.index,
		Clients: s.clients.n, Roles: len(s.roles), Audit: len(s.audit), LoginRecords: len(s.logins),
		Outbox: s.outbox.Enabled, OutboxEvents: len(s.outboxEvents)}); err != nil {
		return err
	}
	for c := range s.clients.all() {
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
	if err := s.writeOutbox(enc); err != nil {
		return err
	}
	if err := enc.Encode(snapshotLine{Meta: s.meta}); err != nil {
		return err
	}
	if err := enc.Encode(snapshotLine{End: true}); err != nil {
		return err
	}
	return bw.Flush()
}

// version is the snapshot's format: the oldest that holds everything in
// it, so that a state without newer content stays readable by older
// releases (a new leader sends snapshots to members not yet upgraded).
func (s *snapshot) version() int {
	return contentFormat(s.outbox.Enabled)
}

func (s *snapshot) writeOutbox(enc *json.Encoder) error {
	if !s.outbox.Enabled {
		return nil
	}
	if err := enc.Encode(snapshotLine{OutboxStatus: &s.outbox}); err != nil {
		return err
	}
	for i := range s.outboxEvents {
		if err := enc.Encode(snapshotLine{OutboxEvent: &s.outboxEvents[i]}); err != nil {
			return err
		}
	}
	return nil
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
	if h.Format != snapshotFormat || h.Version < 1 {
		return nil, 0, fmt.Errorf("raftstore: not a tcauth snapshot (format %q version %d)", h.Format, h.Version)
	}
	if h.Version > FormatVersion {
		return nil, 0, unsupportedFormat("snapshot", h.Version, FormatVersion)
	}
	if h.Outbox && h.Version < formatOutbox {
		return nil, 0, fmt.Errorf("raftstore: snapshot of version %d announces an outbox, which needs version %d", h.Version, formatOutbox)
	}
	st := newState()
	st.committedFormat = h.Version
	ended, sawOutbox := false, false
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
			// Decoded just now, so interned in place (intern.go).
			internInPlace(st.strs, line.Client.Scopes)
			st.putClient(line.Client)
		case line.Role != nil:
			internInPlace(st.strs, line.Role.Scopes)
			st.roles[line.Role.RoleID] = line.Role
		case line.Audit != nil:
			line.Audit.ClientID = st.strs.intern(line.Audit.ClientID)
			st.audit = append(st.audit, *line.Audit)
		case line.Meta != nil:
			st.meta = line.Meta
		case line.Login != nil:
			if err := line.Login.check(); err != nil {
				return nil, 0, fmt.Errorf("raftstore: snapshot: %v", err)
			}
			st.putLogin(line.Login)
		case line.OutboxStatus != nil:
			if sawOutbox {
				return nil, 0, errors.New("raftstore: snapshot has two outbox status lines")
			}
			sawOutbox, st.outbox.status = true, *line.OutboxStatus
			st.outbox.status.Pending = 0
		case line.OutboxEvent != nil:
			st.outbox.events = append(st.outbox.events, *line.OutboxEvent)
		}
	}
	if !ended {
		return nil, 0, errors.New("raftstore: snapshot is truncated: no end line")
	}
	if len(st.clients) != h.Clients || len(st.roles) != h.Roles || len(st.audit) != h.Audit || len(st.logins) != h.LoginRecords {
		return nil, 0, fmt.Errorf("raftstore: snapshot is truncated: %d/%d clients, %d/%d roles, %d/%d audit, %d/%d login records",
			len(st.clients), h.Clients, len(st.roles), h.Roles, len(st.audit), h.Audit, len(st.logins), h.LoginRecords)
	}
	if sawOutbox != h.Outbox || len(st.outbox.events) != h.OutboxEvents {
		return nil, 0, fmt.Errorf("raftstore: snapshot is truncated: outbox status %v/%v, %d/%d outbox events",
			sawOutbox, h.Outbox, len(st.outbox.events), h.OutboxEvents)
	}
	if err := st.outbox.check(); err != nil {
		return nil, 0, fmt.Errorf("raftstore: snapshot: %v", err)
	}
	st.outbox.clampTo(h.Index)
	// The one full index build: on restore, never on a role change.
	res, err := newResolverChecked(st)
	if err != nil {
		return nil, 0, err
	}
	st.resolver = res
	st.sweepInterned()
	return st, h.Index, nil
}

func internInPlace(in *interner, ss []string) {
	for i, s := range ss {
		ss[i] = in.intern(s)
	}
}
