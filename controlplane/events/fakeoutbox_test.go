package events

import (
	"context"
	"sync"

	"github.com/tcauth/tcauth/raftstore"
)

// fakeOutbox is an in-memory Outbox for the publisher's state machine:
// leadership is a switch, every append is one "applied entry". The real
// outbox (raftstore) has its own tests; the end-to-end test runs it.
type fakeOutbox struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	leader  bool
	events  []raftstore.OutboxEvent // pending, oldest first
	status  raftstore.OutboxStatus
	applied uint64
	acks    []raftstore.OutboxPos
	enables []int
	ackErr  error
}

func newFakeOutbox() *fakeOutbox {
	// Enabled with the default limit, as a running cluster's outbox is,
	// so events added before the publisher starts are kept.
	return &fakeOutbox{changed: make(chan struct{}), leader: true,
		status: raftstore.OutboxStatus{Enabled: true, Limit: raftstore.DefaultOutboxLimit}}
}

func (f *fakeOutbox) bump() {
	f.applied++
	close(f.changed)
	f.changed = make(chan struct{})
}

// add appends one event per (kind, id, action) at the next index.
func (f *fakeOutbox) add(kind, id, action string) raftstore.OutboxEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bump()
	ev := raftstore.OutboxEvent{Index: f.applied, Kind: kind, ID: id, Action: action}
	if f.status.Enabled {
		f.events = append(f.events, ev)
		for len(f.events) > f.status.Limit {
			f.status.Dropped++
			f.status.LastDropped = f.events[0].Pos()
			f.events = f.events[1:]
		}
	}
	return ev
}

func (f *fakeOutbox) setLeader(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = v
}

func (f *fakeOutbox) statusLocked() raftstore.OutboxStatus {
	st := f.status
	st.Pending = len(f.events)
	return st
}

func (f *fakeOutbox) OutboxEvents(after raftstore.OutboxPos, max int) ([]raftstore.OutboxEvent, raftstore.OutboxStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []raftstore.OutboxEvent
	for _, ev := range f.events {
		if after.Less(ev.Pos()) && len(out) < max {
			out = append(out, ev)
		}
	}
	return out, f.statusLocked()
}

func (f *fakeOutbox) OutboxStatus() raftstore.OutboxStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusLocked()
}

func (f *fakeOutbox) AckOutbox(ctx context.Context, through raftstore.OutboxPos) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return raftstore.ErrNotLeader
	}
	if f.ackErr != nil {
		return f.ackErr
	}
	f.acks = append(f.acks, through)
	if f.status.Acked.Less(through) {
		f.status.Acked = through
	}
	for len(f.events) > 0 && !through.Less(f.events[0].Pos()) {
		f.events = f.events[1:]
	}
	f.bump()
	return nil
}

func (f *fakeOutbox) EnableOutbox(ctx context.Context, limit int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return raftstore.ErrNotLeader
	}
	f.enables = append(f.enables, limit)
	f.status.Enabled, f.status.Limit = true, limit
	f.bump()
	return nil
}

func (f *fakeOutbox) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeOutbox) LinearizableRead(ctx context.Context) error {
	if !f.IsLeader() {
		return raftstore.ErrNotLeader
	}
	return nil
}

func (f *fakeOutbox) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *fakeOutbox) WaitForIndex(ctx context.Context, idx uint64) error {
	for {
		f.mu.Lock()
		ch, done := f.changed, f.applied >= idx
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *fakeOutbox) ackList() []raftstore.OutboxPos {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]raftstore.OutboxPos(nil), f.acks...)
}
