package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ErrNotCaughtUp is WaitCaughtUp's answer when its context ends first: the
// node has not yet shown that its state holds every write the current
// leader had committed.
var ErrNotCaughtUp = errors.New("raftstore: not caught up with the leader's commit index")

// catchUpPoll is how often the catch-up monitor re-checks while it waits
// for entries to arrive or apply, and how soon it notices a term change.
const catchUpPoll = 5 * time.Millisecond

// CaughtUp reports whether this node knows that its applied state holds
// every write the current leader had committed when this node (re)started,
// joined or saw the leadership change: a follower once it has applied the
// commit index a leader of the current term sent it (and that leader had
// committed an entry of its own term, so its commit index covers every
// earlier term), a leader once its barrier of the term is applied. It is
// false while no leader is known. One atomic load: callers use it on every
// refusal.
//
// A halted state machine (format.go) never is: it applies nothing more.
func (s *Store) CaughtUp() bool { return s.cu.caught.Load() && s.fsm.haltedErr() == nil }

// WaitCaughtUp returns once CaughtUp is true, ErrNotCaughtUp (wrapping the
// context's error) when ctx ends first, ErrClosed when the store closes.
func (s *Store) WaitCaughtUp(ctx context.Context) error {
	for {
		ch := s.cu.waitCh()
		if s.CaughtUp() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNotCaughtUp, ctx.Err())
		case <-s.cu.stop:
			return ErrClosed
		}
	}
}

// ReadIndexSource asks the current leader for its read index: an index
// that covers every write the leader had acknowledged when it answered
// (its applied index once its barrier of the term is applied).
type ReadIndexSource func(ctx context.Context) (uint64, error)

// SetReadIndexSource makes a follower count as caught up only once it has
// applied the read index it fetched from the leader after it last saw the
// leadership change. Without one, the commit index noted in AppendEntries
// is used, which a follower healed from a partition can receive stale:
// requests queued on the leader's TCP connection before the partition are
// retransmitted after it (on TCP's backed-off schedule, seconds later) and
// carry the commit index of back then. The reliability suite's "follower
// partitioned and healed" showed such a node answering "not found".
//
// Set it before the node serves; setting it makes the node check again.
func (s *Store) SetReadIndexSource(src ReadIndexSource) {
	s.readIndexSrc.Store(&src)
	s.leaderCommit.invalidate()
	s.cu.set(false)
}

// ErrNoReadIndexSource is what a ReadIndexSource answers (wrapped or not)
// when it has no way to reach the current leader at all (its address is
// not known yet): the follower then uses the commit index noted in
// AppendEntries, as without a source.
var ErrNoReadIndexSource = errors.New("raftstore: the leader cannot be asked for its read index")

// readIndexRetry spaces out failed read-index fetches.
const readIndexRetry = 100 * time.Millisecond

// readIndex is the watcher's last fetched read index and the leader
// observation (generation) it was fetched in.
type readIndex struct {
	index   uint64
	gen     uint64
	ok      bool
	lastTry time.Time
}

// catchUp is the caught-up flag and the channel its waiters block on.
type catchUp struct {
	caught atomic.Bool
	mu     sync.Mutex
	ch     chan struct{} // closed while caught up
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the monitor has returned
}

func newCatchUp() *catchUp {
	return &catchUp{ch: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
}

func (c *catchUp) set(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v == c.caught.Load() {
		return
	}
	c.caught.Store(v)
	if v {
		close(c.ch)
	} else {
		c.ch = make(chan struct{})
	}
}

func (c *catchUp) waitCh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// watchCatchUp runs until Close. Every leader change (raft's
// LeaderObservation, which includes losing the leader) and every term
// change makes the node not caught up; then it polls until it is again.
func (s *Store) watchCatchUp() {
	defer close(s.cu.done)
	obs := make(chan raft.Observation, 16)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(o)
	defer s.raft.DeregisterObserver(o)
	tick := time.NewTicker(catchUpPoll)
	defer tick.Stop()
	var term uint64 // the term the node is caught up in
	var ri readIndex
	for {
		select {
		case <-s.cu.stop:
			s.cu.set(false)
			return
		case <-obs:
			s.cu.set(false)
			s.leaderCommit.invalidate()
		case <-tick.C:
		}
		if s.cu.caught.Load() {
			if s.raft.CurrentTerm() != term {
				s.cu.set(false)
			}
			continue
		}
		gen := s.leaderCommit.generation()
		t, ok := s.tryCatchUp(&ri)
		if !ok {
			continue
		}
		select {
		case <-obs: // the leader changed meanwhile: check again
			s.leaderCommit.invalidate()
			continue
		default:
		}
		// Unless invalidated meanwhile (SetReadIndexSource), atomically
		// with the check.
		if s.leaderCommit.ifGeneration(gen, func() { s.cu.set(true) }) {
			term = t
		}
	}
}

// tryCatchUp checks, without waiting for anything, whether the node is
// caught up in the current term.
func (s *Store) tryCatchUp(ri *readIndex) (uint64, bool) {
	term := s.raft.CurrentTerm()
	switch s.raft.State() {
	case raft.Leader:
		// A new leader's commit index can lag behind what its predecessor
		// acknowledged until an entry of its own term commits; the barrier
		// is that entry, and it returns once the FSM has applied it.
		if err := s.awaitFuture(s.raft.Barrier(s.cfg.ApplyTimeout)); err != nil {
			return 0, false
		}
		if !s.IsLeader() || s.raft.CurrentTerm() != term {
			return 0, false
		}
		s.termMu.Lock()
		s.readyTerm = term
		s.termMu.Unlock()
		return term, true
	case raft.Follower:
		if id, _ := s.Leader(); id == "" {
			return 0, false
		}
		lt, ci, own, fresh, gen := s.leaderCommit.get()
		if src := s.readIndexSrc.Load(); src != nil {
			switch err := s.fetchReadIndex(*src, ri, gen); {
			case err == nil:
				ci, own, fresh = max(ci, ri.index), true, true
			case !errors.Is(err, ErrNoReadIndexSource):
				return 0, false
			}
		}
		if lt != term || !own || !fresh || !s.appliedThrough(ci) {
			return 0, false
		}
		return term, true
	}
	return 0, false
}

// errReadIndexPending: no read index of this observation yet; the next
// try is due later.
var errReadIndexPending = errors.New("raftstore: read index not fetched yet")

// fetchReadIndex makes sure ri holds a read index fetched since the leader
// observation gen (one fetch per observation; failures retried after
// readIndexRetry). nil when it does; else the source's error or
// errReadIndexPending.
func (s *Store) fetchReadIndex(src ReadIndexSource, ri *readIndex, gen uint64) error {
	if ri.ok && ri.gen == gen {
		return nil
	}
	if time.Since(ri.lastTry) < readIndexRetry {
		return errReadIndexPending
	}
	ri.lastTry = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	idx, err := src(ctx)
	if err != nil {
		ri.ok = false
		return err
	}
	*ri = readIndex{index: idx, gen: gen, ok: true, lastTry: ri.lastTry}
	return nil
}

// appliedThrough reports whether the FSM has applied every entry up to ci
// that reaches it (the non-blocking form of waitCommitted: no-op and
// barrier entries never reach the FSM). An entry not in the log yet
// counts as not applied.
func (s *Store) appliedThrough(ci uint64) bool {
	for i := ci; i > s.fsm.index.Load(); i-- {
		var l raft.Log
		if err := s.log.GetLog(i, &l); err != nil || l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// leaderCommit is the newest commit index a leader sent this node, with its
// term and whether that leader had by then committed an entry of its own
// term (only then does its commit index cover every earlier term's
// acknowledged writes).
//
// fresh says a request was noted since the last leader observation: a
// follower cut off from the leader (pre-vote keeps its term) and then
// healed hears a heartbeat first, which names the leader but takes the
// transport's fast path unseen, so without it the commit index from
// before the partition would pass for the current one.
type leaderCommit struct {
	mu     sync.Mutex
	term   uint64
	commit uint64
	own    bool
	fresh  bool
	gen    uint64 // counts leader observations (invalidate)
}

// invalidate forgets that the commit index is current (not the index
// itself): the next AppendEntries request renews it.
func (l *leaderCommit) invalidate() {
	l.mu.Lock()
	l.fresh = false
	l.gen++
	l.mu.Unlock()
}

func (l *leaderCommit) note(a *raft.AppendEntriesRequest) {
	// The smallest index of the request known to hold an entry of the
	// sender's term: the previous entry or one of the new ones.
	var ownIdx uint64
	if a.PrevLogTerm == a.Term && a.PrevLogEntry > 0 {
		ownIdx = a.PrevLogEntry
	}
	for _, e := range a.Entries {
		if e.Term == a.Term && (ownIdx == 0 || e.Index < ownIdx) {
			ownIdx = e.Index
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case a.Term < l.term:
		return // a delayed request of an old leader
	case a.Term > l.term:
		l.term, l.commit, l.own = a.Term, 0, false
	}
	l.commit = max(l.commit, a.LeaderCommitIndex)
	l.fresh = true
	if ownIdx != 0 && ownIdx <= a.LeaderCommitIndex {
		l.own = true
	}
}

// ifGeneration runs f under the lock if the generation is still gen.
func (l *leaderCommit) ifGeneration(gen uint64, f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return false
	}
	f()
	return true
}

func (l *leaderCommit) generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

func (l *leaderCommit) get() (term, commit uint64, own, fresh bool, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term, l.commit, l.own, l.fresh, l.gen
}

// observingTransport is raft's network transport with a look at every
// AppendEntries request on its way to raft: hashicorp/raft keeps the
// leader's commit index it learns there to itself (a follower's
// CommitIndex is min(leader's, own last index), which cannot tell "caught
// up" from "behind"). The leader's replication sends one at least every
// CommitTimeout, also when idle; heartbeats, which carry no commit index,
// take the transport's fast path and are not seen here.
type observingTransport struct {
	*raft.NetworkTransport
	consumer  chan raft.RPC
	seen      *leaderCommit
	contacts  *peerContacts // autopilot.go: followers' answers, on the leader
	done      chan struct{}
	closeOnce sync.Once
}

func newObservingTransport(t *raft.NetworkTransport, seen *leaderCommit) *observingTransport {
	o := &observingTransport{NetworkTransport: t, consumer: make(chan raft.RPC), seen: seen, done: make(chan struct{})}
	go o.pump()
	return o
}

func (o *observingTransport) pump() {
	in := o.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			if a, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
				o.seen.note(a)
			}
			select {
			case o.consumer <- rpc:
			case <-o.done:
				return
			}
		case <-o.done:
			return
		}
	}
}

// AppendEntriesPipeline refuses pipelining, so raft replicates with one
// AppendEntries in flight per follower (still up to MaxAppendEntries
// entries each). hashicorp/raft's pipeline can deadlock: when a follower
// answers Success=false, pipelineDecode returns while the send loop may
// still park one more request on the pipeline's in-progress channel, whose
// reader is parked on the done channel nobody reads; the pipeline's Close
// is deferred behind that send, so that follower never gets another entry
// (heartbeats still flow, so no election heals it) and Shutdown hangs.
// grafana/pyroscope#5518 describes it and disables pipelining the same
// way; this suite hit it as a raftstore test hanging in Close.
func (o *observingTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// Consumer is where raft reads incoming RPCs.
func (o *observingTransport) Consumer() <-chan raft.RPC { return o.consumer }

// Close stops the pump and the underlying transport (raft also calls it on
// shutdown, so it is idempotent).
func (o *observingTransport) Close() error {
	o.closeOnce.Do(func() { close(o.done) })
	return o.NetworkTransport.Close()
}
