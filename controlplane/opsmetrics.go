package controlplane

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// longPollEndpoints are the routes whose duration is mostly a deliberate
// wait (the sidecars' change feed waits up to ChangesMaxWait for a
// change): in the request-latency histogram they would hide real latency,
// so they get a histogram of their own.
var longPollEndpoints = map[string]bool{"watchChanges": true}

// opsMetrics are the operator's series beside the API ones: Raft's own
// (raftstore.RaftMetrics, process-wide, and the node's figures), the Go
// runtime and process, authenticateHawk outcomes, and long polls.
type opsMetrics struct {
	auth     *prometheus.CounterVec   // result, reason: authenticateHawk answers
	apiAuth  *prometheus.CounterVec   // result, reason: the API's own callers
	longPoll *prometheus.HistogramVec // endpoint
}

// RaftCollectors is implemented by a Store backed by Raft: its metrics
// are added to the server's registry.
type RaftCollectors interface {
	RaftCollectors() []prometheus.Collector
}

// RaftCollectors makes the Raft adapter a RaftCollectors.
func (a raftStore) RaftCollectors() []prometheus.Collector {
	return []prometheus.Collector{raftstore.RaftMetrics(), a.rs.Collector()}
}

func newOpsMetrics(reg *prometheus.Registry, store Store) *opsMetrics {
	m := &opsMetrics{
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tcauth_authenticate_hawk_total",
			Help: "authenticateHawk answers (the sidecars' remote verification) by result (success, anonymous, failed, error) and, for failures, reason."},
			[]string{"result", "reason"}),
		apiAuth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tcauth_api_authentications_total",
			Help: "Verifications of the credentials of the auth API's own callers (once per request that needs them), by result (success, anonymous, failed, error) and, for failures, reason."},
			[]string{"result", "reason"}),
		longPoll: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tcauth_api_long_poll_duration_seconds",
			Help:    "Duration of long-poll requests (the change feed), which wait for a change; kept out of tcauth_api_request_duration_seconds.",
			Buckets: []float64{0.01, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90}}, []string{"endpoint"}),
	}
	// Each Server has its own registry (several per test process), so the
	// runtime collectors are registered per registry too; they read
	// process-wide figures, which is what they describe.
	reg.MustRegister(m.auth, m.apiAuth, m.longPoll, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if rc, ok := store.(RaftCollectors); ok {
		reg.MustRegister(rc.RaftCollectors()...)
	}
	return m
}

func (m *opsMetrics) observeLongPoll(endpoint string, d time.Duration) bool {
	if !longPollEndpoints[endpoint] {
		return false
	}
	m.longPoll.WithLabelValues(endpoint).Observe(d.Seconds())
	return true
}

// observeAuth counts one authenticateHawk answer.
func (m *opsMetrics) observeAuth(res protocol.Result) { countAuth(m.auth, res) }

// reasonPayloadHash: the request's body does not match the hash its Hawk
// header signs (checked by the API, not by authenticateHawk).
const reasonPayloadHash = "bad_payload_hash"

// observeAPIAuth counts the verification of an API caller's credentials:
// res and err as authenticateWith returns them.
func (m *opsMetrics) observeAPIAuth(res *protocol.Result, err error) {
	switch {
	case res == nil: // two schemes at once
		m.apiAuth.WithLabelValues("failed", protocol.ReasonBadHeader).Inc()
	case err != nil && res.Err == nil && res.Status != protocol.StatusFailed:
		m.apiAuth.WithLabelValues("failed", reasonPayloadHash).Inc()
	default:
		countAuth(m.apiAuth, *res)
	}
}

func countAuth(vec *prometheus.CounterVec, res protocol.Result) {
	switch {
	case res.Err != nil:
		vec.WithLabelValues("error", protocol.ReasonLookupFailed).Inc()
	case res.Status == protocol.StatusFailed:
		vec.WithLabelValues("failed", protocol.FailureReason(res.Reason)).Inc()
	case res.Scheme == "none":
		vec.WithLabelValues("anonymous", "").Inc()
	default:
		vec.WithLabelValues("success", "").Inc()
	}
}
