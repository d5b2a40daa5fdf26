package raftstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// The outbox holds client and role changes until a broker has confirmed
// them (DESIGN.md "Outbox"). It lives in the replicated state, so a new
// leader continues publishing exactly where the old one's recorded
// confirmations stopped. Events are appended inside the apply, by the same
// deterministic rule on every node.

// OutboxEvent is a client or role change waiting in the outbox to be published.
type OutboxEvent struct {
	Index  uint64 `json:"index"`         // Raft index of the entry that made the change
	Seq    uint32 `json:"seq,omitempty"` // position among the events of that entry (0 = first)
	Kind   string `json:"kind"`          // "client" or "role"
	ID     string `json:"id"`            // clientId or roleId
	Action string `json:"action"`        // "created", "updated" or "deleted"
}

// Pos is the event's position in the outbox.
func (e OutboxEvent) Pos() OutboxPos { return OutboxPos{Index: e.Index, Seq: e.Seq} }

// MessageID is the AMQP message-id: the Raft index in decimal, with ".<seq>" when seq > 0.
// The index identifies the change on every node and across leaders, so a
// message sent again after a failover carries the same id.
func (e OutboxEvent) MessageID() string {
	id := strconv.FormatUint(e.Index, 10)
	if e.Seq > 0 {
		id += "." + strconv.FormatUint(uint64(e.Seq), 10)
	}
	return id
}

// OutboxPos is a position in the outbox, ordered by Index then Seq; the
// zero value is before everything.
type OutboxPos struct {
	Index uint64 `json:"index"`
	Seq   uint32 `json:"seq,omitempty"`
}

// Less reports whether p comes before q.
func (p OutboxPos) Less(q OutboxPos) bool {
	return p.Index < q.Index || p.Index == q.Index && p.Seq < q.Seq
}

// OutboxStatus describes the outbox of this node's applied state.
type OutboxStatus struct {
	Enabled bool `json:"enabled"`
	Limit   int  `json:"limit,omitempty"`
	Pending int  `json:"pending,omitempty"`
	// Acked: every event at or before it was confirmed by the broker.
	Acked OutboxPos `json:"acked"`
	// Dropped counts events dropped because the outbox was full (since
	// enabled; never reset); LastDropped is the newest of them.
	Dropped     uint64    `json:"dropped,omitempty"`
	LastDropped OutboxPos `json:"lastDropped"`
}

// DefaultOutboxLimit is the outbox bound used when EnableOutbox is given 0.
// MaxOutboxLimit bounds what a command may ask for, so one entry cannot make
// every node reserve unbounded memory.
const (
	DefaultOutboxLimit = 100000
	MaxOutboxLimit     = 10000000
)

// Outbox commands.
//
//	outbox-enable  turn the outbox on with Limit (1..MaxOutboxLimit), or
//	               change the limit; shrinking drops the oldest events
//	outbox-ack     record that every event at or before Through was
//	               confirmed; Through must be before the ack's own entry;
//	               an ack at or before the current one changes nothing
const (
	OpOutboxEnable Op = "outbox-enable"
	OpOutboxAck    Op = "outbox-ack"
)

// ErrOutboxDisabled: an outbox-ack while the outbox was never enabled.
var ErrOutboxDisabled = errors.New("raftstore: outbox not enabled")

// outbox is the state's queue. Live events are events[head:], in position
// order. Dropping and acking move head; appends never write below
// len(events) and compaction copies into a new array, so a snapshot may
// keep the live slice without copying it (records stay immutable).
type outbox struct {
	status OutboxStatus // Pending is derived, not stored
	events []OutboxEvent
	head   int
}

func (o *outbox) live() []OutboxEvent { return o.events[o.head:len(o.events):len(o.events)] }

func (o *outbox) statusNow() OutboxStatus {
	st := o.status
	st.Pending = len(o.events) - o.head
	return st
}

// dropOldest removes the oldest n live events as dropped (full outbox).
func (o *outbox) dropOldest(n int) {
	if n <= 0 {
		return
	}
	o.status.Dropped += uint64(n)
	o.status.LastDropped = o.events[o.head+n-1].Pos()
	o.advance(n)
}

// advance moves head by n and compacts once the dead prefix is at least
// half of the array: amortised O(1) per event.
func (o *outbox) advance(n int) {
	o.head += n
	if o.head == len(o.events) {
		// Empty: keep appending into the spare capacity (never below
		// the old length, which a snapshot may still be reading).
		o.events, o.head = o.events[len(o.events):], 0
		return
	}
	if o.head >= 1024 && o.head*2 >= len(o.events) {
		o.events, o.head = append([]OutboxEvent(nil), o.events[o.head:]...), 0
	}
}

func (o *outbox) push(e OutboxEvent) {
	if len(o.events)-o.head >= o.status.Limit {
		o.dropOldest(len(o.events) - o.head - o.status.Limit + 1)
	}
	o.events = append(o.events, e)
}

// after returns up to max live events after pos.
func (o *outbox) after(pos OutboxPos, max int) []OutboxEvent {
	l := o.live()
	i := sort.Search(len(l), func(i int) bool { return pos.Less(l[i].Pos()) })
	n := min(max, len(l)-i)
	if n <= 0 {
		return nil
	}
	return append([]OutboxEvent(nil), l[i:i+n]...)
}

// record appends the events an applied command at index produced (none
// while disabled: deployments without a broker keep no outbox).
func (o *outbox) record(index uint64, cmd *Command, changes []Change) {
	if !o.status.Enabled {
		return
	}
	var seq uint32
	add := func(kind, id, action string) {
		o.push(OutboxEvent{Index: index, Seq: seq, Kind: kind, ID: id, Action: action})
		seq++
	}
	switch cmd.Op {
	case OpDeleteClient, OpDeleteRole:
		// Published also when nothing was there, as the reference does;
		// the change feed (sidecars) records only real removals.
		kind := "client"
		if cmd.Op == OpDeleteRole {
			kind = "role"
		}
		add(kind, cmd.ID, "deleted")
	case OpSyncStaticClients:
		// Static clients come from configuration, not the API: the
		// reference publishes nothing for them.
	default:
		for _, c := range changes {
			add(c.Kind, c.ID, outboxAction(c.Op))
		}
	}
}

// outboxAction maps a change feed op to the three Taskcluster exchanges.
func outboxAction(op string) string {
	switch op {
	case "created":
		return "created"
	case "deleted", "expired":
		return "deleted"
	default: // updated, token-reset, enabled, disabled
		return "updated"
	}
}

func isOutboxOp(op Op) bool { return op == OpOutboxEnable || op == OpOutboxAck }

// applyOutbox executes an outbox command of the entry at index. Every
// check comes before the first change.
func (s *state) applyOutbox(cmd *Command, index uint64) error {
	o := &s.outbox
	switch cmd.Op {
	case OpOutboxEnable:
		if cmd.Limit < 1 || cmd.Limit > MaxOutboxLimit {
			return fmt.Errorf("%w: outbox limit must be 1-%d", ErrBadCommand, MaxOutboxLimit)
		}
		o.status.Enabled, o.status.Limit = true, cmd.Limit
		o.dropOldest(len(o.events) - o.head - cmd.Limit)
	case OpOutboxAck:
		if cmd.Through == nil {
			return fmt.Errorf("%w: outbox-ack needs a position", ErrBadCommand)
		}
		if !o.status.Enabled {
			return ErrOutboxDisabled
		}
		if cmd.Through.Index >= index {
			// No event at or after this entry can have been published.
			return fmt.Errorf("%w: outbox-ack beyond its own entry", ErrBadCommand)
		}
		if !o.status.Acked.Less(*cmd.Through) {
			return nil // monotonic: an older ack changes nothing
		}
		o.status.Acked = *cmd.Through
		l := o.live()
		o.advance(sort.Search(len(l), func(i int) bool { return cmd.Through.Less(l[i].Pos()) }))
	default:
		return fmt.Errorf("%w: unknown op %q", ErrBadCommand, cmd.Op)
	}
	return nil
}

// check validates an outbox (a restored one, and in the fuzz target): known kinds and actions,
// positions strictly increasing and after Acked, within the limit.
func (o *outbox) check() error {
	st, l := o.status, o.live()
	if !st.Enabled {
		if len(l) > 0 || st != (OutboxStatus{}) {
			return errors.New("outbox: events or status without being enabled")
		}
		return nil
	}
	if st.Limit < 1 || st.Limit > MaxOutboxLimit || len(l) > st.Limit {
		return fmt.Errorf("outbox: %d events for a limit of %d", len(l), st.Limit)
	}
	prev := st.Acked
	for _, e := range l {
		if !prev.Less(e.Pos()) {
			return fmt.Errorf("outbox: event %s out of order", e.MessageID())
		}
		if (e.Kind != "client" && e.Kind != "role") || e.ID == "" || outboxAction(e.Action) != e.Action {
			return fmt.Errorf("outbox: malformed event %s", e.MessageID())
		}
		prev = e.Pos()
	}
	return nil
}

// clampTo keeps a restored outbox consistent with the index the state
// stands at. Raft's own snapshots never hold positions after it; a backup
// made on a longer log and restored into a shorter one can, and its
// events would then sort after changes still to come. They are dropped
// (counted), and Acked is cut back so no future event counts as confirmed.
func (o *outbox) clampTo(index uint64) {
	limit := OutboxPos{Index: index, Seq: math.MaxUint32}
	if limit.Less(o.status.Acked) {
		o.status.Acked = limit
	}
	l := o.live()
	keep := sort.Search(len(l), func(i int) bool { return limit.Less(l[i].Pos()) })
	if gone := len(l) - keep; gone > 0 {
		o.status.Dropped += uint64(gone)
		o.status.LastDropped = l[len(l)-1].Pos()
		o.events = l[:keep:keep]
		o.head = 0
	}
}

// ---- Store: outbox ----

// OutboxEvents returns up to max events after pos (oldest first) and the status, from this node's applied state.
func (s *Store) OutboxEvents(after OutboxPos, max int) ([]OutboxEvent, OutboxStatus) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	o := &s.fsm.st.outbox
	return o.after(after, max), o.statusNow()
}

// OutboxStatus is the outbox's status in this node's applied state.
func (s *Store) OutboxStatus() OutboxStatus {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.st.outbox.statusNow()
}

// AckOutbox records that the broker confirmed every event through pos (leader only: ErrNotLeader).
// Monotonic: an ack at or before the current one changes nothing (and
// proposes nothing).
func (s *Store) AckOutbox(ctx context.Context, through OutboxPos) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if st := s.OutboxStatus(); st.Enabled && !st.Acked.Less(through) {
		return nil
	}
	_, err := s.Apply(ctx, Command{Op: OpOutboxAck, Through: &through})
	return err
}

// EnableOutbox turns the outbox on with the given limit (0 = DefaultOutboxLimit = 100000), or changes the
// limit (shrinking drops the oldest). Leader only. A no-op entry is not proposed when nothing would change.
func (s *Store) EnableOutbox(ctx context.Context, limit int) error {
	if limit == 0 {
		limit = DefaultOutboxLimit
	}
	if limit < 0 || limit > MaxOutboxLimit {
		return fmt.Errorf("%w: outbox limit must be 0-%d", ErrBadCommand, MaxOutboxLimit)
	}
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if st := s.OutboxStatus(); st.Enabled && st.Limit == limit {
		return nil
	}
	_, err := s.Apply(ctx, Command{Op: OpOutboxEnable, Limit: limit})
	return err
}
