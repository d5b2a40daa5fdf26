package raftstore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/tcauth/tcauth/scopeengine"
)

// Config configures a Store. DefaultConfig documents the defaults; zero
// values of the tuning fields mean "default".
type Config struct {
	NodeID  string // required: this node's stable Raft id
	DataDir string // required: wal/ (log + stable store, walstore.go), snapshots/, node-id

	RaftBind      string // host:port to listen on for Raft; default 127.0.0.1:0
	RaftAdvertise string // host:port peers dial; default the bound address

	// TLS is the mutual-TLS configuration for Raft traffic (see
	// LoadTLSConfig). Required unless AllowInsecure.
	TLS           *tls.Config
	AllowInsecure bool // plain TCP; only for single-node dev and loopback tests

	Keyring   *Keyring // seals access tokens; required to store clients
	Bootstrap bool     // form a new single-node cluster if there is no state

	Logger *slog.Logger // default: slog.Default()

	HeartbeatTimeout   time.Duration // default 1s (raft's default)
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	// CommitTimeout is how long the leader waits, with nothing new to
	// send, before telling followers the commit index in an empty append
	// (hashicorp/raft sends it only with the next append). A write sent to
	// a follower is answered once that follower has applied it, so with
	// one writer raft's 50ms default added 50–100ms to every write through
	// a follower (13 writes/s against etcd's 125 in make bench-compare).
	// Default 5ms: an idle leader sends each follower 100–200 empty
	// appends per second, no fsync on either side.
	CommitTimeout     time.Duration
	ApplyTimeout      time.Duration // default 10s: bound on one Apply
	SnapshotThreshold uint64        // default 8192 log entries
	SnapshotInterval  time.Duration // default 2m
	SnapshotRetain    int           // default 2
	// TrailingLogs is how many log entries a snapshot leaves behind, so
	// that a follower slightly behind catches up from the log instead of
	// a whole snapshot. Default 10240 (raft's).
	TrailingLogs uint64
	// boltLog runs the log store of earlier releases, raft.db
	// (hashicorp/raft-boltdb), instead of raft-wal: for tests, which make
	// the directories the migration starts from, and benchmarks, which
	// compare the two. freelistSync and boltFreelist are its bbolt
	// settings: the freelist persisted on every commit (bbolt's default;
	// earlier releases did not) and its in-memory type ("" = the hashmap).
	boltLog      bool
	freelistSync bool
	boltFreelist bbolt.FreelistType
	// FeedSize bounds the change feed's history (default 10,000 changes).
	FeedSize int
	// OnHalt, if set, is called (once, on its own goroutine) when the
	// state machine halts: the cluster wrote a log entry in a format this
	// release cannot read (ErrUnsupportedFormat). The node applies nothing
	// more; the control plane exits with the error.
	OnHalt func(error)
	// formatVersion, when set, makes the node read formats up to it only
	// (tests: a node of an older release).
	formatVersion int
}

// DefaultConfig returns the documented defaults (NodeID and DataDir still
// to be set). Batching is on: BatchApplyCh and MaxAppendEntries 64, as
// Vault runs it, because writes gain from concurrency only through it.
func DefaultConfig() Config {
	return Config{
		RaftBind:           "127.0.0.1:0",
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       10 * time.Second,
		SnapshotThreshold:  8192,
		SnapshotInterval:   2 * time.Minute,
		SnapshotRetain:     2,
		TrailingLogs:       10240,
		FeedSize:           10000,
	}
}

func (c *Config) fill() error {
	d := DefaultConfig()
	if c.NodeID == "" || c.DataDir == "" {
		return errors.New("raftstore: Config.NodeID and Config.DataDir are required")
	}
	if c.TLS == nil && !c.AllowInsecure {
		return errNoTLS
	}
	if c.RaftBind == "" {
		c.RaftBind = d.RaftBind
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&c.HeartbeatTimeout, &d.HeartbeatTimeout}, {&c.ElectionTimeout, &d.ElectionTimeout},
		{&c.LeaderLeaseTimeout, &d.LeaderLeaseTimeout}, {&c.CommitTimeout, &d.CommitTimeout},
		{&c.ApplyTimeout, &d.ApplyTimeout}, {&c.SnapshotInterval, &d.SnapshotInterval},
	} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.SnapshotRetain <= 0 {
		c.SnapshotRetain = d.SnapshotRetain
	}
	if c.FeedSize <= 0 {
		c.FeedSize = d.FeedSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.boltFreelist == "" {
		c.boltFreelist = bbolt.FreelistMapType
	}
	return nil
}

// Store is one node of the replicated store.
type Store struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *fsm
	log       logStore // raft-wal (walstore.go), or raft.db under Config.boltLog
	transport raft.Transport
	closeOnce sync.Once

	termMu    sync.Mutex
	readyTerm uint64   // the term in which this leader has committed a barrier
	lock      *DirLock // the data directory's lock, held until Close

	// Catch-up tracking (caughtup.go): the leader's commit index as seen
	// in AppendEntries, and the flag the monitor maintains.
	leaderCommit leaderCommit
	cu           *catchUp
	readIndexSrc atomic.Pointer[ReadIndexSource]

	leaderChanges atomic.Uint64 // metrics.go
	formats       peerFormats   // format.go: what each dialled member reads

	contacts  peerContacts   // autopilot.go: when each follower last answered
	autopilot autopilotState // autopilot.go
}

// Open starts the node: it opens (or creates) the log and snapshots in
// DataDir (migrating an earlier release's raft.db first), replays
// committed state, and bootstraps a single-node cluster when
// Config.Bootstrap is set and there is no state yet.
func Open(cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, fsm: newFSM(cfg.FeedSize), cu: newCatchUp()}
	s.fsm.onHalt = cfg.OnHalt
	if cfg.formatVersion > 0 {
		s.fsm.maxFormat = cfg.formatVersion
	}

	RaftMetrics() // metrics.go: the go-metrics sink is in place before raft emits
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 64
	// raft logs through the node's slog handler (hclog.go), so that every
	// line on stderr has one schema.
	rc.Logger = newHCLogger(cfg.Logger, "raft")

	// Locked and checked (datadir.go) before raft sees it.
	ls, snaps, lock, err := openDataDir(cfg, rc.Logger)
	if err != nil {
		return nil, err
	}
	s.log, s.lock = ls, lock
	trans, err := s.newTransport(rc.Logger)
	if err != nil {
		s.closeResources()
		return nil, err
	}
	ot := newObservingTransport(trans, &s.leaderCommit)
	ot.contacts = &s.contacts
	s.transport = ot
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(ls, ls, snaps)
		if err != nil {
			s.closeResources()
			return nil, err
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}}
			if err := raft.BootstrapCluster(rc, ls, ls, snaps, trans, conf); err != nil {
				s.closeResources()
				return nil, fmt.Errorf("raftstore: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, s.fsm, ls, ls, snaps, s.transport)
	if err != nil {
		s.closeResources()
		return nil, err
	}
	s.raft = r
	go s.watchCatchUp()
	go s.watchLeader()
	go s.watchFormat()
	return s, nil
}

// logStore is what raft needs of the log and stable store, and what
// Store needs to close it.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

func (s *Store) newTransport(logger hclog.Logger) (*raft.NetworkTransport, error) {
	var adv net.Addr
	if s.cfg.RaftAdvertise != "" {
		a, err := net.ResolveTCPAddr("tcp", s.cfg.RaftAdvertise)
		if err != nil {
			return nil, fmt.Errorf("raftstore: advertise address: %w", err)
		}
		adv = a
	}
	if s.cfg.TLS == nil {
		return raft.NewTCPTransportWithLogger(s.cfg.RaftBind, adv, 3, 10*time.Second, logger)
	}
	stream, err := newTLSStreamLayer(s.cfg.RaftBind, adv, s.cfg.TLS, s.fsm.maxFormat, &s.formats)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
	}), nil
}

func (s *Store) closeResources() {
	if c, ok := s.transport.(io.Closer); ok {
		c.Close()
	}
	s.log.Close()
	s.lock.Unlock()
}

// Close stops the node. A leader of a multi-node cluster first hands
// leadership over, so that a graceful restart costs no election timeout.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.IsLeader() {
			if f := s.raft.GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 1 {
				_ = s.raft.LeadershipTransfer().Error()
			}
		}
		close(s.cu.stop)
		err = s.raft.Shutdown().Error()
		<-s.cu.done
		s.closeResources()
	})
	return err
}

// awaitFuture waits for f, or until Close begins. hashicorp/raft with
// BatchApplyCh buffers its apply channel, and Shutdown never answers a
// future still waiting in that buffer (raft.go: only the follower and
// candidate loops drain it), so an Apply or Barrier enqueued just before
// Close would block its caller — and Close, which waits for the catch-up
// monitor — forever. Seen as TestLockDataDir hanging in Close. After
// Close the answer is raft.ErrRaftShutdown: the command may or may not
// have committed (Apply maps it to ErrOutcomeUnknown). The goroutine left
// behind ends when raft answers, or with the process.
func (s *Store) awaitFuture(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-s.cu.stop:
		select {
		case err := <-done:
			return err
		default:
			return raft.ErrRaftShutdown
		}
	}
}

// RaftAddr is the address peers reach this node's Raft transport at.
func (s *Store) RaftAddr() string { return string(s.transport.LocalAddr()) }

// NodeID is this node's Raft id.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// Keyring is the keyring tokens are sealed with.
func (s *Store) Keyring() *Keyring { return s.cfg.Keyring }

// ---- writes ----

// Apply proposes cmd and waits until it is committed and applied here.
// Only the leader accepts writes: followers get ErrNotLeader. A command the
// state rejects returns ErrConflict, ErrNotFound or ErrInvalidRoles (the
// ApplyResult then may carry the existing record).
func (s *Store) Apply(ctx context.Context, cmd Command) (ApplyResult, error) {
	// A newer op only once every member reads it (format.go): a member
	// that cannot would halt, one from before versioning would diverge.
	if need := opFormat(cmd.Op); need > 1 {
		if err := s.requireFormat(ctx, need); err != nil {
			return ApplyResult{}, err
		}
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return ApplyResult{}, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	f := s.raft.Apply(data, timeout)
	if err := s.awaitFuture(f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return ApplyResult{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		if errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return ApplyResult{}, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
		return ApplyResult{}, err
	}
	resp, ok := f.Response().(*applyResponse)
	if !ok {
		return ApplyResult{}, fmt.Errorf("%w: unexpected apply response %T", ErrBadCommand, f.Response())
	}
	return resp.result, resp.err
}

// SealToken seals a client's access token with the primary key, for a
// CreateClient or ResetAccessToken command.
func (s *Store) SealToken(clientID, token string) ([]byte, error) {
	return s.cfg.Keyring.Seal(clientID, []byte(token))
}

// StaticClientSpec is a configured static client with its plaintext token.
type StaticClientSpec struct {
	ClientID, AccessToken, Description string
	Scopes                             []string
}

// SyncStaticClients (leader) makes the stored static/ clients equal specs in
// one command. Tokens equal to the stored ones keep their sealed form, so a
// restart with unchanged configuration changes nothing.
func (s *Store) SyncStaticClients(ctx context.Context, now time.Time, specs []StaticClientSpec) (int, error) {
	static := make([]StaticClient, 0, len(specs))
	changed := false
	s.fsm.mu.RLock()
	present := 0
	for id := range s.fsm.st.ids.keys() {
		if len(id) >= 7 && id[:7] == "static/" {
			present++
		}
	}
	s.fsm.mu.RUnlock()
	for _, sp := range specs {
		sc := StaticClient{ClientID: sp.ClientID, Description: sp.Description, Scopes: slices.Clone(sp.Scopes)}
		old, ok := s.Client(sp.ClientID)
		if ok {
			if tok, err := s.cfg.Keyring.Open(sp.ClientID, old.SealedToken); err == nil && subtle.ConstantTimeCompare(tok, []byte(sp.AccessToken)) == 1 {
				sc.SealedToken = old.SealedToken
			}
		}
		if sc.SealedToken == nil {
			sealed, err := s.SealToken(sp.ClientID, sp.AccessToken)
			if err != nil {
				return 0, err
			}
			sc.SealedToken = sealed
		}
		if !ok || !bytes.Equal(sc.SealedToken, old.SealedToken) || old.Description != sc.Description || !slices.Equal(old.Scopes, sc.Scopes) {
			changed = true
		}
		static = append(static, sc)
	}
	if !changed && present == len(specs) {
		return 0, nil
	}
	res, err := s.Apply(ctx, Command{Op: OpSyncStaticClients, Time: now, Static: static})
	return res.Count, err
}

// SetNodeMeta publishes metadata of this node (its HTTP API address, say)
// through the log, so every node can find the leader's API.
func (s *Store) SetNodeMeta(ctx context.Context, meta map[string]string) error {
	_, err := s.Apply(ctx, Command{Op: OpSetNodeMeta, NodeID: s.cfg.NodeID, Meta: meta})
	return err
}

// NodeMeta returns what node id published.
func (s *Store) NodeMeta(id string) map[string]string {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.st.meta[id]
}

// ---- reads (local state) ----

// Client returns a stored client.
func (s *Store) Client(id string) (Client, bool) {
	s.fsm.mu.RLock()
	c, ok := s.fsm.st.clients[id]
	s.fsm.mu.RUnlock()
	if !ok {
		return Client{}, false
	}
	return *c, true
}

// AccessToken returns the client's decrypted token.
func (s *Store) AccessToken(id string) (string, bool, error) {
	c, ok := s.Client(id)
	if !ok {
		return "", false, nil
	}
	tok, err := s.cfg.Keyring.Open(id, c.SealedToken)
	if err != nil {
		return "", true, err
	}
	return string(tok), true, nil
}

// ListClients lists clients whose id starts with prefix, by clientId,
// skipping offset, at most limit (negative = all); more reports whether
// more follow.
func (s *Store) ListClients(prefix string, offset, limit int) ([]Client, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.st.listClients(prefix, offset, limit)
}

// ClientCount is the number of stored clients.
func (s *Store) ClientCount() int {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.st.ids.len()
}

// Role returns a stored role.
func (s *Store) Role(id string) (Role, bool) {
	s.fsm.mu.RLock()
	r, ok := s.fsm.st.roles[id]
	s.fsm.mu.RUnlock()
	if !ok {
		return Role{}, false
	}
	return *r, true
}

// Roles returns every role, sorted by roleId.
func (s *Store) Roles() []Role {
	s.fsm.mu.RLock()
	out := make([]Role, 0, len(s.fsm.st.roles))
	for _, r := range s.fsm.st.roles {
		out = append(out, *r)
	}
	s.fsm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].RoleID < out[j].RoleID })
	return out
}

// Resolver returns the role index of the current role set; it is immutable
// and replaced (incrementally) on every role change.
func (s *Store) Resolver() *scopeengine.Resolver {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.st.resolver
}

// Audit lists matching entries in the order they were applied.
func (s *Store) Audit(q AuditQuery, offset, limit int) ([]AuditEntry, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	var out []AuditEntry
	skipped, more := 0, false
	for _, e := range s.fsm.st.audit {
		if q.Actor != "" && e.ClientID != q.Actor {
			continue
		}
		if q.EntityType != "" && (e.EntityType != q.EntityType || e.EntityID != q.EntityID) {
			continue
		}
		if skipped < offset {
			skipped++
			continue
		}
		if limit >= 0 && len(out) == limit {
			more = true
			break
		}
		out = append(out, e)
	}
	return out, more
}

// AppliedIndex is the index of the last log entry applied to this node's
// state.
func (s *Store) AppliedIndex() uint64 { return s.fsm.index.Load() }

// WaitForIndex returns once this node has applied idx.
func (s *Store) WaitForIndex(ctx context.Context, idx uint64) error {
	for {
		ch := s.fsm.appliedCh()
		if s.fsm.index.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LinearizableRead returns once this node's state reflects every write
// acknowledged before the call. It is the read-index recipe: note the
// commit index, confirm leadership with a quorum (VerifyLeader), make sure
// the term did not change meanwhile, then wait until that index is
// applied. Nothing goes through the log. A leader that has not yet
// committed an entry of its own term first commits a barrier, because its
// commit index may lag until then. Followers get ErrNotLeader.
func (s *Store) LinearizableRead(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	term := s.raft.CurrentTerm()
	s.termMu.Lock()
	ready := s.readyTerm == term
	s.termMu.Unlock()
	if !ready {
		if err := s.awaitFuture(s.raft.Barrier(s.cfg.ApplyTimeout)); err != nil {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		s.termMu.Lock()
		s.readyTerm = term
		s.termMu.Unlock()
	}
	ci := s.raft.CommitIndex()
	// Twice: hashicorp/raft counts for a VerifyLeader the answer to any
	// heartbeat that returns after the call, also one sent before it
	// (replication.go: heartbeat, then notifyAll), so right when quorum is
	// lost one stale answer per follower can still confirm a read.
	// TestIsolatedLeaderRefusesLinearizableReads caught it under load once
	// the barrier above no longer ran on every read. A second round
	// narrows the window to an answer older than a whole first round; it
	// costs one more heartbeat round trip on reads that need consensus
	// (never on authentication, which reads local state).
	for range 2 {
		if err := s.awaitFuture(s.raft.VerifyLeader()); err != nil {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
	}
	if s.raft.CurrentTerm() != term {
		return fmt.Errorf("%w: term changed during read", ErrNotLeader)
	}
	return s.waitCommitted(ctx, ci)
}

// waitCommitted waits until the FSM has applied every entry up to ci that
// reaches it. Raft never hands no-op and barrier entries to the FSM, so the
// FSM's index can rest below ci for good; the wait is for the newest entry
// at or below ci that the FSM does see (usually ci itself, or one step
// back past a term's no-op).
func (s *Store) waitCommitted(ctx context.Context, ci uint64) error {
	for i := ci; i > s.fsm.index.Load(); i-- {
		var l raft.Log
		if err := s.log.GetLog(i, &l); err != nil || l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return s.WaitForIndex(ctx, i)
		}
	}
	return nil
}

// Changes returns the client and role changes after index `after`,
// waiting (long poll) until there is one or ctx ends, together with the
// newest applied index (the caller's next `after`). ErrFeedTruncated means
// the feed no longer holds what followed `after`: reload everything.
func (s *Store) Changes(ctx context.Context, after uint64) ([]Change, uint64, error) {
	for {
		ch := s.fsm.appliedCh()
		s.fsm.mu.RLock()
		out, err := s.fsm.feed.since(after)
		idx := s.fsm.index.Load()
		s.fsm.mu.RUnlock()
		if err != nil || len(out) > 0 {
			return out, idx, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, idx, nil
		}
	}
}

// ---- cluster ----

// IsLeader reports whether this node is the Raft leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// State is "Leader", "Follower", "Candidate" or "Shutdown".
func (s *Store) State() string { return s.raft.State().String() }

// Leader returns the current leader's id and Raft address ("" if none).
func (s *Store) Leader() (id, raftAddr string) {
	addr, sid := s.raft.LeaderWithID()
	return string(sid), string(addr)
}

// LeaderCh reports leadership changes of this node (see raft.LeaderCh).
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// Join adds a voter (leader only). Joining again with the same address is a
// no-op; a known id with a new address is replaced.
func (s *Store) Join(ctx context.Context, id, raftAddr string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(id) && srv.Address == raft.ServerAddress(raftAddr) {
			return nil
		}
		if srv.ID == raft.ServerID(id) || srv.Address == raft.ServerAddress(raftAddr) {
			if err := s.raft.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				return err
			}
		}
	}
	return s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, s.cfg.ApplyTimeout).Error()
}

// ErrLastVoter: removing this server would leave no voter, a cluster that
// can never again elect a leader or commit a write.
var ErrLastVoter = errors.New("raftstore: refusing to remove the cluster's last voter")

// Remove takes a server out of the cluster (leader only). The last voter
// is refused with ErrLastVoter.
func (s *Store) Remove(ctx context.Context, id string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	voters, target := 0, false
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
			target = target || srv.ID == raft.ServerID(id)
		}
	}
	if target && voters == 1 {
		return ErrLastVoter
	}
	return s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error()
}

// Peer describes one member of the cluster.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	// State and LastIndex are known for this node only ("" / 0 otherwise).
	State     string `json:"state,omitempty"`
	LastIndex uint64 `json:"lastIndex,omitempty"`
}

// Peers lists the cluster's members as this node's configuration has them.
func (s *Store) Peers() ([]Peer, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	leaderID, _ := s.Leader()
	var out []Peer
	for _, srv := range f.Configuration().Servers {
		p := Peer{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == leaderID}
		if string(srv.ID) == s.cfg.NodeID {
			p.State, p.LastIndex = s.State(), s.raft.LastIndex()
		}
		out = append(out, p)
	}
	return out, nil
}

// TransferLeadership asks raft to hand leadership to another voter.
func (s *Store) TransferLeadership() error { return s.raft.LeadershipTransfer().Error() }

// SaveSnapshot writes a backup of the current state (this node's applied
// state; call LinearizableRead first for an up-to-date one).
func (s *Store) SaveSnapshot(w io.Writer) error {
	if err := s.fsm.haltedErr(); err != nil {
		return fmt.Errorf("raftstore: no backup of a halted state machine: %w", err)
	}
	s.fsm.mu.RLock()
	snap := s.fsm.capture()
	s.fsm.mu.RUnlock()
	return snap.writeTo(w)
}

// RestoreSnapshot replaces the whole cluster's state with a backup (leader
// only). The backup is checked completely before raft sees it.
func (s *Store) RestoreSnapshot(r io.Reader) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	st, _, err := readSnapshot(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	// A backup sealed under another keyring would restore into a cluster
	// where no client can authenticate: refuse it while nothing changed.
	for id, c := range st.clients {
		if _, err := s.cfg.Keyring.Open(id, c.SealedToken); err != nil {
			return fmt.Errorf("%w: the access token of client %s cannot be opened with this cluster's keyring (%v)", ErrBadSnapshot, id, err)
		}
	}
	for _, r := range st.logins {
		if _, err := s.OpenLoginData(*r); err != nil {
			return fmt.Errorf("%w: a login record (%s) cannot be opened with this cluster's keyring (%v)", ErrBadSnapshot, r.Kind, err)
		}
	}
	// raft stores a user snapshot at max(lastIndex, meta.Index)+1. Stamp
	// that index into the header so every node's FSM (and change feed)
	// knows the index the restored state stands at.
	last := s.raft.LastIndex()
	nl := bytes.IndexByte(data, '\n')
	var h snapshotHeader
	if nl < 0 || json.Unmarshal(data[:nl], &h) != nil {
		return errors.New("raftstore: snapshot header unreadable")
	}
	h.Index = last + 1
	head, err := json.Marshal(h)
	if err != nil {
		return err
	}
	data = append(head, data[nl:]...)
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data)), Index: last, Term: s.raft.CurrentTerm()}
	return s.raft.Restore(meta, bytes.NewReader(data), s.cfg.ApplyTimeout)
}

// Stats reports raft's counters plus this store's (for metrics).
func (s *Store) Stats() map[string]string {
	st := s.raft.Stats()
	st["fsm_applied_index"] = strconv.FormatUint(s.AppliedIndex(), 10)
	st["clients"] = strconv.Itoa(s.ClientCount())
	return st
}
