package raftstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// outboxOf is a node's whole outbox, once it has applied idx.
func outboxOf(t *testing.T, s *Store, idx uint64) ([]OutboxEvent, OutboxStatus) {
	t.Helper()
	if err := s.WaitForIndex(context.Background(), idx); err != nil {
		t.Fatal(err)
	}
	return s.OutboxEvents(OutboxPos{}, 1<<30)
}

// sameOutboxEverywhere checks that every running node holds the leader's
// outbox and returns it.
func sameOutboxEverywhere(t *testing.T, c *TestCluster, leader *Store) ([]OutboxEvent, OutboxStatus) {
	t.Helper()
	idx := leader.AppliedIndex()
	want, wantSt := outboxOf(t, leader, idx)
	for i, s := range c.Nodes {
		if s == nil || s == leader {
			continue
		}
		if got, st := outboxOf(t, s, idx); !reflect.DeepEqual(got, want) || st != wantSt {
			t.Fatalf("node %d outbox differs:\n%+v %+v\nleader:\n%+v %+v", i, got, st, want, wantSt)
		}
	}
	return want, wantSt
}

// onLeader runs op on whichever node leads, retrying while leadership
// moves (fast test timeouts on a busy machine). A retried write may have
// committed already: tests count events with that in mind.
func onLeader(t *testing.T, c *TestCluster, op func(*Store) error) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		err := op(c.WaitLeader())
		if err == nil {
			return
		}
		if attempt == 20 || !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrOutcomeUnknown) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOutboxClusterFailover: the outbox is identical on every node after
// writes and acks, and a new leader sees exactly the events the old one
// had not recorded as confirmed, then carries on.
func TestOutboxClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	ctx := context.Background()
	leader := c.WaitLeader()
	for _, s := range c.Nodes {
		if s != leader {
			if err := s.EnableOutbox(ctx, 50); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower enable: %v", err)
			}
			if err := s.AckOutbox(ctx, OutboxPos{Index: 1}); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower ack: %v", err)
			}
		}
	}
	onLeader(t, c, func(s *Store) error { return s.EnableOutbox(ctx, 50) })
	for i := 0; i < 20; i++ {
		onLeader(t, c, func(s *Store) error {
			_, err := s.Apply(ctx, Command{Op: OpDeleteClient, ID: fmt.Sprint("c", i), Time: t0})
			return err
		})
		onLeader(t, c, func(s *Store) error {
			_, err := s.Apply(ctx, Command{Op: OpDeleteRole, ID: fmt.Sprint("r", i), Time: t0})
			return err
		})
	}
	evs, _ := sameOutboxEverywhere(t, c, c.WaitLeader())
	if len(evs) < 40 {
		t.Fatalf("%d events, want at least 40", len(evs))
	}
	acked := evs[24].Pos()
	onLeader(t, c, func(s *Store) error { return s.AckOutbox(ctx, acked) })
	leader = c.WaitLeader()
	pending, st := sameOutboxEverywhere(t, c, leader)
	if st.Acked != acked || !reflect.DeepEqual(pending, evs[25:]) {
		t.Fatalf("after the ack: %+v %+v", st, pending)
	}

	for i, s := range c.Nodes {
		if s == leader {
			c.Stop(i)
		}
	}
	next := c.WaitLeader()
	if err := next.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	rest, _ := next.OutboxEvents(next.OutboxStatus().Acked, 1000)
	if !reflect.DeepEqual(rest, pending) {
		t.Fatalf("new leader's un-acked events:\n%+v\nwant\n%+v", rest, pending)
	}
	// It carries on where the old leader stopped.
	onLeader(t, c, func(s *Store) error {
		_, err := s.Apply(ctx, Command{Op: OpDeleteClient, ID: "after", Time: t0})
		return err
	})
	onLeader(t, c, func(s *Store) error { return s.AckOutbox(ctx, pending[5].Pos()) })
	all, st := sameOutboxEverywhere(t, c, c.WaitLeader())
	n := len(pending) - 6
	if len(all) <= n || !reflect.DeepEqual(all[:n], pending[6:]) || all[n].ID != "after" || st.Acked != pending[5].Pos() {
		t.Fatalf("after the failover: %+v %+v", all, st)
	}
}
