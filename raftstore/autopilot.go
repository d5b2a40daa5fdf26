package raftstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Dead-server clean-up ("autopilot"), off by default.
//
// Consul and Nomad decide that a server is dead from Serf gossip; tcauth,
// like Vault's integrated storage, has nothing but Raft, so it follows
// Vault's raft-only autopilot: the leader removes a member it has not
// heard from for DeadServerLastContactThreshold, as long as at least
// MinQuorum voters remain. The defaults are Vault's documented ones
// (cleanup_dead_servers false, dead_server_last_contact_threshold 24h,
// min_quorum 3; Vault refuses thresholds below one minute since
// hashicorp/vault#22040, because a shorter one removes nodes that are only
// restarting).
//
// "Heard from" is the leader's own record: the time a follower last
// answered an AppendEntries request (heartbeats included), seen in the
// transport. hashicorp/raft keeps its per-follower contact times to
// itself. A new leader knows nothing older than its leadership, so it
// counts every member as heard from when it took office: a server is
// removed at the earliest one threshold after an election.

// AutopilotConfig configures RunAutopilot. DefaultAutopilotConfig
// documents the defaults; zero values of the duration and count fields
// mean "default".
type AutopilotConfig struct {
	// CleanupDeadServers turns the clean-up on. Default false: removing a
	// member is a membership change an operator should opt into.
	CleanupDeadServers bool
	// DeadServerLastContactThreshold is how long the leader must not have
	// heard from a member before it removes it. Default 24h (Vault's);
	// at least MinDeadServerLastContactThreshold. Choose it longer than
	// any planned outage of a node (an upgrade, a host reboot): a removed
	// node has to be joined again.
	DeadServerLastContactThreshold time.Duration
	// MinQuorum is the fewest voters the clean-up leaves: a voter is
	// removed only if at least MinQuorum voters remain. Default 3.
	MinQuorum int
	// CheckInterval is how often the leader looks. Default 2s.
	CheckInterval time.Duration
}

// MinDeadServerLastContactThreshold is the shortest threshold accepted:
// a few heartbeat timeouts, so that a busy but live follower is never
// taken for dead. Production deployments want minutes or hours.
const MinDeadServerLastContactThreshold = time.Second

// ErrBadAutopilotConfig is a refused AutopilotConfig.
var ErrBadAutopilotConfig = errors.New("raftstore: bad autopilot configuration")

// DefaultAutopilotConfig returns the documented defaults.
func DefaultAutopilotConfig() AutopilotConfig {
	return AutopilotConfig{
		CleanupDeadServers:             false,
		DeadServerLastContactThreshold: 24 * time.Hour,
		MinQuorum:                      3,
		CheckInterval:                  2 * time.Second,
	}
}

// Check fills in defaults and refuses values that would remove live
// members or drop below one voter.
func (c *AutopilotConfig) Check() error {
	d := DefaultAutopilotConfig()
	if c.DeadServerLastContactThreshold == 0 {
		c.DeadServerLastContactThreshold = d.DeadServerLastContactThreshold
	}
	if c.MinQuorum == 0 {
		c.MinQuorum = d.MinQuorum
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = d.CheckInterval
	}
	switch {
	case c.DeadServerLastContactThreshold < MinDeadServerLastContactThreshold:
		return fmt.Errorf("%w: the dead server last contact threshold %s is below the minimum %s",
			ErrBadAutopilotConfig, c.DeadServerLastContactThreshold, MinDeadServerLastContactThreshold)
	case c.MinQuorum < 1:
		return fmt.Errorf("%w: min quorum %d is below 1", ErrBadAutopilotConfig, c.MinQuorum)
	case c.CheckInterval < 0:
		return fmt.Errorf("%w: negative check interval %s", ErrBadAutopilotConfig, c.CheckInterval)
	}
	return nil
}

// peerContacts is when each follower last answered this node's
// AppendEntries (the transport touches it; see observingTransport).
type peerContacts struct {
	mu   sync.Mutex
	last map[raft.ServerID]time.Time
}

func (p *peerContacts) touch(id raft.ServerID) {
	p.mu.Lock()
	if p.last == nil {
		p.last = map[raft.ServerID]time.Time{}
	}
	p.last[id] = time.Now()
	p.mu.Unlock()
}

func (p *peerContacts) get(id raft.ServerID) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[id]
}

// AppendEntries sends the request and, when the follower answered,
// notes the contact for the dead-server clean-up. Raft sends heartbeats
// through here too, so an idle live follower is heard from every
// HeartbeatTimeout/10.
func (o *observingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := o.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil && o.contacts != nil {
		o.contacts.touch(id)
	}
	return err
}

// autopilotState is the clean-up's counters, for the metrics.
type autopilotState struct {
	removed atomic.Uint64 // members removed as dead
	dead    atomic.Int64  // members past the threshold at the last check (leader only)
}

// deadServerPlan is what one check decided.
type deadServerPlan struct {
	dead    []raft.Server // past the threshold, oldest contact first
	remove  *raft.Server  // at most one per check
	blocked []raft.Server // dead voters kept because of MinQuorum
}

// planDeadServers decides, from the latest configuration and the contact
// times, which member (if any) to remove now. It never picks self, removes
// non-voters before voters (they do not count for quorum) and the voter
// heard from longest ago first, and keeps at least MinQuorum voters.
// since is when this node's leadership began: nothing older is known.
func planDeadServers(self raft.ServerID, servers []raft.Server, contact func(raft.ServerID) time.Time, since, now time.Time, cfg AutopilotConfig) deadServerPlan {
	var plan deadServerPlan
	voters := 0
	last := map[raft.ServerID]time.Time{}
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
		if srv.ID == self {
			continue
		}
		t := contact(srv.ID)
		if t.Before(since) {
			t = since
		}
		if now.Sub(t) > cfg.DeadServerLastContactThreshold {
			last[srv.ID] = t
			plan.dead = append(plan.dead, srv)
		}
	}
	slices.SortStableFunc(plan.dead, func(a, b raft.Server) int {
		if (a.Suffrage == raft.Voter) != (b.Suffrage == raft.Voter) {
			if a.Suffrage == raft.Voter {
				return 1
			}
			return -1
		}
		return last[a.ID].Compare(last[b.ID])
	})
	for i, srv := range plan.dead {
		if srv.Suffrage == raft.Voter && voters-1 < cfg.MinQuorum {
			plan.blocked = append(plan.blocked, srv)
			continue
		}
		if plan.remove == nil {
			plan.remove = &plan.dead[i]
		}
	}
	return plan
}

// RunAutopilot runs the dead-server clean-up until ctx ends or the store
// closes; it returns at once when cfg.CleanupDeadServers is off. Only the
// leader acts, one removal per check, each logged and counted
// (tcauth_autopilot_dead_servers_removed_total).
func (s *Store) RunAutopilot(ctx context.Context, cfg AutopilotConfig) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	if !cfg.CleanupDeadServers {
		return nil
	}
	tick := time.NewTicker(cfg.CheckInterval)
	defer tick.Stop()
	var since time.Time
	var sinceTerm uint64
	warned := map[raft.ServerID]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.cu.stop:
			return nil
		case <-tick.C:
		}
		// A leadership is one term: a new term (also one regained between
		// two ticks) starts the clock again, since this node sent nobody
		// anything while it did not lead.
		if term := s.raft.CurrentTerm(); !s.IsLeader() || term != sinceTerm {
			since, sinceTerm = time.Time{}, term
			s.autopilot.dead.Store(0)
			clear(warned)
			if !s.IsLeader() {
				continue
			}
		}
		if since.IsZero() {
			since = time.Now()
		}
		s.pruneDeadServer(cfg, since, warned)
	}
}

func (s *Store) pruneDeadServer(cfg AutopilotConfig, since time.Time, warned map[raft.ServerID]bool) {
	servers, ok := s.configServers()
	if !ok {
		return
	}
	now := time.Now()
	plan := planDeadServers(raft.ServerID(s.cfg.NodeID), servers, s.contacts.get, since, now, cfg)
	s.autopilot.dead.Store(int64(len(plan.dead)))
	lastContact := func(id raft.ServerID) string {
		if t := s.contacts.get(id); !t.IsZero() {
			return now.Sub(t).Round(time.Millisecond).String() + " ago"
		}
		return "not since this node became leader " + now.Sub(since).Round(time.Millisecond).String() + " ago"
	}
	for _, srv := range plan.blocked {
		if !warned[srv.ID] {
			warned[srv.ID] = true
			s.cfg.Logger.Warn("autopilot: keeping a dead server: removing it would leave fewer voters than the minimum quorum",
				"node", string(srv.ID), "address", string(srv.Address), "lastContact", lastContact(srv.ID), "minQuorum", cfg.MinQuorum)
		}
	}
	if plan.remove == nil {
		return
	}
	srv := *plan.remove
	if err := s.raft.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout).Error(); err != nil {
		s.cfg.Logger.Warn("autopilot: removing a dead server failed; will retry", "node", string(srv.ID), "error", err.Error())
		return
	}
	s.autopilot.removed.Add(1)
	s.autopilot.dead.Add(-1)
	s.cfg.Logger.Warn("autopilot: removed a dead server from the cluster", "node", string(srv.ID), "address", string(srv.Address),
		"voter", srv.Suffrage == raft.Voter, "lastContact", lastContact(srv.ID), "threshold", cfg.DeadServerLastContactThreshold.String())
}

// AutopilotRemoved is how many dead servers this node removed while it led.
func (s *Store) AutopilotRemoved() uint64 { return s.autopilot.removed.Load() }

var (
	descAutopilotRemoved = prometheus.NewDesc("tcauth_autopilot_dead_servers_removed_total",
		"Members this node removed from the cluster as dead (autopilot clean-up, while it led).", nil, nil)
	descAutopilotDead = prometheus.NewDesc("tcauth_autopilot_dead_servers",
		"Members the leader has not heard from for longer than the dead-server threshold, at its last check (0 on followers and with the clean-up off).", nil, nil)
)

func describeAutopilot(ch chan<- *prometheus.Desc) {
	ch <- descAutopilotRemoved
	ch <- descAutopilotDead
}

func (s *Store) collectAutopilot(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descAutopilotRemoved, prometheus.CounterValue, float64(s.autopilot.removed.Load()))
	dead := s.autopilot.dead.Load()
	if !s.IsLeader() {
		dead = 0
	}
	ch <- prometheus.MustNewConstMetric(descAutopilotDead, prometheus.GaugeValue, float64(dead))
}
