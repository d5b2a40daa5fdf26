package raftstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// runAutopilot runs the clean-up on every node of c (the leader acts).
func runAutopilot(t *testing.T, c *TestCluster, cfg AutopilotConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, s := range c.Nodes {
		go func(s *Store) {
			if err := s.RunAutopilot(ctx, cfg); err != nil {
				t.Errorf("RunAutopilot: %v", err)
			}
		}(s)
	}
}

func members(s *Store) []string {
	peers, err := s.Peers()
	if err != nil {
		return nil
	}
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	return ids
}

// stopFollower stops a node that does not lead and returns its index.
func stopFollower(t *testing.T, c *TestCluster) int {
	t.Helper()
	leader := c.WaitLeader()
	for i, s := range c.Nodes {
		if s != leader {
			c.Stop(i)
			return i
		}
	}
	t.Fatal("no follower")
	return -1
}

func TestAutopilotRemovesDeadServer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	c := NewTestCluster(t, 3)
	runAutopilot(t, c, AutopilotConfig{CleanupDeadServers: true, DeadServerLastContactThreshold: 2 * time.Second,
		MinQuorum: 2, CheckInterval: 100 * time.Millisecond})
	// Live followers are not removed, however long they run.
	time.Sleep(3 * time.Second)
	if got := members(c.WaitLeader()); len(got) != 3 {
		t.Fatalf("live members removed: %v", got)
	}
	dead := stopFollower(t, c)
	id := c.Configs[dead].NodeID
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		l := c.WaitLeader()
		if got := members(l); len(got) == 2 && !strings.Contains(strings.Join(got, ","), id) {
			if l.AutopilotRemoved() != 1 {
				t.Fatalf("removed counter %d, want 1", l.AutopilotRemoved())
			}
			if v := metricValue(t, l, "tcauth_autopilot_dead_servers_removed_total"); v != 1 {
				t.Fatalf("tcauth_autopilot_dead_servers_removed_total = %v, want 1", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still a member after %s: %v", id, time.Since(start), members(l))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("removed after %s, before the 2s threshold", took)
	}
	// Two voters left and min quorum 2: the next dead one stays.
	stopFollower(t, c)
	time.Sleep(4 * time.Second)
	for _, s := range c.Nodes {
		if s != nil && len(members(s)) != 2 {
			t.Fatalf("below min quorum: %v", members(s))
		}
	}
}

func TestAutopilotKeepsDeadServer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	for _, tc := range []struct {
		name string
		cfg  AutopilotConfig
		dead float64 // the gauge on the leader
	}{
		{"cleanup off", AutopilotConfig{CleanupDeadServers: false, DeadServerLastContactThreshold: time.Second, MinQuorum: 2, CheckInterval: 100 * time.Millisecond}, 0},
		{"min quorum 3 of 3", AutopilotConfig{CleanupDeadServers: true, DeadServerLastContactThreshold: time.Second, MinQuorum: 3, CheckInterval: 100 * time.Millisecond}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewTestCluster(t, 3)
			runAutopilot(t, c, tc.cfg)
			stopFollower(t, c)
			time.Sleep(4 * time.Second)
			l := c.WaitLeader()
			if got := members(l); len(got) != 3 {
				t.Fatalf("dead server removed: %v", got)
			}
			if l.AutopilotRemoved() != 0 {
				t.Fatalf("removed counter %d", l.AutopilotRemoved())
			}
			if v := metricValue(t, l, "tcauth_autopilot_dead_servers"); v != tc.dead {
				t.Fatalf("tcauth_autopilot_dead_servers = %v, want %v", v, tc.dead)
			}
		})
	}
}

// metricValue scrapes the store's collector for one series.
func metricValue(t *testing.T, s *Store, name string) float64 {
	t.Helper()
	r := prometheus.NewRegistry()
	r.MustRegister(s.Collector())
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}
