package main

import (
	"strings"
	"testing"

	"github.com/tcauth/tcauth/raftstore"
)

// TestSummarizeQuorum: quorum needs a reachable leader and a majority of
// the voters answering; lag is the leader's last index minus each node's
// applied index.
func TestSummarizeQuorum(t *testing.T) {
	st := func(id, state string, term, last, applied uint64) *raftstore.NodeStatus {
		return &raftstore.NodeStatus{ID: id, State: state, Term: term, LastLogIndex: last, AppliedIndex: applied}
	}
	row := func(id string, voter bool, s *raftstore.NodeStatus) nodeRow {
		r := nodeRow{ID: id, Voter: voter, Status: s}
		if s == nil {
			r.Error = "unreachable: refused"
		}
		return r
	}
	cases := []struct {
		name       string
		rows       []nodeRow
		wantQuorum bool
		wantLeader string
		wantLag    map[string]uint64
		problem    string
	}{
		{"healthy", []nodeRow{row("a", true, st("a", "Leader", 3, 10, 10)), row("b", true, st("b", "Follower", 3, 10, 8)), row("c", true, st("c", "Follower", 3, 10, 10))},
			true, "a", map[string]uint64{"a": 0, "b": 2, "c": 0}, ""},
		{"one down", []nodeRow{row("a", true, st("a", "Leader", 3, 10, 10)), row("b", true, nil), row("c", true, st("c", "Follower", 3, 10, 10))},
			true, "a", map[string]uint64{"a": 0, "c": 0}, ""},
		{"two down", []nodeRow{row("a", true, nil), row("b", true, st("b", "Candidate", 9, 10, 10)), row("c", true, nil)},
			false, "", nil, "no reachable node is the leader"},
		{"stale leader in minority", []nodeRow{row("a", true, st("a", "Leader", 3, 10, 10)), row("b", true, nil), row("c", true, nil)},
			false, "a", map[string]uint64{"a": 0}, "only 1 of 3 voters answered"},
		{"newer term wins", []nodeRow{row("a", true, st("a", "Leader", 3, 10, 10)), row("b", true, st("b", "Leader", 4, 12, 12)), row("c", true, st("c", "Follower", 4, 12, 11))},
			true, "b", map[string]uint64{"a": 2, "b": 0, "c": 1}, ""},
		{"non-voter not counted", []nodeRow{row("a", true, st("a", "Leader", 3, 10, 10)), row("x", false, st("x", "Follower", 3, 10, 4))},
			true, "a", map[string]uint64{"a": 0, "x": 6}, ""},
		{"follower ahead of leader's view", []nodeRow{row("a", true, st("a", "Leader", 3, 10, 10)), row("b", true, st("b", "Follower", 3, 11, 11))},
			true, "a", map[string]uint64{"a": 0, "b": 0}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := summarize(tc.rows)
			if rep.Quorum != tc.wantQuorum || rep.Leader != tc.wantLeader || !strings.Contains(rep.Problem, tc.problem) {
				t.Errorf("quorum %v leader %q problem %q", rep.Quorum, rep.Leader, rep.Problem)
			}
			for _, r := range rep.Nodes {
				want, ok := tc.wantLag[r.ID]
				if ok != (r.Lag != nil) || ok && *r.Lag != want {
					t.Errorf("node %s: lag %v, want %v (known %v)", r.ID, r.Lag, want, ok)
				}
			}
			var b strings.Builder
			if err := printStatusTable(&b, rep); err != nil {
				t.Fatal(err)
			}
			if wantLine := map[bool]string{true: "quorum: yes", false: "quorum: NO"}[tc.wantQuorum]; !strings.Contains(b.String(), wantLine) {
				t.Errorf("table lacks %q:\n%s", wantLine, b.String())
			}
		})
	}
}
