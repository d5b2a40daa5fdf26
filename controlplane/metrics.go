package controlplane

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per Server (own registry), so several servers can live in
// one process (tests, multi-node harnesses).
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	applyLatency *prometheus.HistogramVec
	forwarded    *prometheus.HistogramVec
	ops          *opsMetrics // opsmetrics.go: Raft, runtime, authentication outcomes, long polls
}

var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

func newMetrics(store Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcauth_api_requests_total", Help: "API requests by endpoint and HTTP status.",
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tcauth_api_request_duration_seconds", Help: "API request latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"endpoint"}),
		applyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tcauth_raft_apply_duration_seconds", Help: "Latency of Raft writes issued by the API, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op"}),
		forwarded: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tcauth_api_forwarded_duration_seconds", Help: "Requests a follower forwarded to the leader, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"endpoint"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.applyLatency, m.forwarded,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tcauth_raft_applied_index", Help: "Raft index applied by this node."},
			func() float64 { return float64(store.AppliedIndex()) }))
	for _, st := range raftStates {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tcauth_raft_state", Help: "1 for this node's current Raft state.", ConstLabels: prometheus.Labels{"state": st},
		}, func() float64 {
			if store.RaftState() == st {
				return 1
			}
			return 0
		}))
	}
	m.ops = newOpsMetrics(m.reg, store)
	return m
}

func (m *metrics) observe(endpoint string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	if m.ops.observeLongPoll(endpoint, d) {
		return // a long poll's duration is its wait, not latency
	}
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}
