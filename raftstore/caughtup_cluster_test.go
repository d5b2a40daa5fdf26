package raftstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// createClients writes n clients prefix/0..n-1 through whichever node
// leads (a busy machine can cost an election; a retried create that had
// committed answers ErrConflict).
func createClients(t *testing.T, c *TestCluster, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s/%d", prefix, i)
		for attempt := 0; ; attempt++ {
			leader := c.WaitLeader()
			sealed, err := leader.SealToken(id, "token-0123456789abcdefghij")
			if err != nil {
				t.Fatal(err)
			}
			_, err = leader.Apply(context.Background(), Command{Op: OpCreateClient, Time: t0, Client: &Client{ClientID: id, SealedToken: sealed}})
			if err == nil || errors.Is(err, ErrConflict) {
				break
			}
			if attempt == 5 {
				t.Fatal(err)
			}
		}
	}
}

// TestCaughtUpAfterRestart: a follower restarted on its data directory
// holds the log but applies it only once it learns the commit index. It
// must not report CaughtUp before every acknowledged write is applied —
// whatever moment one looks.
func TestCaughtUpAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	leader := c.WaitLeader()
	waitFor(t, "the leader to be caught up", leader.CaughtUp)
	createClients(t, c, "before", 20)

	follower := -1
	for i, s := range c.Nodes {
		if s != leader {
			follower = i
		}
	}
	waitFor(t, "the follower to be caught up", c.Nodes[follower].CaughtUp)
	c.Stop(follower)
	createClients(t, c, "while-down", 300) // the follower misses these
	want := 320

	for round := 0; round < 3; round++ {
		s := c.Restart(follower)
		if s.CaughtUp() {
			t.Fatal("CaughtUp right after Open")
		}
		sawBehind := false
		deadline := time.Now().Add(10 * time.Second)
		for !s.CaughtUp() {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not caught up within 10s (applied %d)", round, s.AppliedIndex())
			}
			if s.ClientCount() < want {
				sawBehind = true
			}
		}
		// Read after the flag: everything acknowledged must be there.
		if n := s.ClientCount(); n < want {
			t.Fatalf("round %d: CaughtUp with %d of %d acknowledged clients applied", round, n, want)
		}
		if round == 0 && !sawBehind {
			t.Log("the restarted follower was never seen behind (fast machine); the check above still holds")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.WaitCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		c.Stop(follower)
	}
	c.Restart(follower)
}

// TestCaughtUpFollowsLeadership: a leadership change makes every node not
// caught up until it has applied the new leader's commit index; with no
// leader nothing is caught up and WaitCaughtUp gives ErrNotCaughtUp.
func TestCaughtUpFollowsLeadership(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	leader := c.WaitLeader()
	createClients(t, c, "a", 5)
	for i, s := range c.Nodes {
		waitFor(t, fmt.Sprintf("node %d caught up", i), s.CaughtUp)
	}
	if err := leader.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new leader", func() bool { l := c.Leader(); return l != nil && l != leader })
	for i, s := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.WaitCaughtUp(ctx); err != nil {
			t.Fatalf("node %d after the transfer: %v", i, err)
		}
		cancel()
	}

	// Without a quorum there is no leader, so nobody is caught up.
	for i := range c.Nodes {
		if i != 0 {
			c.Stop(i)
		}
	}
	waitFor(t, "node 0 to lose the leader", func() bool { id, _ := c.Nodes[0].Leader(); return id == "" })
	waitFor(t, "node 0 to report not caught up", func() bool { return !c.Nodes[0].CaughtUp() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Nodes[0].WaitCaughtUp(ctx); !errors.Is(err, ErrNotCaughtUp) {
		t.Fatalf("WaitCaughtUp without a leader: %v, want ErrNotCaughtUp", err)
	}
	for i := range c.Nodes {
		if i != 0 {
			c.Restart(i)
		}
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	for i, s := range c.Nodes {
		if err := s.WaitCaughtUp(ctx2); err != nil {
			t.Fatalf("node %d after the restart: %v", i, err)
		}
	}
	// A closed store stops waiters.
	s := c.Nodes[2]
	c.Stop(2)
	if s.CaughtUp() {
		t.Fatal("a closed store reports CaughtUp")
	}
}

// TestLeaderCommitNote: the commit index counts only once the sender has
// committed an entry of its own term.
func TestLeaderCommitNote(t *testing.T) {
	var l leaderCommit
	l.note(ae(3, 10, 2, 12))
	if _, c, own, _ := l.getTest(); c != 12 || own {
		t.Fatalf("previous entry of an older term: commit %d own %v", c, own)
	}
	l.note(ae(3, 13, 3, 12)) // own-term entry 13 not yet committed
	if _, _, own, _ := l.getTest(); own {
		t.Fatal("own-term entry above the commit index counted")
	}
	l.note(ae(3, 13, 3, 13))
	if term, c, own, _ := l.getTest(); term != 3 || c != 13 || !own {
		t.Fatalf("got term %d commit %d own %v", term, c, own)
	}
	l.note(ae(2, 20, 2, 20)) // a delayed request of an older leader
	if term, c, _, _ := l.getTest(); term != 3 || c != 13 {
		t.Fatalf("an old term's request changed it: term %d commit %d", term, c)
	}
	l.note(ae(4, 13, 3, 13)) // new leader, nothing of term 4 committed
	if term, c, own, _ := l.getTest(); term != 4 || c != 13 || own {
		t.Fatalf("new term: term %d commit %d own %v", term, c, own)
	}
	a := ae(4, 13, 3, 14)
	a.Entries = []*raft.Log{{Index: 14, Term: 4}, {Index: 15, Term: 4}}
	l.note(a) // its no-op at 14 is committed
	if _, c, own, fresh := l.getTest(); c != 14 || !own || !fresh {
		t.Fatalf("own-term entry committed: commit %d own %v fresh %v", c, own, fresh)
	}
	// A leader observation (lost, then found again after a partition, in
	// the same term) makes the index stale until the next request.
	l.invalidate()
	if _, c, own, fresh := l.getTest(); c != 14 || !own || fresh {
		t.Fatalf("after invalidate: commit %d own %v fresh %v", c, own, fresh)
	}
	l.note(ae(4, 20, 4, 20))
	if _, c, _, fresh := l.getTest(); c != 20 || !fresh {
		t.Fatalf("the next request: commit %d fresh %v", c, fresh)
	}
}

func ae(term, prev, prevTerm, commit uint64) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{Term: term, PrevLogEntry: prev, PrevLogTerm: prevTerm, LeaderCommitIndex: commit}
}

// getTest is get without the generation.
func (l *leaderCommit) getTest() (term, commit uint64, own, fresh bool) {
	term, commit, own, fresh, _ = l.get()
	return
}

// TestCaughtUpNeedsTheFetchedReadIndex: with a ReadIndexSource, a follower
// is caught up only once it has applied the read index fetched after the
// last leader change — not the commit index it noted, which a healed
// follower can receive stale (TCP retransmits of requests queued before a
// partition). A source that cannot reach the leader at all
// (ErrNoReadIndexSource) falls back to the noted index; other failures
// keep the node not caught up.
func TestCaughtUpNeedsTheFetchedReadIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	leader := c.WaitLeader()
	createClients(t, c, "before", 5)
	follower := -1
	for i, s := range c.Nodes {
		if s != leader {
			follower = i
		}
	}
	c.Stop(follower)
	for _, tc := range []struct {
		name   string
		src    func(leader *Store) ReadIndexSource
		caught bool
	}{
		{"read index beyond anything committed", func(*Store) ReadIndexSource {
			return func(context.Context) (uint64, error) { return 1 << 40, nil }
		}, false},
		{"leader unreachable", func(*Store) ReadIndexSource {
			return func(context.Context) (uint64, error) { return 0, errors.New("connection refused") }
		}, false},
		{"no way to ask: noted index", func(*Store) ReadIndexSource {
			return func(context.Context) (uint64, error) { return 0, fmt.Errorf("no address: %w", ErrNoReadIndexSource) }
		}, true},
		{"the leader's applied index", func(l *Store) ReadIndexSource {
			return func(context.Context) (uint64, error) { return l.AppliedIndex(), nil }
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := c.Restart(follower)
			s.SetReadIndexSource(tc.src(c.WaitLeader()))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := s.WaitCaughtUp(ctx)
			if got := err == nil; got != tc.caught {
				t.Fatalf("caught up = %v (%v), want %v", got, err, tc.caught)
			}
			if err == nil && s.ClientCount() < 5 {
				t.Fatalf("caught up with %d of 5 clients", s.ClientCount())
			}
			c.Stop(follower)
		})
	}
}
