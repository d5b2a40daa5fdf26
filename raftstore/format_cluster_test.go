package raftstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestFormatGateMixedCluster: with one member reading only format 1 (an
// older release), the leader refuses to propose the outbox ops; an entry
// of format 2 that reaches that member anyway halts it instead of being
// skipped; once the member is upgraded, the leader proposes them.
func TestFormatGateMixedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	const old = 2
	c.Stop(old)
	halted := make(chan error, 1)
	c.Configs[old].formatVersion = 1
	c.Configs[old].OnHalt = func(err error) { halted <- err }
	c.Restart(old)
	ctx := context.Background()

	// The leader knows what node2 reads from its Raft handshake.
	leader := leaderExcept(t, c, old)
	waitFor(t, "the leader to learn node2's format", func() bool { return leader.MemberFormats()["node2"] == 1 })
	err := leader.EnableOutbox(ctx, 10)
	if !errors.Is(err, ErrFormatNotEnabled) || !strings.Contains(err.Error(), "node2 (format 1)") {
		t.Fatalf("EnableOutbox with a format-1 member: %v", err)
	}
	for i, s := range c.Nodes {
		if s.OutboxStatus().Enabled {
			t.Fatalf("node %d has the outbox on after a refused enable", i)
		}
	}

	// Past the gate (as a leader of a release without it would write):
	// node2 halts rather than diverge; the others apply.
	if err := leader.raft.Apply([]byte(`{"op":"outbox-enable","limit":10,"v":2}`), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-halted:
		if !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), "upgrade this node") {
			t.Fatalf("halt: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the format-1 node did not halt on a format-2 entry")
	}
	waitFor(t, "the current nodes to apply the entry", func() bool {
		return c.Nodes[0].OutboxStatus().Enabled && c.Nodes[1].OutboxStatus().Enabled
	})
	if c.Nodes[old].OutboxStatus().Enabled || c.Nodes[old].Halted() == nil || c.Nodes[old].CaughtUp() {
		t.Fatal("the halted node applied the entry, or claims to be current")
	}
	if err := c.Nodes[old].SaveSnapshot(new(strings.Builder)); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("backup of a halted node: %v", err)
	}

	// Upgraded, node2 applies what it halted on, and the gate opens.
	c.Stop(old)
	c.Configs[old].formatVersion, c.Configs[old].OnHalt = 0, nil
	c.Restart(old)
	waitFor(t, "the upgraded node to apply the outbox", func() bool { return c.Nodes[old].OutboxStatus().Enabled })
	onLeader(t, c, func(s *Store) error {
		err := s.EnableOutbox(ctx, 20)
		if errors.Is(err, ErrFormatNotEnabled) {
			return ErrNotLeader // not redialled yet: retry
		}
		return err
	})
	waitFor(t, "every node to have the new limit", func() bool {
		for _, s := range c.Nodes {
			if s.OutboxStatus().Limit != 20 {
				return false
			}
		}
		return true
	})
}

// leaderExcept waits for a leader that is not node i, moving leadership
// away from i if it has it (node i may be stopped).
func leaderExcept(t *testing.T, c *TestCluster, i int) *Store {
	t.Helper()
	var l *Store
	waitFor(t, "a leader other than the old node", func() bool {
		l = c.Leader()
		if l != nil && l == c.Nodes[i] {
			_ = l.raft.LeadershipTransfer().Error()
			return false
		}
		return l != nil
	})
	return l
}

// TestFormatGateOpenOnceCommitted: a leader elected after the old one died
// never dialled it, so it cannot know what that member reads; once the
// state holds the outbox's format, the outbox ops still pass (the events
// publisher records its progress through them on every leader).
func TestFormatGateOpenOnceCommitted(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	ctx := context.Background()
	onLeader(t, c, func(s *Store) error { return s.EnableOutbox(ctx, 10) })
	waitFor(t, "every node to have the outbox", func() bool {
		for _, s := range c.Nodes {
			if !s.OutboxStatus().Enabled {
				return false
			}
		}
		return true
	})

	dead := -1
	for i, s := range c.Nodes {
		if s == c.WaitLeader() {
			dead = i
		}
	}
	deadID := c.Nodes[dead].NodeID()
	c.Stop(dead)
	leader := leaderExcept(t, c, dead)
	// As if it had never reached the dead member.
	servers, _ := leader.configServers()
	for _, srv := range servers {
		if string(srv.ID) == deadID {
			leader.formats.mu.Lock()
			delete(leader.formats.m, string(srv.Address))
			leader.formats.mu.Unlock()
		}
	}
	if got := leader.MemberFormats()[deadID]; got != 0 {
		t.Fatalf("the leader still knows the dead member's format: %d", got)
	}
	if err := leader.EnableOutbox(ctx, 20); err != nil {
		t.Fatalf("outbox op with a format already committed and a member unknown: %v", err)
	}
}
