package raftstore

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// NodeStatus is one node's own view of its Raft state, for `tcauth cluster
// status` and the metrics. Each node reports its own; the operator's tool
// asks every member.
type NodeStatus struct {
	ID           string `json:"id"`
	RaftAddress  string `json:"raftAddress"`
	State        string `json:"state"` // Leader, Follower, Candidate, Shutdown
	Term         uint64 `json:"term"`
	LastLogIndex uint64 `json:"lastLogIndex"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"` // by the state machine
	// LastContactSeconds is the time since a follower last heard from the
	// leader: 0 on the leader, -1 when it never has (raft's "never").
	LastContactSeconds float64 `json:"lastContactSeconds"`
	LeaderID           string  `json:"leaderId,omitempty"`
	Voter              bool    `json:"voter"`
}

// Status reports this node's Raft figures.
func (s *Store) Status() NodeStatus {
	leader, _ := s.Leader()
	st := NodeStatus{ID: s.cfg.NodeID, RaftAddress: s.RaftAddr(), State: s.State(), Term: s.raft.CurrentTerm(),
		LastLogIndex: s.raft.LastIndex(), CommitIndex: s.raft.CommitIndex(), AppliedIndex: s.AppliedIndex(), LeaderID: leader}
	switch lc := s.raft.LastContact(); {
	case st.State == "Leader":
	case lc.IsZero():
		st.LastContactSeconds = -1
	default:
		st.LastContactSeconds = time.Since(lc).Seconds()
	}
	if servers, ok := s.configServers(); ok {
		for _, srv := range servers {
			if string(srv.ID) == s.cfg.NodeID {
				st.Voter = srv.Suffrage == raft.Voter
			}
		}
	}
	return st
}

// SetMemberMeta publishes metadata on behalf of member id (leader only):
// a joining node's API address, sent with its join request, so that the
// operator's tools can reach every member and not only past leaders.
func (s *Store) SetMemberMeta(ctx context.Context, id string, meta map[string]string) error {
	_, err := s.Apply(ctx, Command{Op: OpSetNodeMeta, NodeID: id, Meta: meta})
	return err
}
