package raftstore

import (
	"strings"
	"sync"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft (and raft-boltdb) report through go-metrics' global sink,
// imported as github.com/hashicorp/go-metrics/compat: that package is
// armon/go-metrics by default and hashicorp/go-metrics with the
// hashicorpmetrics build tag. Installing the sink through compat as well
// reaches whichever one raft was built against.
//
// The global sink is process-wide and raft's keys do not say which node
// emitted them, so these series cannot be split per Store. The choice: one
// process-wide sink (RaftMetrics), a prometheus.Collector that every
// server registers into its own registry. In a deployment (one node per
// process) the figures are exactly that node's; in a test process with
// several nodes they are the sum of all of them. Everything that can be
// read per node (term, indexes, last contact, leader changes) is instead
// a per-Store collector (Store.Collector) and is always exact.

var (
	raftSinkOnce sync.Once
	raftSink     *promSink
)

// RaftMetrics returns the process-wide collector of hashicorp/raft's own
// metrics, installing it as go-metrics' global sink on first use.
func RaftMetrics() prometheus.Collector {
	raftSinkOnce.Do(func() {
		raftSink = newPromSink()
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname, conf.EnableRuntimeMetrics, conf.EnableServiceLabel = false, false, false
		// NewGlobal fails only for a bad filter configuration.
		if _, err := gometrics.NewGlobal(conf, raftSink); err != nil {
			panic(err)
		}
	})
	return raftSink
}

// durationBuckets span 100µs to ~13s: a commit on loopback is well under
// a millisecond, an fsync on a slow disk tens of milliseconds.
var durationBuckets = prometheus.ExponentialBuckets(0.0001, 2, 18)

// raftTimings maps raft's timing samples (milliseconds) to histograms in
// seconds. Only these keys are exported: the rest are per-peer keys (the
// peer id inside the metric name) or internals of little use to operators.
var raftTimings = map[string]struct{ name, help string }{
	"raft.commitTime":                    {"tcauth_raft_commit_duration_seconds", "Time from a leader dispatching a log entry to its commit (leader only)."},
	"raft.leader.lastContact":            {"tcauth_raft_leader_last_contact_seconds", "Time since the leader last heard from each follower, sampled at every lease check (leader only)."},
	"raft.leader.dispatchLog":            {"tcauth_raft_leader_dispatch_duration_seconds", "Time the leader takes to write a batch of new entries to its own log."},
	"raft.fsm.apply":                     {"tcauth_raft_fsm_apply_duration_seconds", "Time to apply one committed entry outside a batch (the state machine applies in batches: see tcauth_raft_fsm_apply_batch_duration_seconds)."},
	"raft.fsm.applyBatch":                {"tcauth_raft_fsm_apply_batch_duration_seconds", "Time to apply one batch of committed entries to the state machine."},
	"raft.fsm.snapshot":                  {"tcauth_raft_fsm_snapshot_duration_seconds", "Time to capture the state machine for a snapshot."},
	"raft.fsm.restore":                   {"tcauth_raft_fsm_restore_duration_seconds", "Time to restore the state machine from a snapshot."},
	"raft.snapshot.create":               {"tcauth_raft_snapshot_create_duration_seconds", "Time to create a snapshot."},
	"raft.snapshot.persist":              {"tcauth_raft_snapshot_persist_duration_seconds", "Time to write a snapshot to disk."},
	"raft.rpc.appendEntries":             {"tcauth_raft_rpc_append_entries_duration_seconds", "Time a follower takes to handle an AppendEntries RPC."},
	"raft.replication.appendEntries.rpc": {"tcauth_raft_replication_append_entries_duration_seconds", "Round trip of the leader's AppendEntries RPCs to followers (all peers)."},
	"raft.candidate.electSelf":           {"tcauth_raft_election_duration_seconds", "Time a candidate takes to request votes."},
}

// raftSizes maps raft's samples that are counts, not times.
var raftSizes = map[string]struct{ name, help string }{
	"raft.fsm.applyBatchNum": {"tcauth_raft_fsm_apply_batch_entries", "Entries per batch applied to the state machine."},
}

// raftCounters maps raft's counters; state counters become one series
// with a state label.
var raftCounters = map[string]struct{ name, help, state string }{
	"raft.apply":                           {"tcauth_raft_apply_total", "Entries proposed on this leader.", ""},
	"raft.transition.heartbeat_timeout":    {"tcauth_raft_heartbeat_timeouts_total", "Follower heartbeat timeouts (no word from a leader): each may start an election.", ""},
	"raft.transition.leader_lease_timeout": {"tcauth_raft_leader_lease_timeouts_total", "Times a leader stepped down because it lost contact with a quorum.", ""},
	"raft.state.leader":                    {"tcauth_raft_state_transitions_total", "Transitions into each Raft state.", "leader"},
	"raft.state.follower":                  {"tcauth_raft_state_transitions_total", "Transitions into each Raft state.", "follower"},
	"raft.state.candidate":                 {"tcauth_raft_state_transitions_total", "Transitions into each Raft state.", "candidate"},
}

// promSink is a go-metrics MetricSink that keeps the mapped series as
// Prometheus metrics and is itself a prometheus.Collector.
type promSink struct {
	timings  map[string]prometheus.Histogram
	sizes    map[string]prometheus.Histogram
	counters map[string]prometheus.Counter
	all      []prometheus.Collector
}

func newPromSink() *promSink {
	s := &promSink{timings: map[string]prometheus.Histogram{}, sizes: map[string]prometheus.Histogram{}, counters: map[string]prometheus.Counter{}}
	for key, m := range raftSizes {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: m.name, Help: m.help, Buckets: prometheus.ExponentialBuckets(1, 2, 8)})
		s.sizes[key], s.all = h, append(s.all, h)
	}
	for key, m := range raftTimings {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: m.name, Help: m.help, Buckets: durationBuckets})
		s.timings[key], s.all = h, append(s.all, h)
	}
	vecs := map[string]*prometheus.CounterVec{}
	for key, m := range raftCounters {
		if m.state == "" {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: m.name, Help: m.help})
			s.counters[key], s.all = c, append(s.all, c)
			continue
		}
		v, ok := vecs[m.name]
		if !ok {
			v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name, Help: m.help}, []string{"state"})
			vecs[m.name], s.all = v, append(s.all, v)
		}
		s.counters[key] = v.WithLabelValues(m.state)
	}
	return s
}

func (s *promSink) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.all {
		c.Describe(ch)
	}
}

func (s *promSink) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.all {
		c.Collect(ch)
	}
}

// The maps are read-only after newPromSink, so the sink needs no lock.
func (s *promSink) AddSample(key []string, val float32) {
	k := strings.Join(key, ".")
	if h, ok := s.timings[k]; ok {
		h.Observe(float64(val) / 1000) // go-metrics timings are milliseconds
	} else if h, ok := s.sizes[k]; ok {
		h.Observe(float64(val))
	}
}

func (s *promSink) AddSampleWithLabels(key []string, val float32, _ []gometrics.Label) {
	s.AddSample(key, val)
}

func (s *promSink) IncrCounter(key []string, val float32) {
	if c, ok := s.counters[strings.Join(key, ".")]; ok {
		c.Add(float64(val))
	}
}

func (s *promSink) IncrCounterWithLabels(key []string, val float32, _ []gometrics.Label) {
	s.IncrCounter(key, val)
}

// Gauges are read per Store instead (Store.Collector).
func (s *promSink) SetGauge([]string, float32)                              {}
func (s *promSink) SetGaugeWithLabels([]string, float32, []gometrics.Label) {}
func (s *promSink) EmitKey([]string, float32)                               {}

// Collector returns this node's own Raft figures, read at scrape time:
// term, indexes, time since the leader was last heard from and leader
// changes seen. Register it with the node's registry.
func (s *Store) Collector() prometheus.Collector {
	return &storeCollector{s: s}
}

var (
	descTerm        = prometheus.NewDesc("tcauth_raft_term", "This node's current Raft term.", nil, nil)
	descLastLog     = prometheus.NewDesc("tcauth_raft_last_log_index", "Index of the last entry in this node's log.", nil, nil)
	descCommit      = prometheus.NewDesc("tcauth_raft_commit_index", "Highest index this node knows to be committed.", nil, nil)
	descLastContact = prometheus.NewDesc("tcauth_raft_last_contact_seconds",
		"Seconds since this follower last heard from the leader (0 on the leader; -1 if never).", nil, nil)
	descLeaderChanges = prometheus.NewDesc("tcauth_raft_leader_changes_total", "Leader changes this node has observed (including to no leader).", nil, nil)
	descPeers         = prometheus.NewDesc("tcauth_raft_peers", "Members in this node's latest cluster configuration.", nil, nil)
)

type storeCollector struct{ s *Store }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descLastLog, descCommit, descLastContact, descLeaderChanges, descPeers} {
		ch <- d
	}
	describeAutopilot(ch) // autopilot.go
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descTerm, float64(st.Term))
	gauge(descLastLog, float64(st.LastLogIndex))
	gauge(descCommit, float64(st.CommitIndex))
	gauge(descLastContact, st.LastContactSeconds)
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(c.s.leaderChanges.Load()))
	if servers, ok := c.s.configServers(); ok {
		gauge(descPeers, float64(len(servers)))
	}
	c.s.collectAutopilot(ch) // autopilot.go
}

// watchLeader counts leader changes from raft's observations (no
// polling); it ends when Close begins.
func (s *Store) watchLeader() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	for {
		select {
		case <-ch:
			s.leaderChanges.Add(1)
		case <-s.cu.stop:
			return
		}
	}
}

func (s *Store) configServers() ([]raft.Server, bool) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return nil, false
	}
	return f.Configuration().Servers, true
}
