package raftstore

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestAutopilotConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  AutopilotConfig
		ok   bool
	}{
		{"zero values are the defaults", AutopilotConfig{}, true},
		{"minimum threshold", AutopilotConfig{DeadServerLastContactThreshold: MinDeadServerLastContactThreshold, MinQuorum: 1}, true},
		{"threshold below the minimum", AutopilotConfig{DeadServerLastContactThreshold: MinDeadServerLastContactThreshold - 1}, false},
		{"negative threshold", AutopilotConfig{DeadServerLastContactThreshold: -time.Hour}, false},
		{"negative min quorum", AutopilotConfig{MinQuorum: -1}, false},
		{"negative interval", AutopilotConfig{CheckInterval: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrBadAutopilotConfig) {
				t.Fatalf("Check() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	d := AutopilotConfig{}
	_ = d.Check()
	if d.CleanupDeadServers || d.DeadServerLastContactThreshold != 24*time.Hour || d.MinQuorum != 3 || d.CheckInterval != 2*time.Second {
		t.Fatalf("defaults %+v, want off, 24h, 3, 2s", d)
	}
}

func TestPlanDeadServers(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	since := now.Add(-time.Hour) // leader for an hour
	voter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	nonvoter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Nonvoter} }
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	cfg := AutopilotConfig{DeadServerLastContactThreshold: time.Minute, MinQuorum: 3}
	for _, tc := range []struct {
		name    string
		servers []raft.Server
		contact map[string]time.Time
		since   time.Time
		minQ    int
		remove  string
		blocked []string
		dead    int
	}{
		{name: "all healthy", servers: []raft.Server{voter("a"), voter("b"), voter("c")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(59 * time.Second)}},
		{name: "one dead of five", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d"), voter("e")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(2 * time.Minute), "d": ago(time.Second), "e": ago(time.Second)},
			remove:  "c", dead: 1},
		{name: "never heard from counts from the leadership's start", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Second)}, remove: "d", dead: 1},
		{name: "new leader waits a whole threshold", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d")},
			contact: map[string]time.Time{"b": ago(time.Hour), "c": ago(time.Second)}, since: ago(30 * time.Second)},
		{name: "self is never removed", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Second), "d": ago(time.Second)}},
		{name: "min quorum keeps the dead voter", servers: []raft.Server{voter("a"), voter("b"), voter("c")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Hour)}, blocked: []string{"c"}, dead: 1},
		{name: "min quorum 2 lets three become two", servers: []raft.Server{voter("a"), voter("b"), voter("c")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Hour)}, minQ: 2, remove: "c", dead: 1},
		{name: "oldest contact first, one at a time", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d"), voter("e")},
			contact: map[string]time.Time{"b": ago(2 * time.Minute), "c": ago(5 * time.Minute), "d": ago(time.Second), "e": ago(time.Second)},
			remove:  "c", dead: 2},
		{name: "non-voters first", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d"), nonvoter("n")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Second), "d": ago(time.Hour), "n": ago(2 * time.Minute)},
			remove:  "n", dead: 2},
		{name: "a dead non-voter goes even at min quorum", servers: []raft.Server{voter("a"), voter("b"), voter("c"), nonvoter("n")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Second), "n": ago(time.Hour)}, remove: "n", dead: 1},
		{name: "exactly at the threshold is alive", servers: []raft.Server{voter("a"), voter("b"), voter("c"), voter("d")},
			contact: map[string]time.Time{"b": ago(time.Second), "c": ago(time.Second), "d": ago(time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.minQ != 0 {
				c.MinQuorum = tc.minQ
			}
			s := since
			if !tc.since.IsZero() {
				s = tc.since
			}
			plan := planDeadServers("a", tc.servers, func(id raft.ServerID) time.Time { return tc.contact[string(id)] }, s, now, c)
			got := ""
			if plan.remove != nil {
				got = string(plan.remove.ID)
			}
			if got != tc.remove {
				t.Errorf("remove %q, want %q", got, tc.remove)
			}
			var blocked []string
			for _, b := range plan.blocked {
				blocked = append(blocked, string(b.ID))
			}
			if len(blocked) != len(tc.blocked) || len(blocked) > 0 && blocked[0] != tc.blocked[0] {
				t.Errorf("blocked %v, want %v", blocked, tc.blocked)
			}
			if len(plan.dead) != tc.dead {
				t.Errorf("%d dead, want %d", len(plan.dead), tc.dead)
			}
		})
	}
}
